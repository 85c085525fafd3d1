"""Curves for a report: one line per configuration over epochs, mean over its done runs with a
± std band, one panel per metric. matplotlib with the Agg backend (works over SSH, no display),
imported only when a figure is made.

`series()` is the figure's data, pure and tested: what is drawn is exactly what it returns.
Means and bands come from **done** runs only, as in the results tables (a run that failed at
epoch 2 would bend the mean there); runs still going are drawn dashed, on their own, and
failed or cancelled runs not at all. The legend names each line by the varying parameters and
says how many runs it is the mean of.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridrun.engine.errors import GridrunError, did_you_mean
from gridrun.engine.matrix import canonical
from gridrun.engine.results import choose_metric, config_text, numeric
from gridrun.engine.store import Run, Store

EXTENSIONS = (".png", ".svg", ".pdf")
# the statuses a line is drawn from, and how
DRAWN = {"done": "solid", "running": "dashed"}


@dataclass(frozen=True)
class Line:
    """One line of a panel: a configuration's runs of one status, mean ± std by x."""
    label: str
    config: dict[str, Any]
    status: str                  # "done" (solid) or "running" (dashed)
    n: int                       # runs it is the mean of
    x: list[float]
    mean: list[float]
    std: list[float]

    @property
    def dashed(self) -> bool:
        return DRAWN[self.status] == "dashed"


def curve(histories: Sequence[list[dict]], metric: str) -> tuple[list[float], list[float],
                                                               list[float]]:
    """(x, mean, std) over some runs' histories, by epoch (or report order)."""
    points: dict[float, list[float]] = {}
    for history in histories:
        for i, row in enumerate(history):
            value = row.get(metric)
            if not numeric(value):
                continue
            x = row.get("epoch") if numeric(row.get("epoch")) else row.get("step", i + 1)
            points.setdefault(float(x), []).append(float(value))
    xs = sorted(points)
    means = [statistics.fmean(points[x]) for x in xs]
    stds = [statistics.stdev(points[x]) if len(points[x]) > 1 else 0.0 for x in xs]
    return xs, means, stds


def series(runs: Sequence[Run], histories: Mapping[int, list[dict]], metric: str,
           keys: Sequence[str]) -> list[Line]:
    """The lines of one panel: per configuration (its `keys`' values), the mean of its done
    runs and, dashed, of its running ones. Runs of other statuses draw nothing."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(canonical({k: run.params.get(k) for k in keys}), []).append(run)
    lines = []
    for members in groups.values():
        config = {k: members[0].params.get(k) for k in keys}
        for status in DRAWN:
            chosen = [r for r in members if r.status == status]
            xs, mean, std = curve([histories.get(r.id, []) for r in chosen], metric)
            if not xs:
                continue
            name = config_text(config) if keys else "all runs"
            extra = ", running" if status == "running" else ""
            lines.append(Line(f"{name} (n={len(chosen)}{extra})", config, status, len(chosen),
                              xs, mean, std))
    return lines


def curves(store: Store, sweep_name: str, metrics: list[str] | None = None,
           group_by: list[str] | None = None, where: Mapping[str, Any] | None = None,
           title: str | None = None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    sweep = store.require_sweep(sweep_name)
    runs = [r for r in store.runs(sweep=sweep_name)
            if all(r.params.get(k) == v for k, v in (where or {}).items())]
    if not runs:
        raise GridrunError(f"sweep {sweep_name} has no runs to plot")
    names = sorted({n for r in runs for n in r.metric_names})
    chosen = metrics or [choose_metric(sweep, runs, None, None)[0]]
    for metric in chosen:
        if metric is None or metric not in names:
            raise GridrunError(f'no run of {sweep_name} reports "{metric}"',
                               hint=did_you_mean(metric or "", names)
                               or f"metrics found: {', '.join(names) or 'none yet'}")
    keys = list(group_by) if group_by else [k for k in sweep.varying if k != "seed"]
    histories = store.metrics_for([r.id for r in runs if r.status in DRAWN])
    configs = list(dict.fromkeys(canonical({k: r.params.get(k) for k in keys}) for r in runs))

    cols = 1 if len(chosen) == 1 else 2
    rows = math.ceil(len(chosen) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.4 * cols, 4.2 * rows), squeeze=False)
    colours = plt.get_cmap("tab10" if len(configs) <= 10 else "tab20")
    seeds = 1
    for panel, metric in enumerate(chosen):
        ax = axes[panel // cols][panel % cols]
        for line in series(runs, histories, metric, keys):
            seeds = max(seeds, line.n)
            colour = colours(configs.index(canonical(line.config)) % colours.N)
            ax.plot(line.x, line.mean, color=colour, label=line.label, linewidth=1.6,
                    linestyle="--" if line.dashed else "-",
                    marker="o" if len(line.x) < 20 else None, markersize=3)
            if any(line.std):
                ax.fill_between(line.x, [m - s for m, s in zip(line.mean, line.std)],
                                [m + s for m, s in zip(line.mean, line.std)], color=colour,
                                alpha=0.18, linewidth=0)
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 2.5
        ax.grid(True, alpha=0.3)
    for empty in range(len(chosen), rows * cols):
        axes[empty // cols][empty % cols].set_visible(False)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.suptitle(title or f"{sweep_name}: mean of done runs"
                 + (" ± std over seeds" if seeds > 1 else ""))
    if handles:
        fig.legend(handles, labels, loc="outside lower center",
                   ncols=min(len(labels), 3 if len(labels) > 6 else len(labels)),
                   fontsize="small", frameon=False)
    fig.set_layout_engine("constrained")
    return fig


def save(figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure.savefig(path, dpi=120)
    plt.close(figure)


def row_curves(store: Store, tables: Sequence, most: int = 200
               ) -> dict[tuple[int, str], tuple[list[float], list[float]]]:
    """For the interface's results chart: each table row's curve of its table's metric, the
    mean over its done and running runs by epoch, keyed by (table index, canonical config).
    At most `most` rows (the best ranked first) so that a huge sweep stays cheap to read."""
    wanted = [(t, row) for t, table in enumerate(tables) for row in table.rows[:most]
              if table.metric is not None]
    if not wanted:
        return {}
    ids = {i for _, row in wanted for i in row.run_ids}
    drawn = {r.id for r in store.runs(sweep=tables[0].sweep)
             if r.id in ids and r.status in DRAWN}
    histories = store.metrics_for(sorted(drawn))
    out = {}
    for t, row in wanted:
        xs, mean, _ = curve([histories[i] for i in row.run_ids if i in drawn],
                            tables[t].metric)
        if xs:
            out[(t, canonical(row.config))] = (xs, mean)
    return out
