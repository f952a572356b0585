"""The built-in descriptions as raw TOML tables, for tests that mutate them."""
import copy
import os
import tomllib

import sysdesc

BUILTINS = ("wormhole_b0", "blackhole", "blackhole_p100a")
_RAW = {}
for _n in BUILTINS:
    with open(os.path.join(sysdesc.BUILTIN_DIR, f"{_n}.toml"), "rb") as _f:
        _RAW[_n] = tomllib.load(_f)


def raw(name):
    """A fresh copy of built-in `name`'s table, free to change."""
    return copy.deepcopy(_RAW[name])
