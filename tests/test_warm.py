"""Warm starts: runs forked from a zygote are runs like any other, and compute the same numbers.

Users' scripts run warm here with `preload = ["fractions"]` (a zygote that starts in a blink);
the built-in trainer's zygote imports torch, which the equality test pays for once.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from gridrun.engine import matrix
from gridrun.engine.errors import GridrunError
from tests.conftest import FAKE_TRAIN, ROOT, cli_env, wait_for
from tests.test_daemon import by_index, pid_alive

PROBE = ROOT / "tests" / "scripts" / "warm_probe.py"
PY = json.dumps(sys.executable)
TIMINGS = ("epoch_seconds", "samples_per_s", "time", "seconds", "train_seconds")
WARM = 'warm = true\npreload = ["fractions"]\n'


def script_sweep(folder: Path, name: str, script: Path, args: list[str], *, warm: bool = True,
                 body: str = "[params]\nx = 1\n") -> Path:
    argv = [sys.executable, str(script), *args]
    path = folder / f"{name}.toml"
    path.write_text(f'name = "{name}"\ncommand = {json.dumps(argv)}\n'
                    + (WARM if warm else "") + body)
    return path


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


def pid_of(cli, run: dict) -> int:
    """The run's recorded pid, as the store holds it (queue ls does not show it)."""
    with sqlite3.connect(cli.home / "gridrun.db") as db:
        return db.execute("SELECT pid FROM runs WHERE id = ?", (run["id"],)).fetchone()[0]


def test_a_warm_script_runs_as_its_own_main_in_its_own_session(cli, tmp_path):
    body = "[grid]\nexit = [0, 3]\n"
    warm = script_sweep(tmp_path, "warmp", PROBE, ["--exit", "{exit}"], body=body)
    cold = script_sweep(tmp_path, "coldp", PROBE, ["--exit", "{exit}"], warm=False, body=body)
    cli("queue", "run", warm, cold, "--cpu-slots", "2", check=1)
    runs = cli.runs()
    seen = {(r["sweep"], r["params"]["exit"]): json.loads(
        (Path(r["run_dir"]) / "probe.json").read_text()) for r in runs}
    for (sweep, code), probe in seen.items():
        assert probe["preloaded"] == (sweep == "warmp")   # forked from the zygote, or not
        assert probe["name"] == "__main__"
        assert probe["argv"] == [str(PROBE), "--exit", str(code)]
        assert probe["cwd"] == str(tmp_path) and probe["path0"] == str(PROBE.parent)
        assert probe["pid"] == probe["pgid"] == probe["sid"]   # a session leader
        assert probe["stdin"] == "/dev/null"
    # fresh entropy in each warm child, as in each cold process
    assert seen[("warmp", 0)]["draw"] != seen[("warmp", 3)]["draw"]
    for run in runs:
        log = (Path(run["run_dir"]) / "stdout.log").read_text()
        assert "probe on stdout" in log and "probe on stderr" in log
        if run["params"]["exit"] == 0:
            assert run["status"] == "done" and run["exit_code"] == 0
        else:
            assert run["status"] == "failed" and run["exit_code"] == 3
            assert run["error"].startswith("exit code 3")
    # the replay is the plain cold command
    shown = cli.json("queue", "show", str(by_index(cli.runs("--sweep", "warmp"))[1]["id"]))
    assert f"{sys.executable} {PROBE} --exit 0" in shown["replay"]


def test_a_warm_module_is_found_in_the_working_directory(cli, tmp_path):
    (tmp_path / "probe_mod.py").write_text(PROBE.read_text())
    path = tmp_path / "mod.toml"
    path.write_text(f'name = "mod"\ncommand = [{PY}, "-m", "probe_mod", "--exit", "0"]\n'
                    + WARM + "[params]\nx = 1\n")
    cli("queue", "run", path, check=0)
    (run,) = cli.runs()
    probe = json.loads((Path(run["run_dir"]) / "probe.json").read_text())
    assert probe["preloaded"] and probe["name"] == "__main__"
    assert probe["argv"] == [str(tmp_path / "probe_mod.py"), "--exit", "0"]


def test_a_warm_run_killed_by_a_signal_fails_naming_it(cli, tmp_path):
    path = script_sweep(tmp_path, "sig", PROBE, ["--kill", "{sig}"],
                        body='[grid]\nsig = ["SIGKILL", "SIGSEGV"]\n')
    cli("queue", "run", path, check=1)
    errors = {r["params"]["sig"]: r["error"] for r in cli.runs()}
    assert errors["SIGKILL"].startswith("killed by SIGKILL")
    assert errors["SIGSEGV"].startswith("killed by SIGSEGV")
    assert all(r["status"] == "failed" for r in cli.runs())


def test_cancel_and_timeout_of_warm_runs(cli, tmp_path):
    marker = tmp_path / "starts.txt"
    args = ["--lr", "{lr}", "--epochs", "600", "--sleep", "0.1", "--ignore-term",
            "--marker", str(marker)]
    slow = script_sweep(tmp_path, "tmo", FAKE_TRAIN, args,
                        body="[grid]\nlr = [0.1]\n[resources]\ntimeout_min = 0.03\n")
    endless = script_sweep(tmp_path, "cnc", FAKE_TRAIN, args, body="[grid]\nlr = [0.2]\n")
    cli("queue", "add", slow, endless, check=0)
    daemon = cli.start("queue", "run", "--cpu-slots", "2",
                       env=cli_env(cli.home, GRIDRUN_KILL_GRACE_S="1"))
    try:
        (victim,) = wait_for(lambda: [r for r in cli.runs("--sweep", "cnc")
                                      if r["status"] == "running"], 60, what="a running run")
        cli("queue", "cancel", str(victim["id"]), check=0)
        assert daemon.wait(timeout=60) == 1      # the other one timed out
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGKILL)
    (cancelled,) = cli.runs("--sweep", "cnc")
    (timed_out,) = cli.runs("--sweep", "tmo")
    assert cancelled["status"] == "cancelled"
    assert timed_out["status"] == "failed"
    assert timed_out["error"].startswith("timed out after 0.03 min")
    pids = [int(line.split()[1]) for line in marker.read_text().splitlines()]
    assert len(pids) == 2 and not any(map(pid_alive, pids))  # SIGTERM ignored: SIGKILL came


def test_kill_9_of_the_daemon_then_restart_recovers_warm_runs(cli, tmp_path):
    marker = tmp_path / "starts.txt"
    path = script_sweep(tmp_path, "crash", FAKE_TRAIN,
                        ["--lr", "{lr}", "--epochs", "16", "--sleep", "0.3", "--checkpoint",
                         "--marker", str(marker)], body="[grid]\nlr = [0.1, 0.2]\n")
    daemon = cli.start("queue", "run", path, "--cpu-slots", "2")
    running = wait_for(lambda: [r for r in cli.runs() if r["status"] == "running"
                                and r["metrics"].get("epoch", 0) >= 2], 60, what="runs mid-way")
    zygote = parent_of(pid_of(cli, running[0]))
    assert "gridrun.engine.zygote" in Path(f"/proc/{zygote}/cmdline").read_text()
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.wait(timeout=10)
    wait_for(lambda: not pid_alive(zygote), 10, what="the zygote to leave with its daemon")
    orphans = [r for r in cli.runs() if r["status"] == "running"]
    pids = [pid_of(cli, r) for r in orphans]
    assert pids and all(map(pid_alive, pids))   # own sessions: they live on
    cli("queue", "run", timeout=90, check=0)
    after = by_index(cli.runs())
    assert all(r["status"] == "done" for r in after.values())
    assert not any(map(pid_alive, pids))
    for run in orphans:
        assert after[run["index"]]["attempt"] == 2
        epochs = [h["epoch"] for h in cli.json("queue", "show", str(run["id"]))["history"]]
        assert epochs == list(range(1, 17))
    starts = marker.read_text().splitlines()
    assert len(starts) == 2 + len(orphans)


def test_a_dead_zygote_requeues_its_runs_and_the_daemon_goes_on(cli, tmp_path):
    path = script_sweep(tmp_path, "zd", FAKE_TRAIN,
                        ["--lr", "{lr}", "--epochs", "10", "--sleep", "0.3", "--checkpoint"],
                        body="[grid]\nlr = [0.1, 0.2, 0.3]\n")
    daemon = cli.start("queue", "run", path)
    first = wait_for(lambda: [r for r in cli.runs() if r["status"] == "running"
                              and r["metrics"].get("epoch", 0) >= 1], 60, what="a run mid-way")[0]
    zygote = parent_of(pid_of(cli, first))
    os.kill(zygote, signal.SIGKILL)
    assert daemon.wait(timeout=90) == 0
    runs = by_index(cli.runs())
    assert all(r["status"] == "done" for r in runs.values())
    assert runs[first["index"]]["attempt"] == 2          # its status was lost: run again
    epochs = [h["epoch"] for h in cli.json("queue", "show", str(first["id"]))["history"]]
    assert epochs == list(range(1, 11))
    assert "warm worker ended" in (cli.home / "zygote.log").read_text()


def test_a_zygote_that_cannot_preload_leaves_its_runs_to_start_cold(cli, tmp_path):
    path = script_sweep(tmp_path, "nopre", PROBE, ["--exit", "0", "--seed", "{seed}"],
                        warm=False, body='seeds = [0, 1, 2, 3]\n[params]\nx = 1\n')
    path.write_text(path.read_text().replace(
        "seeds", 'warm = true\npreload = ["fractions", "no_such_module_for_gridrun"]\nseeds'))
    cli("queue", "run", path, check=0)
    runs = cli.runs()
    assert [r["status"] for r in runs] == ["done"] * 4
    for run in runs:
        assert not json.loads((Path(run["run_dir"]) / "probe.json").read_text())["preloaded"]
    log = (cli.home / "zygote.log").read_text()
    assert "warm worker ended (ModuleNotFoundError" in log


def test_the_builtin_trainer_warm_computes_what_it_computes_cold(cli, tmp_path):
    path = tmp_path / "same.toml"
    path.write_text('name = "same"\nseeds = [3]\n[params]\ndataset = "digits"\nmodel = "mlp"\n'
                    'epochs = 3\nbatch_size = 64\n[grid]\noptimizer = ["sgd", "adam"]\n'
                    "[resources]\ngpus = 0\n")
    values = {}
    for mode in ("1", "0"):
        home = tmp_path / f"home{mode}"
        cli("queue", "run", path, "--cpu-slots", "2", check=0,
            env=cli_env(home, GRIDRUN_WARM=mode, CUDA_VISIBLE_DEVICES=""))
        assert (home / "zygote.log").exists() == (mode == "1")
        for run_dir in sorted((home / "same").iterdir()):
            lines = (run_dir / "metrics.jsonl").read_text().splitlines()
            # timings differ; every number the run computed must not
            rows = [{k: v for k, v in json.loads(line).items() if k not in TIMINGS}
                    for line in lines]
            values.setdefault(run_dir.name, []).append(rows)
    assert len(values) == 2
    for warm, cold in values.values():
        assert len(warm) >= 3 and warm == cold


@pytest.mark.parametrize("text, message", [
    ('warm = 1\ncommand = [{py}, "t.py"]\n', "warm must be true or false"),
    ('warm = true\ncommand = [{py}, "-c", "pass"]\n', "runs a Python script or module"),
    ('warm = true\ncommand = [{py}, "-m", "a b"]\n', "runs a Python script or module"),
    ('warm = true\ncommand = ["sh", "t.py"]\n', "runs the script in gridrun's own Python"),
    ('preload = ["torch"]\ncommand = [{py}, "t.py"]\n', "preload applies to warm starts only"),
    ('warm = true\npreload = "torch"\ncommand = [{py}, "t.py"]\n', "preload must be a list"),
])
def test_what_cannot_run_warm_is_refused_when_added(tmp_path, text, message):
    with pytest.raises(GridrunError, match=message):
        matrix.loads(text.format(py=PY) + "[params]\nx = 1\n", tmp_path / "w.toml")


def test_a_warm_script_or_module_is_accepted(tmp_path):
    spec = matrix.loads(f'warm = true\npreload = ["numpy"]\ncommand = [{PY}, "-m", "pkg.mod"]\n'
                        "[params]\nx = 1\n", tmp_path / "w.toml")
    assert spec.warm and spec.preload == ("numpy",)
    assert spec.to_json()["warm"] is True


def test_the_builtin_trainer_is_warm_unless_told_otherwise(tmp_path):
    from gridrun.engine.warm import BUILTIN_PRELOAD, preload_of, warm_target
    argv = [*matrix.builtin_command(), "--x"]
    for text, warm in (("", True), ('preload = ["torchvision"]\n', True),
                       ("warm = false\n", False)):
        spec = matrix.loads(text + '[params]\ndataset = "digits"\n', tmp_path / "b.toml")
        stored = spec.to_json()
        assert (warm_target(stored, argv, "/") is not None) == warm
        assert (preload_of(stored) is not None) == warm
    assert preload_of(stored | {"warm": None, "preload": ["torchvision"]}) == \
        (*BUILTIN_PRELOAD, "torchvision")
    with pytest.raises(GridrunError, match="preload applies to warm starts only"):
        matrix.loads('warm = false\npreload = ["x"]\n[params]\ndataset = "digits"\n',
                     tmp_path / "b.toml")


def test_whatever_goes_wrong_on_the_warm_path_leaves_the_run_to_start_cold(tmp_path):
    from gridrun.engine.warm import WarmPool
    pool = WarmPool(tmp_path, lambda: None)
    assert pool.spawn({"command": None}, ["python"], str(tmp_path), {}, tmp_path / "log") is None
    assert "warm start failed (IndexError" in (tmp_path / "zygote.log").read_text()
    assert not pool.zygotes
