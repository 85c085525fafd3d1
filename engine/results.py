"""A sweep's results table: one row per configuration, seeds folded into mean ± std.

Plain data in and out (`ResultTable`), so the CLI, the interface and every export show the
same numbers, and the table is always made from the store, never by hand. A configuration is
the sweep's varying parameters without `seed` (or the `--group-by` keys: a marginal table).
Each run gives its headline metric at its best epoch (by the sweep's mode) or its last, and
the final (last finite) value of the other metrics.

Every number of a row -- mean, std, n, best epoch, the other columns, time -- comes from its
**done** runs only: a failed run's single epoch or a cancelled run's half-trained model would
drag a mean anywhere. The row still counts the others (`statuses`), so the table says what
else there was; a configuration without a done run has no numbers, sorts last and is never
the best. Twins are found among done runs only, for the same reason.
"""
from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gridrun.engine.errors import GridrunError, did_you_mean
from gridrun.engine.matrix import canonical
from gridrun.engine.store import Run, Store, Sweep

# what to rank by when a sweep names no metric: the first of these that its runs report
GUESSES = ("val_acc", "val_accuracy", "test_acc", "accuracy", "acc", "val_loss", "loss")
# the other columns, in this order, where the runs report them (final values)
EXTRA_COLUMNS = ("train_loss", "loss", "train_acc", "accuracy", "val_loss", "val_acc",
                 "val_accuracy", "val_top5", "test_loss", "test_acc", "test_accuracy",
                 "test_top5", "params")
# never part of "every metric equal": they describe the machine or echo a parameter
NOT_RESULTS = {"time", "epoch_seconds", "samples_per_s", "lr", "epoch", "epochs", "step",
               "steps", "warning", "attempt"}


@dataclass(frozen=True)
class Stat:
    mean: float | None
    std: float | None
    n: int

    @staticmethod
    def of(values: Iterable[float]) -> Stat:
        values = [v for v in values if v is not None]
        if not values:
            return Stat(None, None, 0)
        return Stat(statistics.fmean(values),
                    statistics.stdev(values) if len(values) > 1 else 0.0, len(values))


@dataclass(frozen=True)
class Row:
    config: dict[str, Any]
    headline: Stat
    best_epoch: float | None      # mean over the done runs
    columns: dict[str, Stat]      # EXTRA_COLUMNS present in the sweep
    wall_s: float | None          # mean wall time of its finished runs
    statuses: dict[str, int]
    flags: list[str]
    run_ids: list[int]
    chosen: bool = False          # the configuration a staged study carried forward
    epochs_agree: bool = True     # every done run had its best at the same epoch


@dataclass(frozen=True)
class ResultTable:
    sweep: str
    metric: str | None
    mode: str
    keys: list[str]               # the configuration's columns
    columns: list[str]            # the extra metric columns shown
    rows: list[Row] = field(default_factory=list)
    pick: str = "best"
    stage: int | None = None

    @property
    def best(self) -> Row | None:
        return self.rows[0] if self.rows and self.rows[0].headline.mean is not None else None


def is_loss(name: str) -> bool:
    return any(word in name for word in ("loss", "err", "perplexity", "mse", "mae"))


def is_accuracy(name: str) -> bool:
    return any(word in name for word in ("acc", "top1", "top5", "precision", "recall", "f1"))


def choose_metric(sweep: Sweep, runs: list[Run], metric: str | None, mode: str | None
                  ) -> tuple[str | None, str]:
    names = {n for r in runs for n in r.metric_names}
    chosen = metric or sweep.metric or next((g for g in GUESSES if g in names), None)
    if mode is not None:
        return chosen, mode
    if metric is None and sweep.metric is not None:
        return chosen, sweep.mode
    return chosen, "min" if chosen and is_loss(chosen) else "max"


def numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def run_value(history: list[dict], metric: str, mode: str, pick: str
              ) -> tuple[float | None, float | None]:
    """(value, epoch) of a run's metric: at its best epoch by mode, or its last report."""
    points = [(row[metric], row.get("epoch")) for row in history if numeric(row.get(metric))]
    if not points:
        return None, None
    if pick == "last":
        return points[-1]
    chooser = max if mode == "max" else min
    return chooser(points, key=lambda p: p[0])


def final_values(history: list[dict]) -> dict[str, Any]:
    """The last reported value of every metric; for numbers the last finite one, so that a
    run that diverged shows where it was before it did."""
    last: dict[str, Any] = {}
    for row in history:
        last.update({k: v for k, v in row.items() if v is not None and not (
            isinstance(v, float) and not math.isfinite(v))})
    return last


def parse_where(items: list[str] | None) -> dict[str, Any]:
    """`--where optimizer=adam --where lr=0.1` -> {optimizer: "adam", lr: 0.1}."""
    where: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise GridrunError(f'--where "{item}": expected key=value')
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        where[key.strip()] = value
    return where


def _check_keys(keys: Iterable[str], runs: list[Run], option: str) -> None:
    known = {k for r in runs for k in r.params}
    for key in keys:
        if key not in known:
            raise GridrunError(f'{option} "{key}": no run has that parameter',
                               hint=did_you_mean(key, known))


def build(store: Store, sweep_name: str, metric: str | None = None, mode: str | None = None,
          pick: str = "best", group_by: list[str] | None = None,
          where: Mapping[str, Any] | None = None, run_ids: set[int] | None = None,
          stage: int | None = None) -> ResultTable:
    sweep = store.require_sweep(sweep_name)
    runs = store.runs(sweep=sweep_name)
    where = dict(where or {})
    _check_keys(where, runs, "--where")
    _check_keys(group_by or [], runs, "--group-by")
    runs = [r for r in runs if all(r.params.get(k) == v for k, v in where.items())
            and (run_ids is None or r.id in run_ids)]
    metric, mode = choose_metric(sweep, runs, metric, mode)
    keys = list(group_by) if group_by else [k for k in sweep.varying
                                            if k != "seed" and k not in where]
    histories = store.metrics_for([r.id for r in runs])
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(canonical({k: run.params.get(k) for k in keys}), []).append(run)
    present = {n for r in runs for n in r.metric_names}
    columns = [c for c in EXTRA_COLUMNS if c in present and c != metric]
    rows = [_row(members, keys, metric, mode, pick, columns, histories)
            for members in groups.values()]
    sign = -1 if mode == "max" else 1
    rows.sort(key=lambda r: (r.headline.mean is None, sign * (r.headline.mean or 0)))
    rows = _flag_twins(rows, histories, {r.id for r in runs if r.status == "done"})
    return ResultTable(sweep_name, metric, mode, keys, columns, rows, pick, stage)


def _row(members: list[Run], keys: list[str], metric: str | None, mode: str, pick: str,
         columns: list[str], histories: dict[int, list[dict]]) -> Row:
    headline, epochs, finals, walls = [], [], [], []
    for run in members:
        if run.status != "done":
            continue  # counted in `statuses` below, never in a number
        history = histories.get(run.id, [])
        if metric:
            value, epoch = run_value(history, metric, mode, pick)
            if value is not None:
                headline.append(float(value))
                if numeric(epoch):
                    epochs.append(float(epoch))
        finals.append(final_values(history))
        if run.started and run.ended:
            walls.append(run.ended - run.started)
    statuses: dict[str, int] = {}
    for run in members:
        statuses[run.status] = statuses.get(run.status, 0) + 1
    return Row(
        config={k: members[0].params.get(k) for k in keys},
        headline=Stat.of(headline),
        best_epoch=statistics.fmean(epochs) if epochs else None,
        columns={c: Stat.of(f[c] for f in finals if numeric(f.get(c))) for c in columns},
        wall_s=statistics.fmean(walls) if walls else None,
        statuses=statuses,
        flags=sorted({f for r in members for f in r.flags}),
        run_ids=[r.id for r in members],
        epochs_agree=len(set(epochs)) <= 1)


def _flag_twins(rows: list[Row], histories: dict[int, list[dict]], done: set[int]
                ) -> list[Row]:
    """Configurations whose every metric equals another's to the last digit: a sign that the
    runs were not independent (a copied row, weights carried over from the previous run).
    Done runs only: two runs that both crashed at epoch 1 are not suspicious."""
    signatures: dict[str, int] = {}
    out = []
    for i, row in enumerate(rows):
        finals = []
        for run_id in row.run_ids:
            if run_id not in done:
                continue
            final = {k: v for k, v in final_values(histories.get(run_id, [])).items()
                     if k not in NOT_RESULTS and numeric(v)}
            if final:
                finals.append(final)
        twin = None
        if finals:
            signature = json.dumps(sorted(canonical(f) for f in finals))
            twin = signatures.setdefault(signature, i)
        if twin is not None and twin != i:
            label = "same_metrics_as:" + config_text(rows[twin].config)
            row = Row(**{**row.__dict__, "flags": sorted({*row.flags, label})})
            first = out[twin]
            out[twin] = Row(**{**first.__dict__, "flags": sorted(
                {*first.flags, "same_metrics_as:" + config_text(row.config)})})
        out.append(row)
    return out


def config_text(config: Mapping[str, Any]) -> str:
    from gridrun.engine.matrix import format_value

    return " ".join(f"{k}={format_value(v)}" for k, v in config.items()) or "(all runs)"


def twin_runs(runs: Iterable[Run]) -> dict[int, int]:
    """run id -> index of an earlier run of the same sweep with other parameters whose every
    final metric is the same to the last digit (what `queue ls` flags)."""
    seen: dict[tuple[int, str], Run] = {}
    twins: dict[int, int] = {}
    for run in runs:
        final = {k: v for k, v in run.last_metrics.items() if k not in NOT_RESULTS and numeric(v)}
        if run.status != "done" or not final:
            continue
        first = seen.setdefault((run.sweep_id, canonical(final)), run)
        if first is not run and first.params != run.params:
            twins[run.id] = first.index
            twins.setdefault(first.id, run.index)
    return twins
