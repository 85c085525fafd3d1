"""Following a file another process appends to: the one reader behind the daemon's tails of a
run's files (engine.tail) and the interface's log view (engine.logview).

It keeps a byte offset and reads a bounded piece after it per call, so output of any size is
read to its end in bounded memory. A file that shrank below the offset, or was replaced by
another file, was rewritten: reading starts again from 0 and `restarted` says so. With
`whole_lines`, a line still being written stays in the file (the offset stops before it) until
its newline comes or the writer has ended (`final`), so nothing is ever half-read and then
read again; a single line longer than the piece comes in pieces rather than never.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

CHUNK = 1 << 20  # one read


class FileFollower:
    def __init__(self, path: str | Path, offset: int = 0, *, whole_lines: bool = True):
        self.path = Path(path)
        self.offset = offset
        self.whole_lines = whole_lines
        self.restarted = False   # set when the file was truncated or replaced; the caller clears
        self.size = 0            # the file's size at the last read
        self._inode: tuple[int, int] | None = None

    def read(self, max_bytes: int = CHUNK, *, final: bool = False) -> bytes:
        """At most `max_bytes` after the offset (whole lines, unless `final` and at the end of
        the file); b"" when there is nothing (complete) to read, or no file yet."""
        try:
            # non-blocking: a FIFO put in the file's place must not hang the reader
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return b""
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _not_a_file(st.st_mode, self.path)
            inode = (st.st_dev, st.st_ino)
            if st.st_size < self.offset or (self._inode is not None and inode != self._inode):
                self.offset = 0
                self.restarted = True
            self._inode = inode
            data = os.pread(fd, max_bytes, self.offset)
        finally:
            os.close(fd)
        self.size = max(st.st_size, self.offset + len(data))
        at_end = self.offset + len(data) >= self.size
        if self.whole_lines and not (final and at_end):
            data = _whole_lines(data, max_bytes)
        self.offset += len(data)
        return data

    @property
    def behind(self) -> int:
        """Bytes known to be in the file after the offset."""
        return max(0, self.size - self.offset)


def _not_a_file(mode: int, path: Path) -> OSError:
    if stat.S_ISDIR(mode):
        return IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    return OSError(errno.EINVAL, "is not a regular file", str(path))


def _whole_lines(data: bytes, max_bytes: int) -> bytes:
    newline = data.rfind(b"\n")
    if newline >= 0:
        return data[:newline + 1]
    if len(data) < max_bytes:
        return b""                       # a line still being written: wait for the rest
    return data[:len(data) - incomplete_utf8_tail(data)]


def incomplete_utf8_tail(data: bytes) -> int:
    """How many bytes at the end of `data` start a UTF-8 character that is not complete."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:             # a lead byte (or ASCII)
            need = 2 if byte >= 0xC0 else 1
            need = 3 if byte >= 0xE0 else need
            need = 4 if byte >= 0xF0 else need
            return back if need > back else 0
    return 0
