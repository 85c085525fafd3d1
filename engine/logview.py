"""Reading a run's `stdout.log` for display, a piece at a time.

The interface tails the log of the run it shows: it remembers a byte offset and asks for what
came after it. Text comes back ready to show: bytes decoded (bad bytes replaced), a progress
bar redrawn with carriage returns collapsed to its last state, colour escapes and other control
characters dropped. Only whole lines are returned while the file may still grow, so a line is
never shown half-written and then again whole; `final=True` (the run has ended) returns the
last line too.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from gridrun.engine.follow import FileFollower

MAX_BYTES = 256 * 1024  # one read; a reader further behind than 4x this jumps ahead

# CSI sequences (colours, cursor moves), OSC sequences (titles, links), other 2-byte escapes
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
# control characters other than tab and newline (carriage returns are handled before)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean(text: str) -> str:
    """Each line as a terminal would leave it: what follows its last carriage return (a tqdm
    bar's final state), with escapes and control characters removed."""
    lines = text.split("\n")
    out = []
    for line in lines:
        line = line.rstrip("\r")            # CRLF, and a bar that ends with \r
        if "\r" in line:
            line = line.rsplit("\r", 1)[1]
        if "\x1b" in line:
            line = _ESCAPES.sub("", line)
        out.append(_CONTROLS.sub("", line))
    return "\n".join(out)


def start_offset(path: str | Path, keep_bytes: int = MAX_BYTES) -> int:
    """Where to begin reading to show about the last `keep_bytes` of the file: the start of a
    line, or 0 for a small (or missing) file."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            if size <= keep_bytes:
                return 0
            f.seek(size - keep_bytes - 1)      # from the byte before: a line may start there
            head = f.read(keep_bytes + 1)
    except OSError:
        return 0
    newline = head.find(b"\n")
    return size - keep_bytes - 1 + (newline + 1 if newline >= 0 else 1)


def read_from(path: str | Path, offset: int, max_bytes: int = MAX_BYTES, *,
              final: bool = False) -> tuple[str, int]:
    """(text, next offset) of what the file holds after `offset`, at most `max_bytes` of it.

    - Only up to the last newline read, unless `final` or the read holds no newline at all
      (one line longer than `max_bytes` is shown in pieces rather than never).
    - A file shorter than `offset` was truncated or replaced: ("", 0), an offset smaller than
      the one given, which tells the caller to clear what it shows and read again from 0.
    - A reader more than 4 x `max_bytes` behind jumps to the last `max_bytes`, and the text
      begins with a line saying how much was skipped.
    - A missing file reads as nothing yet: ("", offset).
    """
    follower = FileFollower(path, offset)
    try:
        size = os.path.getsize(path)
    except OSError:
        return "", offset
    if size < offset:
        return "", 0                        # truncated or replaced: the caller starts over
    skipped = 0
    if size - offset > 4 * max_bytes:
        jump = start_offset(path, max_bytes)
        skipped, follower.offset = jump - offset, jump
    try:
        data = follower.read(max_bytes, final=final)
    except OSError:
        return "", offset                   # not a readable file (a folder, a FIFO): nothing
    if follower.restarted:
        return "", 0
    text = clean(data.decode("utf-8", errors="replace"))
    if skipped:
        text = f"... {skipped:,} bytes skipped ...\n" + text
    return text, follower.offset
