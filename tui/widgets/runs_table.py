"""The runs of one sweep: status, the varying parameters, device, epoch bar, latest and best
headline value, a sparkline of it, elapsed time, ETA and a warning mark.

Rows are keyed by run id and changed with `update_cell`, so the cursor and scroll position
stay while the table updates every second. The whole sweep is sorted (by any column, `<` `>`
`I` or a click on a header) and filtered before it is paged, and marks (space) are kept by run
id across pages, rebuilds and sorts.
"""
from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import DataTable

from gridrun.engine.feed import RunView, SweepView
from gridrun.engine.matrix import format_value
from gridrun.engine.store import STATUSES
from gridrun.tui import filter_query, fmt
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
# When the columns still do not fit, these go, first to last; the #, status, parameters, epoch
# and warning columns always stay (a warning or the epoch cut off at 80 columns misleads).
FIT_DROP = ("device", "eta", "curve", "time", "best", "latest")
ARROW = {False: "▲", True: "▼"}   # ascending, descending (shown after the sorted column's title)
MARK = Text("●", style="bold magenta")


def _order(value: object) -> tuple:
    """A sort key that mixes numbers and text (parameters may be either), numbers first."""
    if isinstance(value, bool):
        return (1, str(value))
    if isinstance(value, (int, float)):
        return (0, float(value))
    return (1, str(value))


def sort_value(view: RunView, column: str) -> object | None:
    """What a column sorts by; None (no value yet, NaN) sorts last in either direction."""
    run = view.run
    if column.startswith("p:"):
        return run.params.get(column[2:])
    value = {
        "index": run.index, "status": STATUSES.index(run.status) if run.status in STATUSES
        else len(STATUSES), "device": run.device, "epoch": view.epoch, "latest": view.latest,
        "best": view.best, "curve": view.latest, "time": view.elapsed_s, "eta": view.eta_s,
        "warn": len(run.flags) or None,
    }.get(column)
    return None if isinstance(value, float) and value != value else value


def sort_views(views: list[RunView], column: str, reverse: bool) -> list[RunView]:
    """Sorted by the column, ties by index; runs without a value last either way."""
    by_index = sorted(views, key=lambda v: v.run.index)
    present = [(sort_value(v, column), v) for v in by_index]
    missing = [v for value, v in present if value is None]
    ordered = sorted(((value, v) for value, v in present if value is not None),
                     key=lambda pair: _order(pair[0]), reverse=reverse)
    return [v for _, v in ordered] + missing


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
        self.sort_column = "index"
        self.sort_reverse = False
        self.columns_shown: list[str] = []   # the column keys of the last build, in order
        self.order: list[int] = []           # the matching runs' ids, sorted, every page
        self.marked: set[int] = set()        # run ids marked with space
        self._terms: tuple[filter_query.Term, ...] = ()
        self._filter_parsed = ""

    def show_sweep(self, sweep: SweepView | None, views: list[RunView], page: int = 0) -> None:
        """Rebuild for a sweep (columns follow its varying parameters), showing one page."""
        same = sweep is not None and self.sweep is not None and sweep.name == self.sweep.name
        keep_cursor = self.cursor_coordinate if same else None
        keep_run = self.selected_run_id if same else None
        if not same:
            self.marked.clear()
        self.sweep = sweep
        self.scale = sweep.scale if sweep else None
        self.clear(columns=True)
        shown = self.sorted_matching(views)
        self.order = [v.run.id for v in shown]
        self.marked &= {v.run.id for v in views}
        self.matching = len(shown)
        self.pages = max(1, -(-len(shown) // PAGE))
        self.page = max(0, min(page, self.pages - 1))
        rows = [(str(v.run.id), self._cells(v)) for v in shown[self.page * PAGE:
                                                                 (self.page + 1) * PAGE]]
        columns = [*FIXED, *((name, f"p:{name}") for name in (sweep.varying if sweep else ())),
                   *(c for c in TAIL if not (self.compact and c[1] in COMPACT_DROP))]
        widths = {}
        for label, key in columns:
            least = MIN_WIDTH.get(key, 1) - (4 if self.compact and key in ("curve", "epoch")
                                             else 0)
            widths[key] = max([len(label) + 1, least]      # + 1: room for the sort arrow
                              + [Text(c[key]).cell_len if isinstance(c[key], str)
                                 else c[key].cell_len for _, c in rows])
        columns = self._fitting(columns, widths)
        if self.sort_column not in (key for _, key in columns):
            self.sort_column, self.sort_reverse = "index", False
        self.columns_shown = [key for _, key in columns]
        for label, key in columns:
            if key == self.sort_column:
                label += ARROW[self.sort_reverse]
            self.add_column(label, key=key, width=widths[key])
        for key, cells in rows:
            self.add_row(*(cells[c] for _, c in columns), key=key)
        if keep_run is not None and str(keep_run) in self.rows:
            self.move_cursor(row=self.get_row_index(str(keep_run)))
        elif keep_cursor is not None and self.row_count:
            self.move_cursor(row=min(keep_cursor.row, self.row_count - 1))
        first = self.page * PAGE + 1 if self.row_count else 0
        self.border_title = (f"runs {first}–{first + self.row_count - 1 if self.row_count else 0}"
                             f" of {self.matching}" + (f" · page {self.page + 1}/{self.pages}"
                                                       " ([ ])" if self.pages > 1 else ""))

    def _fitting(self, columns: list[tuple[str, str]], widths: dict[str, int]
                 ) -> list[tuple[str, str]]:
        """Drop optional columns (FIT_DROP, in order) until the rest fit the table's width."""
        room = self.scrollable_content_region.width
        if room <= 0:      # not laid out yet: the next resize builds again
            return columns
        pad = 2 * self.cell_padding
        for key in FIT_DROP:
            if sum(widths[k] + pad for _, k in columns) <= room:
                break
            columns = [c for c in columns if c[1] != key]
        return columns

    def _cells(self, view: RunView) -> dict[str, object]:
        run = view.run
        name = self.sweep.metric if self.sweep else None
        flags = ", ".join(run.flags)
        cells: dict[str, object] = {
            "index": Text.assemble(MARK if run.id in self.marked else " ", str(run.index)),
            "status": status(run.status)}
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
        """The filter (tui/filter_query.py): plain words, `key=value`, `key>0.05`,
        `status:failed`, all of them ANDed."""
        if not self.filter_text.strip():
            return True
        if self._filter_parsed != self.filter_text:
            self._terms, self._filter_parsed = filter_query.parse(self.filter_text), \
                self.filter_text
        run = view.run
        text = " ".join([run.status, run.device or "", *run.flags,
                         *(f"{k}={format_value(v)}" for k, v in run.params.items())]).lower()
        fields: dict[str, object] = {
            "status": run.status, "device": run.device, "index": run.index,
            "epoch": view.epoch, "latest": view.latest, "best": view.best,
            "flags": " ".join(run.flags) or None, "warn": " ".join(run.flags) or None}
        fields.update((k.lower(), v) for k, v in run.params.items())
        return filter_query.matches(self._terms, fields, text)

    def sorted_matching(self, views: list[RunView]) -> list[RunView]:
        return sort_views([v for v in views if self.matches(v)], self.sort_column,
                          self.sort_reverse)

    def order_changed(self, views: list[RunView]) -> bool:
        """Whether live values moved a run to another place in the sort (then the page is
        rebuilt); sorted by index, nothing live moves a run."""
        if self.sort_column == "index":
            return False
        return [v.run.id for v in self.sorted_matching(views)] != self.order

    def sort_by(self, column: str | None = None, step: int = 0, reverse: bool = False) -> None:
        """Choose the sort: a column by key, the previous/next shown column (step), or the
        other direction (reverse); the caller rebuilds the page."""
        if reverse:
            self.sort_reverse = not self.sort_reverse
        elif column is not None:
            if column == self.sort_column:
                self.sort_reverse = not self.sort_reverse
            else:
                self.sort_column, self.sort_reverse = column, False
        elif step and self.columns_shown:
            at = (self.columns_shown.index(self.sort_column)
                  if self.sort_column in self.columns_shown else 0)
            self.sort_column = self.columns_shown[(at + step) % len(self.columns_shown)]

    def toggle_mark(self) -> int | None:
        """Mark or unmark the run under the cursor (its # cell shows it); the run's id."""
        run_id = self.selected_run_id
        if run_id is None:
            return None
        self.marked ^= {run_id}
        first = self.get_row(str(run_id))[0]          # the # cell: mark glyph, then index
        index = first.plain[1:] if isinstance(first, Text) else str(first)
        self.update_cell(str(run_id), "index",
                         Text.assemble(MARK if run_id in self.marked else " ", index))
        return run_id

    def tick_clocks(self, views: list[RunView]) -> None:
        """Elapsed time and ETA of running runs move every second, new epoch or not."""
        now = time.time()
        for view in views:
            key = str(view.run.id)
            if view.run.status != "running" or key not in self.rows or not view.run.started:
                continue
            elapsed = now - view.run.started
            if "time" in self.columns:
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
