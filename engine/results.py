"""A sweep's results table: one row per configuration, seeds folded into mean ± std.

Plain data in and out (a `ResultTable`), so the CLI, the interface and the exports all show the
same numbers; `render` turns it into markdown, CSV, LaTeX or JSON.
"""
from __future__ import annotations

import csv
import io
import json
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from engine.matrix import format_value
from engine.store import Run, Store, Sweep

GUESSES = ("val_acc", "val_accuracy", "accuracy", "test_acc", "acc", "val_loss", "loss")
FORMATS = ("md", "csv", "latex", "json")


@dataclass(frozen=True)
class Row:
    config: dict[str, Any]
    mean: float | None
    std: float | None
    n: int                       # runs with a value
    statuses: dict[str, int]
    flags: list[str]
    best_epoch: float | None
    run_ids: list[int]


@dataclass(frozen=True)
class ResultTable:
    sweep: str
    metric: str | None
    mode: str
    keys: list[str]              # the configuration's columns
    rows: list[Row] = field(default_factory=list)


def is_loss(name: str) -> bool:
    return "loss" in name or "err" in name or "perplexity" in name


def choose_metric(sweep: Sweep, runs: list[Run], metric: str | None) -> tuple[str | None, str]:
    names = {n for r in runs for n in r.metric_names}
    chosen = metric or sweep.metric or next((g for g in GUESSES if g in names), None)
    if metric is None and sweep.metric is not None:
        return chosen, sweep.mode
    return chosen, "min" if chosen and is_loss(chosen) else "max"


def run_value(history: list[dict], metric: str, mode: str, pick: str
              ) -> tuple[float | None, float | None]:
    """(value, epoch) of a run's metric: its best epoch by mode, or its last report."""
    points = [(row[metric], row.get("epoch")) for row in history
              if isinstance(row.get(metric), (int, float)) and not isinstance(row.get(metric), bool)
              and math.isfinite(row[metric])]
    if not points:
        return None, None
    if pick == "last":
        return points[-1]
    chooser = max if mode == "max" else min
    return chooser(points, key=lambda p: p[0])


def build(store: Store, sweep_name: str, metric: str | None = None, mode: str | None = None,
          pick: str = "best") -> ResultTable:
    sweep = store.require_sweep(sweep_name)
    runs = store.runs(sweep=sweep_name)
    metric, guessed_mode = choose_metric(sweep, runs, metric)
    mode = mode or guessed_mode
    keys = [k for k in sweep.varying if k != "seed"]
    histories = store.metrics_for([r.id for r in runs]) if metric else {}
    groups: dict[str, list[Run]] = {}
    for run in runs:
        config = {k: run.params.get(k) for k in keys}
        groups.setdefault(json.dumps(config, sort_keys=True, default=str), []).append(run)
    rows = []
    for members in groups.values():
        values, epochs = [], []
        for run in members:
            value, epoch = run_value(histories.get(run.id, []), metric, mode, pick) \
                if metric else (None, None)
            if value is not None:
                values.append(float(value))
                if isinstance(epoch, (int, float)):
                    epochs.append(float(epoch))
        statuses: dict[str, int] = {}
        for run in members:
            statuses[run.status] = statuses.get(run.status, 0) + 1
        rows.append(Row(
            config={k: members[0].params.get(k) for k in keys},
            mean=statistics.fmean(values) if values else None,
            std=statistics.stdev(values) if len(values) > 1 else (0.0 if values else None),
            n=len(values), statuses=statuses,
            flags=sorted({f for r in members for f in r.flags}),
            best_epoch=statistics.fmean(epochs) if epochs else None,
            run_ids=[r.id for r in members]))
    sign = -1 if mode == "max" else 1
    rows.sort(key=lambda r: (r.mean is None, sign * (r.mean or 0)))
    return ResultTable(sweep_name, metric, mode, keys, rows)


# ----------------------------------------------------------------------------------------------
# rendering


def fmt_value(value: float | None, metric: str | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if metric and is_loss(metric) else f"{value:.4f}"


def status_text(statuses: dict[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))


def records(table: ResultTable) -> list[dict[str, Any]]:
    out = []
    for row in table.rows:
        out.append({**row.config, "metric": table.metric, "mean": row.mean, "std": row.std,
                    "n": row.n, "best_epoch": row.best_epoch, "status": row.statuses,
                    "flags": row.flags, "run_ids": row.run_ids})
    return out


def _cells(table: ResultTable) -> tuple[list[str], list[list[str]]]:
    header = [*table.keys, f"{table.metric or 'metric'} ({table.mode})", "n", "best epoch",
              "runs", "flags"]
    body = []
    for row in table.rows:
        value = "-" if row.mean is None else (
            f"{fmt_value(row.mean, table.metric)} ± {fmt_value(row.std, table.metric)}")
        body.append([*[format_value(row.config[k]) for k in table.keys], value, str(row.n),
                     "-" if row.best_epoch is None else f"{row.best_epoch:g}",
                     status_text(row.statuses), ", ".join(row.flags)])
    return header, body


def render(table: ResultTable, fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"sweep": table.sweep, "metric": table.metric, "mode": table.mode,
                           "rows": records(table)}, indent=2) + "\n"
    header, body = _cells(table)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow([*table.keys, "metric", "mean", "std", "n", "best_epoch", "status",
                         "flags"])
        for row in table.rows:
            writer.writerow([*[format_value(row.config[k]) for k in table.keys], table.metric,
                             row.mean, row.std, row.n, row.best_epoch,
                             status_text(row.statuses), " ".join(row.flags)])
        return buf.getvalue()
    if fmt == "latex":
        def esc(text: str) -> str:
            for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"),
                         ("#", r"\#"), ("±", r"$\pm$")):
                text = text.replace(a, b)
            return text
        lines = [r"\begin{tabular}{" + "l" * len(header) + "}", r"\toprule",
                 " & ".join(esc(h) for h in header) + r" \\", r"\midrule"]
        lines += [" & ".join(esc(c) for c in cells) + r" \\" for cells in body]
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines) + "\n"
    # markdown
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", r"\|") for c in cells) + " |"
    out = [line(header), "|" + "|".join("---" for _ in header) + "|"]
    out += [line(cells) for cells in body]
    return "\n".join(out) + "\n"
