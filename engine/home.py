"""Where gridrun keeps its store and run folders, and the lock that makes one daemon per home."""
from __future__ import annotations

import errno
import fcntl
import os
import struct
from pathlib import Path

LOCK_NAME = "daemon.lock"
LOG_NAME = "daemon.log"


def resolve_home(option: str | os.PathLike | None = None) -> Path:
    """--home DIR, else $GRIDRUN_HOME, else ./runs."""
    chosen = option or os.environ.get("GRIDRUN_HOME") or "runs"
    return Path(chosen).expanduser().absolute()


# struct flock on Linux (x86_64 and aarch64): l_type, l_whence, l_start, l_len, l_pid, padding
_FLOCK = struct.Struct("hhqqi4x")


class DaemonLock:
    """An open-file-description lock (F_OFD_SETLK) on <home>/daemon.lock, held for the daemon's
    whole life.

    The kernel drops the lock when the process dies, however it dies, so there is no stale
    pid file to clean up. The holder writes its pid into the file for `who holds it` messages.
    Unlike flock, this lock can be probed without being taken (F_OFD_GETLK, see `daemon_pid`),
    so that an interface asking "is a daemon alive?" many times a second never makes a daemon
    that is starting find the lock busy. Being tied to the open file, not the process, it is
    not dropped when the daemon opens and closes the same file elsewhere.
    """

    def __init__(self, home: Path):
        self.path = Path(home) / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def lock_held(path: Path) -> bool:
    """Whether some process holds the daemon lock on `path`; asks the kernel, takes nothing."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        # a read-lock query: any write lock held by another open file conflicts with it
        answer = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _FLOCK.pack(fcntl.F_RDLCK, os.SEEK_SET,
                                                                0, 0, 0))
    finally:
        os.close(fd)
    return _FLOCK.unpack(answer)[0] != fcntl.F_UNLCK


def daemon_pid(home: Path) -> int | None:
    """The pid of the live daemon of this home, or None when no daemon holds the lock. A probe
    only: it never takes the lock (see DaemonLock)."""
    path = Path(home) / LOCK_NAME
    if not lock_held(path):
        return None
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        text = ""
    # -1: held, but the holder has not written its pid yet
    return int(text) if text.isdigit() else -1
