"""Results (r): the sweep's results table, as `gridrun results` prints it, live.

One row per configuration, the headline metric as mean ± std over seeds, best first and in
bold; a staged study shows one table per stage with the configuration it carried forward
marked. Under the table a chart draws each configuration's curve of the metric (mean over
seeds, by epoch), the selected row's in the accent colour, the others dim. The metric (m), the
group-by keys (g) and the epoch a metric is read at (l) can be
changed; the tables are rebuilt in a worker thread and re-read every few seconds while the
store changes. `e` writes exactly what `gridrun results SWEEP --format md` prints with the same
choices to `<home>/<sweep>/results.md` and copies it to the clipboard (OSC 52, so over SSH too).
"""
from __future__ import annotations

import shlex
import sqlite3
import time
from dataclasses import replace

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.color import Color
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, Select, SelectionList, Static

from gridrun.engine import report_tables, table_format
from gridrun.engine.errors import GridrunError
from gridrun.engine.matrix import canonical
from gridrun.engine.plot import row_curves
from gridrun.engine.report_tables import Choices, ResultsView
from gridrun.engine.results import ResultTable, Row
from gridrun.engine.results import config_text, is_accuracy
from gridrun.tui.messages import ActionDone, ResultsExported, ResultsRead
from gridrun.tui.widgets.chart import Chart, integer_ticks, thin

# columns that hold text (left-aligned); every other one holds a number
TEXT_COLUMNS = ("chosen", "status", "flags")
# a row's status cell takes the theme colour of its most telling state
STATUS_COLOUR = {"failed": "text-error", "running": "text-primary",
                 "cancelled": "text-warning"}


class ResultsScreen(Screen):
    CSS_PATH = "../styles/results.tcss"
    AUTO_FOCUS = "#tables DataTable"
    BINDINGS = [
        Binding("m", "metric", "Metric"),
        Binding("g", "group_by", "Group by"),
        Binding("l", "pick('last')", "Last"),
        Binding("l", "pick('best')", "Best"),
        Binding("e", "export", "Export"),
        Binding("escape", "back", "Back"),
        Binding("j", "cursor('down')", show=False),
        Binding("k", "cursor('up')", show=False),
    ]

    def __init__(self, sweep: str, choices: Choices | None = None):
        super().__init__()
        self.sweep = sweep
        self.choices = choices or Choices()
        self.view: ResultsView | None = None
        self._generation = 0          # one per read asked for; stale answers are dropped
        self._applied = 0
        self._next_read = 0.0         # monotonic time before which a tick does not re-read
        self._metrics: list[str] = []  # the metric Select's options
        self._shapes: dict[str, tuple] = {}  # table id -> (header, row keys) it shows
        self.curves: dict[tuple[int, str], tuple[list, list]] = {}  # (table, config) -> x, y
        self.chart_table = 0          # the table whose rows the chart draws
        self.chart_selected: str | None = None   # the highlighted row's config key

    def compose(self) -> ComposeResult:
        yield Static(id="results-title")
        with Horizontal(id="results-controls"):
            yield Label("metric", id="metric-label")
            yield Select([("reading…", "")], allow_blank=False, compact=True, id="metric")
            yield Static(id="results-summary")
        with Horizontal(id="results-body"):
            with Vertical(id="results-main"):
                yield VerticalScroll(id="tables")
                yield Chart(id="results-chart")
            yield SelectionList[str](id="group-by")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#metric", Select).disabled = True
        group_by = self.query_one("#group-by", SelectionList)
        group_by.border_title = "group by"
        group_by.border_subtitle = "space toggles · esc"
        self._title()
        self.read()
        self.app.theme_changed_signal.subscribe(self, self._recolour)
        self.set_interval(max(0.4, 2 * self.app.refresh_s), self._tick)

    # -- reading: a worker builds the tables, a message brings them here -----------------------

    def read(self) -> None:
        """Build the tables again for the current choices (now, whatever the store says)."""
        self._generation += 1
        self._read(self._generation, self.choices, force=True)

    def _tick(self) -> None:
        # a quiet store costs one tiny query; a big sweep is re-read no more often than
        # three times what its last build took
        if time.monotonic() < self._next_read:
            return
        self._generation += 1
        self._read(self._generation, self.choices, force=False)

    @work(thread=True, exclusive=True, group="results")
    def _read(self, generation: int, choices: Choices, force: bool) -> None:
        store = self.app.store
        shown = self.view
        if (not force and shown is not None and shown.choices == choices
                and store.change_counter() == shown.version):
            return
        started = time.monotonic()
        try:
            view = report_tables.view(store, self.sweep, choices)
            curves = row_curves(store, view.tables)
        except (GridrunError, sqlite3.Error, OSError) as e:
            self.post_message(ResultsRead(generation, choices, None, str(e)))
            return
        self.post_message(ResultsRead(generation, choices, view,
                                      took_s=time.monotonic() - started, curves=curves))

    async def on_results_read(self, message: ResultsRead) -> None:
        message.stop()
        if message.generation < self._applied or message.choices != self.choices:
            return  # an answer to a question nobody asks any more
        self._applied = message.generation
        self._next_read = time.monotonic() + 3 * message.took_s
        if message.view is None:
            self.query_one("#results-summary", Static).update(
                f"[$text-error]{escape(message.error or 'cannot read the results')}[/]")
            return
        self.view = message.view
        self.curves = message.curves or {}
        self._controls(message.view)
        self._title()
        await self._show_tables(message.view)
        self._draw_chart()

    # -- the chart: every configuration's curve, the selected one highlighted ------------------

    @on(DataTable.RowHighlighted, "#tables DataTable")
    def row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        table_id = event.data_table.id or "table-0"
        self.chart_table = int(table_id.rsplit("-", 1)[-1])
        self.chart_selected = event.row_key.value if event.row_key else None
        self._draw_chart()

    def _draw_chart(self) -> None:
        chart = self.query_one("#results-chart", Chart)
        view = self.view
        lines = {config: xy for (t, config), xy in self.curves.items()
                 if t == self.chart_table}
        chart.display = bool(lines)
        if not lines or view is None or self.chart_table >= len(view.tables):
            return
        table = view.tables[self.chart_table]
        if table.metric and is_accuracy(table.metric) and all(
                max(ys) <= 1 for _, ys in lines.values()):
            # fractions read as percentages, as in the table's column
            lines = {c: (xs, [100 * y for y in ys]) for c, (xs, ys) in lines.items()}
        plt = chart.plt
        plt.clear_figure()
        plt.theme("clear")
        xs_all = sorted({x for xs, _ in lines.values() for x in xs})
        if xs_all and all(float(x).is_integer() for x in xs_all):
            ticks = integer_ticks(int(xs_all[0]), int(xs_all[-1]))
            plt.xticks(ticks, [str(t) for t in ticks])
        selected = self.chart_selected if self.chart_selected in lines else None
        # the others first, dim, so the selected line is drawn over them
        for config, (xs, ys) in lines.items():
            if config != selected:
                plt.plot(*thin(xs, ys), marker="braille", color="gray")
        name = table.metric or ""
        chart.titles = [name]
        if selected is not None:
            xs, ys = lines[selected]
            plt.plot(*thin(xs, ys), marker="braille", color="orange")
            row = next((r for r in table.rows if canonical(r.config) == selected), None)
            label = config_text(row.config) if row is not None and row.config else "all runs"
            chart.titles = [f"{name} by epoch, mean over seeds: {label} (orange)",
                            f"{name}: {label}", name]
        chart.refresh()

    # -- the widgets --------------------------------------------------------------------------

    def _title(self) -> None:
        view = self.view
        parts = [f"[b]Results[/b]  [b $text-accent]{escape(self.sweep)}[/]"]
        if view is not None:
            total = sum(view.counts.values())
            parts.append(f"{total} run{'s' if total != 1 else ''}: "
                         + table_format.status_text(view.counts))
            if view.counts.get("running") or view.counts.get("queued"):
                parts.append("[$text-muted]updating live[/]")
        else:
            parts.append("[$text-muted]reading…[/]")
        self.query_one("#results-title", Static).update("  ·  ".join(parts))

    def _controls(self, view: ResultsView) -> None:
        """The metric and group-by choices: what the runs report, what the sweep varies."""
        select = self.query_one("#metric", Select)
        wanted = self.choices.metric or (view.tables[0].metric if view.tables
                                         else view.sweep_metric)
        with select.prevent(Select.Changed):
            if view.metrics != self._metrics or not self._metrics:
                self._metrics = list(view.metrics)
                select.set_options([(name, name) for name in view.metrics]
                                   or [("no metric yet", "")])
            select.disabled = not view.metrics
            if wanted in view.metrics and select.value != wanted:
                select.value = wanted
        group_by = self.query_one("#group-by", SelectionList)
        with group_by.prevent(SelectionList.SelectedChanged):
            present = [group_by.get_option_at_index(i).value
                       for i in range(group_by.option_count)]
            if present != view.keys:
                group_by.clear_options()
                group_by.add_options([(key, key, key in self.choices.group_by)
                                      for key in view.keys])
        self._summary()

    def _summary(self) -> None:
        """How the table is made, in words: ranking, epoch, rows."""
        view = self.view
        if view is None:
            return
        mode = view.tables[0].mode if view.tables else view.sweep_mode
        if self.choices.metric is not None and view.choices.metric != self.choices.metric:
            better = "ranking"                        # a new metric is being read
        else:
            better = ("higher" if mode == "max" else "lower") + " is better"
        at = "last epoch" if self.choices.pick == "last" else "best epoch"
        rows = ("by " + ", ".join(self.choices.group_by) if self.choices.group_by
                else "per stage" if view.staged else "per configuration")
        self.query_one("#results-summary", Static).update(
            f"[$text-muted]{better} · at {at} · {escape(rows)} · mean ± std over seeds[/]")

    async def _show_tables(self, view: ResultsView) -> None:
        holder = self.query_one("#tables", VerticalScroll)
        present = list(holder.query(DataTable))
        holder.set_class(len(view.tables) > 1, "-stacked")
        if len(present) != len(view.tables):
            had_focus = self.focused in present or self.focused is None
            await holder.remove_children()
            self._shapes.clear()
            present = [DataTable(cursor_type="row", zebra_stripes=True, id=f"table-{i}")
                       for i in range(len(view.tables))]
            await holder.mount_all(present)
            if had_focus and present:
                present[0].focus()
        for widget, table in zip(present, view.tables):
            widget.border_title = _table_title(table)
            self._fill(widget, table)

    async def _recolour(self, _theme=None) -> None:
        """A new theme: the cells' colours come from it, so they are made again."""
        self._shapes.clear()
        if self.view is not None:
            await self._show_tables(self.view)

    def _fill(self, widget: DataTable, table: ResultTable) -> None:
        """Rows keyed by configuration: changed in place while the shape stays, so the cursor
        stays; rebuilt (the cursor kept on its configuration) when it does not."""
        header, body = table_format.cells(table)
        colours = _palette(self.app)
        keys = [canonical(row.config) for row in table.rows]
        shape = (tuple(header), tuple(keys))
        cells = [self._row_cells(table, header, row, values, colours)
                 for row, values in zip(table.rows, body)]
        if self._shapes.get(widget.id) == shape:
            for key, row_cells in zip(keys, cells):
                for column, value in enumerate(row_cells):
                    widget.update_cell(key, f"c{column}", value)
            return
        cursor_key = None
        if widget.row_count and widget.is_valid_row_index(widget.cursor_row):
            cursor_key = widget.coordinate_to_cell_key(widget.cursor_coordinate).row_key.value
        widget.clear(columns=True)
        for column, name in enumerate(header):
            label = Text(name, style="bold")
            if not (name in table.keys or name in TEXT_COLUMNS):
                label.justify = "right"
            widget.add_column(label, key=f"c{column}")
        for key, row_cells in zip(keys, cells):
            widget.add_row(*row_cells, key=key)
        self._shapes[widget.id] = shape
        if cursor_key in keys:
            widget.move_cursor(row=keys.index(cursor_key), animate=False)

    @staticmethod
    def _row_cells(table: ResultTable, header: list[str], row: Row, values: list[str],
                   colours: dict[str, Style]) -> list[Text]:
        best = table.best is row
        headline = len(table.keys) + (1 if any(r.chosen for r in table.rows) else 0)
        unfinished = row.headline.mean is None
        style = "bold" if best else ("dim" if unfinished else "")
        out = []
        for column, (name, value) in enumerate(zip(header, values)):
            cell = Text(value, style=style)
            if name == "chosen" and value:
                cell.stylize(colours["text-success"] + Style(bold=True))
            elif name == "flags" and value:
                cell = Text("⚠ " + value, style=colours["text-warning"])
            elif name == "status":
                worst = next((state for state in ("failed", "running", "queued", "cancelled")
                              if row.statuses.get(state)), None)
                if worst is not None:
                    cell.stylize(colours[STATUS_COLOUR[worst]] if worst in STATUS_COLOUR
                                 else "dim")
            elif column == headline and best:
                cell.stylize(colours["text-success"])      # the best headline value
            if not (name in table.keys or name in TEXT_COLUMNS):
                cell.justify = "right"
            out.append(cell)
        return out

    # -- choices ------------------------------------------------------------------------------

    def _choose(self, **changes) -> None:
        choices = replace(self.choices, **changes)
        if choices != self.choices:
            self.choices = choices
            self.refresh_bindings()
            self._summary()
            self.read()

    def action_metric(self) -> None:
        select = self.query_one("#metric", Select)
        if select.disabled:
            self.notify("no run has reported a metric yet")
            return
        select.focus()
        select.action_show_overlay()

    @on(Select.Changed, "#metric")
    def metric_changed(self, event: Select.Changed) -> None:
        if event.value in (Select.NULL, "") or self.view is None:
            return
        # the sweep's own metric is "no --metric": its mode is the sweep's too, as in the CLI
        metric = None if event.value == self.view.sweep_metric else str(event.value)
        self._choose(metric=metric)
        self._focus_table()

    def action_group_by(self) -> None:
        self.add_class("-picking")
        group_by = self.query_one("#group-by", SelectionList)
        if group_by.highlighted is None and group_by.option_count:
            group_by.highlighted = 0  # space toggles the first key at once
        group_by.focus()

    @on(SelectionList.SelectedChanged, "#group-by")
    def group_by_changed(self, event: SelectionList.SelectedChanged) -> None:
        chosen = set(event.selection_list.selected)
        keys = self.view.keys if self.view else sorted(chosen)
        self._choose(group_by=tuple(k for k in keys if k in chosen))

    def action_pick(self, pick: str) -> None:
        self._choose(pick=pick)

    def action_toggle_pick(self) -> None:
        """Best or last epoch, whichever is not shown (for the command palette)."""
        self._choose(pick="last" if self.choices.pick == "best" else "best")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "pick":
            return parameters[0] != self.choices.pick
        return True

    def action_back(self) -> None:
        if self.has_class("-picking"):
            self.remove_class("-picking")
            self._focus_table()
        else:
            self.app.pop_screen()

    def action_cursor(self, direction: str) -> None:
        if isinstance(self.focused, DataTable):
            getattr(self.focused, f"action_cursor_{direction}")()

    def _focus_table(self) -> None:
        tables = list(self.query_one("#tables").query(DataTable))
        if tables:
            tables[0].focus()

    # -- export -------------------------------------------------------------------------------

    def action_export(self) -> None:
        self._export(self.choices)

    @work(thread=True, group="export")
    def _export(self, choices: Choices) -> None:
        command = shlex.join(["gridrun", "results", self.sweep, *choices.argv(), "--format", "md"])
        try:
            path, text = report_tables.export(self.app.store, self.app.home, self.sweep, choices)
        except (GridrunError, sqlite3.Error, OSError) as e:
            self.post_message(ResultsExported(None, "", command, str(e)))
            return
        self.post_message(ResultsExported(str(path), text, command))

    def on_results_exported(self, message: ResultsExported) -> None:
        message.stop()
        if message.error is not None:
            self.notify(f"export failed: {message.error}", severity="error")
            return
        self.app.copy_to_clipboard(message.text)
        self.notify(f"wrote {escape(message.path or '')}\ncopied to the clipboard too "
                    f"(same as `{escape(message.command)}`)", title="Exported")

    def on_action_done(self, message: ActionDone) -> None:
        self.notify(message.text, severity="error" if message.error else "information")


def _palette(app) -> dict[str, Style]:
    """The theme's text colours as Rich styles for table cells (ANSI themes included)."""
    variables = app.get_css_variables()
    return {name: Style(color=Color.parse(variables[name]).rich_color)
            for name in ("text-success", "text-warning", "text-error", "text-primary")}


def _table_title(table: ResultTable) -> str:
    """What a table's border says: its stage and what it varies, or the metric's summary."""
    if table.stage is None:
        return f"{escape(table.metric or 'no metric yet')} ({table.mode})"
    text = f"[b]stage {table.stage}[/b]: {escape(', '.join(table.keys) or '-')}"
    if any(r.chosen for r in table.rows):
        text += "  [$text-success]✓ carried forward[/]"
    return text
