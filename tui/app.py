"""The Textual app: composes the screens and owns the few things they share (the store, the
home, the actions that write through the engine). It never owns runs: a detached daemon does,
and it is started here when none is alive."""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding

from gridrun.engine import control
from gridrun.engine.errors import GridrunError
from gridrun.engine.store import Store
from gridrun.tui.messages import ActionDone


class GridrunApp(App):
    CSS_PATH = "styles/app.tcss"
    TITLE = "gridrun"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
    ]

    def __init__(self, home: Path, *, start_daemon: bool = True, refresh_s: float = 1.0,
                 cpu_slots: int = 1):
        super().__init__()
        self.home = Path(home)
        self.store = Store(self.home)
        self.start_daemon = start_daemon
        self.refresh_s = refresh_s
        self.cpu_slots = cpu_slots

    def on_mount(self) -> None:
        from gridrun.tui.screens.dashboard import DashboardScreen

        self.push_screen(DashboardScreen(self.refresh_s))
        if self.start_daemon:
            self.ensure_daemon()

    @work(thread=True, exclusive=True, group="daemon")
    def ensure_daemon(self) -> None:
        """The interface never runs runs itself: it starts the detached daemon if none is alive."""
        self._start_if_stopped(say_if_running=False)

    def _start_if_stopped(self, say_if_running: bool) -> None:
        """In a worker: start the daemon unless one is alive, and say how it went."""
        if control.daemon_info(self.home) is not None:
            if say_if_running:
                self._tell(ActionDone("the daemon is already running"))
            return
        try:
            pid = control.start_daemon(self.home, watch=True, cpu_slots=self.cpu_slots)
        except GridrunError as e:
            self._tell(ActionDone(f"could not start the daemon: {e}", error=True))
            return
        self._tell(ActionDone(f"started the daemon (pid {pid})"))

    def _tell(self, message: ActionDone) -> None:
        """From a worker thread: a message to whatever screen is showing."""
        self.call_from_thread(lambda: self.screen.post_message(message))

    # -- actions that write, in workers ----------------------------------------------------------

    def confirm_then(self, question: str, then: Callable[[], None]) -> None:
        from gridrun.tui.screens.confirm import ConfirmScreen

        self.push_screen(ConfirmScreen(question), lambda ok: then() if ok else None)

    @work(thread=True, group="actions")
    def cancel_runs(self, ids: list[int] | None = None, sweep: str | None = None) -> None:
        try:
            runs = control.select_runs(self.store, ids, sweep)
            result = control.cancel(self.store, self.home, runs)
        except GridrunError as e:
            self._tell(ActionDone(str(e), error=True))
            return
        parts = []
        if result.cancelled:
            parts.append(f"cancelled {len(result.cancelled)}")
        if result.requested:
            parts.append(f"stopping {len(result.requested)} running")
        self._tell(ActionDone(", ".join(parts) or "nothing to cancel: already finished"))

    @work(thread=True, group="actions")
    def retry_runs(self, ids: list[int] | None = None, sweep: str | None = None) -> None:
        try:
            runs = control.select_runs(self.store, ids, sweep)
            retried = control.retry(self.store, runs)
        except GridrunError as e:
            self._tell(ActionDone(str(e), error=True))
            return
        self._tell(ActionDone(f"queued {len(retried)} run(s) again" if retried
                              else "nothing to retry: no failed or cancelled run"))

    @work(thread=True, group="actions")
    def delete_runs(self, ids: list[int]) -> None:
        """Delete runs and their folders; queued or running ones are cancelled first (the
        confirmation said so)."""
        try:
            runs = control.select_runs(self.store, ids, None)
            result = control.delete(self.store, self.home, runs, force=True)
        except GridrunError as e:
            self._tell(ActionDone(str(e), error=True))
            return
        text = f"deleted {len(result.deleted)} run(s) and their folders"
        if result.sweeps:
            text += f"; removed sweep {', '.join(result.sweeps)}"
        if result.folders_kept:
            text += f"; kept {len(result.folders_kept)} folder(s) outside the home"
        self._tell(ActionDone(text, error=bool(result.folders_kept)))

    # -- the daemon ------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="daemon")
    def start_daemon_now(self) -> None:
        """S, or the palette: start the daemon when none is alive."""
        self._start_if_stopped(say_if_running=True)

    @work(thread=True, exclusive=True, group="daemon")
    def stop_daemon(self, now: bool = False) -> None:
        pid = control.stop(self.store, self.home, now)
        self._tell(ActionDone("no daemon is running" if pid is None else
                              f"asked daemon {pid} to stop " +
                              ("now; its running runs are requeued" if now else
                               "once its running runs finish")))

    @work(thread=True, group="actions")
    def set_slots(self, cpu_slots: int | None, slots_per_gpu: int | None) -> None:
        try:
            control.set_slots(self.store, self.home, cpu_slots, slots_per_gpu)
        except GridrunError as e:
            self._tell(ActionDone(str(e), error=True))
            return
        if cpu_slots is not None:
            self.cpu_slots = cpu_slots  # a daemon started from here later gets as many
        self._tell(ActionDone("the daemon takes the new slot counts on its next tick"))

    def action_start_daemon(self) -> None:
        self.start_daemon_now()

    def action_stop_daemon(self) -> None:
        self.stop_daemon(False)

    def action_stop_daemon_now(self) -> None:
        self.confirm_then("Stop the daemon now? Its running runs are interrupted and "
                          "queued again.", lambda: self.stop_daemon(True))

    def action_slots(self) -> None:
        from gridrun.tui.screens.slots import SlotsScreen

        def chosen(counts: tuple[int | None, int | None] | None) -> None:
            if counts is not None:
                self.set_slots(*counts)
        # what the dashboard last read of daemon.json (no file read on the event loop)
        info = getattr(getattr(self.screen, "last", None), "daemon", None) or {}
        self.push_screen(SlotsScreen(info.get("cpu_slots"), info.get("slots_per_gpu")), chosen)

    # -- help and the command palette -------------------------------------------------------

    def action_help(self) -> None:
        from gridrun.tui.screens.help import HelpScreen

        self.push_screen(HelpScreen())

    def get_system_commands(self, screen):
        yield from super().get_system_commands(screen)
        for label, help_text, action in (
                ("Results", "The results table of the selected sweep", "results"),
                ("New sweep", "Write or pick a run matrix and queue it", "new_sweep"),
                ("Cancel", "Cancel the selected run (or sweep, on the sweeps list)", "cancel"),
                ("Retry", "Retry the selected run (or sweep, on the sweeps list)", "retry"),
                ("Delete", "Delete the selected run (or sweep, on the sweeps list) and its "
                 "folders", "delete"),
                ("Start daemon", "Start the daemon that runs the queue", "start_daemon"),
                ("Stop daemon", "Stop the daemon once its running runs finish",
                 "stop_daemon"),
                ("Stop daemon now", "Stop the daemon now; its running runs are queued again",
                 "stop_daemon_now"),
                ("Daemon slots", "Change how many runs the daemon runs at once (CPU, per GPU)",
                 "slots"),
                ("Filter runs", "Show only runs matching some words", "filter"),
                ("Choose metric", "Rank the results by another metric", "metric"),
                ("Group by", "Choose the keys of a marginal results table", "group_by"),
                ("Best/last epoch", "Read each run's metric at its best or last epoch",
                 "toggle_pick"),
                ("Export results", "Write results.md to the sweep folder and the clipboard",
                 "export"),
                ("Help", "Keys and what they do", "help")):
            target = screen if hasattr(screen, f"action_{action}") else self
            if hasattr(target, f"action_{action}"):
                yield SystemCommand(label, help_text, partial(self.run_action, action, target))
