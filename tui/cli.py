"""The `gridrun` command: wires the command groups; each lives in its own module.

Heavy imports stay inside the commands, so `gridrun --help` and `gridrun queue ls` start fast
and never load torch or textual.
"""
from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from gridrun.tui import cmd_gpus, cmd_queue, cmd_results, cmd_tui
from gridrun.tui.errors import run_app

app = typer.Typer(
    name="gridrun",
    help="A terminal experiment manager for deep-learning sweeps: TOML run matrices, a GPU "
         "queue, live curves, report tables.",
    invoke_without_command=True, add_completion=False, pretty_exceptions_enable=False,
    rich_markup_mode=None, context_settings={"help_option_names": ["-h", "--help"]})
app.add_typer(cmd_queue.app, name="queue")
app.command("results")(cmd_results.results)
app.command("plot")(cmd_results.plot)
app.command("gpus")(cmd_gpus.gpus)
app.command("tui")(cmd_tui.tui)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"gridrun {version('gridrun')}")
        except PackageNotFoundError:
            print("gridrun (not installed)")
        raise typer.Exit(0)


@app.callback()
def root(ctx: typer.Context, version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version.")] = None
         ) -> None:
    """gridrun: queue a run matrix, watch it run, read the results. With no command, the
    interface opens (as `gridrun tui`)."""
    if ctx.invoked_subcommand is None:
        cmd_tui.tui()


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_app(app, argv))


if __name__ == "__main__":
    main()
