"""Typed messages the interface's workers post to its widgets (the only way data from a
worker thread reaches the screen)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.message import Message

from gridrun.engine.errors import GridrunError
from gridrun.engine.feed import Snapshot
from gridrun.engine.report_tables import Choices, ResultsView
from gridrun.engine.store import Run
from gridrun.engine.sweep_files import Queued, Start, Summary


@dataclass
class FeedUpdated(Message):
    """A poll of the store: what changed since the last one."""
    snapshot: Snapshot


@dataclass
class RunDetailUpdated(Message):
    """A poll of one run for its detail screen: the run row and what is new since `since`
    (the screen's read position when the poll started; `until` is where it ends). The screen
    applies it only when `since` is still its position, so a late duplicate is dropped."""
    run_id: int
    since: Any
    until: Any
    run: Run | None                          # None: the run is no longer in the store
    rows: list[tuple[int, dict]]             # (seq, metric row), new ones or, with reset, all
    reset: bool = False                      # rows replace what is shown (new attempt, rewind)
    log: str = ""                            # new stdout.log text, whole lines
    log_reset: bool = False                  # the log was truncated: clear what is shown first
    varying: list[str] | None = None         # the sweep's varying parameters, on the first poll
    replay: str | None = None                # the shell line that replays it, once known
    error: str | None = None                 # the store could not be read this time
    overlay: list | None = None              # [(label, metric rows)] of the overlaid runs


@dataclass
class ActionDone(Message):
    """A cancel, retry or export finished in a worker: say how it went."""
    text: str
    error: bool = False


@dataclass
class ResultsRead(Message):
    """A read of a sweep's results for the Results screen (or the error it ended with).
    A newer read supersedes one still waiting in the queue."""
    generation: int
    choices: Choices                # what the read was made with
    view: ResultsView | None
    error: str | None = None
    took_s: float = 0.0
    curves: dict | None = None      # engine.plot.row_curves of the view's tables

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ResultsRead)


@dataclass
class ResultsExported(Message):
    """The results markdown was written (or could not be): where, and the text itself."""
    path: str | None
    text: str
    command: str = ""               # the `gridrun results` line that prints the same text
    error: str | None = None


# -- the new-sweep screen --------------------------------------------------------------------------

@dataclass
class SweepStartsListed(Message):
    """The starting points a new sweep can be written from (templates and files)."""
    starts: list[Start]


@dataclass
class SweepTextLoaded(Message):
    """A starting point read for editing: its text and the file it is validated as (the
    origin), or why it could not be read."""
    text: str | None
    origin: Path | None
    label: str
    from_file: bool = False
    in_place: bool = False          # a user's file: ctrl+s saves the edit to it
    error: GridrunError | None = None


@dataclass
class SweepChecked(Message):
    """The edited text validated in a worker: what it expands to, or its error. `generation`
    says which edit it answers; an older answer is dropped."""
    generation: int
    summary: Summary | None
    error: GridrunError | None = None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SweepChecked)


@dataclass
class SweepQueued(Message):
    """Queueing the edited text ended: what was queued, or the error (nothing was)."""
    queued: Queued | None
    error: GridrunError | None = None
