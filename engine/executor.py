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


def spawn(launch: Launch, log_path: Path) -> subprocess.Popen:
    """Start the run; raises OSError when the program cannot be executed."""
    env = {**os.environ, **launch.env}
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
