"""`--backend ray`: the queue on a real Ray cluster of two nodes, started by this module.

The cluster lives in a network namespace of its own with only loopback (`unshare -n`), so
Ray binds 127.0.0.1 and no test traffic leaves the machine; the daemons under test enter it
with `nsenter`. Node "head": 3 CPUs and 2 (logical) GPUs; node "big": 1 CPU and the custom
resource `bigmem = 1`. Both see this machine's filesystem, like a cluster on a shared one.
The cluster is stopped by its process groups' ids, never with `ray stop` (which would end
every Ray process of the machine).
"""
from __future__ import annotations

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

import pytest

from tests.conftest import FAKE_TRAIN, ROOT, Cli, cli_env, wait_for

PY = json.dumps(sys.executable)
TRAIN = json.dumps(str(FAKE_TRAIN))
RAY = Path(sys.executable).with_name("ray")
GRACE = "2"   # GRIDRUN_KILL_GRACE_S for the daemons and the nodes' keepers


def ray_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


needs_ray = pytest.mark.skipif(not ray_installed(), reason="Ray is not installed "
                               "(pip install 'gridrun[ray]'; `make test` installs it)")


@dataclass
class Cluster:
    netns: str          # /proc/PID/ns/net of the namespace's holder
    address: str
    head_id: str
    big_id: str

    def enter(self) -> list[str]:
        return ["nsenter", f"--net={self.netns}"]


class RayCli(Cli):
    """The CLI run inside the cluster's namespace."""

    def __init__(self, home: Path, cwd: Path, cluster: Cluster):
        super().__init__(home, cwd)
        self.cluster = cluster

    def argv(self, *args: str) -> list[str]:
        return self.cluster.enter() + super().argv(*args)

    def env(self) -> dict[str, str]:
        return cli_env(self.home, GRIDRUN_KILL_GRACE_S=GRACE, RAY_USAGE_STATS_ENABLED="0",
                       RAY_ADDRESS=self.cluster.address)

    def __call__(self, *args, **kw):
        return super().__call__(*args, env=kw.pop("env", None) or self.env(), **kw)

    def start(self, *args, env=None):
        return super().start(*args, env=env or self.env())

    def run_queue(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return self("queue", "run", *map(str, args), "--backend", "ray", timeout=timeout)


def _node_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRIDRUN_", "RAY_"))}
    # the nodes' workers import gridrun from this checkout, and their keepers use a short grace
    env.update(PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0", GRIDRUN_KILL_GRACE_S=GRACE)
    return env


def _start_node(netns: str, log: Path, *args: str) -> subprocess.Popen:
    with open(log, "wb") as out:
        proc = subprocess.Popen(["nsenter", f"--net={netns}", str(RAY), "start", "--block",
                                 "--disable-usage-stats", *args], stdout=out,
                                stderr=subprocess.STDOUT, env=_node_env(),
                                start_new_session=True)

    def started():
        if proc.poll() is not None:
            raise AssertionError(f"ray start exited {proc.returncode}: {log.read_text()[-2000:]}")
        return "Ray runtime started" in log.read_text(errors="replace")
    wait_for(started, 120, 0.2, what=f"ray start {' '.join(args)}")
    return proc


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _node_ids(cluster_netns: str, address: str) -> dict[str, str]:
    probe = ("import json, ray; ray.init(address=%r, logging_level='ERROR');"
             "print(json.dumps({('big' if n['Resources'].get('bigmem') else 'head'): n['NodeID'] "
             "for n in ray.nodes() if n['Alive']}))" % address)
    out = subprocess.run(["nsenter", f"--net={cluster_netns}", sys.executable, "-c", probe],
                         env=_node_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def cluster():
    if not ray_installed():
        pytest.skip("Ray is not installed")
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        pytest.skip("needs unshare and nsenter (util-linux)")
    # short: Ray's unix sockets live under it, and their paths have a length limit
    temp = Path(tempfile.mkdtemp(prefix="grr", dir="/tmp"))
    holder = subprocess.Popen(["unshare", "-n", "sh", "-c",
                               "ip link set lo up && echo ready && exec sleep 3600"],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    head = big = None
    try:
        if holder.stdout.readline().strip() != "ready":
            pytest.skip("cannot make a network namespace (needs root: unshare -n)")
        netns = f"/proc/{holder.pid}/ns/net"
        head = _start_node(netns, temp / "head.log", "--head", "--port=6379",
                           "--num-cpus=3", "--num-gpus=2", "--include-dashboard=false",
                           f"--temp-dir={temp}")
        big = _start_node(netns, temp / "big.log", "--address=127.0.0.1:6379", "--num-cpus=1",
                          "--num-gpus=0", '--resources={"bigmem": 1}',
                          "--dashboard-agent-listen-port=52366",
                          "--dashboard-agent-grpc-port=52367", "--metrics-export-port=52368",
                          "--runtime-env-agent-port=52369")
        ids = _node_ids(netns, "127.0.0.1:6379")
        yield Cluster(netns, "127.0.0.1:6379", ids["head"], ids["big"])
    finally:
        _stop(big)
        _stop(head)
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def rcli(cluster, home, tmp_path) -> RayCli:
    return RayCli(home, tmp_path, cluster)


def sweep(folder: Path, name: str, args: str, body: str = "") -> Path:
    extra = "".join(f", {json.dumps(a)}" for a in args.split())
    path = folder / f"{name}.toml"
    path.write_text(f'name = "{name}"\ncommand = [{PY}, {TRAIN}, "--lr", "{{lr}}"{extra}]\n'
                    + body)
    return path


def where(run: dict) -> dict:
    return json.loads((Path(run["run_dir"]) / "ray.json").read_text())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- tests -----------------------------------------------------------------------------------

@needs_ray
def test_a_sweep_runs_to_the_end_with_metrics_and_logs_home_and_a_failure_is_its_own(
        rcli, tmp_path):
    good = sweep(tmp_path, "good", "--epochs 3 --report",
                 "[grid]\nlr = [0.1, 0.2, 0.3]\n[resources]\ngpus = 0\n")
    bad = sweep(tmp_path, "bad", "--epochs 3 --fail-at 2", "[grid]\nlr = [0.5]\n"
                "[resources]\ngpus = 0\n")
    res = rcli.run_queue(good, bad)
    assert res.returncode == 1, res.stderr
    runs = {(r["sweep"], r["index"]): r for r in rcli.runs()}
    for i in (1, 2, 3):
        run = runs[("good", i)]
        assert run["status"] == "done", run
        assert run["device"].endswith("cpu")
        history = rcli.json("queue", "show", str(run["id"]))["history"]
        assert [h["epoch"] for h in history] == [1, 2, 3]
        assert where(run)["node_id"] in (rcli.cluster.head_id, rcli.cluster.big_id)
    failed = runs[("bad", 1)]
    assert failed["status"] == "failed"
    assert failed["error"].startswith("exit code 3:") and "Traceback" in failed["error"]
    log = (Path(failed["run_dir"]) / "stdout.log").read_text()
    assert "Epoch [1/3]" in log
    table = rcli("results", "good", "--format", "csv", check=0).stdout
    assert len(table.strip().splitlines()) == 4
