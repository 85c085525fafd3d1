"""Following one running run's output files and turning them into metric rows.

`metrics.jsonl` (written by `engine.report.report`) is the source of truth. A script that
never calls report() is understood from what it prints: stdout.log goes through the general
line parser of `engine.report`. As soon as a run writes metrics.jsonl, its parsed-stdout rows
are dropped, so one run never has two competing histories.
"""
from __future__ import annotations

import codecs
import json
import math
from pathlib import Path

from gridrun.engine.clean import clean_metrics
from gridrun.engine.flags import NAME as NOT_LEARNING, ChanceWatch
from gridrun.engine.follow import FileFollower
from gridrun.engine.report import TOTALS, OutputParser
from gridrun.engine.store import Progress

READ_BUDGET = 4 << 20  # at most this much new output per file per poll keeps a tick short;
                       # the rest comes on the next polls (after exit: until the end)
HISTORY_KEEP = 64      # rows kept in memory for the flags' look-back; the store holds them all
MAX_NAMES = 1000       # metric names one run may add (a run printing endless new keys is noise)
# Written by the daemon where a new attempt of a run begins: in stdout.log as a line, in
# metrics.jsonl as an object with this key. Rows of the new attempt replace the old attempt's
# rows from the epoch where it (re)starts: a resumed run keeps epochs 1..k, a restarted one none.
ATTEMPT_KEY = "gridrun_attempt"
_MARKER = "--- gridrun: attempt "


def attempt_marker_line(attempt: int) -> str:
    return f"{_MARKER}{attempt} ---\n"


class RunTail:
    """One run's files, read into Progress for the store a bounded piece per poll.

    Memory stays bounded whatever the run prints: the followers keep offsets, the parser a
    bounded partial line, and `history` only the last HISTORY_KEEP rows (earlier ones are in
    the store). When rows must be dropped (a new attempt, an epoch going back), the store is
    told to delete that source's rows from that epoch on (`Progress.drop_from_epoch`).
    """

    def __init__(self, run_id: int, run_dir: Path, patterns: tuple[str, ...] = ()):
        self.run_id = run_id
        self.metrics_file = FileFollower(run_dir / "metrics.jsonl")
        self.stdout_file = FileFollower(run_dir / "stdout.log", whole_lines=False)
        self.parser_patterns = patterns
        self._new_stdout_reader()
        self.reported = False         # the run writes metrics.jsonl: stdout parsing stops
        self.names: set[str] = set()
        self.flags: set[str] = set()
        self.history: list[dict] = []  # the last rows, for the flags' look-back
        self.rows_seen = 0
        self.chance = ChanceWatch()   # the not_learning flag, fed row by row
        self.last: dict = {}
        self.last_epoch: float | None = None
        self.new_attempt = False       # the next row with an epoch starts a new attempt
        self.drained = False           # the last poll read every file to its end
        self.pending: list[dict] = []  # this poll's rows, for the store
        self.drop_from: float | None = None  # this poll dropped stored rows from this epoch on

    def _new_stdout_reader(self) -> None:
        self.parser = OutputParser(self.parser_patterns)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.held = ""                 # the start of what may be an attempt marker line

    def poll(self, final: bool = False, peak_mem_mb: float | None = None) -> Progress | None:
        """New rows since the last poll, at most READ_BUDGET of each file. `final` (the run has
        ended) also takes an unterminated last line and flushes what the parser holds, once
        the files are read to their end (`drained`); call it until `drained`."""
        self.pending, self.drop_from = [], None
        replace = None
        rows = self._report_rows(final)
        if self.metrics_file.restarted:
            self.metrics_file.restarted = False
            if self.reported:
                replace = "report"        # metrics.jsonl was rewritten: its rows are new
                self._forget()
        if rows and not self.reported:
            self.reported = True
            replace = "stdout"            # drop what parsing stdout had produced
            self._forget()
        source, current = "report", {}
        if not self.reported:
            source = "stdout"
            rows = self._stdout_rows(final)
            if self.stdout_file.restarted:
                self.stdout_file.restarted = False
                replace = "stdout"
            current = {} if final else self.parser.current()
            self._add_names(self.parser.names)
        for row in rows:
            self._note(row)
        if not self.pending and not current and replace is None and self.drop_from is None \
                and peak_mem_mb is None and not final:
            return None
        current, _ = clean_metrics(current)
        self.last.update({k: v for k, v in current.items() if v is not None})  # last finite
        if final and self.drained and self.chance.verdict(ended=True):
            self.flags.add(NOT_LEARNING)
        drop = (source, self.drop_from) if self.drop_from is not None else None
        return Progress(self.run_id, source, self.pending, dict(self.last), set(self.names),
                        set(self.flags), peak_mem_mb, replace, drop)

    def _forget(self) -> None:
        self.history, self.last, self.last_epoch, self.pending = [], {}, None, []
        self.chance = ChanceWatch()

    def _stdout_rows(self, final: bool) -> list[dict]:
        data = self.stdout_file.read(READ_BUDGET, final=final)
        if self.stdout_file.restarted:   # rewritten: parse it afresh
            self._new_stdout_reader()
            self._forget()
        drained = self.stdout_file.behind == 0
        text = self.held + self.decoder.decode(data, final=final and drained)
        self.held = ""
        rows = self._parse_stdout(text, final and drained)
        if final and drained:
            rows += self.parser.close()
        self.drained = self.drained and drained
        return rows

    def _parse_stdout(self, text: str, final: bool) -> list[dict]:
        """Parse, starting a fresh parser at each attempt marker line. A marker is only ever
        at the start of a line; a last line that may still become one is held back."""
        rows = []
        start = 0
        while True:
            at = text.find(_MARKER, start)
            if at < 0:
                break
            if at > 0 and text[at - 1] != "\n":
                start = at + 1
                continue
            end = text.find("\n", at)
            if end < 0 and not final:
                break                    # the marker line is not complete yet
            rows += self.parser.feed(text[:at]) + self.parser.close()
            self.parser = OutputParser(self.parser_patterns)
            rows.append({ATTEMPT_KEY: True})
            text, start = ("" if end < 0 else text[end + 1:]), 0
        line_start = text.rfind("\n") + 1
        tail = text[line_start:]
        if not final and tail and (_MARKER.startswith(tail) or tail.startswith(_MARKER)):
            self.held, text = tail, text[:line_start]
        return rows + self.parser.feed(text)

    def _report_rows(self, final: bool) -> list[dict]:
        data = self.metrics_file.read(READ_BUDGET, final=final)
        self.drained = self.metrics_file.behind == 0
        rows = []
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):
                continue  # a garbled line is skipped, not fatal
            if isinstance(row, dict):
                rows.append(row)
        return rows

    def _note(self, row: dict) -> None:
        if ATTEMPT_KEY in row:
            self.new_attempt = True
            return
        epoch = row.get("epoch")
        numeric = isinstance(epoch, (int, float)) and not isinstance(epoch, bool) \
            and math.isfinite(epoch)
        if numeric and self.last_epoch is not None and (self.new_attempt or epoch < self.last_epoch):
            self._rewind(epoch)
        if numeric:
            self.new_attempt = False
            self.last_epoch = epoch
        row, nonfinite = clean_metrics(row)
        if row.pop("nonfinite", None) or nonfinite:
            self.flags.add("diverged")
        warning = row.get("warning")
        if isinstance(warning, str) and warning:
            self.flags.add(warning[:200])
        self._add_names(k for k in row if k not in ("time", "warning"))
        self.pending.append(row)
        self.history.append(row)
        if len(self.history) > 2 * HISTORY_KEEP:
            del self.history[:-HISTORY_KEEP]
        self.rows_seen += 1
        # a diverged run's last finite values stay shown
        self.last.update({k: v for k, v in row.items() if k != "warning" and v is not None})
        verdict = self.chance.feed(row)
        if verdict is not None:
            (self.flags.add if verdict else self.flags.discard)(NOT_LEARNING)

    def _rewind(self, epoch: float) -> None:
        """Rows from `epoch` on belong to an attempt that is being replaced: drop them here
        and (through drop_from_epoch) in the store."""
        def kept(r: dict) -> bool:
            e = r.get("epoch")
            return not (isinstance(e, (int, float)) and e >= epoch)
        self.pending = [r for r in self.pending if kept(r)]
        self.history = [r for r in self.history if kept(r)]
        self.drop_from = epoch if self.drop_from is None else min(self.drop_from, epoch)
        self.last = {}
        for r in self.history:
            self.last.update({k: v for k, v in r.items() if k != "warning" and v is not None})

    def _add_names(self, names) -> None:
        new = set(names) - self.names - TOTALS   # `epochs` is a total, not a series
        if new and len(self.names) < MAX_NAMES:
            self.names |= set(sorted(new)[:MAX_NAMES - len(self.names)])

