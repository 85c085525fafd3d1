"""What runs on a Ray node for the ray backend: one actor per run, and the leftover reaper.

Nothing here imports Ray at module level; engine.ray_backend wraps these with `ray.remote`
(gridrun must be installed on every node, as Ray imports this module there by name).

The actor starts the run's command with the launch a local run would get (argv, environment,
working directory), through engine/ray_keeper.py so that the run's process group dies with the
daemon, and hands its files' new bytes to the daemon, which appends them to the local run
folder. When the run folder is the daemon's own (one machine, or a shared filesystem: the
actor finds the run.json the daemon has just written) the run writes there directly and
nothing needs copying.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from gridrun.engine import executor

STREAMED = ("stdout.log", "metrics.jsonl")   # what a run writes that the daemon tails
KEEPER = Path(__file__).with_name("ray_keeper.py")


def _node() -> dict:
    import ray

    return {"node_id": ray.get_runtime_context().get_node_id(),
            "node_ip": ray.util.get_node_ip_address()}


def _same_bytes(path: Path, data: bytes) -> bool:
    try:
        return path.read_bytes() == data
    except OSError:
        return False


def _end_line(path: Path) -> None:
    """A report torn by an earlier attempt's kill must not swallow the next one's first line."""
    try:
        with open(path, "r+b") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")
    except FileNotFoundError:
        pass


def _program(argv0: str, cwd: str, path: str | None) -> str | None:
    if os.sep in argv0:
        full = Path(cwd, argv0)
        return str(full) if os.access(full, os.X_OK) else None
    return shutil.which(argv0, path=path)


class RunActor:
    """Runs on the node Ray picked: start(), then poll() until it reports the code. The
    daemon gives a finished actor the next run that asks for the same resources: a new actor
    is a new Ray worker process, which costs seconds."""

    def __init__(self):
        self.proc: subprocess.Popen | None = None
        self.files: dict[str, list] = {}     # name -> [path, offset], when the folder is a copy
        self.leftovers_killed = False

    def start(self, argv: list[str], cwd: str, env: dict[str, str], run_dir: str,
              run_files: dict[str, bytes], grace_s: float) -> dict:
        import ray

        if self.proc is not None and self.proc.poll() is None:
            return {**_node(), "error": "the actor still runs its previous run"}
        self.proc, self.files, self.leftovers_killed = None, {}, False
        node = _node()
        where = f"node {node['node_ip']}"
        if not os.path.isdir(cwd):
            return {**node, "error": f"working directory {cwd} does not exist on {where} "
                    "(the sweep's folder must be on every node: a shared filesystem)"}
        folder = Path(run_dir)
        shared = _same_bytes(folder / "run.json", run_files["run.json"])
        try:
            if not shared:
                folder.mkdir(parents=True, exist_ok=True)
                for name, data in run_files.items():
                    (folder / name).write_bytes(data)
                _end_line(folder / "metrics.jsonl")
                self.files = {name: [folder / name, _size(folder / name)] for name in STREAMED}
        except OSError as e:
            return {**node, "error": f"cannot make the run folder {run_dir} on {where}: "
                    f"{e.strerror or e}"}
        gpu_ids = [str(i) for i in ray.get_runtime_context().get_accelerator_ids().get("GPU", [])]
        full_env = {**os.environ, **env, "CUDA_VISIBLE_DEVICES": ",".join(gpu_ids)}
        if _program(argv[0], cwd, full_env.get("PATH")) is None:
            return {**node, "error": f"could not start {argv[0]!r} on {where}: not found"}
        with open(folder / "stdout.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(KEEPER), str(grace_s), *argv], cwd=cwd,
                env=full_env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True)
        return {**node, "pid": self.proc.pid, "gpus": gpu_ids, "shared": shared,
                "actor_pid": os.getpid(),
                "start": executor.process_start_time(self.proc.pid)}

    def poll(self, max_bytes: int, wait_s: float = 0.0) -> dict:
        """New bytes of the run's files, and its exit code once they are all read. Waits up
        to wait_s for the run to end first, so the daemon hears of an exit at once without
        asking in a busy loop."""
        if self.proc is not None and wait_s > 0:
            try:
                self.proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                pass
        code = None if self.proc is None else self.proc.poll()
        if code is not None and not self.leftovers_killed:
            executor.kill_group(self.proc.pid)   # whatever the script left behind
            self.leftovers_killed = True
        chunks, more = {}, False
        for name, entry in self.files.items():
            path, offset = entry
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    data = f.read(max_bytes)
                    more = more or len(f.read(1)) > 0
            except FileNotFoundError:
                continue
            if data:
                chunks[name] = data
                entry[1] = offset + len(data)
        return {"chunks": chunks, "code": None if more else code}

    def signal(self, sig: int) -> None:
        if self.proc is not None:
            executor.signal_group(self.proc.pid, sig)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def stop_leftover(pgid: int, run_dir: str, grace_s: float) -> bool:
    """What a dead daemon's run left on this node: stop its group as recovery does locally
    (SIGTERM, SIGKILL after the grace). True when something of it was still there.

    The group is recognised by its members' GRIDRUN_RUN_DIR, not by the leader's pid alone:
    Ray killed the leader (the keeper's waiter) with the actor, and a pid is not a name."""
    import time

    if not _group_runs(pgid, run_dir):
        return False
    executor.terminate_group(pgid)
    deadline = time.time() + grace_s
    while executor.group_alive(pgid) and time.time() < deadline:
        time.sleep(0.05)
    executor.kill_group(pgid)
    return True


def _group_runs(pgid: int, run_dir: str) -> bool:
    wanted = b"GRIDRUN_RUN_DIR=" + run_dir.encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            if int(stat[stat.rindex(")") + 2:].split()[2]) != pgid:
                continue
            if wanted in Path(entry.path, "environ").read_bytes().split(b"\0"):
                return True
        except (OSError, ValueError):
            continue
    return False


def node_gpus() -> dict:
    """This node's GPUs, for `gridrun gpus --backend ray`."""
    from gridrun.engine import gpus as gpu_info

    # every device of the node: Ray narrows CUDA_VISIBLE_DEVICES per task, not per node
    environ = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    return {**_node(), "nvml": gpu_info.nvml_status(), "gpus": [
        {"index": g.index, "name": g.name, "memory_total": g.memory_total,
         "memory_used": g.memory_used, "utilization": g.utilization}
        for g in gpu_info.list_gpus(environ)]}


