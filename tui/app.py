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
        if control.daemon_info(self.home) is None:
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
