"""Warm starts, the daemon's side: the zygotes (engine.zygote) and the runs they fork.

A built-in-trainer run, or a user's Python script in a sweep with `warm = true`, is forked from
a zygote that has already imported what it needs, instead of starting a fresh interpreter that
imports torch again (seconds, against epochs of milliseconds on small data). To the daemon a
warm run is a run like any other: a WarmProcess has the pid, poll(), wait() and returncode
(negative: the signal that killed it) of the subprocess.Popen a cold run has; the run is a
session leader with stdout.log as its stdout and stderr, so cancel, timeouts, leftovers, OOM
detection, the recorded pid and start time and recovery after a daemon crash are the same.

One zygote per set of modules to preload, started when the first run that needs it is placed;
runs that need it wait in the queue while it imports (they are not started cold beside it,
competing for the cores). Anything wrong with a zygote (it fails to import, is not ready in
time, dies, stops answering) makes runs start cold, and a later run starts a new zygote; after
MAX_FAILURES, this daemon starts every run cold. `GRIDRUN_WARM=0` in the daemon's environment
turns warm starts off.

A run whose zygote dies under it cannot have its exit status known (only a parent learns it):
when it ends it is requeued, as a run interrupted by a daemon crash is, and resumes from its
checkpoint.
"""
from __future__ import annotations

import itertools
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

WARM_ENV = "GRIDRUN_WARM"
# what the built-in trainer imports, and scikit-learn's datasets for `digits`
BUILTIN_PRELOAD = ("numpy", "torch", "torch.nn.functional", "sklearn.datasets",
                   "gridrun.experiments.train")
READY_TIMEOUT_S = 180.0   # importing torch on a loaded 2-core machine can take most of a minute
REPLY_TIMEOUT_S = 30.0    # a fork answered later than this: the zygote is stuck
STATUS_WAIT_S = 2.0       # a child has ended; its status is on its way from the zygote
MAX_FAILURES = 3


class Zygote:
    """One warm worker process and the thread that reads what it says."""

    def __init__(self, preload: tuple[str, ...], log_path: Path, on_change: Callable[[], None]):
        self.preload = preload
        self.on_change = on_change
        self.state = "starting"         # -> ready -> dead
        self.reason = ""
        self.started = time.time()
        self.replies: dict[int, dict] = {}
        self.exits: dict[int, int] = {}
        self.cond = threading.Condition()
        self.ids = itertools.count(1)
        self.sock, theirs = socket.socketpair()
        try:
            with open(log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-P", "-m", "gridrun.engine.zygote", str(theirs.fileno()),
                     *preload], pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                    stdout=log, stderr=log, start_new_session=True)
        except BaseException:
            self.sock.close()
            raise
        finally:
            theirs.close()
        threading.Thread(target=self._read, name="zygote-reader", daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                break
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                self._take(line)
        with self.cond:
            if self.state != "dead":
                self.state, self.reason = "dead", self.reason or "it exited"
            self.cond.notify_all()
        self.on_change()

    def _take(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return
        with self.cond:
            if "ready" in message:
                self.state = "ready"
            elif "failed" in message:
                self.state, self.reason = "dead", str(message["failed"])
            elif "exit" in message:
                self.exits[message["exit"]] = message["code"]
            elif "id" in message:
                self.replies[message["id"]] = message
            self.cond.notify_all()
        self.on_change()

    def fork(self, request: dict) -> int | None:
        """The pid of the run's new process, or None (the run then starts cold)."""
        with self.cond:
            if self.state != "ready":
                return None
            request = {**request, "id": next(self.ids)}
        try:
            self.sock.sendall(json.dumps(request).encode() + b"\n")
        except OSError:
            self.kill("its socket broke")
            return None
        with self.cond:
            self.cond.wait_for(lambda: request["id"] in self.replies or self.state == "dead",
                               timeout=REPLY_TIMEOUT_S)
            reply = self.replies.pop(request["id"], None)
        if reply is None:
            self.kill("it did not answer a fork request")
            return None
        return reply.get("pid")

    def exit_code(self, pid: int, wait_s: float = 0.0) -> int | None:
        with self.cond:
            if wait_s:
                self.cond.wait_for(lambda: pid in self.exits or self.state == "dead",
                                   timeout=wait_s)
            return self.exits.pop(pid, None)

    def dead(self) -> bool:
        return self.state == "dead" or self.proc.poll() is not None

    def kill(self, reason: str) -> None:
        with self.cond:
            self.state, self.reason = "dead", self.reason or reason
            self.cond.notify_all()
        close(self, grace_s=0)


def close(zygote: Zygote, grace_s: float = 5.0) -> None:
    """Closing its socket ends the zygote (its children go on); then it is reaped."""
    try:
        zygote.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    zygote.sock.close()
    try:
        zygote.proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        zygote.proc.kill()
        zygote.proc.wait()


class WarmProcess:
    """What the daemon keeps of a warm run: the subset of subprocess.Popen it uses."""

    def __init__(self, pid: int, zygote: Zygote):
        self.pid = pid
        self.zygote = zygote
        self.returncode: int | None = None
        self.status_lost = False        # its zygote died first: requeue it, as after a crash
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self._pidfd = None

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        code = self.zygote.exit_code(self.pid)
        if code is None and self._ended():
            code = self.zygote.exit_code(self.pid, wait_s=STATUS_WAIT_S)
            if code is None and self.zygote.dead():
                self.status_lost = True
                code = 1
        if code is not None:
            self.returncode = code
            if self._pidfd is not None:
                os.close(self._pidfd)
                self._pidfd = None
        return self.returncode

    def _ended(self) -> bool:
        if self._pidfd is not None:
            return bool(select.select([self._pidfd], [], [], 0)[0])
        try:
            os.kill(self.pid, 0)
            return False
        except ProcessLookupError:
            return True
        except PermissionError:
            return False

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.time() + timeout
        while self.poll() is None:
            if deadline is not None and time.time() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def warm_target(spec: Mapping, argv: list[str], cwd: str) -> tuple[tuple[str, str], list[str]] | None:
    """What a warm child runs in place of argv: ("module", name) (the built-in trainer, with
    `-P`), ("cwd-module", name) or ("path", script), and the arguments after it; None when
    the run must start cold."""
    if spec.get("command") is None:
        if spec.get("warm") is False:
            return None
        return ("module", argv[3]), argv[4:]         # builtin_command(): python -P -m module
    if not spec.get("warm"):
        return None
    if len(argv) >= 3 and argv[1] == "-m":
        return ("cwd-module", argv[2]), argv[3:]     # `python -m` looks in the cwd first
    if len(argv) >= 2 and argv[1].endswith(".py"):
        return ("path", os.path.join(cwd, argv[1])), argv[2:]
    return None


def preload_of(spec: Mapping) -> tuple[str, ...] | None:
    if spec.get("command") is None:   # and what the sweep adds (torchvision for its datasets)
        if spec.get("warm") is False:
            return None
        return BUILTIN_PRELOAD + tuple(m for m in spec.get("preload") or () if m not in BUILTIN_PRELOAD)
    if spec.get("warm"):
        return tuple(spec.get("preload") or ())
    return None


class WarmPool:
    """The daemon's zygotes, one per preload set."""

    def __init__(self, home: Path, on_change: Callable[[], None]):
        self.home = Path(home)
        self.on_change = on_change
        self.enabled = os.environ.get(WARM_ENV, "1").strip() not in ("0", "false", "no", "off")
        self.zygotes: dict[tuple[str, ...], Zygote] = {}
        self.failures = 0

    def _zygote(self, preload: tuple[str, ...]) -> Zygote | None:
        """The live zygote for this preload set, started when missing; None: start cold."""
        if not self.enabled or self.failures >= MAX_FAILURES:
            return None
        zygote = self.zygotes.get(preload)
        if zygote is not None and zygote.state == "starting" \
                and time.time() - zygote.started > READY_TIMEOUT_S:
            zygote.kill(f"not ready after {READY_TIMEOUT_S:g} s")
        if zygote is not None and zygote.dead():
            del self.zygotes[preload]
            self.failures += 1
            close(zygote, grace_s=0)
            self._note(f"warm worker ended ({zygote.reason or 'it exited'}); "
                       + ("runs start cold from now on" if self.failures >= MAX_FAILURES
                          else "a new one starts"))
            return None
        if zygote is None:
            try:
                zygote = Zygote(preload, self.home / "zygote.log", self.on_change)
            except OSError as e:
                self.failures += 1
                self._note(f"cannot start a warm worker: {e}")
                return None
            self.zygotes[preload] = zygote
        return zygote

    def warming(self, spec: Mapping) -> bool:
        """True while the zygote this sweep's runs need is importing: they wait for it."""
        try:
            preload = preload_of(spec)
            zygote = self._zygote(preload) if preload is not None else None
        except Exception as e:   # noqa: BLE001 - never the daemon's problem
            self._note(f"warm worker trouble ({type(e).__name__}: {e})")
            return False
        return zygote is not None and zygote.state == "starting"

    def spawn(self, spec: Mapping, argv: list[str], cwd: str, env: Mapping[str, str],
              log_path: Path) -> WarmProcess | None:
        """Fork the run from its zygote; None when it must start cold. Never raises: whatever
        goes wrong here is the warm path's problem, and the run still starts, cold."""
        try:
            return self._spawn(spec, argv, cwd, env, log_path)
        except Exception as e:   # noqa: BLE001
            self._note(f"warm start failed ({type(e).__name__}: {e}); the run starts cold")
            return None

    def _spawn(self, spec: Mapping, argv: list[str], cwd: str, env: Mapping[str, str],
               log_path: Path) -> WarmProcess | None:
        preload = preload_of(spec)
        target = warm_target(spec, argv, cwd)
        if preload is None or target is None:
            return None
        zygote = self._zygote(preload)
        if zygote is None:
            return None
        pid = zygote.fork({"target": list(target[0]), "args": target[1], "cwd": cwd,
                           "env": {**os.environ, **env}, "log": str(log_path)})
        return WarmProcess(pid, zygote) if pid else None

    def close(self) -> None:
        for zygote in self.zygotes.values():
            close(zygote)
        self.zygotes.clear()

    def _note(self, text: str) -> None:
        try:
            with open(self.home / "zygote.log", "a") as log:
                log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
        except OSError:
            pass
