"""`--backend ray`: the queue on a real Ray cluster of two nodes, started by this module.

The cluster lives in a network namespace of its own with only loopback (`unshare -n`), so
Ray binds 127.0.0.1 and no test traffic leaves the machine; the daemons under test enter it
with `nsenter`. Node "head": 3 CPUs and 2 (logical) GPUs; node "big": 1 CPU and the custom
resource `bigmem = 1`. Both see this machine's filesystem, like a cluster on a shared one,
except one folder that "big" sees empty: a home there is not shared with that node.
The cluster is stopped by its process groups' ids, never with `ray stop` (which would end
every Ray process of the machine).
"""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FAKE_TRAIN, ROOT, Cli, cli_env, wait_for
from tests.ray_cluster import Cluster, Unavailable, local_cluster

PY = json.dumps(sys.executable)
TRAIN = json.dumps(str(FAKE_TRAIN))
GRACE = "2"   # GRIDRUN_KILL_GRACE_S for the daemons and the nodes' keepers


def ray_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


needs_ray = pytest.mark.skipif(not ray_installed(), reason="Ray is not installed "
                               "(pip install 'gridrun[ray]'; `make test` installs it)")


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
        return self("queue", "run", *map(str, args), "--backend", "ray",
                    "--address", self.cluster.address, timeout=timeout)


@pytest.fixture(scope="module")
def cluster():
    """Node "head": 3 CPUs and 2 (logical) GPUs; node "big": 1 CPU and `bigmem = 1`, and
    `cluster.hidden` is a folder it does not see (a box without the shared filesystem)."""
    # `make test` installs the ray extra: without it, or without a cluster, these tests fail
    # rather than pass unseen
    assert ray_installed(), "Ray is not installed: pip install -e '.[ray]'"
    try:
        with local_cluster(worker_args=("--num-cpus=1", "--num-gpus=0",
                                        '--resources={"bigmem": 1}'), grace_s=GRACE,
                           hide_from_worker=True) as c:
            yield c
    except Unavailable as e:
        pytest.fail(f"the local Ray cluster did not start: {e}")


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


@needs_ray
def test_cancel_and_timeout_reach_the_runs_process_group_on_its_node(rcli, tmp_path):
    slow = sweep(tmp_path, "slow", "--epochs 200 --sleep 0.1 --child",
                 "[grid]\nlr = [0.1]\n[resources]\ngpus = 0\ntimeout_min = 0.1\n")
    long = sweep(tmp_path, "long", "--epochs 200 --sleep 0.1 --child --ignore-term",
                 "[grid]\nlr = [0.2]\n[resources]\ngpus = 0\n")
    daemon = rcli.start("queue", "run", slow, long, "--backend", "ray")
    try:
        def running_long():
            runs = {r["sweep"]: r for r in rcli.runs()}
            run = runs.get("long")
            return run if run and run["status"] == "running" and \
                (Path(run["run_dir"]) / "child.pid").exists() and \
                run["metrics"].get("epoch", 0) >= 1 else None
        run = wait_for(running_long, 90, 0.2, what="the long run to run")
        grandchild = int((Path(run["run_dir"]) / "child.pid").read_text())
        status = rcli("queue", "status", check=0).stdout
        assert "devices: Ray cluster at 127.0.0.1:6379: 2 node(s), 4 CPU, 2 GPU" in status
        rcli("queue", "cancel", str(run["id"]), check=0)
        out, err = daemon.communicate(timeout=90)
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGKILL)
    assert daemon.returncode == 1, err   # the timed-out run failed
    runs = {r["sweep"]: r for r in rcli.runs()}
    assert runs["long"]["status"] == "cancelled"
    assert runs["slow"]["status"] == "failed"
    assert runs["slow"]["error"] == "timed out after 0.1 min"
    # the cancelled run ignored SIGTERM: SIGKILL after the grace took its whole group
    wait_for(lambda: not pid_alive(grandchild), 10, what="the cancelled run's grandchild to die")
    slow_pid = Path(runs["slow"]["run_dir"]) / "child.pid"
    if slow_pid.exists():   # (on a slow machine the timeout may come before the script starts)
        child = int(slow_pid.read_text())
        wait_for(lambda: not pid_alive(child), 10, what="the timed-out run's grandchild to die")


@needs_ray
def test_a_run_whose_actor_dies_fails_and_its_group_stops(rcli, tmp_path):
    path = sweep(tmp_path, "lost", "--epochs 200 --sleep 0.1 --child",
                 "[grid]\nlr = [0.1]\n[resources]\ngpus = 0\n")
    daemon = rcli.start("queue", "run", path, "--backend", "ray")
    try:
        def started():
            runs = rcli.runs()
            return runs and (Path(runs[0]["run_dir"]) / "child.pid").exists() and runs[0]
        run = wait_for(started, 90, 0.2, what="the run to start")
        grandchild = int((Path(run["run_dir"]) / "child.pid").read_text())
        os.kill(where(run)["actor_pid"], signal.SIGKILL)   # its Ray worker dies
        out, err = daemon.communicate(timeout=90)
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGKILL)
    assert daemon.returncode == 1, err
    (run,) = rcli.runs()
    assert run["status"] == "failed"
    assert run["error"].startswith("exit code 1: ") and "the run's Ray actor failed" in run["error"]
    wait_for(lambda: not pid_alive(grandchild), 20, what="the run's group to stop")


@needs_ray
def test_kill_9_of_the_daemon_stops_its_runs_and_the_next_daemon_recovers(rcli, tmp_path):
    marker = tmp_path / "starts.txt"
    crash = sweep(tmp_path, "crash", f"--epochs 6 --sleep 0.4 --checkpoint --child "
                  f"--marker {marker}", "[grid]\nlr = [0.1, 0.2, 0.3]\n[resources]\ngpus = 0\n")
    daemon = rcli.start("queue", "run", crash, "--backend", "ray")
    try:
        wait_for(lambda: any(r["status"] == "running" and r["metrics"].get("epoch", 0) >= 2
                             for r in rcli.runs()), 90, 0.2, what="a run mid-way")
    finally:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait(timeout=10)
    before = {r["index"]: r for r in rcli.runs()}
    orphans = [r for r in before.values() if r["status"] == "running"]
    assert orphans
    # Ray ends the dead daemon's actors, and their keepers the runs' groups
    first_pids = [int(line.split()[1]) for line in marker.read_text().splitlines()]
    children = [int((Path(r["run_dir"]) / "child.pid").read_text()) for r in orphans
                if (Path(r["run_dir"]) / "child.pid").exists()]
    for pid in first_pids + children:
        wait_for(lambda: not pid_alive(pid), 30, 0.1, what=f"run process {pid} to stop")
    res = rcli.run_queue(timeout=150)
    assert res.returncode == 0, res.stderr
    after = {r["index"]: r for r in rcli.runs()}
    assert all(r["status"] == "done" for r in after.values())
    for idx, run in before.items():
        if run["status"] == "done":
            assert after[idx]["attempt"] == 1
        if run["status"] == "running":
            assert after[idx]["attempt"] == 2
            history = rcli.json("queue", "show", str(run["id"]))["history"]
            assert [h["epoch"] for h in history] == list(range(1, 7))
            log = (Path(run["run_dir"]) / "stdout.log").read_text()
            assert "--- gridrun: attempt 2 ---" in log
            if run["metrics"].get("epoch", 0) >= 1:   # its checkpoint was written: it resumed
                assert "resumed at epoch" in log
    # each interrupted run started once more; none started twice in one attempt (a run the
    # daemon had submitted but whose actor had not yet started never began its first)
    attempts = [line.split()[2] for line in marker.read_text().splitlines()]
    assert attempts.count("2") == len(orphans)
    assert attempts.count("1") <= len(before) and set(attempts) <= {"1", "2"}


@needs_ray
def test_two_nodes_custom_resources_and_gpu_shares_decide_placement(rcli, tmp_path):
    big = sweep(tmp_path, "big", "--epochs 2 --sleep 0.2",
                "[grid]\nlr = [0.1, 0.2]\n[resources]\ngpus = 0\nray = { bigmem = 1 }\n")
    gpu = sweep(tmp_path, "gpu", "--epochs 2 --sleep 0.2", "[grid]\nlr = [0.1, 0.2, 0.3]\n"
                "[resources]\ngpus = 1\n")
    huge = sweep(tmp_path, "huge", "--epochs 1", "[grid]\nlr = [0.1]\n[resources]\ngpus = 0\n"
                 "ray = { bigmem = 2 }\n")
    res = rcli.run_queue(big, gpu, huge, "--slots-per-gpu", "2")
    assert res.returncode == 1, res.stderr
    runs = rcli.runs()
    by_sweep = {}
    for r in runs:
        by_sweep.setdefault(r["sweep"], []).append(r)
    for r in by_sweep["big"]:
        assert r["status"] == "done"
        assert where(r)["node_id"] == rcli.cluster.big_id   # the only node with bigmem
    # bigmem = 1 on one node: the two runs went one after the other
    first, second = sorted(by_sweep["big"], key=lambda r: r["started"])
    assert first["ended"] <= second["started"]
    # and the second reused the first one's actor (a new one is a new worker process)
    assert where(first)["actor_pid"] == where(second)["actor_pid"]
    for r in by_sweep["gpu"]:
        assert r["status"] == "done"
        assert where(r)["node_id"] == rcli.cluster.head_id  # the only node with GPUs
        assert r["device"].split()[-1] in ("cuda:0", "cuda:1")
    (failed,) = by_sweep["huge"]
    assert failed["status"] == "failed"
    assert "no node of the Ray cluster has that much" in failed["error"]
    assert "bigmem=2" in failed["error"]


@needs_ray
def test_gpus_lists_the_clusters_nodes(rcli):
    nodes = json.loads(rcli("gpus", "--backend", "ray", "--address", rcli.cluster.address,
                            "--json", check=0).stdout)["nodes"]
    assert len(nodes) == 2
    resources = sorted((n["resources"].get("GPU", 0), n["resources"].get("bigmem", 0))
                       for n in nodes)
    assert resources == [(0, 1), (2, 0)]
    table = rcli("gpus", "--backend", "ray", check=0).stdout   # the address from RAY_ADDRESS
    assert "127.0.0.1" in table and "bigmem=1" in table


def test_without_ray_the_backend_says_how_to_install_it(cli, sweep_file, tmp_path):
    blocker = tmp_path / "noray"
    (blocker / "ray").mkdir(parents=True)
    (blocker / "ray" / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    env = cli_env(cli.home, PYTHONPATH=f"{blocker}{os.pathsep}{ROOT}")
    path = sweep_file("s")
    res = cli("queue", "run", path, "--backend", "ray", env=env)
    assert res.returncode == 2
    assert "--backend ray needs Ray" in res.stderr
    assert "pip install 'gridrun[ray]'" in res.stderr
    assert cli("queue", "ls", "--json", env=env, check=0).stdout.strip() == "[]"  # nothing queued
    res = cli("gpus", "--backend", "ray", env=env)
    assert res.returncode == 2 and "pip install 'gridrun[ray]'" in res.stderr


@needs_ray
def test_without_a_shared_home_the_runs_files_stream_home(cluster, tmp_path):
    home = cluster.hidden / "home"            # the node "big" sees an empty folder here
    rcli = RayCli(home, tmp_path, cluster)
    path = sweep(tmp_path, "far", "--epochs 4 --report --checkpoint --garbage",
                 "[grid]\nlr = [0.1, 0.2]\n[resources]\ngpus = 0\nray = { bigmem = 1 }\n")
    # a sweep whose folder the node lacks: that run fails, saying why
    (cluster.hidden / "project").mkdir()
    lost = sweep(cluster.hidden / "project", "lost", "--epochs 1",
                 "[grid]\nlr = [0.1]\n[resources]\ngpus = 0\nray = { bigmem = 1 }\n")
    res = rcli.run_queue(path, lost)
    assert res.returncode == 1, res.stderr
    (failed,) = rcli.runs("--sweep", "lost")
    assert failed["status"] == "failed"
    assert failed["error"].startswith("exit code 127: gridrun: working directory "
                                      f"{cluster.hidden / 'project'} does not exist on node")
    for run in rcli.runs("--sweep", "far"):
        assert run["status"] == "done"
        assert where(run)["node_id"] == cluster.big_id and where(run)["shared"] is False
        folder = Path(run["run_dir"])
        history = rcli.json("queue", "show", str(run["id"]))["history"]
        assert [h["epoch"] for h in history] == [1, 2, 3, 4]
        assert len((folder / "metrics.jsonl").read_text().splitlines()) == 4
        log = (folder / "stdout.log").read_bytes()
        assert log.count(b"garbage") == 4 and log.endswith(b"finished\n")
        # the checkpoint stays where the run ran
        assert not (folder / "ckpt.json").exists()


async def test_the_interface_shows_the_cluster_of_a_ray_daemon(home):
    """The devices panel lists the nodes a `--backend ray` daemon wrote into daemon.json."""
    from gridrun.engine.home import DaemonLock
    from gridrun.engine.store import open_store
    from gridrun.tui.app import GridrunApp
    from gridrun.tui.widgets.gpu_panel import GpuPanel
    from tests.conftest import wait_until

    open_store(home)
    lock = DaemonLock(home)
    assert lock.acquire()   # this test plays the live daemon
    try:
        nodes = [{"ip": "10.0.0.1", "resources": {"CPU": 16.0, "GPU": 2.0}},
                 {"ip": "10.0.0.2", "resources": {"CPU": 8.0, "bigmem": 1.0}}]
        (home / "daemon.json").write_text(json.dumps({"pid": os.getpid(), "backend": "ray",
                                                      "nodes": nodes}))
        app = GridrunApp(home, start_daemon=False, refresh_s=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            panel = app.screen.query_one(GpuPanel)

            def shown() -> str:
                from rich.console import Console

                console = Console(width=120, file=io.StringIO(), record=True)
                console.print(panel.content)
                return console.export_text()
            await wait_until(pilot, lambda: "10.0.0.2" in shown(), what="the cluster's nodes")
            text = shown()
            assert "10.0.0.1" in text and "2 GPU" in text and "bigmem=1" in text
    finally:
        lock.release()


@pytest.mark.parametrize("value, message", [
    ("{ CPU = 2 }", '"CPU" in ray = {...} is set by gridrun, expected a custom resource name'),
    ("{ bigmem = -1 }", "ray resource bigmem must be a number > 0, got -1"),
    ("{ bigmem = true }", "ray resource bigmem must be a number > 0, got true"),
    ("3", "ray must be a table of resource = amount"),
])
def test_custom_ray_resources_are_checked_when_added(cli, sweep_file, value, message):
    path = sweep_file("r", "[grid]\nlr = [0.1]\nseed = [0]\n[resources]\ngpus = 0\n"
                      f"ray = {value}\n")
    res = cli("queue", "add", path)
    assert res.returncode == 2
    line = res.stderr.splitlines()[0]
    assert line.startswith(f"gridrun: {path}:8:") and message in line, res.stderr
    assert cli("queue", "ls", "--json", check=0).stdout.strip() == "[]"


KEEPER = ROOT / "engine" / "ray_keeper.py"


def _keeper_parent(tmp_path: Path, script: str) -> subprocess.Popen:
    """A stand-in for the Ray actor: starts the keeper in its own session, as the actor does,
    and waits for it."""
    code = ("import subprocess, sys\n"
            f"p = subprocess.Popen([sys.executable, '-I', '-S', {str(KEEPER)!r}, '1', "
            f"sys.executable, '-c', {script!r}], start_new_session=True)\n"
            "print(p.pid, flush=True)\n"
            "sys.exit(p.wait() & 0xff)\n")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            cwd=tmp_path)


@pytest.mark.parametrize("ray_kills_the_waiter", [True, False], ids=["by-ray", "worker-killed"])
def test_the_keeper_stops_the_runs_group_when_its_actor_dies(tmp_path, ray_kills_the_waiter):
    # the run: a grandchild too, and SIGTERM ignored, so the keeper must escalate to SIGKILL
    script = ("import os, signal, subprocess, sys, time\n"
              "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
              "open('pids', 'w').write(f'{os.getpid()} {c.pid}')\n"
              "time.sleep(300)\n")
    parent = _keeper_parent(tmp_path, script)
    waiter = int(parent.stdout.readline())
    wait_for(lambda: (tmp_path / "pids").exists() and (tmp_path / "pids").read_text(), 20,
             what="the run to start")
    pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
    # Ray kills the actor and SIGKILLs its direct children (the waiter); a worker that is
    # SIGKILLed itself leaves them be
    parent.kill()
    if ray_kills_the_waiter:
        os.kill(waiter, signal.SIGKILL)
    parent.wait()
    for pid in pids:
        wait_for(lambda: not pid_alive(pid), 20, what=f"process {pid} of the run to die")


@pytest.mark.parametrize("script, code", [("import sys; sys.exit(3)", 3),
                                          ("import os, signal; os.kill(os.getpid(), 15)", -15),
                                          ("pass", 0)])
def test_the_keeper_ends_the_way_the_run_ended(tmp_path, script, code):
    res = subprocess.run([sys.executable, "-I", "-S", str(KEEPER), "1", sys.executable, "-c",
                          script], timeout=30)
    assert res.returncode == code


def test_recovery_stops_only_the_group_of_the_run_it_names(tmp_path):
    """What the next daemon asks each node to do for a run its predecessor left running."""
    from gridrun.engine.ray_node import stop_leftover

    run_dir = str(tmp_path / "run")
    script = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', " \
             "'import time; time.sleep(300)']); time.sleep(300)"
    group = subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                             env={**os.environ, "GRIDRUN_RUN_DIR": run_dir})
    try:
        wait_for(lambda: len(_group_members(group.pid)) == 2, 20, what="the run and its child")
        assert stop_leftover(group.pid, str(tmp_path / "another"), 1.0) is False
        assert len(_group_members(group.pid)) == 2          # not the run it names: untouched
        assert stop_leftover(group.pid, run_dir, 1.0) is True
        group.wait(timeout=10)
        wait_for(lambda: not _group_members(group.pid), 10, what="the whole group to die")
    finally:
        if group.poll() is None:
            os.killpg(group.pid, signal.SIGKILL)


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members
