"""Following one running run's output files and turning them into metric rows.

`metrics.jsonl` (written by `engine.report.report`) is the source of truth. A script that
never calls report() is understood from what it prints: stdout.log goes through the general
line parser of `engine.report`. As soon as a run writes metrics.jsonl, its parsed-stdout rows
are dropped, so one run never has two competing histories.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from gridrun.engine.flags import NAME as NOT_LEARNING, ChanceWatch
from gridrun.engine.report import OutputParser
from gridrun.engine.store import Progress

READ_CHUNK = 1 << 20  # at most 1 MiB of new output per file per tick keeps a tick short
# Written by the daemon where a new attempt of a run begins: in stdout.log as a line, in
# metrics.jsonl as an object with this key. Rows of the new attempt replace the old attempt's
# rows from the epoch where it (re)starts: a resumed run keeps epochs 1..k, a restarted one none.
ATTEMPT_KEY = "gridrun_attempt"


def attempt_marker_line(attempt: int) -> str:
    return f"--- gridrun: attempt {attempt} ---\n"


class _FileFollower:
    """Reads what was appended to a file since the last call; only whole lines for jsonl."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.fd: int | None = None

    def read_new(self) -> bytes:
        if self.fd is None:
            try:
                self.fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return b""
        chunks = []
        while True:
            data = os.pread(self.fd, READ_CHUNK, self.offset)
            if not data:
                break
            chunks.append(data)
            self.offset += len(data)
            if len(data) < READ_CHUNK or sum(map(len, chunks)) >= 4 * READ_CHUNK:
                break
        return b"".join(chunks)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class RunTail:
    def __init__(self, run_id: int, run_dir: Path, patterns: tuple[str, ...] = ()):
        self.run_id = run_id
        self.metrics_file = _FileFollower(run_dir / "metrics.jsonl")
        self.stdout_file = _FileFollower(run_dir / "stdout.log")
        self.parser_patterns = patterns
        self.parser = OutputParser(patterns)
        self.partial = b""            # a metrics.jsonl line not yet complete
        self.reported = False         # the run writes metrics.jsonl: stdout parsing stops
        self.names: set[str] = set()
        self.flags: set[str] = set()
        self.chance = ChanceWatch()   # the not_learning flag, fed row by row
        self.history: list[dict] = []  # rows so far, for the flags' look-back
        self.last: dict = {}
        self.new_attempt = False       # the next row with an epoch starts a new attempt
        self.rewound = False           # rows were dropped: the store must be rewritten

    def poll(self, final: bool = False, peak_mem_mb: float | None = None) -> Progress | None:
        """New rows since the last poll; `final` flushes what the parser still holds."""
        rows, source, replace = self._report_rows(), "report", None
        if rows and not self.reported:
            self.reported = True
            replace = "stdout"            # drop what parsing stdout had produced
            self.history = []
            self.last = {}
        if not self.reported:
            text = self.stdout_file.read_new().decode("utf-8", errors="replace")
            rows = self._parse_stdout(text) if text else []
            if final:
                rows += self.parser.close()
            source = "stdout"
            current = {} if final else self.parser.current()
            self.names |= self.parser.names
        else:
            current = {}
        if not rows and not current and replace is None and peak_mem_mb is None and not final:
            return None
        start = len(self.history)
        for row in rows:
            self._note(row)
        new_rows = self.history[start:]
        if self.rewound:
            self.rewound = False
            replace, new_rows = source, list(self.history)
        self.last = {**self.last, **current}
        if final and self.chance.verdict(ended=True):
            self.flags.add(NOT_LEARNING)
        return Progress(self.run_id, source, new_rows, dict(self.last), set(self.names),
                        set(self.flags), peak_mem_mb, replace)

    def _parse_stdout(self, text: str) -> list[dict]:
        rows = []
        marker = "--- gridrun: attempt "
        while marker in text:
            before, _, text = text.partition(marker)
            rows += self.parser.feed(before) + self.parser.close()
            self.parser = OutputParser(self.parser_patterns)
            rows.append({ATTEMPT_KEY: True})
            text = text.partition("\n")[2]
        return rows + self.parser.feed(text)

    def _report_rows(self) -> list[dict]:
        data = self.partial + self.metrics_file.read_new()
        if not data:
            return []
        *lines, self.partial = data.split(b"\n")
        rows = []
        for line in lines:
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a garbled line is skipped, not fatal
            if isinstance(row, dict):
                rows.append(row)
        return rows

    def _note(self, row: dict) -> None:
        if ATTEMPT_KEY in row:
            self.new_attempt = True
            return
        epoch = row.get("epoch")
        if isinstance(epoch, (int, float)) and self.history:
            last_epoch = next((r["epoch"] for r in reversed(self.history)
                               if isinstance(r.get("epoch"), (int, float))), None)
            if last_epoch is not None and (self.new_attempt or epoch < last_epoch):
                kept = [r for r in self.history
                        if not (isinstance(r.get("epoch"), (int, float)) and r["epoch"] >= epoch)]
                if len(kept) != len(self.history):
                    self.history = kept
                    self.rewound = True
                    self.last = {}
                    for r in kept:
                        self.last.update(r)
        if isinstance(epoch, (int, float)):
            self.new_attempt = False
        nonfinite = row.pop("nonfinite", None)
        for key, value in list(row.items()):
            if isinstance(value, float) and not math.isfinite(value):
                row[key] = None
                self.flags.add("diverged")
        if nonfinite:
            self.flags.add("diverged")
        warning = row.get("warning")
        if isinstance(warning, str) and warning:
            self.flags.add(warning)
        self.names |= {k for k in row if k not in ("time", "warning")}
        self.history.append(row)
        self.last = {**self.last, **{k: v for k, v in row.items()   # last finite values
                                     if k != "warning" and v is not None}}
        verdict = self.chance.feed(row)
        if verdict is not None:
            (self.flags.add if verdict else self.flags.discard)(NOT_LEARNING)

    def close(self) -> None:
        self.metrics_file.close()
        self.stdout_file.close()

