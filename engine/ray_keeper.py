"""Run one command on a Ray node so that it dies with the daemon that asked for it.

Started by the run's Ray actor as `python ray_keeper.py GRACE_S ARGV...`, in a session of its
own (so the run's process group is this session). Why two processes and not one: when a Ray
actor dies (its driver, the daemon, died), Ray SIGKILLs the actor's direct children but leaves
their descendants running (checked with Ray 2.60: a `sh -c 'sleep & sleep'` group outlives it).
So the direct child (the *waiter*) only waits, and leaves when its actor is gone however it
went; its child (the *keeper*) starts the run in the same group and, when the waiter dies
(PR_SET_PDEATHSIG), stops the whole group the way the daemon would: SIGTERM, then SIGKILL
after the grace.

Both exit the way the run did (its code, or the same signal), so the actor reads the run's
own status from the waiter. SIGTERM/SIGINT sent to the group reach the run; the waiter and the
keeper ignore them and wait for the run to end. Standard library only, and only its fastest
modules (no subprocess): it starts with every run, as `python -I -S`, in about 40 ms.
"""
from __future__ import annotations

import ctypes
import os
import select
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
ORPHANED = signal.SIGUSR1   # what the keeper receives when the waiter dies


def _ignore(signum, frame) -> None:
    """A handler, not SIG_IGN: ignored signals would be inherited by the run through exec."""


def _exit_like(code: int) -> None:
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        time.sleep(1)  # the signal is delivered before this ends
    os._exit(code if code >= 0 else 128 - code)


def _wait(pid: int, every_s: float, check=None) -> int:
    """Wait for child `pid` to exit (its pidfd wakes us at once); call check() every_s."""
    try:
        exited = os.pidfd_open(pid)
    except (AttributeError, OSError):
        exited = None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if check is not None:
            check()
        if exited is not None:
            select.select([exited], [], [], every_s)
        else:
            time.sleep(min(every_s, 0.05))


def _stop_group(run: int, grace_s: float) -> None:
    os.killpg(0, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and os.waitpid(run, os.WNOHANG)[0] == 0:
        time.sleep(0.05)
    os.killpg(0, signal.SIGKILL)  # the keeper goes with the group


def _start(argv: list[str]) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.execvp(argv[0], argv)
        except OSError as e:
            os.write(2, f"gridrun: could not start {argv[0]!r}: {e.strerror or e}\n".encode())
        os._exit(127)
    return pid


def keeper(waiter: int, grace_s: float, argv: list[str]) -> None:
    orphaned = []
    signal.signal(ORPHANED, lambda signum, frame: orphaned.append(True))
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(ORPHANED), 0, 0, 0)
    except (OSError, AttributeError):
        pass  # no prctl: the getppid() check below still notices, a little later
    run = _start(argv)

    def check():
        if orphaned or os.getppid() != waiter:
            _stop_group(run, grace_s)
    _exit_like(_wait(run, 0.2, check))


def main(args: list[str]) -> None:
    grace_s, argv = float(args[0]), args[1:]
    signal.signal(signal.SIGTERM, _ignore)
    signal.signal(signal.SIGINT, _ignore)
    actor, waiter = os.getppid(), os.getpid()
    child = os.fork()
    if child == 0:
        keeper(waiter, grace_s, argv)

    def check():
        if os.getppid() != actor:
            # the actor died without Ray killing us (its worker was SIGKILLed): leaving is
            # how the keeper learns of it
            os._exit(1)
    _exit_like(_wait(child, 0.5, check))


if __name__ == "__main__":
    main(sys.argv[1:])
