"""`python -m ttsim`: the `ttsim` command."""
from .cli import main

raise SystemExit(main())
