"""`python -m ttsim.sweep`: the same command as `ttsim sweep`."""
from . import main

raise SystemExit(main(prog="python -m ttsim.sweep"))
