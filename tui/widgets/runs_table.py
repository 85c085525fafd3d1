"""The runs of one sweep: status, the varying parameters, device, epoch bar, latest and best
headline value, a sparkline of it, elapsed time, ETA and a warning mark.

Rows are keyed by run id and changed with `update_cell`, so the cursor and scroll position
stay while the table updates every second.
"""
from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import DataTable

from gridrun.engine.feed import RunView, SweepView
from gridrun.engine.matrix import format_value
from gridrun.tui import fmt
from gridrun.tui.widgets.cells import BLOCKS, epoch_bar, history_line, metric, status

FIXED = (("#", "index"), ("status", "status"))
SERIES_COLUMNS = ("latest", "best", "curve")
# At most this many rows at a time: Textual's DataTable recomputes its row offsets over every
# row after each cell update, so a 10,000-row table would cost ~50 ms of the event loop per
# refresh. Bigger sweeps are paged ([ and ]) and the filter (/) finds any run.
PAGE = 200
TAIL = (("device", "device"), ("epoch", "epoch"), ("latest", "latest"), ("best", "best"),
        ("curve", "curve"), ("time", "time"), ("eta", "eta"), ("!", "warn"))
# Widths are set from the page's cells, never below these, so values that grow as a run goes
# ("59s" -> "1m00s") keep their room; explicit widths also spare the table measuring every cell.
MIN_WIDTH = {"status": 11, "device": 6, "epoch": 12, "latest": 7, "best": 7, "curve": 12,
             "time": 6, "eta": 6, "warn": 1}
# Under 100 columns (80x24 over SSH) the device and ETA columns go and the bars get shorter,
# so a sweep varying two parameters fits without scrolling sideways.
COMPACT_DROP = ("device", "eta")


def scale_moved(drawn: tuple[float, float] | None, now: tuple[float, float] | None) -> bool:
    """Whether the sweep's sparkline scale moved by half a block or more since the page was
    drawn: only then is every row redrawn (a running sweep widens its range by a hair at
    nearly every epoch, and a rebuilt page each second would cost the event loop)."""
    if drawn is None or now is None:
        return drawn != now
    step = max(now[1] - now[0], 1e-12) / (len(BLOCKS) - 1)
    return max(abs(now[0] - drawn[0]), abs(now[1] - drawn[1])) >= step / 2


class RunsTable(DataTable):
    def __init__(self, **kwargs):
        super().__init__(cursor_type="row", **kwargs)
        self.sweep: SweepView | None = None
        self.filter_text = ""
        self.page = 0
        self.pages = 1
        self.compact = False
        self.matching = 0        # runs of the sweep that pass the filter, on every page
        self.scale: tuple[float, float] | None = None   # the sparklines' shared scale

    def show_sweep(self, sweep: SweepView | None, views: list[RunView], page: int = 0) -> None:
        """Rebuild for a sweep (columns follow its varying parameters), showing one page."""
        same = sweep is not None and self.sweep is not None and sweep.name == self.sweep.name
        keep_cursor = self.cursor_coordinate if same else None
        self.sweep = sweep
        self.scale = sweep.scale if sweep else None
        self.clear(columns=True)
        shown = [v for v in views if self.matches(v)]
        self.matching = len(shown)
        self.pages = max(1, -(-len(shown) // PAGE))
        self.page = max(0, min(page, self.pages - 1))
        rows = [(str(v.run.id), self._cells(v)) for v in shown[self.page * PAGE:
                                                                 (self.page + 1) * PAGE]]
        columns = [*FIXED, *((name, f"p:{name}") for name in (sweep.varying if sweep else ())),
                   *(c for c in TAIL if not (self.compact and c[1] in COMPACT_DROP))]
        for label, key in columns:
            least = MIN_WIDTH.get(key, 1) - (4 if self.compact and key in ("curve", "epoch")
                                             else 0)
            width = max([len(label), least]
                        + [Text(c[key]).cell_len if isinstance(c[key], str) else c[key].cell_len
                           for _, c in rows])
            self.add_column(label, key=key, width=width)
        for key, cells in rows:
            self.add_row(*(cells[c] for _, c in columns), key=key)
        if keep_cursor is not None and self.row_count:
            self.move_cursor(row=min(keep_cursor.row, self.row_count - 1))
        first = self.page * PAGE + 1 if self.row_count else 0
        self.border_title = (f"runs {first}–{first + self.row_count - 1 if self.row_count else 0}"
                             f" of {self.matching}" + (f" · page {self.page + 1}/{self.pages}"
                                                       " ([ ])" if self.pages > 1 else ""))

    def _cells(self, view: RunView) -> dict[str, object]:
        run = view.run
        name = self.sweep.metric if self.sweep else None
        flags = ", ".join(run.flags)
        cells: dict[str, object] = {"index": str(run.index), "status": status(run.status)}
        for key in (self.sweep.varying if self.sweep else ()):
            cells[f"p:{key}"] = format_value(run.params[key]) if key in run.params else "-"
        cells.update({
            "device": run.device or "-",
            "epoch": epoch_bar(view.epoch, view.epochs, 4 if self.compact else 6),
            "latest": metric(name, view.latest),
            "best": metric(name, view.best),
            "curve": Text(history_line(view.series, 8 if self.compact else 12, self.scale),
                          style="dodger_blue1"),
            "time": fmt.duration(view.elapsed_s),
            "eta": fmt.duration(view.eta_s) if view.eta_s is not None else "-",
            "warn": Text("⚠", style="bold yellow3") if flags else "",
        })
        return cells

    def matches(self, view: RunView) -> bool:
        if not self.filter_text:
            return True
        text = " ".join([view.run.status, view.run.device or "", *view.run.flags,
                         *(f"{k}={format_value(v)}" for k, v in view.run.params.items())])
        return all(word in text.lower() for word in self.filter_text.lower().split())

    def tick_clocks(self, views: list[RunView]) -> None:
        """Elapsed time and ETA of running runs move every second, new epoch or not."""
        now = time.time()
        for view in views:
            key = str(view.run.id)
            if view.run.status != "running" or key not in self.rows or not view.run.started:
                continue
            elapsed = now - view.run.started
            self.update_cell(key, "time", fmt.duration(elapsed))
            if "eta" in self.columns and view.epoch and view.epochs:
                eta = elapsed / view.epoch * max(view.epochs - view.epoch, 0)
                self.update_cell(key, "eta", fmt.duration(eta))

    def update_runs(self, views: list[RunView]) -> bool:
        """Change the rows on this page in place; False when a run changed so that the page
        must be rebuilt (it no longer matches the filter, or the sweep's sparkline scale
        grew so that every row's curve is redrawn)."""
        if self.sweep is not None and scale_moved(self.scale, self.sweep.scale):
            return False
        for view in views:
            key = str(view.run.id)
            if key not in self.rows:
                continue  # on another page
            if not self.matches(view):
                return False
            cells = self._cells(view)
            for column in SERIES_COLUMNS if view.series_only else cells:
                if column in self.columns:
                    self.update_cell(key, column, cells[column])
        return True

    @property
    def selected_run_id(self) -> int | None:
        if not self.row_count:
            return None
        return int(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
