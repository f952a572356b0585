"""sysdesc: hardware descriptions of Tensix chips (pure data, no simulation).

`sysdesc.load()` gives the default (wormhole_b0); `load("blackhole")` another built-in;
`load("my_chip.toml")` a file of your own. The format is in docs/sysdesc.md.
"""
from .load import BUILTIN_DIR, DEFAULT, FORMAT_VERSION, builtin_names, from_dict, load, parse
from .schema import REQUIRED_FIGURES, DramBank, Figure, SysDesc, SysdescError

__all__ = ["load", "parse", "from_dict", "builtin_names", "SysDesc", "Figure", "DramBank",
           "SysdescError", "REQUIRED_FIGURES", "FORMAT_VERSION", "DEFAULT", "BUILTIN_DIR"]
