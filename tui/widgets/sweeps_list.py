"""The sweeps of the home: name, done/total, failed, best headline value so far."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from engine.feed import SweepView
from tui.widgets.cells import metric


class SweepsList(DataTable):
    """Rows keyed by sweep name; changed in place so the cursor stays."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.shown: dict[str, dict] = {}  # what each row shows now

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = False
        for label, key in (("sweep", "name"), ("done", "done"), ("failed", "failed"),
                           ("best", "best")):
            self.add_column(label, key=key)

    def show(self, sweeps: tuple[SweepView, ...]) -> None:
        for s in sweeps:
            done = s.counts.get("done", 0)
            failed = s.counts.get("failed", 0)
            best = metric(s.metric, s.best)
            cells = {"name": s.name, "done": f"{done}/{s.total}",
                     "failed": Text(str(failed), style="red1" if failed else "dim"),
                     "best": f"{best} {s.metric}" if s.metric and s.best is not None else best}
            if self.shown.get(s.name) == cells:
                continue  # unchanged: no repaint
            if s.name in self.rows:
                for column, value in cells.items():
                    self.update_cell(s.name, column, value, update_width=True)
            else:
                self.add_row(*cells.values(), key=s.name)
            self.shown[s.name] = cells

    @property
    def selected(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
