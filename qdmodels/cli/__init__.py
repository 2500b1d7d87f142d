"""The `qd` command line (typer). Each command group lives in its own module; `main.py` mounts them."""
