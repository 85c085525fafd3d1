"""engine.store: the SQLite queue, on real files in tmp_path (no mocks).

Creation and schema version, corrupt and too-new stores, idempotent adds, ten concurrent
`gridrun queue add` processes, WAL readers and busy writers across processes, the state
changes the CLI and the daemon make, and bad input that must leave the store untouched.
"""
from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from gridrun.engine.errors import GridrunError
from gridrun.engine.matrix import load
from gridrun.engine.store import FINISHED, SCHEMA_VERSION, Progress, Store
from tests.conftest import ROOT, cli_env, write_sweep

TABLES = {"sweeps", "runs", "metrics", "requests"}


def pragma(db: Path, name: str):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


def tables(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


def schema_sql(db: Path) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    finally:
        conn.close()


def spec_of(tmp_path: Path, name: str = "s", body: str = "[grid]\nlr = [0.1, 0.2, 0.3]\nseed = [0, 1]\n"):
    return load(write_sweep(tmp_path, name, body))


def in_thread(fn, timeout: float):
    """Run fn in a thread; (finished in time, result or exception)."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001
            box["value"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    return not t.is_alive(), box.get("value")


def py_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDRUN_")}
    return env


def store_proc(home: Path, code: str) -> subprocess.Popen:
    """Another process using the store through engine.store."""
    prog = "import json, sys, time\nfrom gridrun.engine.store import Store\n" \
           f"store = Store({str(home)!r})\n" + textwrap.dedent(code)
    return subprocess.Popen([sys.executable, "-c", prog], cwd=ROOT, env=py_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# ---------------------------------------------------------------------------------------------
# Creating and opening
# ---------------------------------------------------------------------------------------------


def test_missing_home_is_created_with_an_empty_store(tmp_path):
    home = tmp_path / "a" / "b" / "home"
    store = Store(home)
    db = home / "gridrun.db"
    assert home.is_dir() and db.is_file()
    assert store.path == db
    assert store.sweeps() == []
    assert store.runs() == []
    assert store.counts() == {"queued": 0, "running": 0, "done": 0, "failed": 0, "cancelled": 0}
    store.close()
    assert pragma(db, "user_version") == SCHEMA_VERSION
    assert pragma(db, "journal_mode") == "wal"
    assert TABLES <= tables(db)


def test_reopening_does_not_migrate_or_write(tmp_path):
    home = tmp_path / "home"
    store = Store(home)
    store.add_sweep(spec_of(tmp_path))
    store.close()
    db = home / "gridrun.db"
    before = schema_sql(db)

    # Another connection holds the write lock: a reopen that tried to migrate (or to switch the
    # journal mode) would wait for it. A plain reopen needs no write at all.
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        done, value = in_thread(lambda: Store(home).runs(), timeout=5)
        assert done, "reopening an up-to-date store waited for the write lock"
        assert not isinstance(value, BaseException), value
        assert len(value) == 6
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert schema_sql(db) == before
    assert pragma(db, "user_version") == SCHEMA_VERSION
    assert pragma(db, "journal_mode") == "wal"
    again = Store(home)
    assert [s.name for s in again.sweeps()] == ["s"]
    assert len(again.runs()) == 6


# ---------------------------------------------------------------------------------------------
# Corrupt and too-new stores
# ---------------------------------------------------------------------------------------------


def _random_bytes(home: Path) -> bytes:
    data = random.Random(1234).randbytes(3 * 4096)
    assert not data.startswith(b"SQLite format 3")
    return data


def _text(home: Path) -> bytes:
    return b"these are my notes, not a database\nline two\n"


def _corrupt_pages(home: Path) -> bytes:
    """A real store whose header is intact but whose table pages are garbage."""
    Store(home).close()
    db = home / "gridrun.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    for side in ("gridrun.db-wal", "gridrun.db-shm"):
        (home / side).unlink(missing_ok=True)
    data = bytearray(db.read_bytes())
    assert len(data) > page
    data[page:] = random.Random(99).randbytes(len(data) - page)
    return bytes(data)


CORRUPT = {"random-bytes": _random_bytes, "text-file": _text}


@pytest.mark.parametrize("make", CORRUPT.values(), ids=CORRUPT.keys())
def test_corrupt_store_is_an_error_that_names_the_file_and_leaves_it(tmp_path, make):
    home = tmp_path / "home"
    home.mkdir()
    db = home / "gridrun.db"
    data = make(home)
    db.write_bytes(data)
    with pytest.raises(GridrunError) as info:
        Store(home)
    assert info.value.path == str(db)
    assert str(db) in str(info.value)
    assert info.value.exit_code == 2
    assert info.value.hint
    assert db.read_bytes() == data
    assert sorted(os.listdir(home)) == ["gridrun.db"]


@pytest.mark.parametrize("make", CORRUPT.values(), ids=CORRUPT.keys())
def test_corrupt_store_through_the_cli(cli, home, make):
    home.mkdir()
    db = home / "gridrun.db"
    data = make(home)
    db.write_bytes(data)
    res = cli("queue", "ls")
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 2, res.stderr
    assert lines[0].startswith(f"gridrun: {db}: "), lines[0]
    assert lines[1].startswith("hint: "), lines[1]
    assert "Traceback" not in res.stderr
    assert db.read_bytes() == data


def test_store_with_corrupt_pages_through_the_cli(cli, home):
    home.mkdir()
    data = _corrupt_pages(home)
    db = home / "gridrun.db"
    db.write_bytes(data)
    res = cli("queue", "ls")
    assert db.read_bytes() == data
    assert "Traceback" not in res.stderr
    lines = res.stderr.splitlines()
    assert res.returncode == 2, res.stderr
    assert len(lines) == 2 and lines[0].startswith(f"gridrun: {db}: "), res.stderr
    assert lines[1].startswith("hint: ")


def _newer_store(home: Path) -> Path:
    home.mkdir(parents=True)
    db = home / "gridrun.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE future (x INTEGER)")
    conn.execute("INSERT INTO future VALUES (42)")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    return db


def test_newer_schema_version_is_refused(tmp_path):
    home = tmp_path / "home"
    db = _newer_store(home)
    with pytest.raises(GridrunError) as info:
        Store(home)
    err = info.value
    assert err.path == str(db)
    assert f"version {SCHEMA_VERSION + 1}" in err.message
    assert "newer" in err.message
    assert err.hint == "upgrade gridrun"
    # nothing was migrated into it
    assert pragma(db, "user_version") == SCHEMA_VERSION + 1
    assert tables(db) == {"future"}


def test_newer_schema_version_through_the_cli(cli, home):
    db = _newer_store(home)
    res = cli("queue", "status")
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.splitlines()
    assert len(lines) == 2, res.stderr
    assert lines[0].startswith(f"gridrun: {db}: store schema version {SCHEMA_VERSION + 1}")
    assert lines[1] == "hint: upgrade gridrun"
    assert tables(db) == {"future"}


# ---------------------------------------------------------------------------------------------
# add_sweep
# ---------------------------------------------------------------------------------------------

BODY = 'metric = "val_acc"\nmode = "min"\n[params]\nepochs = 2\n[grid]\nlr = [0.1, 0.2, 0.3]\nseed = [0, 1]\n'
EXPECTED = [(0.1, 0), (0.1, 1), (0.2, 0), (0.2, 1), (0.3, 0), (0.3, 1)]


def test_add_sweep_stores_every_run_once(tmp_path):
    home = tmp_path / "home"
    store = Store(home)
    spec = load(write_sweep(tmp_path, "opt", BODY))
    result = store.add_sweep(spec)
    assert (result.sweep, result.added, result.existing) == ("opt", 6, 0)
    runs = store.runs()
    assert result.new_run_ids == [r.id for r in runs]
    assert [r.index for r in runs] == [1, 2, 3, 4, 5, 6]
    assert [(r.params["lr"], r.params["seed"]) for r in runs] == EXPECTED
    assert all(r.params == {"epochs": 2, "lr": lr, "seed": seed}
               for r, (lr, seed) in zip(runs, EXPECTED))
    assert [r.run_dir for r in runs] == [
        str(home / "opt" / f"{i:04d}-lr={lr}_seed={seed}") for i, (lr, seed) in enumerate(EXPECTED, 1)]
    assert all(r.sweep == "opt" and r.status == "queued" and r.attempt == 1 and r.stage == 1
               and r.device is None and r.started is None and r.ended is None
               and r.exit_code is None and r.error is None and r.flags == []
               and r.last_metrics == {} for r in runs)
    assert store.counts()["queued"] == 6

    sweep = store.require_sweep("opt")
    assert sweep.metric == "val_acc"
    assert sweep.mode == "min"
    assert sweep.varying == ["lr", "seed"]
    assert sweep.spec["source"] == str((tmp_path / "opt.toml").resolve())
    assert sweep.spec["command"][0] == sys.executable
    assert [c.total for c in store.sweep_counts()] == [6]


def test_adding_the_same_spec_again_adds_nothing(tmp_path):
    store = Store(tmp_path / "home")
    path = write_sweep(tmp_path, "opt", BODY)
    store.add_sweep(load(path))
    before = store.runs()
    again = store.add_sweep(load(path))
    assert (again.added, again.existing, again.new_run_ids) == (0, 6, [])
    assert store.runs() == before
    assert len(store.sweeps()) == 1


def test_adding_an_edited_file_adds_only_the_new_points(tmp_path):
    home = tmp_path / "home"
    store = Store(home)
    path = write_sweep(tmp_path, "opt", BODY)
    store.add_sweep(load(path))
    before = store.runs()
    write_sweep(tmp_path, "opt", BODY.replace("[0.1, 0.2, 0.3]", "[0.1, 0.2, 0.3, 0.4]"))
    result = store.add_sweep(load(path))
    assert (result.added, result.existing) == (2, 6)
    after = store.runs()
    assert after[:6] == before
    new = after[6:]
    assert [r.id for r in new] == result.new_run_ids
    assert [r.index for r in new] == [7, 8]
    assert [r.params for r in new] == [{"epochs": 2, "lr": 0.4, "seed": 0},
                                       {"epochs": 2, "lr": 0.4, "seed": 1}]
    assert [r.run_dir for r in new] == [str(home / "opt" / "0007-lr=0.4_seed=0"),
                                        str(home / "opt" / "0008-lr=0.4_seed=1")]
    assert len({r.run_dir for r in after}) == 8


def test_an_edit_that_makes_a_key_vary_keeps_the_union_of_varying_keys(tmp_path):
    home = tmp_path / "home"
    store = Store(home)
    path = write_sweep(tmp_path, "v", "[grid]\nlr = [0.1, 0.2]\nseed = [0]\n")
    store.add_sweep(load(path))
    assert store.require_sweep("v").varying == ["lr"]
    write_sweep(tmp_path, "v", "[grid]\nlr = [0.1]\nseed = [0, 1]\n")
    result = store.add_sweep(load(path))
    assert (result.added, result.existing) == (1, 1)
    assert store.require_sweep("v").varying == ["lr", "seed"]
    assert [r.run_dir for r in store.runs()] == [
        str(home / "v" / "0001-lr=0.1"), str(home / "v" / "0002-lr=0.2"),
        str(home / "v" / "0003-lr=0.1_seed=1")]


def test_two_sweeps_number_their_runs_separately(tmp_path):
    store = Store(tmp_path / "home")
    store.add_sweep(spec_of(tmp_path, "a"))
    store.add_sweep(spec_of(tmp_path, "b"))
    assert [s.name for s in store.sweeps()] == ["a", "b"]
    assert [r.index for r in store.runs(sweep="a")] == [1, 2, 3, 4, 5, 6]
    assert [r.index for r in store.runs(sweep="b")] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(GridrunError, match='no sweep named "c"'):
        store.require_sweep("c")


# ---------------------------------------------------------------------------------------------
# Concurrent adds: ten `gridrun queue add` processes on one fresh home
# ---------------------------------------------------------------------------------------------


def _run_all(cli, home: Path, files: list[Path]) -> list[tuple[int, str, str]]:
    env = cli_env(home)
    procs = [subprocess.Popen(cli.argv("queue", "add", f), cwd=cli.cwd, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for f in files]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=60)
        out.append((p.returncode, stdout, stderr))
    return out


def _check_unique(db: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        dupes = conn.execute("SELECT sweep_id, params, COUNT(*) FROM runs GROUP BY sweep_id, params "
                             "HAVING COUNT(*) > 1").fetchall()
        assert dupes == []
        for sweep_id, n, lo, hi, distinct in conn.execute(
                "SELECT sweep_id, COUNT(*), MIN(idx), MAX(idx), COUNT(DISTINCT idx) FROM runs "
                "GROUP BY sweep_id"):
            assert (lo, hi, distinct) == (1, n, n), sweep_id
    finally:
        conn.close()


def test_ten_concurrent_adds_of_one_file_store_each_run_once(cli, home, tmp_path):
    path = write_sweep(tmp_path, "race", "[grid]\nlr = [0.1, 0.2, 0.3, 0.4]\nseed = [0, 1, 2, 3, 4]\n")
    results = _run_all(cli, home, [path] * 10)
    assert [code for code, _, _ in results] == [0] * 10, results
    assert all(err == "" for _, _, err in results), results
    outs = sorted(out.strip() for _, out, _ in results)
    assert outs == ["queued 0 runs in sweep race (20 already queued)"] * 9 + \
        ["queued 20 runs in sweep race"], outs
    store = Store(home)
    assert [s.name for s in store.sweeps()] == ["race"]
    runs = store.runs()
    assert len(runs) == 20
    assert sorted(r.index for r in runs) == list(range(1, 21))
    assert len({json.dumps(r.params, sort_keys=True) for r in runs}) == 20
    _check_unique(home / "gridrun.db")


def test_ten_concurrent_adds_of_different_files(cli, home, tmp_path):
    files = [write_sweep(tmp_path, f"s{i}", "[grid]\nlr = [0.1, 0.2, 0.3]\nseed = [0, 1]\n")
             for i in range(10)]
    results = _run_all(cli, home, files)
    assert [code for code, _, _ in results] == [0] * 10, results
    assert [out.strip() for _, out, _ in results] == [f"queued 6 runs in sweep s{i}"
                                                     for i in range(10)]
    store = Store(home)
    assert sorted(s.name for s in store.sweeps()) == [f"s{i}" for i in range(10)]
    assert store.counts()["queued"] == 60
    for i in range(10):
        runs = store.runs(sweep=f"s{i}")
        assert [r.index for r in runs] == [1, 2, 3, 4, 5, 6]
        assert [(r.params["lr"], r.params["seed"]) for r in runs] == EXPECTED
    _check_unique(home / "gridrun.db")


# ---------------------------------------------------------------------------------------------
# Readers and writers in other processes while one connection writes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("begin", ["IMMEDIATE", "EXCLUSIVE"])
def test_reader_in_another_process_is_not_blocked_by_a_writer(tmp_path, begin):
    """EXCLUSIVE would lock readers out of a rollback-journal store; in WAL it is IMMEDIATE."""
    home = tmp_path / "home"
    store = Store(home)
    store.add_sweep(spec_of(tmp_path))
    holder = sqlite3.connect(home / "gridrun.db", isolation_level=None)
    holder.execute(f"BEGIN {begin}")
    holder.execute("UPDATE runs SET status = 'failed'")  # not committed
    try:
        reader = store_proc(home, """
            print(json.dumps([store.counts(), [r.status for r in store.runs()], len(store.sweeps())]))
        """)
        out, err = reader.communicate(timeout=30)
        # a blocked reader fails with "database is locked" once the busy timeout is spent
        assert reader.returncode == 0, err
        counts, statuses, n_sweeps = json.loads(out)
        # WAL: the reader sees the last committed state, at once
        assert counts["queued"] == 6 and counts["failed"] == 0
        assert statuses == ["queued"] * 6
        assert n_sweeps == 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_second_writer_waits_for_the_lock_then_succeeds(tmp_path):
    home = tmp_path / "home"
    store = Store(home)
    store.add_sweep(spec_of(tmp_path))
    first = store.runs()[0].id
    holder = sqlite3.connect(home / "gridrun.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE runs SET priority = 7")
    writer = store_proc(home, f"""
        t0 = time.monotonic()
        print("ready", flush=True)
        print(json.dumps([store.cancel([{first}]), time.monotonic() - t0]), flush=True)
    """)
    try:
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        assert writer.poll() is None, writer.communicate()  # still waiting for the lock
    finally:
        holder.execute("COMMIT")
        holder.close()
    out, err = writer.communicate(timeout=30)
    assert writer.returncode == 0, err
    (cancelled, requested), waited = json.loads(out)
    assert (cancelled, requested) == ([first], [])
    assert waited >= 0.95
    after = Store(home).runs()
    assert after[0].status == "cancelled"
    assert [r.status for r in after[1:]] == ["queued"] * 5
    assert {r.priority for r in after} == {7}  # the first writer's commit was kept


# ---------------------------------------------------------------------------------------------
# State changes
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def six(tmp_path):
    """A store with one sweep of six queued runs: (store, [run ids])."""
    store = Store(tmp_path / "home")
    result = store.add_sweep(spec_of(tmp_path))
    return store, result.new_run_ids


def test_cancel_queued_running_and_finished_runs(six):
    store, ids = six
    q, running, done, failed, cancelled, q2 = ids
    assert store.mark_running(running, "cpu0", 4242, "start-1")
    for rid, status in ((done, "done"), (failed, "failed")):
        assert store.mark_running(rid, "cpu0", 1, None)
        store.finish(rid, status, 0 if status == "done" else 1, None if status == "done" else "boom")
    store.cancel([cancelled])
    ended_before = {r.id: r.ended for r in store.runs()}

    now, requested = store.cancel([q, running, done, failed, cancelled, 99999])
    assert now == [q]
    assert requested == [running]
    by_id = {r.id: r for r in store.runs()}
    assert by_id[q].status == "cancelled"
    assert by_id[q].ended is not None
    assert by_id[q].error == "cancelled before it started"
    assert by_id[running].status == "running" and by_id[running].pid == 4242
    assert by_id[done].status == "done" and by_id[done].ended == ended_before[done]
    assert by_id[failed].status == "failed" and by_id[failed].error == "boom"
    assert by_id[failed].ended == ended_before[failed]
    assert by_id[cancelled].ended == ended_before[cancelled]
    assert by_id[q2].status == "queued"
    pending = store.pending_requests()
    assert [(kind, run_id) for _, kind, run_id in pending] == [("cancel", running)]
    store.finish_requests([pending[0][0]])
    assert store.pending_requests() == []


def test_retry_failed_and_cancelled_only(six):
    store, ids = six
    failed, cancelled, done, running, queued, _ = ids
    for rid, status in ((failed, "failed"), (done, "done")):
        assert store.mark_running(rid, "cuda:0", 10, None)
        store.finish(rid, status, 3 if status == "failed" else 0, "boom" if status == "failed" else None)
    store.cancel([cancelled])
    assert store.mark_running(running, "cpu0", 11, None)
    before = {r.id: r for r in store.runs()}

    assert store.retry([failed, cancelled, done, running, queued]) == [failed, cancelled]
    after = {r.id: r for r in store.runs()}
    for rid in (failed, cancelled):
        r = after[rid]
        assert (r.status, r.attempt) == ("queued", 2)
        assert (r.exit_code, r.error, r.ended, r.started, r.device, r.pid) == (None,) * 6
    for rid in (done, running, queued):
        assert after[rid] == before[rid]
    assert store.retry([failed]) == []  # now queued: nothing to retry
    assert store.run(failed).attempt == 2


def test_mark_running_and_finish(six):
    store, ids = six
    rid = ids[0]
    assert store.mark_running(rid, "cuda:1", 1234, "t0")
    r = store.run(rid)
    assert (r.status, r.device, r.pid, r.pid_start) == ("running", "cuda:1", 1234, "t0")
    assert r.started is not None and r.ended is None
    assert store.mark_running(rid, "cuda:0", 1, None) is False  # already running
    assert store.run(rid).device == "cuda:1"

    store.finish(rid, "failed", 3, "Traceback: boom")
    r = store.run(rid)
    assert (r.status, r.exit_code, r.error, r.pid) == ("failed", 3, "Traceback: boom", None)
    assert r.ended is not None and r.ended >= r.started
    assert store.mark_running(rid, "cuda:0", 1, None) is False
    assert store.run(rid).status == "failed"

    store.cancel([ids[1]])
    assert store.mark_running(ids[1], "cpu0", 5, None) is False
    assert store.run(ids[1]).status == "cancelled"
    with pytest.raises(AssertionError):
        store.finish(ids[2], "queued", None, None)
    assert store.run(ids[2]).status == "queued"
    assert set(FINISHED) == {"done", "failed", "cancelled"}


def test_requeue(six):
    store, ids = six
    rid = ids[0]
    assert store.mark_running(rid, "cuda:0", 77, "t")
    store.requeue(rid, error="daemon died")
    r = store.run(rid)
    assert (r.status, r.attempt, r.pid, r.device, r.ended, r.exit_code, r.error, r.exclusive) == \
        ("queued", 2, None, None, None, None, "daemon died", False)
    assert r.retries_left == 0

    assert store.mark_running(rid, "cuda:0", 78, "t")
    store.requeue(rid, exclusive=True, use_retry=True)
    r = store.run(rid)
    assert (r.status, r.attempt, r.exclusive, r.retries_left, r.error) == \
        ("queued", 3, True, -1, None)
    assert store.mark_running(rid, "cuda:0", 79, "t")
    store.requeue(rid)  # exclusive=None keeps the flag
    assert store.run(rid).exclusive is True
    assert store.run(rid).attempt == 4


def test_requeued_run_has_no_start_time(six):
    store, ids = six
    assert store.mark_running(ids[0], "cpu0", 1, None)
    store.requeue(ids[0], error="interrupted: its daemon stopped")
    r = store.run(ids[0])
    assert r.status == "queued"
    assert (r.started, r.ended) == (None, None)


def test_requeue_uses_the_sweeps_retries(tmp_path):
    store = Store(tmp_path / "home")
    body = "[grid]\nlr = [0.1]\nseed = [0]\n[resources]\nretries = 2\npriority = 5\n"
    rid = store.add_sweep(load(write_sweep(tmp_path, "r", body))).new_run_ids[0]
    r = store.run(rid)
    assert (r.retries_left, r.priority) == (2, 5)
    assert store.mark_running(rid, "cpu0", 1, None)
    store.requeue(rid, use_retry=True, error="exit 1")
    assert store.run(rid).retries_left == 1


def test_queued_order_is_priority_then_sweep_age_then_index(tmp_path):
    store = Store(tmp_path / "home")
    store.add_sweep(load(write_sweep(tmp_path, "low", "[grid]\nlr = [0.1, 0.2]\nseed = [0]\n")))
    store.add_sweep(load(write_sweep(
        tmp_path, "high", "[grid]\nlr = [0.1, 0.2]\nseed = [0]\n[resources]\npriority = 3\n")))
    store.add_sweep(load(write_sweep(tmp_path, "mid", "[grid]\nlr = [0.1, 0.2]\nseed = [0]\n")))
    order = [(r.sweep, r.index) for r in store.queued()]
    assert order == [("high", 1), ("high", 2), ("low", 1), ("low", 2), ("mid", 1), ("mid", 2)]
    store.cancel([store.runs(sweep="high")[0].id])
    assert [(r.sweep, r.index) for r in store.queued()][0] == ("high", 2)


def _progress(rid, source, rows, **kw):
    last = {k: v for row in rows for k, v in row.items()}
    return Progress(rid, source, rows, last, set(last), set(kw.pop("flags", ())), **kw)


def test_save_progress_appends_in_order_and_replace_source_drops_stdout_rows(six):
    store, ids = six
    a, b = ids[:2]
    store.save_progress([])  # nothing to do is fine
    store.save_progress([_progress(a, "report", [{"epoch": 1, "loss": 0.9}, {"epoch": 2, "loss": 0.7}]),
                         _progress(b, "stdout", [{"epoch": 1, "acc": 0.5}])])
    store.save_progress([_progress(a, "stdout", [{"step": 10}, {"step": 20}], peak_mem_mb=512.0)])
    store.save_progress([_progress(a, "report", [{"epoch": 3, "loss": 0.5}], flags={"diverged", "copy"})])
    assert store.metrics(a) == [{"epoch": 1, "loss": 0.9}, {"epoch": 2, "loss": 0.7},
                                {"step": 10}, {"step": 20}, {"epoch": 3, "loss": 0.5}]
    assert store.metrics(b) == [{"epoch": 1, "acc": 0.5}]
    r = store.run(a)
    assert r.last_metrics == {"epoch": 3, "loss": 0.5}
    assert r.metric_names == ["epoch", "loss"]
    assert r.flags == ["copy", "diverged"]
    assert r.peak_mem_mb == 512.0  # kept: the later update gave None

    # the stdout parse is redone from the start: earlier stdout rows go, report rows stay
    store.save_progress([_progress(a, "stdout", [{"step": 30}], replace_source="stdout")])
    assert store.metrics(a) == [{"epoch": 1, "loss": 0.9}, {"epoch": 2, "loss": 0.7},
                                {"epoch": 3, "loss": 0.5}, {"step": 30}]
    assert store.metrics(b) == [{"epoch": 1, "acc": 0.5}]

    store.reset_metrics(a)
    assert store.metrics(a) == []
    assert (store.run(a).last_metrics, store.run(a).metric_names) == ({}, [])


def test_save_progress_is_one_transaction(six):
    """A bad update (rows of a run that does not exist) rolls back the whole tick."""
    store, ids = six
    a, b = ids[:2]
    with pytest.raises(Exception):
        store.save_progress([_progress(a, "report", [{"epoch": 1}]),
                             _progress(max(ids) + 1000, "report", [{"loss": 0.5}])])
    assert store.metrics(a) == [] and store.metrics(b) == []
    assert store.run(a).last_metrics == {}
    store.save_progress([_progress(a, "report", [{"epoch": 1}])])  # the store still works
    assert store.metrics(a) == [{"epoch": 1}]


def test_save_progress_stores_nonfinite_values_anywhere_as_null_and_flags_the_run(six):
    store, ids = six
    a = ids[0]
    row = {"epoch": 1, "loss": float("nan"), "per_class": [float("inf"), 0.5],
           "d": {"x": [float("-inf")]}, "note": "bad \ud800 text"}
    store.save_progress([_progress(a, "report", [row])])
    assert store.metrics(a) == [{"epoch": 1, "loss": None, "per_class": [None, 0.5],
                                 "d": {"x": [None]}, "note": "bad \ufffd text"}]
    run = store.run(a)
    assert run.last_metrics["loss"] is None and "diverged" in run.flags


def _big(tmp_path: Path, n: int = 1200):
    store = Store(tmp_path / "home")
    lrs = ", ".join(str(i) for i in range(1, n + 1))
    result = store.add_sweep(load(write_sweep(tmp_path, "big", f"[grid]\nlr = [{lrs}]\nseed = [0]\n")))
    return store, result.new_run_ids


def _old_sqlite_limit(store: Store) -> None:
    """What SQLite builds before 3.32 allow (999 `?` per statement; still common on clusters)."""
    store._conn().setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)


def test_metrics_for_many_ids_chunks(tmp_path):
    store, ids = _big(tmp_path)
    assert len(ids) == 1200
    with_metrics = ids[:1100]
    store.save_progress([_progress(rid, "report", [{"epoch": 1, "id": rid}, {"epoch": 2, "id": rid}])
                         for rid in with_metrics])
    _old_sqlite_limit(store)
    out = store.metrics_for(ids)
    assert list(out) == ids
    assert all(out[rid] == [{"epoch": 1, "id": rid}, {"epoch": 2, "id": rid}] for rid in with_metrics)
    assert all(out[rid] == [] for rid in ids[1100:])
    assert store.metrics_for([]) == {}
    assert store.metrics_for([ids[700], ids[3]]) == {ids[700]: [{"epoch": 1, "id": ids[700]},
                                                                {"epoch": 2, "id": ids[700]}],
                                                     ids[3]: [{"epoch": 1, "id": ids[3]},
                                                              {"epoch": 2, "id": ids[3]}]}


def test_runs_by_many_ids_on_an_old_sqlite_limit(tmp_path):
    store, ids = _big(tmp_path)
    _old_sqlite_limit(store)
    assert [r.id for r in store.runs(ids=ids)] == ids


def test_runs_filters(six):
    store, ids = six
    store.cancel(ids[:2])
    assert [r.id for r in store.runs(status="cancelled")] == ids[:2]
    assert [r.id for r in store.runs(status=("cancelled", "queued"))] == ids
    assert [r.id for r in store.runs(sweep="s", ids=[ids[5], ids[0]])] == [ids[0], ids[5]]
    assert store.runs(sweep="nope") == []
    assert store.run(99999) is None
    assert store.counts() == {"queued": 4, "running": 0, "done": 0, "failed": 0, "cancelled": 2}


# ---------------------------------------------------------------------------------------------
# Run.to_json: what `queue ls --json` promises
# ---------------------------------------------------------------------------------------------

LS_KEYS = {"id", "sweep", "index", "status", "device", "attempt", "params", "metrics", "started",
           "ended", "exit_code", "error", "flags"}


def test_run_to_json_has_the_stable_keys(six):
    store, ids = six
    rid = ids[0]
    assert store.mark_running(rid, "cuda:0", 9, None)
    store.save_progress([_progress(rid, "report", [{"epoch": 2, "val_acc": 0.9}], flags={"diverged"})])
    store.finish(rid, "failed", 1, "oops")
    r = store.run(rid)
    data = json.loads(json.dumps(r.to_json()))
    assert LS_KEYS <= set(data)
    assert {k: data[k] for k in LS_KEYS - {"started", "ended"}} == {
        "id": rid, "sweep": "s", "index": 1, "status": "failed", "device": "cuda:0", "attempt": 1,
        "params": {"lr": 0.1, "seed": 0}, "metrics": {"epoch": 2, "val_acc": 0.9},
        "exit_code": 1, "error": "oops", "flags": ["diverged"]}
    assert isinstance(data["started"], float) and isinstance(data["ended"], float)
    assert data["started"] <= data["ended"]
    fresh = json.loads(json.dumps(store.run(ids[1]).to_json()))
    assert (fresh["status"], fresh["device"], fresh["started"], fresh["ended"], fresh["exit_code"],
            fresh["error"], fresh["metrics"], fresh["flags"]) == \
        ("queued", None, None, None, None, None, {}, [])


def test_ls_json_matches_to_json(cli, home, sweep_file):
    path = sweep_file("j", "[grid]\nlr = [0.1, 0.2]\nseed = [0]\n")
    cli("queue", "add", path, check=0)
    store = Store(home)
    store.cancel([store.runs()[1].id])
    listed = cli.runs()
    # plus what only a look across runs can tell: a run whose metrics equal another's
    assert listed == [{**json.loads(json.dumps(r.to_json())), "same_metrics_as": None}
                      for r in store.runs()]
    assert all(LS_KEYS <= set(item) for item in listed)
    assert [(i["index"], i["status"], i["params"]) for i in listed] == [
        (1, "queued", {"lr": 0.1, "seed": 0}), (2, "cancelled", {"lr": 0.2, "seed": 0})]


# ---------------------------------------------------------------------------------------------
# Bad input changes nothing
# ---------------------------------------------------------------------------------------------

# (body after `name` and `command`, the line the error must point at, words in the message)
BAD = {
    "bad-toml": ("[grid]\nlr = [0.1 0.2]\nseed = [0]\n", 4, "invalid TOML"),
    "unknown-key": ('descriptoin = "x"\n[grid]\nlr = [0.1]\nseed = [0]\n', 3, 'unknown key "descriptoin"'),
    "zip-lengths": ("[zip]\nlr = [0.1, 0.2]\nseed = [0, 1, 2]\n", 5, "unequal lengths"),
    "grid-not-list": ("[grid]\nlr = 0.1\nseed = [0]\n", 4, 'grid value "lr" must be a list'),
    "template": ("[grid]\nlr = [0.1]\n", 2, 'command uses "{seed}"'),
}


def _check_one_error(res, path: Path, line: int, words: str) -> None:
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert res.stdout == ""
    assert "Traceback" not in res.stderr
    lines = res.stderr.splitlines()
    assert 1 <= len(lines) <= 2, res.stderr
    assert lines[0].startswith(f"gridrun: {path}:{line}:"), lines[0]
    assert words in lines[0], lines[0]
    if len(lines) == 2:
        assert lines[1].startswith("hint: "), lines[1]


@pytest.mark.parametrize("case", BAD.keys())
def test_bad_file_exits_2_and_creates_no_store(cli, home, tmp_path, case):
    body, line, words = BAD[case]
    path = write_sweep(tmp_path, "bad", body)
    _check_one_error(cli("queue", "add", path), path, line, words)
    assert not (home / "gridrun.db").exists()


def test_bad_file_next_to_good_ones_changes_an_existing_store_not_at_all(cli, home, tmp_path):
    good = write_sweep(tmp_path, "good", "[grid]\nlr = [0.1, 0.2]\nseed = [0]\n")
    cli("queue", "add", good, check=0)
    db = home / "gridrun.db"
    before = [r.to_json() for r in Store(home).runs()]

    other = write_sweep(tmp_path, "other", "[grid]\nlr = [0.5]\nseed = [0]\n")
    body, line, words = BAD["zip-lengths"]
    bad = write_sweep(tmp_path, "bad", body)
    _check_one_error(cli("queue", "add", other, bad), bad, line, words)
    # an edit of the good file that breaks it: its sweep is not touched either
    write_sweep(tmp_path, "good", BAD["unknown-key"][0])
    _check_one_error(cli("queue", "add", good), good, 3, 'unknown key "descriptoin"')

    store = Store(home)
    assert [s.name for s in store.sweeps()] == ["good"]
    assert [r.to_json() for r in store.runs()] == before
    assert pragma(db, "user_version") == SCHEMA_VERSION


def test_a_version_1_store_is_migrated_and_keeps_its_runs(tmp_path):
    """tests/data/store_v1.db was written by the first schema (the quickstart sweep, run)."""
    import shutil
    import sqlite3

    from gridrun.engine.store import SCHEMA_VERSION

    home = tmp_path / "old"
    home.mkdir()
    shutil.copy(Path(__file__).parent / "data" / "store_v1.db", home / "gridrun.db")
    store = Store(home)
    conn = sqlite3.connect(home / "gridrun.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 2
    runs = store.runs(sweep="quickstart")
    assert [r.status for r in runs] == ["done"] * 6
    assert len(store.metrics(runs[0].id)) == 4
    # the change counter works on migrated runs: each change gives a larger version
    start = store.change_counter()
    assert start >= 6 and sorted(r.version for r in runs) == list(range(1, 7))
    store.retry([runs[0].id])  # done runs are not retried: nothing changes
    assert store.change_counter() == start
    store.cancel([runs[1].id])
    assert store.runs_changed_since(start) == []
    store.requeue(runs[2].id)
    changed = store.runs_changed_since(start)
    assert [r.id for r in changed] == [runs[2].id] and changed[0].version > start


def test_change_counter_tracks_inserts_and_updates(tmp_path):
    home = tmp_path / "h"
    path = tmp_path / "c.toml"
    path.write_text('name = "c"\ncommand = ["python3"]\n[grid]\nx = [1, 2, 3]\n')
    store = Store(home)
    assert store.change_counter() == 0
    store.add_sweep(load(path))
    v = store.change_counter()
    assert v == 3 and [r.version for r in store.runs()] == [1, 2, 3]
    first = store.runs()[0]
    store.mark_running(first.id, "cpu", 1, None)
    assert [r.id for r in store.runs_changed_since(v)] == [first.id]
    assert store.metrics_after(first.id, 0) == []
