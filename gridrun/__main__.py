"""`python -m gridrun ...` is the `gridrun` command."""
from gridrun.tui.cli import main

main()
