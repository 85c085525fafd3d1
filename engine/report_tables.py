"""A sweep's results tables for a set of choices, as `gridrun results` and the interface's
Results screen both show and export them.

`tables()` makes one table, or one per stage of a staged study (the rule `gridrun results`
follows), so the CLI and the interface cannot disagree; `export()` writes exactly what
`gridrun results SWEEP --format md` prints with the same choices to `<home>/<sweep>/results.md`.
`view()` is what the Results screen reads in a worker: the tables, what can be chosen (the
metrics the runs report, the parameters to group by) and the store's change counter, so a
poll on a quiet store knows there is nothing to redo. Plain data in and out; no UI here.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridrun.engine import results, stages, table_format
from gridrun.engine.errors import GridrunError
from gridrun.engine.results import EXTRA_COLUMNS, ResultTable
from gridrun.engine.store import Store

EXPORT_NAME = "results.md"
# bookkeeping and echoed parameters: never something to rank a configuration by
NOT_RANKABLE = {"epoch", "epochs", "step", "steps", "warning", "attempt", "lr"}


@dataclass(frozen=True)
class Choices:
    """What the user picked: each maps to one `gridrun results` option."""
    metric: str | None = None            # None: the sweep's own metric
    mode: str | None = None              # None: the sweep's, or from the metric's name
    pick: str = "best"                   # "best" or "last" epoch
    group_by: tuple[str, ...] = ()       # none: one row per configuration
    where: tuple[str, ...] = ()          # "key=value", as --where takes them
    stage: int | None = None

    def argv(self) -> list[str]:
        """The `gridrun results` options that make the same table."""
        args: list[str] = []
        if self.metric is not None:
            args += ["--metric", self.metric]
        if self.mode is not None:
            args += ["--mode", self.mode]
        if self.pick == "last":
            args.append("--last")
        for key in self.group_by:
            args += ["--group-by", key]
        for item in self.where:
            args += ["--where", item]
        if self.stage is not None:
            args += ["--stage", str(self.stage)]
        return args

    def options(self) -> dict[str, Any]:
        return {"metric": self.metric, "mode": self.mode, "pick": self.pick,
                "group_by": list(self.group_by) or None, "where": list(self.where) or None,
                "stage": self.stage}


def tables(store: Store, sweep_name: str, *, metric: str | None = None,
           mode: str | None = None, pick: str = "best", group_by: Sequence[str] | None = None,
           where: Mapping[str, Any] | Sequence[str] | None = None, stage: int | None = None
           ) -> list[ResultTable]:
    """The table, or one table per stage of a staged sweep (or the one asked for). A group-by
    makes one marginal table over every run, stages or not. `where` is a mapping or the
    `key=value` strings of `--where`."""
    if mode is not None and mode not in ("max", "min"):
        raise GridrunError(f'mode must be "max" or "min", got "{mode}"')
    if pick not in ("best", "last"):
        raise GridrunError(f'pick must be "best" or "last", got "{pick}"')
    sweep = store.require_sweep(sweep_name)
    where_values = dict(where) if isinstance(where, Mapping) else results.parse_where(
        list(where or []))
    group_by = list(group_by or []) or None
    options = {"metric": metric, "mode": mode, "pick": pick, "where": where_values}
    if not sweep.spec.get("stages") or group_by:
        if stage is not None and not sweep.spec.get("stages"):
            raise GridrunError(f"sweep {sweep_name} has no stages")
        return [results.build(store, sweep_name, group_by=group_by, **options)]
    infos = stages.stages(store, sweep)
    if stage is not None:
        if not 1 <= stage <= stages.stage_count(sweep):
            raise GridrunError(f"sweep {sweep_name} has stages 1 to {stages.stage_count(sweep)}")
        if stage > len(infos):
            raise GridrunError(f"stage {stage} has not started yet: stage {len(infos)} is "
                               "still running or ended without a done run")
        infos = [infos[stage - 1]]
    return [stages.stage_table(store, sweep, info, **options) for info in infos]


def markdown(store: Store, sweep_name: str, choices: Choices = Choices()) -> str:
    """Exactly what `gridrun results SWEEP --format md` prints with these choices."""
    return table_format.render(tables(store, sweep_name, **choices.options()), "md")


def export_path(home: str | os.PathLike, sweep_name: str) -> Path:
    """Where an export goes: the sweep's folder, next to its runs."""
    return Path(home) / sweep_name / EXPORT_NAME


def export(store: Store, home: str | os.PathLike, sweep_name: str,
           choices: Choices = Choices(), path: str | os.PathLike | None = None
           ) -> tuple[Path, str]:
    """Write the markdown table(s) to `path` (default `<home>/<sweep>/results.md`), whole or
    not at all (a temp file renamed over it). Returns (path, text)."""
    text = markdown(store, sweep_name, choices)
    target = Path(path) if path is not None else export_path(home, sweep_name)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target, text


@dataclass(frozen=True)
class ResultsView:
    """One read of a sweep's results for the interface."""
    sweep: str
    choices: Choices
    tables: list[ResultTable]
    metrics: list[str]          # what the runs report, to rank by
    keys: list[str]             # parameters to group by, in the sweep's order
    sweep_metric: str | None    # what ranks the table when no metric is chosen
    sweep_mode: str
    counts: dict[str, int]      # the sweep's runs by status
    staged: bool
    version: int                # the store's change counter, read before the tables


def metric_names(runs) -> list[str]:
    """The metrics the runs report that can rank them: the table's usual columns first."""
    names = {n for r in runs for n in r.metric_names} - NOT_RANKABLE
    known = [c for c in (*results.GUESSES, *EXTRA_COLUMNS) if c in names]
    return list(dict.fromkeys(known)) + sorted(names - set(known))


def view(store: Store, sweep_name: str, choices: Choices = Choices()) -> ResultsView:
    version = store.change_counter()
    sweep = store.require_sweep(sweep_name)
    runs = store.runs(sweep=sweep_name)
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    found = tables(store, sweep_name, **choices.options())
    metric, mode = results.choose_metric(sweep, runs, None, None)
    names = metric_names(runs)
    for chosen in (metric, *(t.metric for t in found)):
        if chosen and chosen not in names:
            names.insert(0, chosen)
    params = {k for r in runs for k in r.params}
    keys = [k for k in sweep.varying if k in params]
    return ResultsView(sweep_name, choices, found, names, keys, metric, mode, counts,
                       bool(sweep.spec.get("stages")), version)
