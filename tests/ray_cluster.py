"""A Ray cluster on this machine, in a network namespace of its own, for tests and benches.

The namespace has only loopback (`unshare -n`, then `ip link set lo up`), so Ray binds
127.0.0.1 and nothing leaves the machine; processes enter it with `nsenter --net=...`. The
nodes are `ray start --block` processes, each in its own process group, and are stopped by
those groups' ids, never with `ray stop` (which ends every Ray process of the machine).
Needs root (unshare) and Ray.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RAY = Path(sys.executable).with_name("ray")


class Unavailable(Exception):
    """This machine cannot make the namespace (not root, no util-linux)."""


@dataclass
class Cluster:
    netns: str          # /proc/PID/ns/net of the namespace's holder
    address: str
    head_id: str
    big_id: str
    hidden: Path | None = None   # a folder the second node does not see (its own empty one)

    def enter(self) -> list[str]:
        return ["nsenter", f"--net={self.netns}"]


def _node_env(grace_s: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRIDRUN_", "RAY_"))}
    # the nodes' workers import gridrun from this checkout, and their keepers use a short grace
    env.update(PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0", GRIDRUN_KILL_GRACE_S=grace_s)
    return env


def _start_node(netns: str, env: dict, log: Path, *args: str,
                hide: Path | None = None) -> subprocess.Popen:
    # hide: the node gets a mount namespace with an empty tmpfs over that folder, as a box
    # without the shared filesystem would see it
    hiding = ["unshare", "-m", "--propagation", "private", "sh", "-c",
              'mount -t tmpfs gridrun-test "$0" && exec "$@"', str(hide)] if hide else []
    with open(log, "wb") as out:
        return subprocess.Popen(["nsenter", f"--net={netns}", *hiding, str(RAY), "start",
                                 "--block", "--disable-usage-stats", *args], stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _wait_started(proc: subprocess.Popen, log: Path) -> bool:
    """True once the node is up; False when `ray start` gave up (it allows its raylet 30 s,
    which a loaded 2-core machine can exceed)."""
    def settled():
        return proc.poll() is not None or "Ray runtime started" in log.read_text(errors="replace")
    _wait_for(settled, 180, 0.2, what=f"ray start ({log.name})")
    return proc.poll() is None


def _node_up(netns: str, env: dict, log: Path, *args: str, hide: Path | None = None,
             proc: subprocess.Popen | None = None, tries: int = 3) -> subprocess.Popen:
    for attempt in range(tries):
        proc = proc or _start_node(netns, env, log, *args, hide=hide)
        if _wait_started(proc, log):
            return proc
        _stop(proc)
        proc, failed = None, log.read_text(errors="replace")[-2000:]
        log = log.with_name(f"{log.stem}.{attempt + 1}.log")
    raise AssertionError(f"ray start failed {tries} times: {failed}")


def _stop(proc: subprocess.Popen | None) -> None:
    """SIGTERM to the node's group, SIGKILL soon after: a node drains for 30 s otherwise.
    Ray's own services die with `ray start` (they hold PR_SET_PDEATHSIG)."""
    if proc is None:
        return
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _node_ids(cluster_netns: str, env: dict, address: str) -> dict[str, str]:
    probe = ("import json, ray; ray.init(address=%r, logging_level='ERROR');"
             "print(json.dumps({('big' if n['Resources'].get('bigmem') else 'head'): n['NodeID'] "
             "for n in ray.nodes() if n['Alive']}))" % address)
    out = subprocess.run(["nsenter", f"--net={cluster_netns}", sys.executable, "-c", probe],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _wait_for(predicate, timeout: float, interval: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@contextlib.contextmanager
def local_cluster(head_args: tuple[str, ...] = ("--num-cpus=3", "--num-gpus=2"),
                  worker_args: tuple[str, ...] | None = None, grace_s: str = "2",
                  hide_from_worker: bool = False):
    """A head node, and a second node when worker_args is given; yields a Cluster. With
    hide_from_worker, Cluster.hidden is a folder whose contents the second node cannot see."""
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        raise Unavailable("needs unshare and nsenter (util-linux)")
    # short: Ray's unix sockets live under it, and their paths have a length limit
    temp = Path(tempfile.mkdtemp(prefix="grr", dir="/tmp"))
    hidden = Path(tempfile.mkdtemp(prefix="grh", dir="/tmp")) if hide_from_worker else None
    holder = subprocess.Popen(["unshare", "-n", "sh", "-c",
                               "ip link set lo up && echo ready && exec sleep 3600"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              start_new_session=True)
    head = big = None
    try:
        if holder.stdout.readline().strip() != "ready":
            raise Unavailable("cannot make a network namespace (needs root: unshare -n)")
        netns = f"/proc/{holder.pid}/ns/net"
        env = _node_env(grace_s)
        head_argv = ("--head", "--port=6379", "--include-dashboard=false", f"--temp-dir={temp}",
                     *head_args)
        # a second node on the same address: its agents need ports of their own
        big_argv = ("--address=127.0.0.1:6379", "--dashboard-agent-listen-port=52366",
                    "--dashboard-agent-grpc-port=52367", "--metrics-export-port=52368",
                    "--runtime-env-agent-port=52369", *(worker_args or ()))
        # both at once (the second waits for the head's GCS), then each until it is up
        head = _start_node(netns, env, temp / "head.log", *head_argv)
        if worker_args is not None:
            big = _start_node(netns, env, temp / "big.log", *big_argv, hide=hidden)
        head = _node_up(netns, env, temp / "head.log", *head_argv, proc=head)
        if big is not None:
            big = _node_up(netns, env, temp / "big.log", *big_argv, hide=hidden, proc=big)
        ids = _node_ids(netns, env, "127.0.0.1:6379")
        yield Cluster(netns, "127.0.0.1:6379", ids.get("head", ""), ids.get("big", ""), hidden)
    finally:
        _stop(big)
        _stop(head)
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
        shutil.rmtree(temp, ignore_errors=True)
        if hidden is not None:
            shutil.rmtree(hidden, ignore_errors=True)
