"""Curves for a report: one line per configuration over epochs, mean over seeds with a ± std
band, one panel per metric. matplotlib with the Agg backend (works over SSH, no display),
imported only when a figure is made."""
from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gridrun.engine.errors import GridrunError, did_you_mean
from gridrun.engine.matrix import canonical
from gridrun.engine.results import choose_metric, config_text, numeric
from gridrun.engine.store import Store

EXTENSIONS = (".png", ".svg", ".pdf")


def series(histories: list[list[dict]], metric: str) -> tuple[list[float], list[float],
                                                               list[float]]:
    """(x, mean, std) over the runs of one configuration, by epoch (or report order)."""
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


def curves(store: Store, sweep_name: str, metrics: list[str] | None = None,
           group_by: list[str] | None = None, where: Mapping[str, Any] | None = None,
           title: str | None = None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    groups: dict[str, list] = {}
    for run in runs:
        groups.setdefault(canonical({k: run.params.get(k) for k in keys}), []).append(run)
    histories = store.metrics_for([r.id for r in runs])

    cols = 1 if len(chosen) == 1 else 2
    rows = math.ceil(len(chosen) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.4 * cols, 4.2 * rows), squeeze=False)
    colours = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    for panel, metric in enumerate(chosen):
        ax = axes[panel // cols][panel % cols]
        for g, members in enumerate(groups.values()):
            xs, mean, std = series([histories[r.id] for r in members], metric)
            if not xs:
                continue
            colour = colours(g % colours.N)
            label = config_text({k: members[0].params.get(k) for k in keys})
            ax.plot(xs, mean, color=colour, label=label, linewidth=1.6,
                    marker="o" if len(xs) < 20 else None, markersize=3)
            if any(std):
                ax.fill_between(xs, [m - s for m, s in zip(mean, std)],
                                [m + s for m, s in zip(mean, std)], color=colour, alpha=0.18,
                                linewidth=0)
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    for empty in range(len(chosen), rows * cols):
        axes[empty // cols][empty % cols].set_visible(False)
    handles, labels = axes[0][0].get_legend_handles_labels()
    seeds = max(len(m) for m in groups.values())
    fig.suptitle(title or f"{sweep_name}: mean" + (" ± std over seeds" if seeds > 1 else ""))
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
