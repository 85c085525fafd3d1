"""One run, live: its curves, the per-epoch metrics table, its parameters and its output.

A timer starts a thread worker about once a second. The worker reads only what changed since
the screen's read position (a `Cursor`: the last metric row's seq, the attempt, the byte
offset in stdout.log) and posts a `RunDetailUpdated`; the handler is the only code that touches
the widgets. A new attempt, or a history the daemon rewrote (rows with epochs already shown),
makes the worker read the whole history again instead.

Layout: at 120x32 and up, charts across the top and the metrics table, parameters and log side
by side below; on smaller terminals one pane at a time behind tabs (1-4, or left/right on the
tab bar).
"""
from __future__ import annotations

import sqlite3
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, HorizontalScroll, Vertical, VerticalScroll
from textual.geometry import Size
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Input, Log, Static, Tab, Tabs
from textual.worker import Worker

from gridrun.engine import logview
from gridrun.engine.control import replay_command
from gridrun.engine.errors import GridrunError
from gridrun.engine.matrix import format_value
from gridrun.engine.results import is_accuracy, numeric
from gridrun.engine.store import FINISHED, Run, Store
from gridrun.engine.tail import ATTEMPT_KEY
from gridrun.tui import fmt
from gridrun.tui.fit import error_tail
from gridrun.tui.messages import ActionDone, RunDetailUpdated
from gridrun.tui.widgets.cells import status as status_cell
from gridrun.tui.widgets.chart import Chart, integer_ticks, thin
from gridrun.tui.widgets.log_pane import LogPane

WIDE = (120, 32)          # columns, rows from which every pane shows at once
PANES = ("charts", "metrics", "params", "log")
LOG_LINES = 2000          # lines of output kept on screen
LOG_START_BYTES = 64 * 1024  # how much of an existing log the first read shows
HIDDEN = {ATTEMPT_KEY, "warning", "epochs", "steps"}
MAX_SERIES = 4            # lines per chart
MAX_OVERLAY = 7           # marked runs drawn over this one's charts
MAX_LINES = 8             # lines per chart with overlaid runs
TABLE_ROWS = 1000         # the metrics table keeps the latest rows (the charts show them all)


@dataclass(frozen=True)
class Cursor:
    """How far the screen has read. `key` names the attempt the rows belong to."""
    seq: int = 0
    epoch: float | None = None          # the highest epoch shown
    key: tuple | None = None            # (attempt, started, running): a change means re-read
    log: int = -1                       # byte offset in stdout.log; -1: not started yet
    extras: bool = False                # the sweep's varying parameters were read
    replay: bool = False                # the replay line was found


# -- which metrics go on which chart -------------------------------------------------------------

def _order(name: str) -> tuple[int, str]:
    """train first, then validation, then test, then anything else."""
    low = name.lower()
    for rank, prefixes in enumerate((("train", "training", "loss", "acc", "accuracy"),
                                     ("val", "valid", "validation", "eval"), ("test",))):
        if low in prefixes or low.startswith(tuple(p + "_" for p in prefixes)):
            return rank, name
    return 3, name


def is_lr(name: str) -> bool:
    low = name.lower()
    return low in ("lr", "learning_rate") or low.endswith(("_lr", "_learning_rate"))


def chart_groups(names: list[str]) -> dict[str, list[str]]:
    """The series of each chart, from the metric names a run reported."""
    loss = sorted((n for n in names if "loss" in n.lower()), key=_order)
    acc = sorted((n for n in names if is_accuracy(n.lower()) and "loss" not in n.lower()),
                 key=_order)
    lr = sorted(n for n in names if is_lr(n))
    return {"loss": loss[:MAX_SERIES], "acc": acc[:MAX_SERIES], "lr": lr[:MAX_SERIES]}


def series(rows: list[dict], name: str) -> tuple[list[float], list[float]]:
    """(x, y) of one metric: x is the row's epoch (or step), the last one seen where a row has
    none, the row number where there is none at all."""
    xs, ys = [], []
    x: float | None = None
    for i, row in enumerate(rows, 1):
        here = row.get("epoch", row.get("step"))
        x = here if numeric(here) else (x if x is not None else float(i))
        value = row.get(name)
        if numeric(value):
            xs.append(x)
            ys.append(float(value))
    return xs, ys


def cell_text(name: str, value: Any) -> Text:
    if name == "time" and numeric(value) and value > 1e9:
        return Text(fmt.clock(value), justify="right", style="dim")
    if value is None:
        return Text("-", justify="right", style="dim")
    return Text(fmt.number(value), justify="right")


class RunDetailScreen(Screen):
    CSS_PATH = "../styles/run_detail.tcss"
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("c", "cancel", "Cancel"),
        Binding("R", "retry", "Retry", key_display="R"),
        Binding("o", "folder", "Folder"),
        Binding("y", "copy_replay", "Copy replay"),
        Binding("slash", "search", "Search log", key_display="/"),
        Binding("n", "next_hit(1)", "Next hit", show=False),
        Binding("N", "next_hit(-1)", "Previous hit", show=False, key_display="N"),
        Binding("f", "follow", "Follow", show=False),
        Binding("g", "edge('top')", "Top", show=False),
        Binding("G", "edge('bottom')", "Bottom", show=False, key_display="G"),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("j", "scroll(1)", "Down", show=False),
        Binding("k", "scroll(-1)", "Up", show=False),
        Binding("1", "show_pane('charts')", "Charts", show=False),
        Binding("2", "show_pane('metrics')", "Metrics", show=False),
        Binding("3", "show_pane('params')", "Params", show=False),
        Binding("4", "show_pane('log')", "Log", show=False),
    ]

    def __init__(self, run_id: int, overlay: tuple[int, ...] = ()):
        super().__init__()
        self.run_id = run_id
        # runs marked on the dashboard: their curves on the same charts (read while any runs)
        self.overlay_ids = tuple(overlay)[:MAX_OVERLAY]
        self.overlay_rows: list[tuple[str, list[dict]]] = []
        self._overlay_live = bool(self.overlay_ids)
        self.run: Run | None = None
        self.cursor = Cursor()
        self.rows: list[dict] = []          # the metric rows shown, in seq order
        self.columns: list[str] = []        # the metrics table's columns
        self.names: dict[str, None] = {}    # every metric name seen, in order
        self.table_keys: deque[str] = deque()  # the metrics table's row keys, oldest first
        self.varying: list[str] = []
        self.replay: str | None = None
        self.pane = "charts"                # the tab shown on small terminals
        self.wide = False
        self.missing = False                # the run is no longer in the store
        self.store_error = False            # the last read failed (shown in the status line)
        self._worker: Worker | None = None

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="rd-status")
        yield Tabs(Tab("1 Charts", id="tab-charts"), Tab("2 Metrics", id="tab-metrics"),
                   Tab("3 Params", id="tab-params"), Tab("4 Log", id="tab-log"), id="rd-tabs")
        with Vertical(id="rd-body"):
            with Horizontal(id="rd-charts"):
                with Horizontal(id="rd-chart-main"):
                    yield Chart(id="chart-loss", classes="chart")
                    yield Chart(id="chart-acc", classes="chart")
                yield Chart(id="chart-lr", classes="chart")
                yield Static("no metrics yet", id="rd-empty")
            with Horizontal(id="rd-lower"):
                metrics = DataTable(id="rd-metrics", cursor_type="row", zebra_stripes=True)
                metrics.border_title = "metrics"
                yield metrics
                with VerticalScroll(id="rd-params-pane") as params:
                    params.border_title = "parameters"
                    yield Static(id="rd-params")
                    yield Static(id="rd-folder", classes="rd-note")
                    with HorizontalScroll(id="rd-replay-box"):
                        yield Static(id="rd-replay", classes="rd-note")
                log = LogPane(id="rd-log", max_lines=LOG_LINES)
                log.border_title = "stdout.log"
                log.border_subtitle = "following"
                yield log
        yield Input(placeholder="search the log: enter finds, n/N next/previous, esc closes",
                    id="rd-search")
        yield Footer()

    def on_mount(self) -> None:
        for chart in ("loss", "acc", "lr"):
            self.query_one(f"#chart-{chart}").display = False
        self.query_one("#rd-chart-main").display = False
        self.query_one("#rd-search").display = False
        self._layout(self.app.size.width, self.app.size.height)
        self.poll_now()
        self.set_interval(getattr(self.app, "refresh_s", 1.0), self.poll_now)

    def on_resize(self, event: events.Resize) -> None:
        self._layout(event.size.width, event.size.height)

    def _layout(self, width: int, height: int) -> None:
        """Everything at once on a big terminal; one pane, chosen by the tabs, on a small one."""
        self.wide = width >= WIDE[0] and height >= WIDE[1]
        self.set_class(self.wide, "-wide")
        self.query_one("#rd-tabs").display = not self.wide
        shown = set(PANES) if self.wide else {self.pane}
        self.query_one("#rd-charts").display = "charts" in shown
        self.query_one("#rd-lower").display = bool(shown - {"charts"})
        self.query_one("#rd-metrics").display = "metrics" in shown
        self.query_one("#rd-params-pane").display = "params" in shown
        self.query_one("#rd-log").display = "log" in shown
        if "log" in shown:  # a log that follows shows its end when it comes into view
            log = self.query_one("#rd-log", LogPane)
            self.call_after_refresh(lambda: log.follow and log.scroll_end(
                animate=False, immediate=True, x_axis=False))
        focused = self.focused
        if focused is None or not self._visible(focused):
            target = self._pane_widget(self.pane) if self.wide else self.query_one("#rd-tabs")
            (target or self.query_one("#rd-metrics")).focus()

    def _visible(self, widget: Widget) -> bool:
        node = widget
        while isinstance(node, Widget) and node is not self:
            if not node.display:
                return False
            node = node.parent
        return True

    def _pane_widget(self, pane: str) -> Widget | None:
        return {"metrics": self.query_one("#rd-metrics"),
                "params": self.query_one("#rd-params-pane"),
                "log": self.query_one("#rd-log")}.get(pane)

    @on(Tabs.TabActivated, "#rd-tabs")
    def tab_activated(self, event: Tabs.TabActivated) -> None:
        self.pane = event.tab.id.removeprefix("tab-") if event.tab and event.tab.id else "charts"
        self._layout(self.size.width or self.app.size.width,
                     self.size.height or self.app.size.height)

    def action_show_pane(self, pane: str) -> None:
        """1-4: that tab on a small terminal; on a wide one, focus that pane."""
        self.query_one("#rd-tabs", Tabs).active = f"tab-{pane}"
        if self.wide and (widget := self._pane_widget(pane)) is not None:
            widget.focus()

    # -- reading: a worker reads what changed, a message brings it here ----------------------

    def poll_now(self) -> None:
        """Start a read unless one is still going (a slow store must not pile them up)."""
        if self._worker is not None and not self._worker.is_finished:
            return
        self._worker = self.poll(self.cursor)

    @work(thread=True, exclusive=True, group="run-detail")
    def poll(self, cursor: Cursor) -> None:
        store = self.app.store
        try:
            self.post_message(self._read(store, cursor))
        except (GridrunError, sqlite3.Error) as e:
            self.post_message(RunDetailUpdated(self.run_id, cursor, cursor, self.run, [],
                                               error=str(e)))

    def _read(self, store: Store, cursor: Cursor) -> RunDetailUpdated:
        """In the worker thread: the run row, metric rows after cursor.seq and the log after
        cursor.log. Store and file reads happen here only."""
        run = store.run(self.run_id)
        if run is None:
            return RunDetailUpdated(self.run_id, cursor, cursor, None, [])
        key = (run.attempt, run.started, run.status not in FINISHED)
        reset = key != cursor.key
        rows = store.metrics_after(run.id, 0 if reset else cursor.seq)
        if not reset and rows and cursor.epoch is not None:
            epochs = [r["epoch"] for _, r in rows if numeric(r.get("epoch"))]
            if epochs and min(epochs) <= cursor.epoch:
                # the daemon rewrote the history (a resumed attempt, a script that switched to
                # report()): read all of it again
                reset, rows = True, store.metrics_after(run.id, 0)
        epochs = [r["epoch"] for _, r in rows if numeric(r.get("epoch"))]
        top = max(epochs) if epochs else None
        if not reset and cursor.epoch is not None:
            top = max(cursor.epoch, top) if top is not None else cursor.epoch
        seq = rows[-1][0] if rows else (0 if reset else cursor.seq)

        path = Path(run.run_dir) / "stdout.log"
        start = cursor.log if cursor.log >= 0 else logview.start_offset(path, LOG_START_BYTES)
        text, offset = logview.read_from(path, start, final=run.status in FINISHED)
        log_reset = offset < start

        varying = None
        if not cursor.extras:
            sweep = store.sweep(run.sweep)
            varying = list(sweep.varying) if sweep else []
        replay = None
        if (not cursor.replay or reset) and run.status != "queued":
            try:
                replay = replay_command(run)
            except (KeyError, TypeError, AttributeError):
                replay = None  # a run.json written by hand, or by another version
        until = Cursor(seq, top, key, offset, True, cursor.replay or replay is not None)
        return RunDetailUpdated(self.run_id, cursor, until, run, rows, reset, text, log_reset,
                                varying, replay, overlay=self._read_overlay(store))

    def _read_overlay(self, store: Store) -> list | None:
        """The overlaid runs' whole histories, while any of them may still change."""
        if not self._overlay_live:
            return None
        others = [r for i in self.overlay_ids if (r := store.run(i)) is not None]
        histories = store.metrics_for([r.id for r in others])
        self._overlay_live = any(r.status not in FINISHED for r in others)
        return [(f"#{r.index}", histories[r.id]) for r in others]

    def on_run_detail_updated(self, message: RunDetailUpdated) -> None:
        if message.run_id != self.run_id or message.since != self.cursor:
            return  # a late duplicate of a read already applied
        self.cursor = message.until
        if message.error:
            self.store_error = True
            self.query_one("#rd-status", Static).update(
                Text(f"could not read the store: {message.error}", style="red"))
            return
        if message.run is None:
            self._show_missing()
            return
        unchanged = (message.run == self.run and message.run.status != "running"
                     and not self.missing and not self.store_error)
        self.missing = self.store_error = False
        self.run = message.run
        if message.varying is not None:
            self.varying = message.varying
            self._show_params(message.run)
        if message.replay is not None:
            self.replay = message.replay
            # on one line, never broken (the pane scrolls sideways); y copies it
            self.query_one("#rd-replay", Static).update(Text.assemble(
                ("to replay it by hand (y copies it):\n", "bold"),
                Text(message.replay, no_wrap=True, overflow="ignore")))
        if not unchanged:  # a running run's elapsed time changes every second
            self._show_status(message.run)
        if message.overlay is not None and message.overlay != self.overlay_rows:
            self.overlay_rows = message.overlay
            if not (message.reset or message.rows):
                self._draw_charts()
        if message.reset or message.rows:
            self._show_rows(message.rows, message.reset)
        if message.log_reset:
            self.query_one("#rd-log", Log).clear()
        if message.log:
            self._append_log(message.log)

    # -- showing -----------------------------------------------------------------------------

    def _append_log(self, text: str) -> None:
        """New output at the end; the view follows it unless the user scrolled up."""
        log = self.query_one("#rd-log", LogPane)
        if text.count("\n") > LOG_LINES:
            text = "\n".join(text.split("\n")[-LOG_LINES - 1:])
        log.write(text, scroll_end=False)
        if log.virtual_size.height != log.line_count:
            # Log prunes to max_lines without shrinking its virtual size (Textual 8.2.8)
            log.virtual_size = Size(log.virtual_size.width, log.line_count)
        log.appended()

    def _show_missing(self) -> None:
        self.missing = True
        self.query_one("#rd-status", Static).update(Text.assemble(
            (f"run {self.run_id} ", "bold"),
            ("is no longer in the store (esc goes back)", "yellow3")))

    def _show_status(self, run: Run) -> None:
        last = run.last_metrics
        parts: list[Any] = [(f"{run.sweep} #{run.index}", "bold"), (f"  id {run.id}  ", "dim"),
                            status_cell(run.status)]
        parts += ["  ", run.device or "no device yet", f"  attempt {run.attempt}",
                  f"  {fmt.elapsed(run.started, run.ended)}"]
        epoch = fmt.epoch_text(last, run.params)
        if epoch != "-":
            parts.append(f"  epoch {epoch}")
        line2: list[Any] = []
        for flag in run.flags:
            line2 += [(f"⚠ {flag.replace('_', ' ')}", "bold yellow3"), "  "]
        if run.error:
            # the end of the error is kept: the exception, not the traceback's first line
            room = (self.size.width or self.app.size.width) - 2 \
                - sum(len(flag) + 4 for flag in run.flags)
            line2.append((error_tail(run.error, max(room, 20)),
                          "red1" if run.status == "failed" else "yellow3"))
        if not line2:
            line2.append((fmt.params_text(run.params, self.varying) if self.varying
                           else fmt.metrics_text(last), "dim"))
        self.query_one("#rd-status", Static).update(Text.assemble(*parts, "\n", *line2))

    def _show_params(self, run: Run) -> None:
        """Every parameter; the ones the sweep varies first, in bold."""
        table = Table(box=None, show_header=False, padding=(0, 1), expand=True)
        table.add_column("parameter", no_wrap=True)
        table.add_column("value", overflow="fold", ratio=1)
        first = [k for k in self.varying if k in run.params]
        for name in first + sorted(k for k in run.params if k not in first):
            table.add_row(Text(name, style="bold" if name in first else "dim"),
                          Text(format_value(run.params[name]),
                               style="bold" if name in first else ""))
        self.query_one("#rd-params", Static).update(table)
        self.query_one("#rd-folder", Static).update(
            Text.assemble(("folder\n", "bold"), run.run_dir))

    def _show_rows(self, keyed: list[tuple[int, dict]], reset: bool) -> None:
        """New metric rows into the table (keyed by seq; the cursor follows the last row when
        it was there) and onto the charts; `reset`: they replace what is shown."""
        rows = [row for _, row in keyed]
        table = self.query_one("#rd-metrics", DataTable)
        follow = table.row_count == 0 or table.cursor_row >= table.row_count - 1
        if reset:
            self.rows = []
            self.columns = []
            self.names = {}
            self.table_keys.clear()
            table.clear(columns=True)
        self.rows += rows
        self.names.update((k, None) for row in rows for k in row if k not in HIDDEN)
        for name in self._new_columns(rows):
            table.add_column(Text(name, justify="right"), key=name,
                             default=Text("-", justify="right", style="dim"))
            self.columns.append(name)
        for seq, row in keyed[-TABLE_ROWS:]:
            table.add_row(*(cell_text(c, row.get(c)) for c in self.columns), key=str(seq))
            self.table_keys.append(str(seq))
        while len(self.table_keys) > TABLE_ROWS:
            table.remove_row(self.table_keys.popleft())
        table.border_subtitle = (f"last {TABLE_ROWS} of {len(self.rows)} rows"
                                 if len(self.rows) > TABLE_ROWS else None)
        if follow and table.row_count:
            table.move_cursor(row=table.row_count - 1, animate=False)
        self._draw_charts()

    def _new_columns(self, rows: list[dict]) -> list[str]:
        seen = set(self.columns)
        found: list[str] = []
        for row in rows:
            for name in row:
                if name not in seen and name not in HIDDEN:
                    seen.add(name)
                    found.append(name)
        if not self.columns:  # epoch (or step) first, the time stamp last
            found.sort(key=lambda n: (0 if n in ("epoch", "step") else
                                      2 if n == "time" else 1))
        return found

    def _draw_charts(self) -> None:
        groups = chart_groups(list(self.names))
        drawn = {}
        for chart, title in (("loss", "loss"), ("acc", "accuracy"), ("lr", "learning rate")):
            lines = [(name, *thin(*series(self.rows, name))) for name in groups[chart]]
            if self.overlay_rows and self.run is not None:
                lines = [(f"#{self.run.index} {name}", xs, ys) for name, xs, ys in lines]
                lines += [(f"{label} {name}", *thin(*series(rows, name)))
                          for label, rows in self.overlay_rows for name in groups[chart]]
                lines = [line for line in lines if line[1]][:MAX_LINES]
            lines = [line for line in lines if line[1]]
            drawn[chart] = bool(lines)
            widget = self.query_one(f"#chart-{chart}", Chart)
            widget.display = bool(lines)
            if lines:
                self._plot(widget, title, lines, percent=chart == "acc", log=chart == "lr")
        self.query_one("#rd-chart-main").display = drawn["loss"] or drawn["acc"]
        empty = self.query_one("#rd-empty", Static)
        empty.display = not any(drawn.values())
        if empty.display:
            empty.update("no metrics yet" if not self.rows else
                         "no loss, accuracy or learning rate reported yet: see 2 Metrics")

    @staticmethod
    def _plot(widget: Chart, title: str, lines: list[tuple[str, list, list]], *,
              percent: bool = False, log: bool = False) -> None:
        plt = widget.plt
        plt.clear_figure()
        unit = ""
        if percent:  # fractions read as percentages, as in the results tables
            lines = [(n, xs, [100 * y for y in ys] if max(ys) <= 1 else ys)
                     for n, xs, ys in lines]
            unit = "%"
        values = [y for _, _, ys in lines for y in ys]
        if log and min(values) > 0 and max(values) / min(values) > 20:
            plt.yscale("log")
        latest = " · ".join(f"{n} {fmt.number(ys[-1])}{unit}" for n, _, ys in lines)
        widget.titles = ([latest] if len(lines) == 1 else [f"{title}: {latest}", latest]) + [
            " · ".join(f"{fmt.number(ys[-1])}{unit}" for _, _, ys in lines), title]
        xs_all = sorted({x for _, xs, _ in lines for x in xs})
        if xs_all and all(float(x).is_integer() for x in xs_all):
            ticks = integer_ticks(int(xs_all[0]), int(xs_all[-1]))
            plt.xticks(ticks, [str(t) for t in ticks])
        for name, xs, ys in lines:
            plt.plot(xs, ys, label=name if len(lines) > 1 else None, marker="braille")
        widget.refresh()

    # -- actions -----------------------------------------------------------------------------

    def action_back(self) -> None:
        if self.query_one("#rd-search").display:  # esc closes the search box first
            self._close_search()
            return
        self.app.pop_screen()

    def action_cancel(self) -> None:
        self.app.cancel_runs(ids=[self.run_id])

    def action_retry(self) -> None:
        self.app.retry_runs(ids=[self.run_id])

    def action_folder(self) -> None:
        if self.run is None:
            self.notify("the run's folder is not known yet", severity="warning")
            return
        self.app.copy_to_clipboard(self.run.run_dir)
        self.notify(f"{self.run.run_dir}\n(copied to the clipboard)", title="Run folder")

    def action_scroll(self, step: int) -> None:
        """j/k: the focused table or log, or on the tabs the pane they show."""
        target = self.focused
        if not isinstance(target, (DataTable, Log, VerticalScroll)):
            target = self._pane_widget(self.pane)
        if isinstance(target, DataTable):
            (target.action_cursor_down if step > 0 else target.action_cursor_up)()
        elif target is not None:
            (target.scroll_down if step > 0 else target.scroll_up)(animate=False)

    def on_action_done(self, message: ActionDone) -> None:
        self.notify(message.text, severity="error" if message.error else "information")
        self.poll_now()

    # -- the log: search, follow, top and bottom; paging; copying the replay line ---------------

    def action_search(self) -> None:
        """/: a search box under the log (on a small terminal, the log's tab first)."""
        if not self.wide:
            self.action_show_pane("log")
        box = self.query_one("#rd-search", Input)
        box.display = True
        box.focus()

    @on(Input.Submitted, "#rd-search")
    def search_submitted(self, event: Input.Submitted) -> None:
        log = self.query_one("#rd-log", LogPane)
        self._close_search()
        if event.value.strip():
            found = log.search(event.value)
            if not found:
                self.notify(f"not found in the log: {event.value}", severity="warning")

    def _close_search(self) -> None:
        box = self.query_one("#rd-search", Input)
        box.display = False
        self.query_one("#rd-log", LogPane).focus()

    def action_next_hit(self, step: int) -> None:
        self.query_one("#rd-log", LogPane).next_hit(step)

    def action_follow(self) -> None:
        log = self.query_one("#rd-log", LogPane)
        log.toggle_follow()
        self.notify("the log follows its end" if log.follow else
                    "the log stays where it is (f follows again)", timeout=2)

    def _scroll_target(self) -> Widget | None:
        """What g/G and PageUp/PageDown move: the focused table or pane, else the pane shown
        (the log where it is in view)."""
        if isinstance(self.focused, (DataTable, Log, VerticalScroll)):
            return self.focused
        if self.wide:
            return self.query_one("#rd-log")
        return self._pane_widget(self.pane)

    def action_edge(self, which: str) -> None:
        target = self._scroll_target()
        if isinstance(target, LogPane):
            target.top() if which == "top" else target.bottom()
        elif isinstance(target, DataTable):
            target.move_cursor(row=0 if which == "top" else target.row_count - 1,
                               animate=False)
        elif target is not None:
            (target.scroll_home if which == "top" else target.scroll_end)(animate=False)

    def action_page(self, step: int) -> None:
        target = self._scroll_target()
        if isinstance(target, DataTable):
            (target.action_page_down if step > 0 else target.action_page_up)()
        elif target is not None:
            (target.scroll_page_down if step > 0 else target.scroll_page_up)(animate=False)

    def action_copy_replay(self) -> None:
        """y: the shell line that replays the run, to the clipboard (OSC 52: works over SSH
        in terminals that allow it)."""
        if not self.replay:
            self.notify("no replay line yet: the run has not started", severity="warning")
            return
        self.app.copy_to_clipboard(self.replay)
        self.notify(self.replay, title="Replay command copied", timeout=4)
