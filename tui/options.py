"""Options shared by several commands, and the small helpers every command uses."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

HomeOption = Annotated[Optional[Path], typer.Option(
    "--home", help="Folder of the store and run folders [default: $GRIDRUN_HOME, else ./runs].",
    show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]


def open_home(home: Path | None):
    """(home path, store) for a command; the store is created empty when missing."""
    from gridrun.engine.home import resolve_home
    from gridrun.engine.store import open_store

    path = resolve_home(home)
    return path, open_store(path)


def console():
    """A rich console: colours on a terminal, plain and unwrapped when piped."""
    from rich.console import Console

    tty = sys.stdout.isatty()
    return Console(highlight=False, soft_wrap=not tty, width=None if tty else 200)

