"""What a user may ask of the queue, for the CLI and the interface alike.

With a daemon alive, runs it is running are only ever changed by the daemon: we leave it a
request. With none alive, a run still marked `running` belongs to a daemon that died; taking
the daemon lock for a moment, we may settle it ourselves (kill what is left of it, mark it).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from gridrun.engine import executor
from gridrun.engine.errors import GridrunError, did_you_mean
from gridrun.engine.home import DaemonLock, daemon_pid
from gridrun.engine.store import STATUSES, Run, Store


@dataclass(frozen=True)
class CancelResult:
    cancelled: list[int]      # cancelled now
    requested: list[int]      # running: the daemon will stop them
    untouched: list[int]      # already finished


def select_runs(store: Store, ids: list[int] | None, sweep: str | None,
                status: str | tuple[str, ...] | None = None) -> list[Run]:
    """Runs named by id, or every run of a sweep; an unknown id or sweep is an error."""
    if sweep is not None:
        store.require_sweep(sweep)
    if ids:
        runs = store.runs(ids=ids)
        missing = sorted(set(ids) - {r.id for r in runs})
        if missing:
            raise GridrunError(f"no run with id {', '.join(map(str, missing))}",
                               hint="`gridrun queue ls` lists the ids")
        if sweep is not None:
            runs = [r for r in runs if r.sweep == sweep]
    elif sweep is not None:
        runs = store.runs(sweep=sweep)
    else:
        raise GridrunError("name the runs: IDs, or --sweep NAME")
    if status is not None:
        wanted = (status,) if isinstance(status, str) else status
        runs = [r for r in runs if r.status in wanted]
    return runs


def check_status(value: str | None) -> None:
    if value is not None and value not in STATUSES:
        raise GridrunError(f'unknown status "{value}", expected one of {", ".join(STATUSES)}',
                           hint=did_you_mean(value, STATUSES))


def cancel(store: Store, home: Path, runs: list[Run]) -> CancelResult:
    live = [r.id for r in runs if r.status in ("queued", "running")]
    cancelled, requested = store.cancel(live)
    untouched = [r.id for r in runs if r.id not in live]
    if requested and daemon_pid(home) is None:
        settled = _settle_orphans(store, home, requested, "cancelled")
        cancelled += settled
        requested = [i for i in requested if i not in settled]
    return CancelResult(cancelled, requested, untouched)


def _settle_orphans(store: Store, home: Path, run_ids: list[int], status: str) -> list[int]:
    """Runs marked running with no daemon: end them ourselves, under the daemon lock."""
    lock = DaemonLock(home)
    if not lock.acquire():
        return []  # a daemon just started: it will restore and then apply the requests
    try:
        store.clear_requests()
        settled = []
        for run in store.runs(ids=run_ids, status="running"):
            if executor.same_process(run.pid, run.pid_start):
                executor.kill_group(run.pid)
            store.finish(run.id, status, None, status)
            settled.append(run.id)
        return settled
    finally:
        lock.release()


def retry(store: Store, runs: list[Run]) -> list[int]:
    return store.retry(r.id for r in runs if r.status in ("failed", "cancelled"))


def stop(store: Store, home: Path, now: bool) -> int | None:
    """Ask the daemon to stop; returns its pid, or None when no daemon is alive."""
    pid = daemon_pid(home)
    if pid is None:
        return None
    store.request("stop_now" if now else "stop")
    return pid


def wait_until_stopped(home: Path, timeout_s: float) -> bool:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if daemon_pid(home) is None:
            return True
        time.sleep(0.1)
    return False


def daemon_info(home: Path) -> dict | None:
    """What the live daemon wrote about itself (slots, devices), or None."""
    pid = daemon_pid(home)
    if pid is None:
        return None
    try:
        info = json.loads((Path(home) / "daemon.json").read_text())
    except (OSError, ValueError):
        info = {}
    return {**info, "pid": pid}


def replay_command(run: Run) -> str | None:
    """The shell line that replays a run by hand, from its run.json."""
    import shlex
    try:
        replay = json.loads((Path(run.run_dir) / "run.json").read_text())
    except (OSError, ValueError):
        return None
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in replay["env"].items())
    return f"cd {shlex.quote(replay['cwd'])} && {env} {shlex.join(replay['argv'])}"


def start_daemon(home: Path, *, watch: bool = True, cpu_slots: int = 1,
                 slots_per_gpu: int | None = None, backend_args: tuple[str, ...] = ()) -> int:
    """Start `gridrun queue run` in its own session and wait until it holds the lock; returns
    its pid. The interface uses this: it never owns runs.

    The daemon writes its events to daemon.log itself; its stdout (the same events, for a
    terminal) goes nowhere, or every line would be in the log twice. Its stderr (a crash's
    traceback) goes to the log. A thread waits for it, so that once it ends it does not stay a
    zombie of the process that started it."""
    home = Path(home)
    argv = [sys.executable, "-m", "gridrun.tui.cli", "queue", "run", "--home", str(home),
            "--cpu-slots", str(cpu_slots)]
    if watch:
        argv.append("--watch")
    if slots_per_gpu:
        argv += ["--slots-per-gpu", str(slots_per_gpu)]
    argv += backend_args   # `--backend ray --address ADDR`: the cluster the daemon runs on
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "daemon.log", "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=log, start_new_session=True, cwd=os.getcwd())
    threading.Thread(target=proc.wait, name=f"reap daemon {proc.pid}", daemon=True).start()
    deadline = time.time() + 10
    while time.time() < deadline and daemon_pid(home) is None and proc.returncode is None:
        time.sleep(0.05)
    if proc.returncode not in (None, 0):
        raise GridrunError(f"the daemon exited at once (code {proc.returncode})",
                           hint=f"see {home / 'daemon.log'}")
    return proc.pid
