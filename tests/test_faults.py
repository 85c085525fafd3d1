"""One run's problem is that run's problem: fault injection through the real CLI.

Whatever a run prints, writes or is configured with, it ends that run (failed, with a one-line
reason) or is stored cleaned; the daemon goes on, every other run of the sweep finishes, and
`queue run` exits 0 or 1 as usual, never 70."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

from gridrun.engine.home import daemon_pid
from tests.conftest import cli_env, wait_for
from tests.test_daemon import PY, TRAIN, by_index

HOSTILE = json.dumps(str(Path(__file__).parent / "scripts" / "hostile.py"))


def history(cli, run: dict) -> list[dict]:
    return cli.json("queue", "show", str(run["id"]))["history"]


def test_a_printed_nan_loss_is_stored_as_null_and_flags_the_run(cli, tmp_path):
    path = tmp_path / "nan.toml"
    # the NaN line stays the parser's record in progress for a while: ticks see it live
    path.write_text(f'name = "nan"\ncommand = [{PY}, {TRAIN}, "--lr", "{{lr}}", "--nan-at", '
                    '"{nan_at}", "--sleep", "0.5"]\n[grid]\nlr = [0.1]\nnan_at = [2, 0]\n')
    res = cli("queue", "run", path, check=0)
    assert "2 runs: 2 done" in res.stdout
    nan_run, ok = by_index(cli.runs()).values()
    assert "diverged" in nan_run["flags"] and "diverged" not in ok["flags"]
    losses = [h.get("loss") for h in history(cli, nan_run)]
    assert losses[1] is None and losses[0] is not None and len(losses) == 3


def test_hostile_metrics_files_are_read_to_the_end_and_cleaned(cli, tmp_path):
    path = tmp_path / "hostile.toml"
    path.write_text(f'name = "hostile"\ncommand = [{PY}, {HOSTILE}, "{{mode}}", "{{arg}}"]\n'
                    '[[include]]\nmode = "nested"\narg = "0"\n'
                    '[[include]]\nmode = "rows"\narg = "60000"\n'
                    '[[include]]\nmode = "flood"\narg = "6"\n'
                    '[[include]]\nmode = "rewrite"\narg = "1.0"\n')
    res = cli("queue", "run", path, "--cpu-slots", "2", timeout=240, check=0)
    assert "4 runs: 4 done" in res.stdout
    nested, rows, flood, rewrite = by_index(cli.runs()).values()
    first, second = history(cli, nested)
    assert first["per_class"] == [None, 0.5] and first["d"] == {"x": None, "y": [[None]]}
    assert first["note"] == "\ufffd lone" and second["epoch"] == 2
    assert "diverged" in nested["flags"]
    # 60,000 rows, the last one never terminated: every one kept
    kept = history(cli, rows)
    assert len(kept) == 60_000 and kept[-1] == {"epoch": 60_000, "loss": 1 / 60_000}
    assert rows["metrics"]["epoch"] == 60_000
    # 6 MB of per-step lines: the epochs printed after them are all there, the last one too
    epochs = [(h["epoch"], h.get("loss")) for h in history(cli, flood) if "loss" in h]
    assert epochs[-3:] == [(1, 1.0), (2, 0.5), (3, 0.3333)]
    assert flood["metrics"]["accuracy"] == 53
    # metrics.jsonl truncated and rewritten: only the new rows count
    assert [(h["epoch"], h["loss"]) for h in history(cli, rewrite)] == [(1, 1.0), (2, 0.5)]


def test_a_run_whose_files_cannot_be_read_is_ended_and_the_others_finish(cli, tmp_path):
    path = tmp_path / "unreadable.toml"
    path.write_text(f'name = "unreadable"\ncommand = [{PY}, {HOSTILE}, "{{mode}}", "0"]\n'
                    '[grid]\nmode = ["dirlog", "nested"]\n')
    res = cli("queue", "run", path, "--cpu-slots", "2", timeout=120, check=1)
    assert "internal error" not in res.stderr
    broken, fine = by_index(cli.runs()).values()
    assert broken["status"] == "failed"
    assert broken["error"].startswith("could not read its output: IsADirectoryError")
    assert fine["status"] == "done"


def test_a_staged_study_keeps_fixed_params_its_command_uses(cli, tmp_path):
    path = tmp_path / "staged.toml"
    path.write_text(f'name = "staged"\nmetric = "loss"\nmode = "min"\n'
                    f'command = [{PY}, {TRAIN}, "--lr", "{{lr}}", "--seed", "{{seed}}", '
                    '"--epochs", "{epochs}"]\n'
                    "[params]\nseed = 0\nepochs = 2\n[grid]\nlr = [0.1, 0.2]\n"
                    "[[stages]]\ngrid.epochs = [1, 3]\n")
    res = cli("queue", "run", path, check=0)
    runs = cli.runs()
    assert [r["status"] for r in runs] == ["done"] * 4, res.stdout
    stage2 = [r for r in runs if r["stage"] == 2]
    assert [r["params"] for r in stage2] == [{"seed": 0, "epochs": 1, "lr": 0.2},
                                             {"seed": 0, "epochs": 3, "lr": 0.2}]


def test_a_nul_byte_in_a_stage_value_is_refused_when_added(cli, tmp_path):
    path = tmp_path / "nul.toml"
    path.write_text(f'name = "nul"\nmetric = "loss"\ncommand = [{PY}, {TRAIN}, "--lr", "{{lr}}", '
                    '"--tag", "{tag}"]\n[params]\ntag = "a"\n[grid]\nlr = [0.1]\n'
                    '[[stages]]\ngrid.tag = ["b\\u0000c"]\n')
    res = cli("queue", "add", path, check=2)
    assert res.stderr.startswith(f"gridrun: {path}:8:1: ")    # the [[stages]] table
    assert 'value of "tag" holds a NUL character' in res.stderr
    assert cli.runs() == []


def _queue(cli, path) -> None:
    cli("queue", "add", path, check=0)


def _tamper(home: Path, sql: str, *args) -> None:
    """Change the store behind gridrun's back: a run whose data no check saw."""
    conn = sqlite3.connect(home / "gridrun.db")
    with conn:
        conn.execute(sql, args)
    conn.close()


def test_a_run_that_cannot_be_prepared_or_started_fails_alone(cli, tmp_path):
    path = tmp_path / "three.toml"
    path.write_text(f'name = "three"\ncommand = [{PY}, {TRAIN}, "--lr", "{{lr}}", "--seed", '
                    '"{seed}", "--epochs", "1"]\n[params]\nseed = 0\n[grid]\nlr = [0.1, 0.2, 0.3]\n')
    _queue(cli, path)
    first, second, third = cli.runs()
    # one run lost a key its command uses, another holds a NUL byte no argument can carry
    _tamper(cli.home, "UPDATE runs SET params = ? WHERE id = ?",
            json.dumps({"lr": 0.1}), first["id"])
    _tamper(cli.home, "UPDATE runs SET params = ? WHERE id = ?",
            json.dumps({"lr": "0.2\u0000", "seed": 0}), second["id"])
    res = cli("queue", "run", check=1)
    assert "internal error" not in res.stderr
    first, second, third = cli.runs()
    assert first["status"] == "failed"
    assert first["error"] == "could not prepare the run: KeyError: 'seed'"
    assert second["status"] == "failed" and "could not start" in second["error"]
    assert "\n" not in second["error"]
    assert third["status"] == "done"
    assert daemon_pid(cli.home) is None


def test_a_pending_cancel_outlives_the_daemon_that_missed_it(cli, sweep_file):
    path = sweep_file("pend", "[grid]\nlr = [0.1, 0.2]\nseed = [0]\n",
                      script_args="--epochs 40 --sleep 0.1")
    daemon = cli.start("queue", "run", path)
    running = wait_for(lambda: [r for r in cli.runs() if r["status"] == "running"], 30,
                       what="a running run")[0]
    os.kill(daemon.pid, signal.SIGSTOP)        # alive, but it will never read the request
    cli("queue", "cancel", str(running["id"]), check=0)
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.wait(timeout=10)
    cli("queue", "run", timeout=120, check=0)
    runs = by_index(cli.runs())
    assert runs[running["index"]]["status"] == "cancelled"
    other = next(r for r in runs.values() if r["id"] != running["id"])
    assert other["status"] == "done"


def test_a_run_started_but_never_recorded_is_killed_and_run_once(cli, sweep_file, tmp_path):
    marker = tmp_path / "starts.txt"
    path = sweep_file("intent", "[grid]\nlr = [0.1]\nseed = [0]\n",
                      script_args=f"--epochs 2 --marker {marker}")
    _queue(cli, path)
    (run,) = cli.runs()
    # a daemon marked it running and spawned it, then died before it wrote the pid
    _tamper(cli.home, "UPDATE runs SET status = 'running', pid = NULL WHERE id = ?", run["id"])
    env = {**cli_env(cli.home), "GRIDRUN_DAEMON_HOME": str(cli.home)}
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], env=env,
                              start_new_session=True)
    try:
        cli("queue", "run", check=0)
        assert orphan.wait(timeout=30) is not None       # the restart killed it
    finally:
        if orphan.poll() is None:
            orphan.kill()
    (run,) = cli.runs()
    assert run["status"] == "done" and run["attempt"] == 2
    assert len(marker.read_text().splitlines()) == 1


def test_probing_for_the_daemon_never_makes_one_fail_to_start(cli, sweep_file):
    path = sweep_file("probe", "[grid]\nlr = [0.1]\nseed = [0]\n", script_args="--epochs 1")
    _queue(cli, path)
    stop = threading.Event()
    probes = [0]

    def probe():
        while not stop.is_set():
            daemon_pid(cli.home)
            probes[0] += 1

    thread = threading.Thread(target=probe)
    thread.start()
    try:
        for _ in range(6):
            res = cli("queue", "run", check=0)
            assert "already runs" not in res.stderr
            _tamper(cli.home, "UPDATE runs SET status = 'queued'")
    finally:
        stop.set()
        thread.join()
    assert probes[0] > 100


def test_a_probe_loop_never_makes_taking_the_lock_fail(tmp_path):
    """The same race, tight: a daemon taking the lock while another process probes nonstop."""
    from gridrun.engine.home import DaemonLock

    stop = tmp_path / "stop"
    code = ("import os, sys\nfrom pathlib import Path\nfrom gridrun.engine.home import daemon_pid\n"
            f"home, stop, seen = Path({str(tmp_path)!r}), Path({str(stop)!r}), set()\n"
            "while not stop.exists():\n"
            "    for _ in range(200):\n"
            "        seen.add(daemon_pid(home))\n"
            "print(sorted(p for p in seen if p))\n")
    prober = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    failures = 0
    try:
        for _ in range(5000):
            lock = DaemonLock(tmp_path)
            if lock.acquire():
                lock.release()
            else:
                failures += 1
    finally:
        stop.touch()
        out, _ = prober.communicate(timeout=30)
    assert failures == 0
    assert str(os.getpid()) in out      # the probe saw the lock held, and by whom


def test_detached_daemon_logs_each_line_once_and_is_not_left_a_zombie(cli, sweep_file):
    from gridrun.engine.control import start_daemon, wait_until_stopped

    path = sweep_file("det", "[grid]\nlr = [0.1, 0.2]\nseed = [0]\n", script_args="--epochs 1")
    _queue(cli, path)
    # --detach through the CLI
    cli("queue", "run", "--detach", check=0)
    assert wait_until_stopped(cli.home, 60)
    log = (cli.home / "daemon.log").read_text().splitlines()
    assert sum(" start " in line for line in log) == 2, log
    assert sum(" end " in line for line in log) == 2, log
    # the interface's way: started from this process, then it ends (queue empty, no --watch)
    _tamper(cli.home, "UPDATE runs SET status = 'queued'")
    pid = start_daemon(cli.home, watch=False)
    assert wait_until_stopped(cli.home, 60)
    # our child: gone from /proc only once waited for (a zombie stays until then)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10, what="the daemon to be reaped")
    log = (cli.home / "daemon.log").read_text().splitlines()
    assert sum(" start " in line for line in log) == 4, log


def test_a_two_gpu_run_is_not_starved_by_later_one_gpu_runs(cli, tmp_path):
    one = f'command = [{PY}, {TRAIN}, "--lr", "{{lr}}", "--epochs", "3", "--sleep", "0.3"]\n'
    for name, body in (("first", "[grid]\nlr = [0.1, 0.2, 0.3]\n"),
                       ("pair", "[grid]\nlr = [0.1]\n[resources]\ngpus = 2\n"),
                       ("later", "[grid]\nlr = [0.4, 0.5, 0.6, 0.7]\n")):
        (tmp_path / f"{name}.toml").write_text(f'name = "{name}"\n{one}{body}')
        _queue(cli, tmp_path / f"{name}.toml")
    cli("queue", "run", env=cli_env(cli.home, GRIDRUN_FAKE_GPUS="2x16"), timeout=120, check=0)
    runs = cli.runs()
    assert all(r["status"] == "done" for r in runs)
    pair = next(r for r in runs if r["sweep"] == "pair")
    assert pair["device"] == "cuda:0,1"
    later = [r for r in runs if r["sweep"] == "later"]
    # it waited for the devices of the runs queued before it, not for the runs queued after it
    assert all(r["started"] >= pair["ended"] for r in later)
