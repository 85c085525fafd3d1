"""The interface for daily use, driven by Textual's Pilot against a real store, real runs and
a real daemon: deleting runs and sweeps (D), the daemon from the interface (S, the command
palette, its slots), what an empty home and a machine without GPU show."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from gridrun.engine.home import daemon_pid
from gridrun.engine.store import Store
from gridrun.tui.app import GridrunApp
from gridrun.tui.screens.confirm import ConfirmScreen
from gridrun.tui.screens.dashboard import DashboardScreen
from gridrun.tui.screens.slots import SlotsScreen
from gridrun.tui.widgets.runs_table import RunsTable
from gridrun.tui.widgets.sweeps_list import SweepsList
from tests.conftest import cli_env, wait_until


def header(app) -> str:
    return str(app.screen.query_one("#header").render())


def notices(app) -> str:
    return "\n".join(str(n.message) + " " + str(n.title) for n in app._notifications)


def cell(table, row_key, column_key) -> str:
    value = table.get_cell(row_key, column_key)
    return value.plain if hasattr(value, "plain") else str(value)


async def palette(pilot, command: str) -> None:
    """ctrl+p, the command's name, enter: as a user runs a command."""
    await pilot.press("ctrl+p")
    await pilot.pause(0.2)
    await pilot.press(*command)
    await pilot.pause(0.5)
    await pilot.press("enter")


async def test_delete_a_run_then_a_live_sweep(cli, sweep_file):
    cli("queue", "run", sweep_file("old", "[grid]\nlr = [0.1, 0.2]\nseed = [0]\n"), check=0)
    live = sweep_file("live", "[grid]\nlr = [0.1, 0.2, 0.3]\nseed = [0]\n",
                      script_args="--epochs 300 --sleep 0.1")
    cli("queue", "add", live, check=0)
    daemon = cli.start("queue", "run", "--watch", env=cli_env(cli.home, GRIDRUN_KILL_GRACE_S="1"))
    store = Store(cli.home)
    old = store.runs(sweep="old")
    try:
        app = GridrunApp(cli.home, start_daemon=False, refresh_s=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            runs = app.screen.query_one(RunsTable)
            sweeps = app.screen.query_one(SweepsList)
            await wait_until(pilot, lambda: runs.row_count == 2, what="old's runs")
            await wait_until(pilot, lambda: store.counts()["running"] == 1, what="a live run")
            # D on a run: asks, saying how many and in which state
            await pilot.press("D")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5,
                             what="the confirmation")
            assert "1 run (1 done)" in app.screen.question
            await pilot.press("n")  # no: nothing happens
            await pilot.pause(0.3)
            assert len(store.runs(sweep="old")) == 2
            await pilot.press("D")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5,
                             what="the confirmation again")
            await pilot.press("y")
            await wait_until(pilot, lambda: runs.row_count == 1, 10, what="the row gone")
            assert [r.id for r in store.runs(sweep="old")] == [old[1].id]
            assert not Path(old[0].run_dir).exists() and Path(old[1].run_dir).exists()
            assert "deleted 1 run(s)" in notices(app)
            # D on the sweeps list: every run of the sweep, the running one cancelled first
            await pilot.press("tab", "down")
            await wait_until(pilot, lambda: runs.row_count == 3, what="live's runs")
            await pilot.press("D")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5,
                             what="the sweep's confirmation")
            question = app.screen.question
            assert "every run of live: 3 runs (2 queued, 1 running)" in question
            assert "cancelled first" in question
            await pilot.press("y")
            await wait_until(pilot, lambda: store.sweep("live") is None, 30,
                             what="the sweep deleted")
            await wait_until(pilot, lambda: [k.value for k in sweeps.rows] == ["old"], 10,
                             what="the sweep gone from the list")
            assert "removed sweep live" in notices(app)
            assert not (cli.home / "live").exists()
            assert daemon.poll() is None  # the daemon goes on
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=30)
    # the same file queues its runs again
    assert "queued 3 runs in sweep live" in cli("queue", "add", live, check=0).stdout


async def test_the_daemon_from_the_interface(cli, sweep_file):
    cli("queue", "add", sweep_file("d", "[grid]\nlr = [0.1, 0.2]\nseed = [0]\n"), check=0)
    app = GridrunApp(cli.home, start_daemon=False, refresh_s=0.2)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: "daemon stopped (S starts it)" in header(app),
                             what="the stopped daemon in the header")
            await pilot.press("S")
            await wait_until(pilot, lambda: "daemon running" in header(app), 20,
                             what="the daemon started by S")
            assert "1 CPU slot" in header(app)
            await wait_until(pilot, lambda: store_counts(cli.home)["done"] == 2, 30,
                             what="the runs done")
            # the palette changes its slots while it runs
            await palette(pilot, "daemon slots")
            await wait_until(pilot, lambda: isinstance(app.screen, SlotsScreen), 5,
                             what="the slots dialog")
            await pilot.press("backspace", "3", "enter")
            await wait_until(pilot, lambda: "3 CPU slots" in header(app), 20,
                             what="3 CPU slots in the header")
            assert json.loads((cli.home / "daemon.json").read_text())["cpu_slots"] == 3
            # stopping it from the palette is announced, with the key that starts it again
            await palette(pilot, "stop daemon")
            await wait_until(pilot, lambda: daemon_pid(cli.home) is None, 20,
                             what="the daemon stopped")
            await wait_until(pilot, lambda: "Press S to start it again" in notices(app), 10,
                             what="the announcement")
            assert "daemon stopped (S starts it)" in header(app)
            # and the palette starts it again
            await palette(pilot, "start daemon")
            await wait_until(pilot, lambda: "daemon running" in header(app), 20,
                             what="the daemon started from the palette")
            assert isinstance(app.screen, DashboardScreen)
    finally:
        cli("queue", "stop", "--now", check=0)


def store_counts(home: Path) -> dict[str, int]:
    return Store(home).counts()


async def test_an_empty_home_says_how_to_start_and_no_gpu_is_one_line(cli):
    app = GridrunApp(cli.home, start_daemon=False, refresh_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        note = app.screen.query_one("#empty-home")
        await wait_until(pilot, lambda: note.display, what="the empty-home note")
        text = str(note.render())
        assert "Press n for a new sweep" in text and "gridrun queue add FILE" in text
        assert not app.screen.query_one(RunsTable).display
        gpus = app.screen.query_one("#gpus")
        assert gpus.region.height == 1 and "CPU only" in str(gpus.render())
        # the header keeps every count at 80 columns
        assert all(f"{glyph}0" in header(app) for glyph in "·▶✓✗⊘")
