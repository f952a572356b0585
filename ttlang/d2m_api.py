"""The older tt-lang module name of the D2M-style API (`from ttlang.d2m_api import *`):
the same names as `ttlang.d2m`."""
from .d2m import *  # noqa: F401,F403
from .d2m import __all__  # noqa: F401
