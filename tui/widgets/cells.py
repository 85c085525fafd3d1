"""Small renderings that fit in a table cell: a sparkline, an epoch bar, a status glyph."""
from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from gridrun.engine.results import is_accuracy
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
    if value is None:
        return "-"
    if name and is_accuracy(name) and 0 <= value <= 1:
        return f"{100 * value:.2f}%"
    return fmt.number(value)
