"""`gridrun` / `gridrun tui`: the interface. Textual is imported only here, when it runs."""
from __future__ import annotations

from typing import Annotated

import typer

from gridrun.tui.options import HomeOption


def tui(home: HomeOption = None,
        no_daemon: Annotated[bool, typer.Option(
            "--no-daemon", help="Do not start a daemon when none is running.")] = False,
        cpu_slots: Annotated[int, typer.Option(
            "--cpu-slots", min=1, help="CPU slots of the daemon it starts.")] = 1) -> None:
    """Open the interface on the home's store (the runs go on when it closes)."""
    from gridrun.engine.home import resolve_home
    from gridrun.tui.app import GridrunApp

    GridrunApp(resolve_home(home), start_daemon=not no_daemon, cpu_slots=cpu_slots).run()
