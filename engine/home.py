"""Where gridrun keeps its store and run folders, and the lock that makes one daemon per home."""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "daemon.lock"
LOG_NAME = "daemon.log"


def resolve_home(option: str | os.PathLike | None = None) -> Path:
    """--home DIR, else $GRIDRUN_HOME, else ./runs."""
    chosen = option or os.environ.get("GRIDRUN_HOME") or "runs"
    return Path(chosen).expanduser().absolute()


class DaemonLock:
    """An `fcntl.flock` on <home>/daemon.lock, held for the daemon's whole life.

    The kernel drops the lock when the process dies, however it dies, so there is no stale
    pid file to clean up. The holder writes its pid into the file for `who holds it` messages.
    """

    def __init__(self, home: Path):
        self.path = Path(home) / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def daemon_pid(home: Path) -> int | None:
    """The pid of the live daemon of this home, or None when no daemon holds the lock."""
    path = Path(home) / LOCK_NAME
    if not path.exists():
        return None
    lock = DaemonLock(home)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 64).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
        del lock
