"""Options shared by several commands, and the small helpers every command uses."""
from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

HomeOption = Annotated[Optional[Path], typer.Option(
    "--home", help="Folder of the store and run folders [default: $GRIDRUN_HOME, else ./runs].",
    show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
# `--backend ray`: the runs go to a Ray cluster (engine.ray_backend); Ray is an optional extra
class Backend(str, Enum):
    local = "local"
    ray = "ray"


BackendOption = Annotated[Backend, typer.Option(
    "--backend",
    help="Where runs go: this machine, or a Ray cluster (pip install 'gridrun[ray]').")]
AddressOption = Annotated[Optional[str], typer.Option(
    "--address", help="The Ray cluster's address, as `ray.init` takes it [default: $RAY_ADDRESS, "
    "else a cluster started on this machine].", show_default=False)]


def backend_args(backend: str, address: str | None) -> tuple[str, ...]:
    """The options that give a detached daemon the same backend."""
    if backend != "ray":
        return ()
    return ("--backend", "ray") + (("--address", address) if address else ())


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

