"""The sweeps of the home: name, done/total as a bar, failed, ETA, best headline value so far."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from gridrun.engine.feed import SweepView
from gridrun.tui import fmt
from gridrun.tui.widgets.cells import metric

COLUMNS = (("sweep", "name"), ("done", "done"), ("failed", "failed"), ("eta", "eta"),
           ("best", "best"))
BAR = 8


def progress(done: int, ended: int, total: int, width: int = BAR) -> Text:
    """done/total as a bar: done runs filled, runs ended otherwise (failed, cancelled) shaded."""
    if total <= 0:
        return Text("░" * width + " 0/0", style="grey42")
    full = round(width * done / total)
    other = max(0, min(width - full, round(width * ended / total) - full))
    return (Text("█" * full, style="green3") + Text("▓" * other, style="red1")
            + Text("░" * (width - full - other), style="grey42") + Text(f" {done}/{total}"))


class SweepsList(DataTable):
    """Rows keyed by sweep name, changed in place so the cursor stays. Column widths are set
    from the cells (a table this small is rebuilt when a value outgrows its column: Textual
    does not widen a column on a cell update without redrawing it)."""

    def __init__(self, **kwargs):
        super().__init__(cursor_type="row", **kwargs)
        self.shown: dict[str, dict] = {}   # what each row shows now
        self.widths: dict[str, int] = {}

    def show(self, sweeps: tuple[SweepView, ...]) -> None:
        rows = {s.name: self._cells(s) for s in sweeps}
        needed = {key: max([len(label)] + [Text(str(c[key])).cell_len if not isinstance(
            c[key], Text) else c[key].cell_len for c in rows.values()])
                  for label, key in COLUMNS}
        if any(needed[k] > self.widths.get(k, 0) for k in needed) or set(self.shown) - set(rows):
            self._rebuild(rows, needed)
            return
        for name, cells in rows.items():
            if self.shown.get(name) == cells:
                continue  # unchanged: no repaint
            if name in self.rows:
                for column, value in cells.items():
                    self.update_cell(name, column, value)
            else:
                self.add_row(*cells.values(), key=name)
            self.shown[name] = cells

    def _rebuild(self, rows: dict[str, dict], widths: dict[str, int]) -> None:
        cursor = self.cursor_coordinate
        self.clear(columns=True)
        # a little room to grow, so that a sweep's counts going 9 -> 10 do not rebuild it
        self.widths = {k: w + 2 for k, w in widths.items()}
        for label, key in COLUMNS:
            self.add_column(label, key=key, width=self.widths[key])
        for name, cells in rows.items():
            self.add_row(*cells.values(), key=name)
        self.shown = dict(rows)
        if self.row_count:
            self.move_cursor(row=min(cursor.row, self.row_count - 1))

    @staticmethod
    def _cells(s: SweepView) -> dict:
        done = s.counts.get("done", 0)
        failed = s.counts.get("failed", 0)
        ended = done + failed + s.counts.get("cancelled", 0)
        best = metric(s.metric, s.best)
        live = s.counts.get("queued", 0) + s.counts.get("running", 0)
        eta = fmt.duration(s.eta_s) if s.eta_s is not None else ("?" if live else "-")
        return {"name": s.name, "done": progress(done, ended, s.total),
                "failed": Text(str(failed), style="red1" if failed else "dim"),
                "eta": Text(eta, style="" if live else "dim"),
                "best": f"{best} {s.metric}" if s.metric and s.best is not None else best}

    @property
    def selected(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
