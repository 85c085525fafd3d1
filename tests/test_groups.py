"""Fused groups under the real daemon (`gridrun queue run` subprocesses, the built-in trainer on
digits): runs of a sweep that can fuse train in one process, each concluded on its own; a
cancelled member leaves while the others go on; after a daemon crash each member resumes from its
own checkpoint; `fuse = false` runs them alone."""
from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import pytest

from gridrun.engine import cpu_share, groups
from gridrun.engine.report import read_metrics
from tests.conftest import cli_env, wait_for

pytest.importorskip("torch")

# Slow under load: a trainer process starts torch, and the machine's cores are shared. The
# daemon gives each process (a fused group is one) its share of the cores (engine.cpu_share).
pytestmark = pytest.mark.timeout(300)


def env(cli) -> dict[str, str]:
    return cli_env(cli.home)


def sweep(tmp_path: Path, name: str, *, epochs: int = 2, fuse: bool | None = None,
          extra: str = "", params: str = "") -> Path:
    path = tmp_path / f"{name}.toml"
    resources = "gpus = 0\n" + (f"fuse = {str(fuse).lower()}\n" if fuse is not None else "")
    path.write_text(f'name = "{name}"\nmetric = "val_acc"\nseeds = [0, 1]\n'
                    f'[params]\ndataset = "digits"\nepochs = {epochs}\nbatch_size = 64\n'
                    f'optimizer = "sgd"\nmomentum = 0.9\nlimit_eval = 100\n{params}'
                    f'[params.mlp]\nhidden = [16]\n[grid]\nlr = [0.05, 0.1]\n{extra}'
                    f'[resources]\n{resources}')
    return path


def epochs_of(run: dict) -> list[dict]:
    return [r for r in read_metrics(Path(run["run_dir"]) / "metrics.jsonl") if "epoch" in r]


def test_a_sweep_trains_fused_in_one_process_and_each_run_ends_as_alone(cli, tmp_path):
    res = cli("queue", "run", sweep(tmp_path, "fused"), "--cpu-slots", "1", timeout=240,
              env=env(cli), check=0)
    assert "4 runs: 4 done" in res.stdout
    fused_runs = cli.runs("--sweep", "fused")
    dirs = [Path(r["run_dir"]) for r in fused_runs]
    assert all(json.loads((d / groups.STATUS_FILE).read_text())["status"] == "done"
               for d in dirs)
    assert len(list(dirs[0].parent.glob("fused-*.log"))) == 1          # one process for four
    assert all("epoch=2" in (d / "stdout.log").read_text() for d in dirs)
    share = str(cpu_share.host_cores())     # one slot, no GPU: the group has every core
    for d in dirs:      # each member's replay, alone, gets the thread share its group had
        assert json.loads((d / "run.json").read_text())["env"]["OMP_NUM_THREADS"] == share

    res = cli("queue", "run", sweep(tmp_path, "alone", fuse=False), "--cpu-slots", "1",
              timeout=240, env=env(cli), check=0)
    assert "4 runs: 4 done" in res.stdout
    alone_runs = cli.runs("--sweep", "alone")
    assert not any((Path(r["run_dir"]) / groups.STATUS_FILE).exists() for r in alone_runs)
    assert not list(Path(alone_runs[0]["run_dir"]).parent.glob("fused-*.log"))
    for f, a in zip(sorted(fused_runs, key=lambda r: r["index"]),
                    sorted(alone_runs, key=lambda r: r["index"])):
        assert f["params"] == a["params"]
        for name in ("train_loss", "val_loss", "val_acc"):
            assert math.isclose(epochs_of(f)[0][name], epochs_of(a)[0][name], rel_tol=1e-4)
        assert abs(f["metrics"]["test_acc"] - a["metrics"]["test_acc"]) <= 0.02


def test_cancelling_one_member_takes_it_out_and_the_others_go_on(cli, tmp_path):
    proc = cli.start("queue", "run", sweep(tmp_path, "cancel", epochs=100000), "--cpu-slots",
                     "1", env=env(cli))
    try:
        running = wait_for(lambda: [r for r in cli.runs() if r["status"] == "running"
                                    and epochs_of(r)] if len(cli.runs()) == 4 else None,
                           timeout=200, what="the group's first epoch")
        assert len(running) == 4                                    # all on the one slot
        victim = running[0]
        cli("queue", "cancel", str(victim["id"]), check=0)
        wait_for(lambda: {r["id"]: r["status"] for r in cli.runs()}[victim["id"]]
                 == "cancelled", timeout=120, what="the member cancelled")
        stopped_at = len(epochs_of(victim))
        others = [r for r in cli.runs() if r["id"] != victim["id"]]
        assert all(r["status"] == "running" for r in others)        # the group goes on
        wait_for(lambda: all(len(epochs_of(r)) > stopped_at + 1 for r in others),
                 timeout=120, what="the others' next epochs")
        assert len(epochs_of(victim)) == stopped_at
    finally:
        cancel_the_rest(cli, proc, "cancel")


def cancel_the_rest(cli, daemon, sweep_name: str) -> None:
    """Cancel the sweep's runs (the last member's cancel ends the group's process) and wait for
    the daemon to exit: a long sweep ends as soon as the test has seen what it came for."""
    try:
        cli("queue", "cancel", "--sweep", sweep_name, check=0)
        daemon.communicate(timeout=120)
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGKILL)
    assert {r["status"] for r in cli.runs()} == {"cancelled"}


def test_after_a_daemon_crash_each_member_resumes_from_its_checkpoint(cli, tmp_path):
    path = sweep(tmp_path, "crash", epochs=100000, params="checkpoint_every = 0\n")
    proc = cli.start("queue", "run", path, "--cpu-slots", "1", env=env(cli))
    wait_for(lambda: len(cli.runs()) == 4 and all(
        len(epochs_of(r)) >= 2 for r in cli.runs()), timeout=200, what="two epochs each")
    os.kill(proc.pid, signal.SIGKILL)                   # the daemon dies; the group lives on
    proc.wait()
    again = cli.start("queue", "run", "--cpu-slots", "1", env=env(cli))
    try:
        logs = [Path(r["run_dir"]) / "stdout.log" for r in cli.runs()]
        wait_for(lambda: all("resuming from" in log.read_text() for log in logs),
                 timeout=200, what="every member resumed")
        for run, log in zip(cli.runs(), logs):
            assert run["attempt"] == 2 and run["status"] == "running"
            line = next(ln for ln in log.read_text().splitlines() if "resuming from" in ln)
            assert str(Path(run["run_dir"]) / "checkpoint.pt") in line
            assert int(line.rsplit(" ", 1)[1]) >= 2                 # not from scratch
    finally:
        cancel_the_rest(cli, again, "crash")


def test_a_member_whose_folder_cannot_be_made_fails_alone_and_the_rest_train_fused(cli, tmp_path):
    cli("queue", "add", sweep(tmp_path, "blocked"), check=0)
    blocked = cli.runs()[1]
    Path(blocked["run_dir"]).parent.mkdir(parents=True, exist_ok=True)
    Path(blocked["run_dir"]).write_text("a file where the run's folder goes\n")
    res = cli("queue", "run", "--cpu-slots", "1", timeout=240, env=env(cli), check=1)
    assert "3 done, 1 failed" in res.stdout
    runs = {r["id"]: r for r in cli.runs()}
    assert runs[blocked["id"]]["status"] == "failed"
    assert "could not prepare the run" in runs[blocked["id"]]["error"]
    others = [r for r in runs.values() if r["id"] != blocked["id"]]
    assert all(r["status"] == "done" and len(epochs_of(r)) == 2 for r in others)
    logs = list(Path(others[0]["run_dir"]).parent.glob("fused-*.log"))
    assert len(logs) == 1           # the three others still trained in one process


def test_fuse_must_be_true_or_false(cli, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\n[params]\nepochs = 1\n[resources]\nfuse = "yes"\n')
    res = cli("queue", "add", path)
    assert res.returncode == 2
    assert "fuse must be true or false" in res.stderr and "bad.toml:" in res.stderr


@pytest.mark.parametrize("text", ["", "{", "[]", '{"status": "maybe"}', "x" * 70000,
                                  '{"status": "done", "exit_code": 3}'])
def test_a_hostile_status_file_fails_the_member_with_a_reason(tmp_path, text):
    (tmp_path / groups.STATUS_FILE).write_text(text)
    status, code, error = groups.member_status(tmp_path)
    assert status == "failed" and code != 0
    assert error is None or len(error) <= 2000


def test_a_group_takes_the_queued_runs_of_its_sweep_and_key_up_to_its_limit():
    from types import SimpleNamespace as Run

    params = {"dataset": "digits", "optimizer": "sgd", "epochs": 3}
    spec = {"resources": {}}
    queued = [Run(id=i, sweep_id=1, exclusive=False, params={**params, "lr": 0.1 * i})
              for i in range(1, 12)]
    queued[2].params = {**params, "batch_size": 32}          # another key
    queued[3].sweep_id = 2                                    # another sweep
    queued[4].exclusive = True                                # ran out of memory: alone
    members = groups.companions(queued[0], spec, queued, groups.CPU_GROUP_MAX, {2})
    assert [r.id for r in members] == [1, 6, 7, 8, 9, 10, 11]   # 2 taken, 3-5 differ
    assert len(groups.companions(queued[0], spec, queued, 3, set())) == 3
    assert groups.companions(queued[0], {"resources": {"fuse": False}}, queued, 8, set()) \
        == [queued[0]]
    assert groups.companions(queued[0], {"command": ["python", "t.py"]}, queued, 8, set()) \
        == [queued[0]]
    assert groups.group_limit(True, mem_estimate_gb=2.0, gpu_mem_gb=80) == 32
    assert groups.group_limit(True, mem_estimate_gb=20.0, gpu_mem_gb=80) == 3
    assert groups.group_limit(False) == groups.CPU_GROUP_MAX
