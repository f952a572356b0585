"""sysdesc: hardware descriptions of Tensix chips (pure data, no simulation).

`sysdesc.load()` gives the default (wormhole_b0); `load("blackhole")` another built-in;
`load("my_chip.toml")` a file of your own; `load("system_desc.ttsys", chip=N)` a chip of a
tt-mlir system descriptor. With no name, $SYSTEM_DESC_PATH if set. docs/sysdesc.md has the
format.
"""
from .load import BUILTIN_DIR, DEFAULT, FORMAT_VERSION, builtin_names, from_dict, load, parse
from .schema import REQUIRED_FIGURES, DramBank, Figure, SysDesc, SysdescError
from . import ttsys  # noqa: E402  (after load: it builds on the built-ins)

__all__ = ["load", "parse", "from_dict", "builtin_names", "SysDesc", "Figure", "DramBank",
           "SysdescError", "REQUIRED_FIGURES", "FORMAT_VERSION", "DEFAULT", "BUILTIN_DIR"]
