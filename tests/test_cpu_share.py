"""Each run its share of the cores: the rule, and what real runs under the daemon get."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from gridrun.engine import cpu_share
from tests.conftest import ROOT, cli_env

PROBE = ROOT / "tests" / "scripts" / "threads_probe.py"


@given(cores=st.integers(1, 512), runs=st.integers(1, 512))
def test_a_share_is_at_least_one_and_never_oversubscribes(cores, runs):
    share = cpu_share.thread_share(cores, runs)
    assert share >= 1
    if runs <= cores:
        assert share * runs <= cores < (share + 1) * runs   # the whole cores, evenly
    else:
        assert share == 1


@given(cpu_slots=st.integers(1, 64), gpus=st.integers(0, 16),
       per_gpu=st.one_of(st.none(), st.integers(1, 8)), running=st.integers(0, 200))
def test_sharers_count_cpu_slots_gpu_runs_and_what_runs_now(cpu_slots, gpus, per_gpu, running):
    n = cpu_share.sharers(cpu_slots=cpu_slots, gpu_count=gpus, slots_per_gpu=per_gpu,
                          running=running)
    assert n >= cpu_slots + gpus * (per_gpu or 1)
    assert n > running


def test_a_user_setting_of_either_variable_wins():
    assert cpu_share.thread_env(3, {}) == {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3"}
    assert cpu_share.thread_env(3, {"OMP_NUM_THREADS": "8"}) == {}
    assert cpu_share.thread_env(3, {"MKL_NUM_THREADS": "2"}) == {}
    assert cpu_share.thread_env(3, {"OMP_NUM_THREADS": ""}) == {"OMP_NUM_THREADS": "3",
                                                                "MKL_NUM_THREADS": "3"}


def probe_sweep(folder: Path, name: str, *extra: str, warm: bool = False) -> Path:
    argv = [sys.executable, str(PROBE), *extra, "--seed", "{seed}"]
    path = folder / f"{name}.toml"
    path.write_text(f'name = "{name}"\ncommand = {json.dumps(argv)}\nseeds = [0, 1, 2]\n'
                    + ('warm = true\npreload = ["torch"]\n' if warm else "")
                    + "[params]\nx = 1\n")
    return path


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_two_cpu_slots_give_each_run_half_the_cores(cli, tmp_path, warm):
    """Warm, torch was imported by the zygote before the run's share was known."""
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    cli("queue", "run", probe_sweep(tmp_path, "half", warm=warm), "--cpu-slots", "2", check=0)
    runs = cli.runs()
    assert [r["status"] for r in runs] == ["done"] * 3
    for run in runs:
        run_dir = Path(run["run_dir"])
        env = json.loads((run_dir / "run.json").read_text())["env"]
        assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == str(share)
        seen = json.loads((run_dir / "threads.json").read_text())
        assert seen["torch_threads"] == share
        shown = cli.json("queue", "show", str(run["id"]))
        assert f"OMP_NUM_THREADS={share}" in shown["replay"]


def test_the_trainer_takes_its_share_when_torch_came_first(cli, tmp_path):
    """As in a warm start: torch imported before the variable was set."""
    path = tmp_path / "late.toml"
    probe = ("import torch, os, runpy, sys; os.environ['OMP_NUM_THREADS'] = '1'; "
             f"sys.argv = [{str(PROBE)!r}, '--trainer']; runpy.run_path(sys.argv[0])")
    path.write_text(f'name = "late"\ncommand = {json.dumps([sys.executable, "-c", probe])}\n'
                    "[params]\nx = 1\n")
    env = cli_env(cli.home)
    env.pop("OMP_NUM_THREADS", None)
    env.pop("MKL_NUM_THREADS", None)
    cli("queue", "run", path, check=0, env=env)
    seen = json.loads((Path(cli.runs()[0]["run_dir"]) / "threads.json").read_text())
    assert seen["torch_threads"] == 1


def test_a_users_own_setting_wins(cli, tmp_path):
    mine = len(os.sched_getaffinity(0))   # torch takes no more than the cores; the share is half
    env = cli_env(cli.home, OMP_NUM_THREADS=str(mine))
    env.pop("MKL_NUM_THREADS", None)
    cli("queue", "run", probe_sweep(tmp_path, "mine"), "--cpu-slots", "2", check=0, env=env)
    for run in cli.runs():
        run_dir = Path(run["run_dir"])
        added = json.loads((run_dir / "run.json").read_text())["env"]
        assert "OMP_NUM_THREADS" not in added and "MKL_NUM_THREADS" not in added
        seen = json.loads((run_dir / "threads.json").read_text())
        assert seen["torch_threads"] == mine and seen["OMP_NUM_THREADS"] == str(mine)
        assert seen["MKL_NUM_THREADS"] is None
