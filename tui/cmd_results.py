"""`gridrun results SWEEP`: the sweep's table, mean ± std over seeds, best first."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from engine.errors import GridrunError, did_you_mean
from tui.options import HomeOption, open_home


def results(sweep: Annotated[str, typer.Argument(help="Sweep name.")],
            home: HomeOption = None,
            fmt: Annotated[Optional[str], typer.Option(
                "--format", "-f", help="md, csv, latex or json [default: md]")] = None,
            metric: Annotated[Optional[str], typer.Option(
                "--metric", help="Metric to rank by [default: the sweep's].")] = None,
            mode: Annotated[Optional[str], typer.Option("--mode", help="max or min.")] = None,
            last: Annotated[bool, typer.Option(
                "--last", help="Read each run's last epoch instead of its best.")] = False,
            output: Annotated[Optional[Path], typer.Option(
                "-o", "--output", help="Write to this file.")] = None) -> None:
    """Print the results table of a sweep (one row per configuration, seeds folded together)."""
    from engine import results as res

    chosen = fmt or "md"
    if chosen not in res.FORMATS:
        raise GridrunError(f'unknown format "{chosen}", expected one of {", ".join(res.FORMATS)}',
                           hint=did_you_mean(chosen, res.FORMATS))
    if mode is not None and mode not in ("max", "min"):
        raise GridrunError(f'mode must be "max" or "min", got "{mode}"')
    _, store = open_home(home)
    table = res.build(store, sweep, metric, mode, "last" if last else "best")
    text = res.render(table, chosen)
    if output is not None:
        output.write_text(text)
        print(f"wrote {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
