"""`gridrun results SWEEP` and `gridrun plot SWEEP`: the report's table and figure, from the store."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from gridrun.engine.errors import GridrunError, did_you_mean
from gridrun.tui.options import HomeOption, console, open_home

SweepArg = Annotated[str, typer.Argument(help="Sweep name.", show_default=False)]
MetricOpt = Annotated[Optional[str], typer.Option(
    "--metric", help="Metric to rank by [default: the sweep's].", show_default=False)]
ModeOpt = Annotated[Optional[str], typer.Option("--mode", help="max or min.", show_default=False)]
GroupBy = Annotated[Optional[list[str]], typer.Option(
    "--group-by", help="A marginal table over these keys (repeatable).", show_default=False)]
Where = Annotated[Optional[list[str]], typer.Option(
    "--where", help="Only runs with key=value (repeatable).", show_default=False)]


def tables_for(store, sweep_name: str, *, metric, mode, pick, group_by, where, stage):
    """The table, or one table per stage for a staged sweep (or the one asked for)."""
    from gridrun.engine import report_tables

    return report_tables.tables(store, sweep_name, metric=metric, mode=mode, pick=pick,
                                group_by=group_by, where=where, stage=stage)


def results(sweep: SweepArg, home: HomeOption = None,
            fmt: Annotated[Optional[str], typer.Option(
                "--format", "-f", help="md, csv, latex or json [default: a table on a terminal, "
                "md when piped]", show_default=False)] = None,
            metric: MetricOpt = None, mode: ModeOpt = None,
            last: Annotated[bool, typer.Option(
                "--last/--best", help="Read each run's metric at its last epoch, or its best.")
            ] = False,
            group_by: GroupBy = None, where: Where = None,
            stage: Annotated[Optional[int], typer.Option(
                "--stage", help="One stage of a staged study.", show_default=False)] = None,
            output: Annotated[Optional[Path], typer.Option(
                "-o", "--output", help="Write to this file (format from --format, else from "
                "its extension).", show_default=False)] = None) -> None:
    """The results table of a sweep: mean ± std over seeds per configuration, best first."""
    from gridrun.engine import table_format

    if fmt is None and output is not None:
        fmt = {".md": "md", ".csv": "csv", ".tex": "latex", ".json": "json"}.get(
            output.suffix.lower(), "md")
    if fmt is not None and fmt not in table_format.FORMATS:
        raise GridrunError(f'unknown format "{fmt}", expected one of '
                           f'{", ".join(table_format.FORMATS)}',
                           hint=did_you_mean(fmt, table_format.FORMATS))
    _, store = open_home(home)
    tables = tables_for(store, sweep, metric=metric, mode=mode, pick="last" if last else "best",
                        group_by=group_by, where=where, stage=stage)
    if fmt is None and output is None and sys.stdout.isatty():
        _print_rich(tables)
        return
    text = table_format.render(tables, fmt or "md")
    if output is not None:
        output.write_text(text)
        print(f"wrote {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def _print_rich(tables) -> None:
    from rich.table import Table

    from gridrun.engine import table_format

    out = console()
    for table in tables:
        header, body = table_format.cells(table)
        title = f"{table.sweep}" + (f", stage {table.stage}" if table.stage else "")
        view = Table(title=f"{title}: {table.metric} ({table.mode})", title_justify="left",
                     box=None, pad_edge=False)
        for name in header:
            view.add_column(name, justify="left" if name in table.keys else "right")
        for row, cells in zip(table.rows, body):
            view.add_row(*cells, style="bold" if table.best is row else
                         ("dim" if row.headline.mean is None else None))
        out.print(view)


def plot(sweep: SweepArg, home: HomeOption = None,
         metric: Annotated[Optional[list[str]], typer.Option(
             "--metric", help="Metric to draw (repeatable: a grid of panels) [default: the "
             "sweep's].", show_default=False)] = None,
         group_by: GroupBy = None, where: Where = None,
         output: Annotated[Optional[Path], typer.Option(
             "-o", "--output", help="PNG, SVG or PDF, by extension [default: "
             "<home>/<sweep>/curves.png].", show_default=False)] = None,
         title: Annotated[Optional[str], typer.Option("--title", show_default=False)] = None
         ) -> None:
    """Curves over epochs, one line per configuration (mean over seeds, ± std band)."""
    from gridrun.engine import plot as plotting, results

    home_path, store = open_home(home)
    target = output or home_path / sweep / "curves.png"
    if target.suffix.lower() not in plotting.EXTENSIONS:
        raise GridrunError(f'cannot write "{target.suffix}" figures, expected one of '
                           f'{", ".join(plotting.EXTENSIONS)}')
    figure = plotting.curves(store, sweep, metrics=metric, group_by=group_by,
                             where=results.parse_where(where), title=title)
    target.parent.mkdir(parents=True, exist_ok=True)
    plotting.save(figure, target)
    print(f"wrote {target}")
