"""Fused groups, the daemon's side: which queued runs train together in one process, and how
each member of a group is concluded on its own.

When the daemon places a queued run of the built-in trainer that can fuse (no `command`,
`[resources] fuse` not false, a fusion key: experiments.fusion_key), the later queued runs of
the same sweep with the same key join it, up to `group_limit` runs, and ONE process
(`python -P -m gridrun.experiments.fused --run-dir D1 --run-dir D2 ...`) trains them all on the
slot the first run was given. Every member is shown running on that slot, has its own folder,
metrics and checkpoint, and ends on its own: the fused trainer writes `fused_status.json` into a
member's folder when the member ends (done, failed, cancelled) while the others go on.
Cancelling a member writes `cancel` into its folder, which the trainer reads after each epoch.
The group's own output goes to `fused-<first run id>.log` in the sweep's folder; each member's
lines are in its own stdout.log.

Nothing here imports torch: the fusion key is standard library only.
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gridrun.experiments.fusion_key import fusion_key

STATUS_FILE = "fused_status.json"       # experiments.fused writes it, the daemon reads it
CANCEL_FILE = "cancel"                  # the daemon writes it, experiments.fused reads it
CPU_GROUP_MAX = 8       # two runs' worth of work per core on the small CPUs gridrun targets
GPU_GROUP_MAX = 32      # without a memory estimate; with one, as many as 80% of the GPU holds
STATUS_MAX_BYTES = 65536


def group_key(run: Any, spec: dict) -> str | None:
    """What a run must share with others to join their group (its sweep, resources and fusion
    key); None when it runs alone."""
    if spec.get("command") or spec.get("resources", {}).get("fuse") is False or run.exclusive:
        return None     # exclusive: it ran out of GPU memory sharing, so it now runs alone
    key = fusion_key(run.params)
    return None if key is None else f"{run.sweep_id}|{key}"


def group_limit(on_gpu: bool, mem_estimate_gb: float | None = None,
                gpu_mem_gb: float | None = None) -> int:
    """How many runs one group may hold: bounded on a CPU slot; on a GPU, as many as fit in 80%
    of its memory by the sweep's measured (or given) memory per run."""
    if not on_gpu:
        return CPU_GROUP_MAX
    if mem_estimate_gb and gpu_mem_gb:
        return max(1, min(GPU_GROUP_MAX, int(0.8 * gpu_mem_gb / mem_estimate_gb)))
    return GPU_GROUP_MAX


def companions(first: Any, spec: dict, queued: Iterable[Any], limit: int,
               taken: set[int]) -> list[Any]:
    """`first` and the queued runs that can train with it, in queue order, at most `limit`."""
    key = group_key(first, spec)
    members = [first]
    if key is None:
        return members
    for run in queued:
        if len(members) >= limit:
            break
        if run.id != first.id and run.id not in taken and run.sweep_id == first.sweep_id \
                and group_key(run, spec) == key:
            members.append(run)
    return members


def command(run_dirs: Iterable[Path]) -> tuple[str, ...]:
    """The fused trainer, run by the daemon's interpreter with -P (see matrix.builtin_command)."""
    safe_path = ("-P",) if sys.version_info >= (3, 11) else ()
    argv: list[str] = [sys.executable, *safe_path, "-m", "gridrun.experiments.fused"]
    for run_dir in run_dirs:
        argv += ["--run-dir", str(run_dir)]
    return tuple(argv)


def log_path(run_dir: Path, first_id: int) -> Path:
    return Path(run_dir).parent / f"fused-{first_id}.log"


def prepare(run_dir: Path) -> None:
    """Before a member starts: no status or cancel file left from an earlier attempt."""
    for name in (STATUS_FILE, CANCEL_FILE):
        try:
            os.unlink(Path(run_dir) / name)
        except FileNotFoundError:
            pass


def request_cancel(run_dir: Path) -> None:
    try:
        (Path(run_dir) / CANCEL_FILE).touch()
    except OSError:
        pass        # the folder is gone: the member cannot go on either


def member_status(run_dir: Path) -> tuple[str, int, str | None] | None:
    """(status, exit code, error) once the trainer has concluded the member, else None.

    The file is the trainer's, so it is read as hostile: too big, not JSON, wrong fields or
    values all mean a failed member with a reason, never an exception."""
    path = Path(run_dir) / STATUS_FILE
    try:
        with open(path, "rb") as f:
            raw = f.read(STATUS_MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        return "failed", 1, f"fused status unreadable: {e.strerror or e}"
    try:
        data = json.loads(raw.decode("utf-8")) if len(raw) <= STATUS_MAX_BYTES else None
    except (UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict) or data.get("status") not in ("done", "failed", "cancelled"):
        return "failed", 1, "fused status unreadable: expected the trainer's JSON object"
    code = data.get("exit_code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else 1
    error = data.get("error")
    error = error[:2000] if isinstance(error, str) else None
    status = data["status"]
    if status == "done" and code != 0:
        status = "failed"
    return status, code, error
