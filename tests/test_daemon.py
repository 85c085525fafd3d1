"""The daemon for real: `gridrun queue run` subprocesses in a temp home, running the stand-in
trainer, killed and restarted, with the store read through the CLI as a user would."""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FAKE_TRAIN, cli_env, wait_for, write_sweep

PY = json.dumps(sys.executable)
TRAIN = json.dumps(str(FAKE_TRAIN))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def events(output: str) -> list[tuple[str, str]]:
    """(start | end | requeued, sweep#index) in the order `gridrun queue run` printed them: the
    daemon's own order of events, whatever the clock says."""
    found = []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in ("start", "end", "requeued"):
            found.append((parts[1], parts[2]))
    return found


def most_at_once(output: str) -> int:
    running, most = 0, 0
    for kind, _ in events(output):
        running += 1 if kind == "start" else -1
        most = max(most, running)
    return most


def by_index(runs: list[dict]) -> dict[int, dict]:
    return {r["index"]: r for r in runs}


def test_runs_every_run_and_reads_printed_metrics(cli, sweep_file):
    path = sweep_file("lrs", "seeds = [0, 1]\n[params]\nepochs = 3\n[grid]\nlr = [0.1, 0.5]\n")
    res = cli("queue", "run", path, "--cpu-slots", "2", check=0)
    assert "queued 4 runs in sweep lrs" in res.stdout
    assert "4 runs: 4 done" in res.stdout
    runs = cli.runs()
    assert [r["status"] for r in runs] == ["done"] * 4
    assert all(r["exit_code"] == 0 and r["error"] is None for r in runs)
    run = by_index(runs)[3]  # lr=0.5, seed=0
    assert run["params"] == {"epochs": 3, "lr": 0.5, "seed": 0}
    # `Epoch [3/3], Loss: ..., LR: ..., Accuracy: ...%` became metrics without configuration
    assert run["metrics"]["epoch"] == 3 and run["metrics"]["epochs"] == 3
    assert run["metrics"]["loss"] == pytest.approx(1 / (3 * 6), abs=1e-6)
    assert run["metrics"]["accuracy"] == pytest.approx(min(99.0, 50 + 30 * 1.5))
    assert {"epoch", "loss", "accuracy", "lr"} <= set(run["metric_names"])
    shown = cli.json("queue", "show", str(run["id"]))
    assert [row["epoch"] for row in shown["history"]] == [1, 2, 3]
    run_dir = Path(run["run_dir"])
    assert run_dir.parent == cli.home / "lrs" and run_dir.name == "0003-lr=0.5_seed=0"
    assert (run_dir / "config.toml").read_text().splitlines() == [
        "epochs = 3", "lr = 0.5", "seed = 0"]
    replay = json.loads((run_dir / "run.json").read_text())
    assert replay["argv"][2:] == ["--lr", "0.5", "--seed", "0"]
    assert replay["env"]["GRIDRUN_RUN_DIR"] == str(run_dir)
    assert replay["env"]["CUDA_VISIBLE_DEVICES"] == ""
    assert json.loads(replay["env"]["GRIDRUN_PARAMS"]) == run["params"]
    assert "cd " in shown["replay"] and "--lr 0.5" in shown["replay"]
    # running the file again queues nothing and exits 0 at once
    again = cli("queue", "run", path, check=0)
    assert "queued 0 runs in sweep lrs (4 already queued)" in again.stdout


def test_failures_are_recorded_and_the_queue_goes_on(cli, tmp_path):
    path = tmp_path / "mixed.toml"
    path.write_text(f"""
name = "mixed"
command = [{PY}, {TRAIN}, "--fail-at", "{{fail_at}}", "--epochs", "3"]
[grid]
fail_at = [2, 0]
[[include]]
fail_at = 0
[[include]]
fail_at = 0
""")
    # the second include duplicates the first: one run, not two
    res = cli("queue", "run", path, check=1)
    assert "2 runs: 1 done, 1 failed" in res.stdout
    assert "hint: `gridrun queue show ID`" in res.stdout
    failed, done = cli.runs()
    assert failed["status"] == "failed" and failed["exit_code"] == 3
    assert failed["error"].startswith("exit code 3: ")
    assert "RuntimeError: simulated failure at epoch 2" in failed["error"]
    assert failed["metrics"]["epoch"] == 1  # what it reported before failing is kept
    assert done["status"] == "done"


def test_a_program_that_cannot_start_fails_the_run_not_the_daemon(cli, tmp_path):
    path = tmp_path / "noexe.toml"
    # `{prog}` is only known per run, so the add-time check cannot catch it
    path.write_text(f'name = "noexe"\ncommand = ["{{prog}}"]\n[grid]\n'
                    f'prog = ["/nonexistent/train", {PY}]\n')
    res = cli("queue", "run", path, check=1)
    bad, good = cli.runs()
    assert bad["status"] == "failed"
    assert "could not start '/nonexistent/train'" in bad["error"]
    assert good["status"] == "done"  # the python REPL with no stdin exits 0
    assert "1 failed" in res.stdout


def test_garbage_output_is_tolerated(cli, sweep_file):
    path = sweep_file("noise", "[grid]\nlr = [0.1]\nseed = [0]\n", script_args="--garbage")
    cli("queue", "run", path, check=0)
    (run,) = cli.runs()
    assert run["status"] == "done"
    assert run["metrics"]["epoch"] == 3
    assert all(not name[0].isdigit() for name in run["metric_names"])


def test_report_api_metrics_and_divergence_flag(cli, sweep_file):
    path = sweep_file("rep", "[grid]\nlr = [0.1]\nseed = [0]\n", script_args="--report --nan-at 2")
    cli("queue", "run", path, check=0)
    (run,) = cli.runs()
    assert run["metrics"]["val_acc"] == pytest.approx(0.83)  # min(99, 50 + 3 * 10 * 1.1) %
    assert "diverged" in run["flags"]
    history = cli.json("queue", "show", str(run["id"]))["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[1]["train_loss"] is None  # NaN is null in JSON
    assert "diverged" in cli("queue", "ls").stdout


def test_timeout_fails_the_run_with_a_clear_error(cli, sweep_file):
    path = sweep_file("slow", "[grid]\nlr = [0.1]\nseed = [0]\n[resources]\ntimeout_min = 0.01\n",
                      script_args="--epochs 50 --sleep 0.2")
    cli("queue", "run", path, check=1)
    (run,) = cli.runs()
    assert run["status"] == "failed"
    assert run["error"] == "timed out after 0.01 min"


def test_retries_rerun_a_failed_run(cli, tmp_path):
    marker = tmp_path / "starts.txt"
    path = tmp_path / "flaky.toml"
    path.write_text(f'name = "flaky"\ncommand = [{PY}, {TRAIN}, "--fail-at", "1", "--marker", '
                    f'{json.dumps(str(marker))}]\n[resources]\nretries = 2\n')
    cli("queue", "run", path, check=1)
    (run,) = cli.runs()
    assert run["status"] == "failed" and run["attempt"] == 3
    assert [line.split()[2] for line in marker.read_text().splitlines()] == ["1", "2", "3"]
    # failed runs can be queued again by hand
    assert "queued 1 run(s) again" in cli("queue", "retry", "--failed", check=0).stdout
    assert cli.runs()[0]["status"] == "queued" and cli.runs()[0]["attempt"] == 4


def test_leftover_processes_of_a_run_are_killed(cli, sweep_file):
    path = sweep_file("kids", "[grid]\nlr = [0.1]\nseed = [0]\n", script_args="--child --epochs 1")
    cli("queue", "run", path, check=0)
    (run,) = cli.runs()
    child_pid = int((Path(run["run_dir"]) / "child.pid").read_text())
    wait_for(lambda: not pid_alive(child_pid), 5, what="the run's grandchild to be killed")


def test_cancel_a_running_run_and_a_queued_one(cli, sweep_file):
    path = sweep_file("cx", "[grid]\nlr = [0.1, 0.2, 0.3]\nseed = [0]\n",
                      script_args="--epochs 100 --sleep 0.1 --ignore-term")
    cli("queue", "add", path, check=0)
    daemon = cli.start("queue", "run", env=cli_env(cli.home, GRIDRUN_KILL_GRACE_S="1"))
    try:
        first = wait_for(lambda: [r for r in cli.runs() if r["status"] == "running"], 20,
                         what="a running run")[0]
        out = cli("queue", "cancel", str(first["id"]), "3", check=0).stdout
        assert "cancelled 1 run(s)" in out and "asked the daemon to stop 1 running run(s)" in out
        # the run ignores SIGTERM: the daemon must SIGKILL it after the grace period
        wait_for(lambda: by_index(cli.runs())[1]["status"] == "cancelled", 20, what="cancel")
        wait_for(lambda: by_index(cli.runs())[2]["status"] == "running", 20, what="next run")
        cli("queue", "cancel", "--sweep", "cx", check=0)
        assert daemon.wait(timeout=30) == 0  # cancelled runs are not failures
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGKILL)
    assert [r["status"] for r in cli.runs()] == ["cancelled"] * 3
    assert by_index(cli.runs())[3]["started"] is None


def test_second_daemon_on_the_same_home_is_refused(cli, sweep_file):
    path = sweep_file("busy", "[grid]\nlr = [0.1]\nseed = [0]\n", script_args="--epochs 200 --sleep 0.1")
    daemon = cli.start("queue", "run", path)
    try:
        wait_for(lambda: (cli.home / "daemon.json").exists(), 20, what="the daemon")
        res = cli("queue", "run", check=2)
        assert f"a daemon (pid {daemon.pid}) already runs the queue" in res.stderr
        status = cli("queue", "status", check=0).stdout
        assert f"daemon: running, pid {daemon.pid}, 1 CPU slot(s)" in status
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=30)


def test_sigterm_requeues_runs_in_flight(cli, sweep_file):
    path = sweep_file("term", "[grid]\nlr = [0.1, 0.2]\nseed = [0]\n",
                      script_args="--epochs 200 --sleep 0.05 --child")
    daemon = cli.start("queue", "run", path, "--cpu-slots", "2")
    wait_for(lambda: sum(r["status"] == "running" for r in cli.runs()) == 2, 20, what="2 running")
    wait_for(lambda: all((Path(r["run_dir"]) / "child.pid").exists() for r in cli.runs()), 10,
             what="the runs' children")
    children = [int((Path(r["run_dir"]) / "child.pid").read_text()) for r in cli.runs()]
    os.kill(daemon.pid, signal.SIGTERM)
    assert daemon.wait(timeout=30) == 143
    runs = cli.runs()
    assert [(r["status"], r["attempt"]) for r in runs] == [("queued", 2), ("queued", 2)]
    for pid in children:
        wait_for(lambda: not pid_alive(pid), 5, what="the runs' process groups to die")
    assert "daemon: stopped" in cli("queue", "status", check=0).stdout


@pytest.mark.parametrize("checkpoint", [True, False], ids=["resumes", "restarts"])
def test_kill_9_daemon_then_restart_finishes_everything_once(cli, tmp_path, checkpoint):
    marker = tmp_path / "starts.txt"
    path = tmp_path / "crash.toml"
    resume = ' "--checkpoint",' if checkpoint else ""
    path.write_text(f'name = "crash"\ncommand = [{PY}, {TRAIN}, "--lr", "{{lr}}", "--epochs", "6",'
                    f' "--sleep", "0.3",{resume} "--marker", {json.dumps(str(marker))}]\n'
                    "[grid]\nlr = [0.1, 0.2, 0.3, 0.4, 0.5]\n")
    daemon = cli.start("queue", "run", path, "--cpu-slots", "2")
    wait_for(lambda: sum(r["status"] == "done" for r in cli.runs()) >= 1
             and any(r["status"] == "running" and r["metrics"].get("epoch", 0) >= 2
                     for r in cli.runs()), 40, what="a done run and a run mid-way")
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.wait(timeout=10)
    before = {r["index"]: r for r in cli.runs()}
    orphans = [r for r in before.values() if r["status"] == "running"]
    assert orphans, "some runs were in flight when the daemon died"
    # the orphans live on (own session) until a new daemon restores them
    res = cli("queue", "run", timeout=90, check=0)
    after = by_index(cli.runs())
    assert all(r["status"] == "done" for r in after.values())
    for idx, run in before.items():
        if run["status"] == "done":           # finished before the crash: never run again
            assert after[idx]["attempt"] == run["attempt"] == 1
        if run["status"] == "running":        # interrupted: exactly one more attempt
            assert after[idx]["attempt"] == 2
            history = cli.json("queue", "show", str(run["id"]))["history"]
            epochs = [h["epoch"] for h in history]
            assert epochs == list(range(1, 7)), epochs  # no epoch lost or repeated
            log = (Path(run["run_dir"]) / "stdout.log").read_text()
            assert "--- gridrun: attempt 2 ---" in log
            assert ("resumed at epoch" in log) == checkpoint
    starts = [line.split() for line in marker.read_text().splitlines()]
    assert len(starts) == 5 + len(orphans)
    assert "6 runs" not in res.stdout and "runs: " in res.stdout


def test_stop_lets_running_runs_finish_and_stop_now_requeues(cli, sweep_file):
    path = sweep_file("stp", "[grid]\nlr = [0.1, 0.2, 0.3]\nseed = [0]\n",
                      script_args="--epochs 30 --sleep 0.15")  # long enough on a busy box
    cli("queue", "add", path, check=0)
    daemon = cli.start("queue", "run", "--watch")
    wait_for(lambda: by_index(cli.runs())[1]["status"] == "running", 20, what="run 1")
    assert "asked daemon" in cli("queue", "stop", check=0).stdout
    assert daemon.wait(timeout=30) == 0
    runs = by_index(cli.runs())
    assert runs[1]["status"] == "done" and runs[1]["metrics"]["epoch"] == 30
    assert runs[2]["status"] == "queued" and runs[3]["status"] == "queued"
    # --now interrupts and requeues
    daemon = cli.start("queue", "run", "--watch")
    wait_for(lambda: by_index(cli.runs())[2]["status"] == "running", 20, what="run 2")
    out = cli("queue", "stop", "--now", check=0).stdout
    assert "stopped; its running runs were requeued" in out
    daemon.wait(timeout=30)
    runs = by_index(cli.runs())
    assert (runs[2]["status"], runs[2]["attempt"]) == ("queued", 2)
    assert cli("queue", "stop", check=0).stdout.startswith("no daemon is running")


def test_watch_picks_up_runs_added_later_and_detach(cli, sweep_file):
    assert "daemon started in the background" in cli(
        "queue", "run", "--watch", "--detach", check=0).stdout
    try:
        path = sweep_file("later", "[grid]\nlr = [0.1, 0.2]\nseed = [0]\n")
        cli("queue", "add", path, check=0)
        wait_for(lambda: [r["status"] for r in cli.runs()] == ["done", "done"], 30,
                 what="runs added after the daemon started")
        assert "start  later#1" in (cli.home / "daemon.log").read_text()
    finally:
        cli("queue", "stop", "--now", check=0)


def test_fake_gpus_get_visible_devices_and_share_by_slots(cli, tmp_path):
    path = tmp_path / "gpu.toml"
    path.write_text(f'name = "gpu"\ncommand = [{PY}, {TRAIN}, "--lr", "{{lr}}", "--epochs", "4",'
                    ' "--sleep", "0.2"]\n[grid]\nlr = [0.1, 0.2, 0.3, 0.4]\n')
    env = cli_env(cli.home, GRIDRUN_FAKE_GPUS="2x16")
    cli("queue", "run", path, "--slots-per-gpu", "2", env=env, check=0)
    runs = cli.runs()
    devices = sorted(json.loads((Path(r["run_dir"]) / "run.json").read_text())["env"]
                     ["CUDA_VISIBLE_DEVICES"] for r in runs)
    assert devices == ["0", "0", "1", "1"]
    assert sorted(r["device"] for r in runs) == ["cuda:0", "cuda:0", "cuda:1", "cuda:1"]
    # all four ran at once: two per GPU
    starts = sorted(r["started"] for r in runs)
    ends = sorted(r["ended"] for r in runs)
    assert starts[-1] < ends[0]


def test_multi_gpu_runs_and_impossible_requests(cli, tmp_path):
    path = tmp_path / "big.toml"
    path.write_text(f'name = "big"\ncommand = [{PY}, {TRAIN}, "--epochs", "1"]\n'
                    "[grid]\nlr = [0.1]\n[resources]\ngpus = 2\n")
    cli("queue", "run", path, env=cli_env(cli.home, GRIDRUN_FAKE_GPUS="24,80"), check=0)
    (run,) = cli.runs()
    assert run["device"] == "cuda:0,1"
    # three GPUs asked, CUDA_VISIBLE_DEVICES shows one: failed with the reason, queue exits 1
    path.write_text(path.read_text().replace("gpus = 2", "gpus = 3").replace('"big"', '"huge"'))
    res = cli("queue", "run", path,
              env=cli_env(cli.home, GRIDRUN_FAKE_GPUS="24,80", CUDA_VISIBLE_DEVICES="1"), check=1)
    huge = [r for r in cli.runs() if r["sweep"] == "huge"][0]
    assert huge["error"] == "needs 3 GPU(s) but this machine has 1 GPU visible"
    assert "1 failed" in res.stdout


def test_gpu_memory_estimates_pack_runs(cli, tmp_path):
    path = tmp_path / "mem.toml"
    path.write_text(f'name = "mem"\ncommand = [{PY}, {TRAIN}, "--lr", "{{lr}}", "--epochs", "3",'
                    ' "--sleep", "0.2"]\n[grid]\nlr = [0.1, 0.2, 0.3]\n'
                    "[resources]\ngpu_mem_gb = 7\n")
    # one 16 GiB device: 92% of it holds two runs of 7 GiB, not three
    res = cli("queue", "run", path, env=cli_env(cli.home, GRIDRUN_FAKE_GPUS="1x16"), check=0)
    order = events(res.stdout)
    assert [kind for kind, _ in order[:2]] == ["start", "start"], order     # two at once
    assert most_at_once(res.stdout) == 2, order                             # never three
    assert len(order) == 6 and all(r["status"] == "done" for r in cli.runs())


def test_out_of_memory_while_sharing_requeues_the_run_alone(cli, tmp_path):
    path = tmp_path / "oom.toml"
    path.write_text(f'name = "oom"\ncommand = [{PY}, {TRAIN}, "--lr", "{{lr}}", "--epochs", "3",'
                    ' "--sleep", "0.3", "{flag}"]\n[grid]\nlr = [0.1]\nflag = ["--oom-first"]\n'
                    '[[include]]\nlr = 0.2\nflag = "--child"\n')
    env = cli_env(cli.home, GRIDRUN_FAKE_GPUS="1x16")
    res = cli("queue", "run", path, "--slots-per-gpu", "2", env=env, check=0)
    oom, other = cli.runs()
    assert (oom["status"], oom["attempt"]) == ("done", 2)
    assert other["status"] == "done"
    # the retry ran alone: it started after its neighbour had ended
    order = events(res.stdout)
    retry = order.index(("start", "oom#1"), order.index(("requeued", "oom#1")))
    assert ("end", "oom#2") in order[:retry], order
    assert "out of GPU memory while sharing; requeued alone" in (cli.home / "daemon.log").read_text()
    assert "2 runs: 2 done" in res.stdout


def test_a_loss_stuck_at_chance_is_flagged(cli, sweep_file):
    path = sweep_file("stuck", "[grid]\nlr = [0.1]\nseed = [0]\n", script_args="--stuck --epochs 4")
    res = cli("queue", "run", path, check=0)
    (run,) = cli.runs()
    assert run["flags"] == ["not_learning"]
    assert "warning stuck#1 (id 1): not_learning" in res.stdout
    # a learning run is not flagged
    path2 = sweep_file("fine", "[grid]\nlr = [0.1]\nseed = [0]\n", script_args="--epochs 4")
    cli("queue", "run", path2, check=0)
    assert cli.runs("--sweep", "fine")[0]["flags"] == []
