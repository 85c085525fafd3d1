"""A terminal chart (plotext) and its helpers, shared by the run detail and the results."""
from __future__ import annotations

from textual_plotext import PlotextPlot

CHART_POINTS = 600        # points per line: more than a terminal's braille dots can show


def integer_ticks(first: int, last: int, most: int = 6) -> list[int]:
    """At most `most` whole-number ticks from first to last, a round step apart."""
    span = max(last - first, 1)
    step = 1
    for base in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        step = base
        if span / base < most:
            break
    else:
        step = -(-span // (most - 1))
    start = -(-first // step) * step  # the first multiple of step from `first` on
    return list(range(start, last + 1, step)) or [first]


class Chart(PlotextPlot):
    """A plot whose title is the longest of `titles` that fits its width (plotext leaves out
    a title that does not fit)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.titles: list[str] = []

    def render(self):
        room = self.size.width - 2
        self.plt.title(next((t for t in self.titles if len(t) <= room), ""))
        return super().render()


def thin(xs: list, ys: list, most: int = CHART_POINTS) -> tuple[list, list]:
    """Every k-th point (and always the last), so that a long history plots fast."""
    if len(xs) <= most:
        return xs, ys
    step = -(-len(xs) // most)
    keep = list(range(0, len(xs), step))
    if keep[-1] != len(xs) - 1:
        keep.append(len(xs) - 1)
    return [xs[i] for i in keep], [ys[i] for i in keep]
