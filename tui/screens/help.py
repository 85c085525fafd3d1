"""Keys and what they do, as terminal users know them (htop, k9s, lazygit, less)."""
from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = (
    ("Dashboard", ""),
    ("↑ ↓  j k", "move in the list"),
    ("tab", "switch between the runs and the sweeps"),
    ("enter", "open the run (or show the sweep's runs)"),
    ("/", "filter the runs by words; esc clears"),
    ("[ ]", "previous / next page of a sweep of more than 200 runs"),
    ("c", "cancel the run; on the sweeps list, the whole sweep (asks first)"),
    ("R", "retry the run; on the sweeps list, every failed run (asks first)"),
    ("r", "results of the selected sweep"),
    ("n", "new sweep: pick or write a run matrix, queue it"),
    ("New sweep", ""),
    ("ctrl+s", "queue the text (when the preview says it is valid)"),
    ("ctrl+o / ctrl+g", "open another file / go to the error's line"),
    ("Run detail", ""),
    ("c / R", "cancel / retry this run"),
    ("o", "the run folder's path (also copied to the clipboard)"),
    ("1-4", "at 80 columns: charts, metrics, parameters, log"),
    ("Results", ""),
    ("m / g", "choose the metric / the group-by keys"),
    ("l", "read each run's metric at its last / best epoch"),
    ("e", "export markdown to the sweep folder and the clipboard"),
    ("Everywhere", ""),
    ("esc", "back"),
    ("ctrl+p", "command palette: every action by name"),
    ("?", "this help"),
    ("q", "quit (the runs go on: a daemon runs them)"),
)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for key, what in KEYS:
            if what:
                table.add_row(key, what)
            else:
                table.add_row("", "")
                table.add_row(f"[underline]{key}[/]", "")
        with VerticalScroll(id="help"):
            yield Static(table)

    def action_close(self) -> None:
        self.dismiss(None)
