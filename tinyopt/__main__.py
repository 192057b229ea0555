"""`python -m tinyopt ...` runs the `tinyopt` command (tinyopt/cli.py)."""
import sys

from tinyopt.cli import main

sys.exit(main())
