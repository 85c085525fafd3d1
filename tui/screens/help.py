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
    ("enter", "open the run (or show the sweep's runs); the marked runs' curves are drawn "
              "on its charts too"),
    ("/", "filter the runs: words, lr=0.1, lr>0.05, epoch<=3, status:failed, device:cuda "
          "(every term must hold); esc clears"),
    ("< >", "sort by the previous / next column (▲▼ on its title; a click on a title "
            "sorts by it, a second click reverses)"),
    ("I", "reverse the sort"),
    ("[ ]", "previous / next page of a sweep of more than 200 runs"),
    ("space", "mark the run (● in the # column) and go down; c, R and D then act on the "
              "marked runs, after one question"),
    ("U", "unmark every run"),
    ("c", "cancel the marked runs, or the run (a running one asks first); on the sweeps "
          "list, the whole sweep (asks first)"),
    ("R", "retry the marked runs, or the run; on the sweeps list, every failed run (asks "
          "first)"),
    ("D", "delete the marked runs, the run, or on the sweeps list every run of the sweep, "
          "with their folders (asks first: how many runs, in which states; queued and "
          "running ones are cancelled first)"),
    ("S", "start the daemon when it has stopped (the header says so)"),
    ("r", "results of the selected sweep"),
    ("n", "new sweep: pick or write a run matrix, queue it"),
    ("New sweep", ""),
    ("↑ ↓", "move in the list of starting points"),
    ("ctrl+s", "queue the text (when the preview says it is valid); a file you opened is "
               "saved first, to that file"),
    ("ctrl+a", "select all"),
    ("ctrl+o / ctrl+g", "open another file / go to the error's line"),
    ("Run detail", ""),
    ("c / R", "cancel / retry this run"),
    ("o", "the run folder's path (also copied to the clipboard)"),
    ("y", "copy the command that replays the run (to the clipboard, over SSH too)"),
    ("1-4", "at 80 columns: charts, metrics, parameters, log"),
    ("j k", "scroll the pane, or move in the metrics table"),
    ("PgUp PgDn", "a page up / down in the pane shown (no tab needed)"),
    ("g / G", "top / bottom (G: the log follows its end again)"),
    ("f", "the log follows its end, or stays put (scrolling up stops following)"),
    ("/", "search the log"),
    ("n / N", "next / previous line that matches"),
    ("Results", ""),
    ("j k", "move in the table; the chart under it highlights the row's curve"),
    ("m / g", "choose the metric (of the table and the chart) / the group-by keys"),
    ("l", "read each run's metric at its last / best epoch"),
    ("e", "export markdown to the sweep folder and the clipboard"),
    ("Questions and dialogs", ""),
    ("y / n", "yes / no (esc: no)"),
    ("enter / esc", "apply / cancel (the daemon's slots)"),
    ("Everywhere", ""),
    ("esc", "back"),
    ("ctrl+p", "command palette: every action by name; the daemon: start, stop, stop now, "
               "change its slots"),
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
