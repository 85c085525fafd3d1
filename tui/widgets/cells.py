"""Small renderings that fit in a table cell: a sparkline, an epoch bar, a status glyph."""
from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from gridrun.tui import fmt

BLOCKS = "▁▂▃▄▅▆▇█"
STATUS_COLOUR = {"queued": "grey62", "running": "dodger_blue1", "done": "green3",
                 "failed": "red1", "cancelled": "yellow3"}


def sparkline(values: Sequence[float], width: int = 12) -> str:
    """The last `width` values as block characters, scaled to their own range."""
    tail = list(values)[-width:]
    if not tail:
        return ""
    low, high = min(tail), max(tail)
    if high == low:
        return BLOCKS[3] * len(tail)
    return "".join(BLOCKS[int((v - low) / (high - low) * (len(BLOCKS) - 1))] for v in tail)


def downsample(values: Sequence[float], width: int) -> list[float]:
    """The whole series in at most `width` points: the mean of each of `width` equal spans
    (a series shorter than that is kept as it is, one point per value)."""
    values = list(values)
    if len(values) <= width:
        return values
    out = []
    for i in range(width):
        span = values[i * len(values) // width:(i + 1) * len(values) // width]
        out.append(sum(span) / len(span))
    return out


def history_line(values: Sequence[float], width: int,
                 scale: tuple[float, float] | None) -> str:
    """A run's whole history, downsampled to `width`, on a scale shared by its sweep, so that
    rows compare: a run steady at 98.5-99% draws a flat top line, not noise stretched to fill
    its own range. Without a scale (nothing read yet), the series' own range."""
    points = downsample(values, width)
    if not points:
        return ""
    low, high = scale if scale is not None else (min(points), max(points))
    if not high > low:
        return BLOCKS[3] * len(points)
    top = len(BLOCKS) - 1
    return "".join(BLOCKS[max(0, min(top, round((v - low) / (high - low) * top)))]
                   for v in points)


def epoch_bar(epoch: float | None, epochs: float | None, width: int = 6) -> Text:
    if epoch is None:
        return Text("-", style="dim")
    if not epochs:
        return Text(fmt.number(epoch))
    done = max(0, min(width, round(width * epoch / epochs)))
    bar = Text("█" * done, style="dodger_blue1") + Text("░" * (width - done), style="grey42")
    return bar + Text(f" {fmt.number(epoch)}/{fmt.number(epochs)}")


def status(state: str) -> Text:
    return Text(f"{fmt.STATUS_GLYPH.get(state, '?')} {state}",
                style=STATUS_COLOUR.get(state, ""))


def metric(name: str | None, value: float | None) -> str:
    """Accuracies that are fractions read as percentages, as in the results tables."""
    return fmt.metric_value(name, value)
