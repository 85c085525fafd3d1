"""The runs of one sweep: status, the varying parameters, device, epoch bar, latest and best
headline value, a sparkline of it, elapsed time, ETA and a warning mark.

Rows are keyed by run id and changed with `update_cell`, so the cursor and scroll position
stay while the table updates every second.
"""
from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from engine.feed import RunView, SweepView
from engine.matrix import format_value
from tui import fmt
from tui.widgets.cells import epoch_bar, metric, sparkline, status

FIXED = (("#", "index"), ("status", "status"))
TAIL = (("device", "device"), ("epoch", "epoch"), ("latest", "latest"), ("best", "best"),
        ("curve", "curve"), ("time", "time"), ("eta", "eta"), ("!", "warn"))


class RunsTable(DataTable):
    def __init__(self, **kwargs):
        super().__init__(cursor_type="row", **kwargs)
        self.sweep: SweepView | None = None
        self.filter_text = ""

    def show_sweep(self, sweep: SweepView | None, views: list[RunView]) -> None:
        """Rebuild for another sweep (columns follow its varying parameters)."""
        self.sweep = sweep
        self.clear(columns=True)
        for label, key in FIXED:
            self.add_column(label, key=key)
        for name in (sweep.varying if sweep else ()):
            self.add_column(name, key=f"p:{name}")
        for label, key in TAIL:
            self.add_column(label, key=key)
        self.update_runs(views)

    def _cells(self, view: RunView) -> dict[str, object]:
        run = view.run
        name = self.sweep.metric if self.sweep else None
        flags = ", ".join(run.flags)
        cells: dict[str, object] = {"index": str(run.index), "status": status(run.status)}
        for key in (self.sweep.varying if self.sweep else ()):
            cells[f"p:{key}"] = format_value(run.params[key]) if key in run.params else "-"
        cells.update({
            "device": run.device or "-",
            "epoch": epoch_bar(view.epoch, view.epochs),
            "latest": metric(name, view.latest),
            "best": metric(name, view.best),
            "curve": Text(sparkline(view.series), style="dodger_blue1"),
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

    def update_runs(self, views: list[RunView]) -> None:
        for view in views:
            key = str(view.run.id)
            present = key in self.rows
            if not self.matches(view):
                if present:
                    self.remove_row(key)
                continue
            cells = self._cells(view)
            if present:
                for column, value in cells.items():
                    self.update_cell(key, column, value)
            else:
                self.add_row(*cells.values(), key=key)

    @property
    def selected_run_id(self) -> int | None:
        if not self.row_count:
            return None
        return int(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
