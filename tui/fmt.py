"""Formatting numbers, durations and parameter sets the same way in every command."""
from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

STATUS_STYLE = {"queued": "dim", "running": "cyan", "done": "green", "failed": "red",
                "cancelled": "yellow"}
STATUS_GLYPH = {"queued": "·", "running": "▶", "done": "✓", "failed": "✗", "cancelled": "⊘"}
HIDDEN_METRICS = ("time", "epochs", "steps")


def number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
        return f"{value:.3e}"
    return f"{value:.4g}"


def metric_value(name: str | None, value: Any) -> str:
    """A metric's value: an accuracy that is a fraction reads as a percentage, as in the
    results tables (`val_acc=94.00%`, not `val_acc=0.94`); anything else as `number`."""
    from gridrun.engine.results import is_accuracy

    if (name and is_accuracy(name) and isinstance(value, (int, float))
            and not isinstance(value, bool) and 0 <= value <= 1):
        return f"{100 * value:.2f}%"
    return number(value)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(max(seconds, 0))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def elapsed(started: float | None, ended: float | None) -> str:
    if started is None:
        return "-"
    return duration((ended or time.time()) - started)


def params_text(params: Mapping[str, Any], keys: list[str]) -> str:
    from gridrun.engine.matrix import format_value

    shown = [f"{k}={format_value(params[k])}" for k in keys if k in params]
    return " ".join(shown) or "-"


def metrics_text(metrics: Mapping[str, Any], limit: int = 4, first: str | None = None) -> str:
    """The run's latest metrics, the headline first, then others, 'epoch' left out."""
    names = [k for k in metrics if k not in HIDDEN_METRICS and k != "epoch"]
    if first in names:
        names.remove(first)
        names.insert(0, first)
    return " ".join(f"{k}={metric_value(k, metrics[k])}" for k in names[:limit]) or "-"


def epoch_text(metrics: Mapping[str, Any], params: Mapping[str, Any]) -> str:
    epoch = metrics.get("epoch")
    if epoch is None:
        return "-"
    total = metrics.get("epochs") or params.get("epochs")
    return f"{number(epoch)}/{total}" if total else number(epoch)


def clock(ts: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) if ts else "-"
