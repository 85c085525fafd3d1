"""`gridrun queue rm` and `gridrun queue slots` as a user runs them: real CLI processes, a real
daemon, real runs of the stand-in trainer."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from gridrun.engine.store import SCHEMA_VERSION, Store
from tests.conftest import cli_env, wait_for


def test_rm_deletes_ended_runs_and_folders_and_an_emptied_sweep_can_be_queued_again(
        cli, sweep_file):
    path = sweep_file("gone", "[grid]\nlr = [0.1, 0.2, 0.3]\nseed = [0]\n")
    cli("queue", "run", path, check=0)
    runs = cli.runs()
    folders = [cli.home / "gone" / os.path.basename(r["run_dir"]) for r in runs]
    assert all(f.is_dir() for f in folders)

    out = cli("queue", "rm", str(runs[0]["id"]), check=0).stdout
    assert out.splitlines() == ["deleted 1 run(s) and their folders"]
    assert [r["index"] for r in cli.runs()] == [2, 3]
    assert not folders[0].exists() and folders[1].is_dir()

    out = cli("queue", "rm", "--sweep", "gone", check=0).stdout
    assert "deleted 2 run(s)" in out and "removed sweep gone (no run left)" in out
    assert cli.runs() == [] and not (cli.home / "gone").exists()
    assert "no sweep named" in cli("queue", "ls", "--sweep", "gone", check=2).stderr
    # the same file queues its runs again, from index 1
    assert cli("queue", "add", path, check=0).stdout.strip() == "queued 3 runs in sweep gone"
    assert [(r["index"], r["status"]) for r in cli.runs()] == [(1, "queued"), (2, "queued"),
                                                               (3, "queued")]


def test_rm_refuses_live_runs_unless_forced(cli, sweep_file):
    path = sweep_file("live", "[grid]\nlr = [0.1, 0.2]\nseed = [0]\n",
                      script_args="--epochs 200 --sleep 0.1")
    cli("queue", "add", path, check=0)
    daemon = cli.start("queue", "run", "--watch", env=cli_env(cli.home, GRIDRUN_KILL_GRACE_S="1"))
    try:
        running = wait_for(lambda: [r for r in cli.runs() if r["status"] == "running"], 20,
                           what="a running run")[0]
        res = cli("queue", "rm", "--sweep", "live", check=2)
        assert res.stderr.splitlines()[0].startswith(
            "gridrun: 2 runs (1 queued, 1 running) not ended yet")
        assert "--force" in res.stderr and "Traceback" not in res.stderr
        assert len(cli.runs()) == 2  # nothing deleted
        out = cli("queue", "rm", "--sweep", "live", "--force", check=0).stdout
        assert "deleted 2 run(s)" in out and "removed sweep live" in out
        assert cli.runs() == [] and not os.path.exists(running["run_dir"])
        assert daemon.poll() is None  # the daemon goes on
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=30)


def test_rm_never_deletes_outside_the_home(cli, sweep_file, tmp_path):
    path = sweep_file("safe", "[grid]\nlr = [0.1, 0.2]\nseed = [0]\n")
    cli("queue", "run", path, check=0)
    first, second = cli.runs()
    # a run row pointing outside the home, and a run folder that is a symlink to outside
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    conn = sqlite3.connect(cli.home / "gridrun.db")
    conn.execute("UPDATE runs SET run_dir = ? WHERE id = ?", (str(outside), first["id"]))
    conn.commit()
    conn.close()
    link_target = tmp_path / "elsewhere"
    link_target.mkdir()
    (link_target / "keep.txt").write_text("mine too")
    second_dir = cli.home / "safe" / os.path.basename(second["run_dir"])
    import shutil
    shutil.rmtree(second_dir)
    second_dir.symlink_to(link_target)

    res = cli("queue", "rm", "--sweep", "safe", check=0)
    assert "deleted 2 run(s)" in res.stdout
    assert res.stderr.count("left in place") == 2
    assert (outside / "keep.txt").read_text() == "mine"
    assert (link_target / "keep.txt").read_text() == "mine too"


def test_rm_unknown_ids_and_nothing_named(cli, sweep_file):
    cli("queue", "add", sweep_file("u"), check=0)
    assert "no run with id 99" in cli("queue", "rm", "99", check=2).stderr
    assert "name the runs" in cli("queue", "rm", check=2).stderr


def test_slots_change_the_running_daemon(cli, sweep_file):
    assert "no daemon is running" in cli("queue", "slots", "--cpu", "2", check=2).stderr
    path = sweep_file("par", "[grid]\nlr = [0.1, 0.2, 0.3]\nseed = [0]\n",
                      script_args="--epochs 300 --sleep 0.1")
    cli("queue", "add", path, check=0)
    daemon = cli.start("queue", "run", "--watch", "--cpu-slots", "1",
                       env=cli_env(cli.home, GRIDRUN_KILL_GRACE_S="1"))
    try:
        wait_for(lambda: [r["status"] for r in cli.runs()].count("running") == 1, 20,
                 what="one run on one slot")
        assert "nothing to change" in cli("queue", "slots", check=2).stderr
        out = cli("queue", "slots", "--cpu", "3", "--per-gpu", "2", check=0).stdout
        assert out.startswith("asked daemon ") and "3 CPU slot(s), 2 per GPU" in out
        wait_for(lambda: [r["status"] for r in cli.runs()] == ["running"] * 3, 20,
                 what="three runs on three slots")
        info = json.loads((cli.home / "daemon.json").read_text())
        assert info["cpu_slots"] == 3 and info["slots_per_gpu"] == 2
        status = cli("queue", "status", check=0).stdout
        assert "3 CPU slot(s), 2 per GPU" in status
        cli("queue", "slots", "--per-gpu", "0", check=0)
        wait_for(lambda: json.loads((cli.home / "daemon.json").read_text())["slots_per_gpu"]
                 is None, 20, what="per-GPU count cleared")
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=30)


def test_a_v2_store_gets_the_slots_request(tmp_path):
    """The migration to schema 3 keeps pending requests and accepts the new kind."""
    store = Store(tmp_path / "h")
    store.request("stop")
    assert SCHEMA_VERSION >= 3
    store.request_slots(2, None)
    (first, kind1, _), (second, kind2, _) = store.pending_requests()
    assert (kind1, kind2) == ("stop", "slots")
    assert store.request_data(second) == {"cpu_slots": 2, "slots_per_gpu": None}
    assert store.request_data(first) == {}


@given(st.lists(st.sampled_from(["..", ".", "a", "b", "run", "link", "", "/"]), max_size=6))
@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_removing_a_run_folder_never_reaches_outside_the_home(tmp_path, parts):
    """Whatever a run_dir row says, only a folder two levels inside the home is removed."""
    import shutil

    from gridrun.engine.control import remove_run_folder

    base = tmp_path / "case"
    shutil.rmtree(base, ignore_errors=True)
    home = base / "home"
    (home / "a" / "run").mkdir(parents=True)
    (home / "b").mkdir()
    outside = base / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    (home / "a" / "link").symlink_to(outside)
    (home / "link").symlink_to(outside)
    folder = home.joinpath(*[p for p in parts if p != "/"]) if "/" not in parts[:1] \
        else Path("/").joinpath(*[p for p in parts if p != "/"])
    remove_run_folder(home, folder)
    assert (outside / "keep").read_text() == "x"
    assert home.is_dir() and (home / "a").is_dir() and (home / "b").is_dir()
