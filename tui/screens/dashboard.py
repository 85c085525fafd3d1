"""The first screen: the daemon and devices, the sweeps, and the selected sweep's runs, live."""
from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from gridrun.engine.feed import Feed, RunView, Snapshot, SweepView
from gridrun.engine.store import STATUSES
from gridrun.tui import fmt
from gridrun.tui.messages import ActionDone, FeedUpdated
from gridrun.tui.widgets.cells import STATUS_COLOUR
from gridrun.tui.widgets.gpu_panel import GpuPanel
from gridrun.tui.widgets.runs_table import RunsTable
from gridrun.tui.widgets.sweeps_list import SweepsList


EMPTY_HOME = Text.assemble(
    ("No sweeps in this home yet.\n\n", "bold"),
    "Press ", ("n", "bold"), " for a new sweep (pick or write a run matrix and queue it),\n",
    "or on the command line: ", ("gridrun queue add FILE", "bold"), "\n\n",
    ("? lists every key", "dim"))


class DashboardScreen(Screen):
    # below 100 columns the device panel and the sweeps stack (app.tcss: Screen.-narrow)
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    BINDINGS = [
        Binding("enter", "open_run", "Open", show=True),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("r", "results", "Results"),
        Binding("n", "new_sweep", "New"),
        Binding("c", "cancel", "Cancel"),
        Binding("R", "retry", "Retry", key_display="R"),
        Binding("D", "delete", "Delete", key_display="D"),
        Binding("S", "start_daemon", "Start daemon", show=False, key_display="S"),
        Binding("tab", "switch_pane", "Pane", show=False),
        Binding("left_square_bracket", "page(-1)", "Page", show=False, key_display="["),
        Binding("right_square_bracket", "page(1)", "Next page", show=False, key_display="]"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("less_than_sign", "sort(-1)", "Sort by previous column", show=False,
                key_display="<"),
        Binding("greater_than_sign", "sort(1)", "Sort by next column", show=False,
                key_display=">"),
        Binding("I", "sort_reverse", "Reverse the sort", show=False, key_display="I"),
        Binding("space", "mark", "Mark", show=False),
        Binding("U", "unmark_all", "Unmark all", show=False, key_display="U"),
        Binding("j", "cursor_down", show=False),
        Binding("k", "cursor_up", show=False),
    ]

    def __init__(self, refresh_s: float = 1.0):
        super().__init__()
        self.refresh_s = refresh_s
        self.views: dict[int, RunView] = {}         # every run seen so far, by id
        self.sweep_views: dict[str, SweepView] = {}
        self.current: str | None = None              # the sweep whose runs are shown
        self.last: Snapshot | None = None
        self.wanted_sweep: str | None = None        # to select once listed (one just queued)

    def compose(self) -> ComposeResult:
        yield Static(id="header")
        with Horizontal(id="top"):
            yield GpuPanel(id="gpus")
            yield SweepsList(id="sweeps")
        with Vertical(id="runs-pane"):
            yield Input(placeholder="filter: words, lr>0.05, seed=1, status:failed (all must hold); esc clears", id="filter")
            yield RunsTable(id="runs")
            yield Static(EMPTY_HOME, id="empty-home")
        yield Footer()

    def on_mount(self) -> None:
        self.feed = Feed(self.app.store, self.app.home)
        self.query_one("#filter").display = False
        self.query_one("#empty-home").display = False
        self.query_one(RunsTable).focus()
        self.poll()
        self.set_interval(self.refresh_s, self.poll)

    # -- reading: a worker polls the store, a message brings the result here --------------------

    @work(thread=True, exclusive=True, group="feed")
    def poll(self) -> None:
        self.post_message(FeedUpdated(self.feed.poll()))

    def on_feed_updated(self, message: FeedUpdated) -> None:
        snap = message.snapshot
        previous = self.last
        self.last = snap
        self._header(snap)
        self._announce_daemon(previous, snap)
        if snap.daemon and snap.daemon.get("backend") == "ray":   # its runs go to a cluster
            self.query_one(GpuPanel).show_cluster(snap.daemon.get("nodes") or [])
        elif snap.first or snap.gpus:
            self.query_one(GpuPanel).show(snap.gpus, snap.nvml)
            self.set_class(not snap.gpus, "-no-gpu")
        self._show_empty_home(not snap.sweeps)
        for run_id in snap.removed:
            self.views.pop(run_id, None)
        sweeps = self.query_one(SweepsList)
        self.sweep_views = {s.name: s for s in snap.sweeps}
        sweeps.show(snap.sweeps)
        self._select_wanted()
        new_here = False
        for view in snap.runs:
            new_here |= view.run.id not in self.views and view.run.sweep == self.current
            self.views[view.run.id] = view
        selected = sweeps.selected
        table = self.query_one(RunsTable)
        if selected != self.current:
            self._show_sweep(selected)
        elif self.current is not None:
            # only the changed runs of the shown sweep touch the table
            table.sweep = self.sweep_views.get(self.current)
            in_place = table.update_runs([v for v in snap.runs if v.run.sweep == self.current])
            if in_place and not new_here and table.sort_column != "index":
                in_place = not table.order_changed(
                    [v for v in self.views.values() if v.run.sweep == self.current])
            if new_here or not in_place or snap.removed:
                self._show_sweep(self.current, table.page)
            else:
                running = self.sweep_views.get(self.current)
                if running and running.counts.get("running"):
                    table.tick_clocks([v for v in self.views.values()
                                       if v.run.sweep == self.current and v.run.status == "running"])

    def _header(self, snap: Snapshot) -> None:
        header = header_text(snap, str(self.app.home), narrow=self.size.width < 100)
        if header != getattr(self, "_header_text", None):  # repaint only on change
            self._header_text = header
            self.query_one("#header", Static).update(header)

    def _announce_daemon(self, previous: Snapshot | None, snap: Snapshot) -> None:
        """A daemon that stops (or dies) while the interface looks is said once, with the key
        that starts it again; the header keeps saying it."""
        if previous is not None and previous.daemon and not snap.daemon:
            self.notify("The daemon stopped: queued runs wait. Press S to start it again.",
                        title="daemon stopped", severity="warning", timeout=10)

    def _show_empty_home(self, empty: bool) -> None:
        note = self.query_one("#empty-home")
        if note.display != empty:
            note.display = empty
            self.query_one(RunsTable).display = not empty

    def on_resize(self, event) -> None:
        if self.last is not None:
            self._header(self.last)   # words at 100 columns and up, glyphs below
        table = self.query_one(RunsTable)
        table.compact = event.size.width < 100
        if self.current is not None:
            # after the layout: the columns that fit depend on the table's new width
            self.call_after_refresh(self._show_sweep, self.current, table.page)

    def _show_sweep(self, name: str | None, page: int = 0) -> None:
        self.current = name
        views = [v for v in self.views.values() if v.run.sweep == name]
        views.sort(key=lambda v: v.run.index)
        self.query_one(RunsTable).show_sweep(self.sweep_views.get(name), views, page)

    def action_sort(self, step: int) -> None:
        """< and >: sort by the previous / next column, as htop does."""
        self.query_one(RunsTable).sort_by(step=step)
        self._show_sweep(self.current, self.query_one(RunsTable).page)

    def action_sort_reverse(self) -> None:
        self.query_one(RunsTable).sort_by(reverse=True)
        self._show_sweep(self.current, self.query_one(RunsTable).page)

    @on(DataTable.HeaderSelected, "#runs")
    def header_clicked(self, event: DataTable.HeaderSelected) -> None:
        """A click on a column's title sorts by it; a second click reverses."""
        self.query_one(RunsTable).sort_by(column=event.column_key.value)
        self._show_sweep(self.current, self.query_one(RunsTable).page)

    def action_mark(self) -> None:
        """Space: mark the run (or unmark it) and go to the next, as htop tags."""
        table = self.query_one(RunsTable)
        if self.focused is table and table.toggle_mark() is not None:
            table.action_cursor_down()

    def action_unmark_all(self) -> None:
        table = self.query_one(RunsTable)
        if table.marked:
            table.marked.clear()
            self._show_sweep(self.current, table.page)

    def action_page(self, step: int) -> None:
        table = self.query_one(RunsTable)
        if 0 <= table.page + step < table.pages:
            self._show_sweep(self.current, table.page + step)

    @on(DataTable.RowHighlighted, "#sweeps")
    def sweep_highlighted(self, event: DataTable.RowHighlighted) -> None:
        name = event.row_key.value if event.row_key else None
        if name != self.current:
            self._show_sweep(name)

    # -- actions -------------------------------------------------------------------------------

    def action_cursor_down(self) -> None:
        self.focused.action_cursor_down() if isinstance(self.focused, DataTable) else None

    def action_cursor_up(self) -> None:
        self.focused.action_cursor_up() if isinstance(self.focused, DataTable) else None

    def action_switch_pane(self) -> None:
        runs, sweeps = self.query_one(RunsTable), self.query_one(SweepsList)
        (sweeps if self.focused is runs else runs).focus()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.query_one(RunsTable).filter_text = event.value
        self._show_sweep(self.current)

    @on(Input.Submitted, "#filter")
    def filter_done(self) -> None:
        self.query_one(RunsTable).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.query_one(RunsTable).focus()

    def selected_run(self) -> int | None:
        return self.query_one(RunsTable).selected_run_id

    @on(DataTable.RowSelected, "#runs")
    def run_selected(self) -> None:
        self.action_open_run()

    @on(DataTable.RowSelected, "#sweeps")
    def sweep_selected(self) -> None:
        self.query_one(RunsTable).focus()

    def action_open_run(self) -> None:
        run_id = self.selected_run()
        if run_id is not None:
            from gridrun.tui.screens.run_detail import RunDetailScreen

            # runs marked: their curves drawn over this one's, to compare
            marked = tuple(sorted(self.query_one(RunsTable).marked - {run_id}))
            self.app.push_screen(RunDetailScreen(run_id, overlay=marked))

    def action_results(self) -> None:
        if self.current is not None:
            from gridrun.tui.screens.results import ResultsScreen

            self.app.push_screen(ResultsScreen(self.current))

    def action_new_sweep(self) -> None:
        from gridrun.tui.screens.new_sweep import NewSweepScreen

        self.app.push_screen(NewSweepScreen())

    def _marked_runs(self) -> list:
        """The marked runs of the shown sweep, when the runs table has the focus."""
        table = self.query_one(RunsTable)
        if self.focused is not table:
            return []
        return [self.views[i].run for i in sorted(table.marked) if i in self.views]

    def _act_on_marked(self, verb: str, states: tuple[str, ...] | None, act) -> bool:
        """c, R, D with runs marked: one question that says how many runs and in which
        states, then the action on all of them. False when nothing is marked."""
        from gridrun.engine.control import describe_states

        marked = self._marked_runs()
        if not marked:
            return False
        runs = [r for r in marked if states is None or r.status in states]
        if not runs:
            self.notify(f"none of the {len(marked)} marked runs can be {verb.lower()}ed "
                        f"({describe_states(marked)})", severity="warning")
            return True
        left = len(marked) - len(runs)
        question = (f"{verb} the marked {describe_states(runs)}?"
                    + (f"\n{left} other marked run{'s' if left != 1 else ''} "
                       "left as they are." if left else ""))
        if verb == "Delete":
            live = sum(1 for r in runs if r.status in ("queued", "running"))
            question = (f"Delete the marked {describe_states(runs)}, with their folders?"
                        + (f"\nThe {live} queued or running will be cancelled first."
                           if live else ""))
        ids = [r.id for r in runs]

        def then() -> None:
            act(ids)
            self.action_unmark_all()

        self.app.confirm_then(question, then)
        return True

    def action_cancel(self) -> None:
        """Marked runs, or the selected sweep: after a confirmation. A single run: at once
        when queued, after a confirmation when running (it may be at epoch 75 of 80)."""
        if self._act_on_marked("Cancel", ("queued", "running"),
                               lambda ids: self.app.cancel_runs(ids=ids)):
            return
        run_id = self.selected_run()
        view = self.views.get(run_id) if run_id is not None else None
        if (self.focused is self.query_one(RunsTable) and view is not None
                and view.run.status == "running"):
            done = (f", epoch {fmt.number(view.epoch)}/{fmt.number(view.epochs)}"
                    if view.epoch is not None and view.epochs else "")
            self.app.confirm_then(f"Cancel run {view.run.sweep} #{view.run.index} "
                                  f"(running{done})?",
                                  lambda: self.app.cancel_runs(ids=[run_id]))
            return
        self._on_selection("Cancel every queued and running run of {sweep}?",
                           self.app.cancel_runs)

    def action_retry(self) -> None:
        if self._act_on_marked("Retry", ("failed", "cancelled"),
                               lambda ids: self.app.retry_runs(ids=ids)):
            return
        self._on_selection("Retry every failed or cancelled run of {sweep}?", self.app.retry_runs)

    def action_delete(self) -> None:
        """D: the marked runs, the selected run, or on the sweeps list every run of the
        sweep; always asks, saying how many runs and in which states."""
        from gridrun.engine.control import describe_states

        if self._act_on_marked("Delete", None, self.app.delete_runs):
            return
        if self.focused is self.query_one(SweepsList) and self.current:
            runs = [v.run for v in self.views.values() if v.run.sweep == self.current]
            what = f"every run of {self.current}"
        elif (run_id := self.selected_run()) is not None and run_id in self.views:
            runs = [self.views[run_id].run]
            what = f"run {runs[0].sweep} #{runs[0].index}"
        else:
            return
        if not runs:
            return
        live = sum(1 for r in runs if r.status in ("queued", "running"))
        question = (f"Delete {what}: {describe_states(runs)}, with "
                    f"{'its folder' if len(runs) == 1 else 'their folders'}?"
                    + (f"\nThe {live} queued or running will be cancelled first." if live else ""))
        ids = [r.id for r in runs]
        self.app.confirm_then(question, lambda: self.app.delete_runs(ids))

    def action_start_daemon(self) -> None:
        self.app.start_daemon_now()

    def select_sweep(self, name: str) -> None:
        """Show this sweep (one just queued) once the sweeps list has it."""
        self.wanted_sweep = name
        self.poll()

    def _select_wanted(self) -> None:
        name = self.wanted_sweep
        sweeps = self.query_one(SweepsList)
        if name is not None and name in sweeps.rows:
            self.wanted_sweep = None
            sweeps.move_cursor(row=sweeps.get_row_index(name))
            self._show_sweep(name)

    def _on_selection(self, question: str, act) -> None:
        """The selected run at once, or the selected sweep (several runs) once confirmed."""
        sweep = self.current
        if self.focused is self.query_one(SweepsList) and sweep:
            self.app.confirm_then(question.format(sweep=sweep), lambda: act(sweep=sweep))
        elif (run_id := self.selected_run()) is not None:
            act(ids=[run_id])

    def on_action_done(self, message: ActionDone) -> None:
        self.notify(message.text, severity="error" if message.error else "information")
        self.poll()


def header_text(snap: Snapshot, home: str, *, narrow: bool) -> Text:
    """The daemon (with its slots), the devices and the runs in each state. At 80 columns
    the words shrink to glyphs so that the failed and cancelled counts stay on screen; the
    home path is what gets cut."""
    daemon = snap.daemon
    if daemon:
        slots = [f"{daemon.get('cpu_slots', '?')} CPU slot" +
                 ("s" if daemon.get("cpu_slots") != 1 else "")]
        if snap.gpus:
            slots.append(f"{daemon['slots_per_gpu']}/GPU" if daemon.get("slots_per_gpu")
                         else "GPUs by memory")
        state = Text.assemble((f"daemon {daemon['pid']}" if narrow else
                               f"daemon running, pid {daemon['pid']}", "green3"),
                              (" " + ", ".join(slots), "green3"))
    else:
        state = Text("daemon stopped (S starts it)", style="yellow3")
    n = len(snap.gpus)
    devices = (f"{n} GPU" + ("s" if n != 1 else "")) if snap.gpus else \
        ("CPU" if narrow else "CPU only")
    counts: dict[str, int] = {}
    for s in snap.sweeps:
        for k, c in s.counts.items():
            counts[k] = counts.get(k, 0) + c
    if narrow:
        summary = Text(" ").join(Text(f"{fmt.STATUS_GLYPH[k]}{counts.get(k, 0)}",
                                      style=STATUS_COLOUR[k] if counts.get(k) else "dim")
                                 for k in STATUSES)
    else:
        summary = Text(" · ").join(Text(f"{counts.get(k, 0)} {k}",
                                        style=STATUS_COLOUR[k] if counts.get(k) else "dim")
                                   for k in STATUSES)
    return Text.assemble(("gridrun ", "bold"), state, " · ", devices, " · ", summary, "  ",
                         (home, "dim"))
