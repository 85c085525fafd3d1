"""Starting and stopping one run's process.

Each run is a child in its own session (so its own process group): a signal to the group
reaches whatever the script started (DataLoader workers, shells), and a Ctrl-C in the
daemon's terminal does not reach the runs directly. argv only, never a shell. stdout and
stderr both go to the run folder's stdout.log.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from gridrun.engine.matrix import render_command, unflatten


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    cwd: str
    env: dict[str, str]   # only what gridrun adds to the daemon's environment
    device: str           # "cpu" or "cuda:0,1"


def build_launch(*, run_id: int, sweep: str, index: int, attempt: int, params: dict,
                 run_dir: Path, command: tuple[str, ...], workdir: str, gpu_indices: list[int]
                 ) -> Launch:
    values: dict[str, Any] = {**params, "run_dir": str(run_dir), "run_id": run_id,
                              "sweep": sweep, "index": index, "attempt": attempt}
    argv = render_command(command, values)
    visible = ",".join(str(i) for i in gpu_indices)
    env = {
        "GRIDRUN_RUN_DIR": str(run_dir),
        "GRIDRUN_RUN_ID": str(run_id),
        "GRIDRUN_SWEEP": sweep,
        "GRIDRUN_ATTEMPT": str(attempt),
        "GRIDRUN_PARAMS": json.dumps(params, separators=(",", ":")),
        "CUDA_VISIBLE_DEVICES": visible,
        "PYTHONUNBUFFERED": "1",
    }
    device = f"cuda:{visible}" if gpu_indices else "cpu"
    return Launch(argv, workdir, env, device)


def write_run_files(run_dir: Path, params: dict, launch: Launch) -> None:
    """config.toml and run.json: enough to understand and replay the run by hand."""
    run_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(run_dir / "config.toml", tomli_w.dumps(unflatten(params)))
    replay = {"argv": launch.argv, "cwd": launch.cwd, "env": launch.env,
              "device": launch.device, "python": sys.executable}
    _atomic_write(run_dir / "run.json", json.dumps(replay, indent=2) + "\n")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# Set in every run's environment (not in run.json's replay): whatever carries it, in any
# process group, was started by a daemon of that home, so a restarting daemon finds the runs
# of its dead predecessor even where the store never learnt their pid.
HOME_MARK = "GRIDRUN_DAEMON_HOME"


def spawn(launch: Launch, log_path: Path, home: Path | None = None) -> subprocess.Popen:
    """Start the run; raises OSError (or ValueError: a NUL byte) when it cannot start."""
    env = {**os.environ, **launch.env}
    if home is not None:
        env[HOME_MARK] = str(home)
    with open(log_path, "ab") as log:
        return subprocess.Popen(launch.argv, cwd=launch.cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                close_fds=True)


def signal_group(pgid: int, sig: int) -> bool:
    """Signal a run's whole process group; False when nothing of it is left."""
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def terminate_group(pgid: int) -> bool:
    return signal_group(pgid, signal.SIGTERM)


def kill_group(pgid: int) -> bool:
    return signal_group(pgid, signal.SIGKILL)


def process_start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks): a pid and this value name one
    process for good, even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    return stat[stat.rindex(")") + 2:].split()[19]


def same_process(pid: int | None, start: str | None) -> bool:
    return pid is not None and start is not None and process_start_time(pid) == start


def orphan_groups(home: Path) -> set[int]:
    """Process groups holding a process started by a daemon of `home` (see HOME_MARK). Only
    asked by a daemon that holds the home's lock, so none of them is a live daemon's run."""
    mark = f"{HOME_MARK}={home}".encode() + b"\0"
    groups = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                environ = f.read() + b"\0"
            if environ.startswith(mark) or b"\0" + mark in environ:
                groups.add(os.getpgid(int(entry.name)))
        except OSError:
            continue  # gone, or not ours to read
    groups.discard(os.getpgrp())
    return groups


def stop_groups(groups: set[int], grace_s: float) -> None:
    """SIGTERM every group, wait once (at most `grace_s`) for all of them, SIGKILL the rest."""
    for pgid in groups:
        terminate_group(pgid)
    deadline = time.time() + grace_s
    while any(group_alive(g) for g in groups) and time.time() < deadline:
        time.sleep(0.05)
    for pgid in groups:
        kill_group(pgid)


def one_line(error: BaseException, limit: int = 300) -> str:
    """An exception as a run's one-line `error`."""
    text = f"{type(error).__name__}: {error}".strip().splitlines()
    line = text[0] if text else type(error).__name__
    return line if len(line) <= limit else line[:limit - 1] + "…"


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def tail_lines(path: Path, count: int = 5, max_bytes: int = 8192) -> list[str]:
    """The last non-empty lines of a log, for a failed run's `error`."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    lines = [ln.rstrip() for ln in data.replace("\r", "\n").split("\n") if ln.strip()]
    return lines[-count:]
