"""The dashboard driven by Textual's Pilot against a real store filled by real short runs,
and a real daemon for the live parts."""
from __future__ import annotations

import os
import signal
import time

from gridrun.engine.home import daemon_pid
from gridrun.engine.store import Store
from tests.conftest import cli_env, wait_until
from gridrun.tui.app import GridrunApp
from gridrun.tui.screens.confirm import ConfirmScreen
from gridrun.tui.screens.dashboard import DashboardScreen
from gridrun.tui.screens.help import HelpScreen
from gridrun.tui.widgets.runs_table import RunsTable
from gridrun.tui.widgets.sweeps_list import SweepsList


def cell(table, row_key, column_key) -> str:
    value = table.get_cell(row_key, column_key)
    return value.plain if hasattr(value, "plain") else str(value)


async def test_dashboard_shows_sweeps_and_the_runs_of_the_selected_one(cli, sweep_file):
    cli("queue", "run", sweep_file("alpha", "seeds = [0, 1]\n[grid]\nlr = [0.1, 0.5]\n"),
        "--cpu-slots", "2", check=0)
    cli("queue", "add", sweep_file("beta", "[grid]\nlr = [0.2, 0.4]\nseed = [0]\n"), check=0)
    app = GridrunApp(cli.home, start_daemon=False, refresh_s=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        runs = app.screen.query_one(RunsTable)
        await wait_until(pilot, lambda: runs.row_count == 4, what="alpha's runs")
        sweeps = app.screen.query_one(SweepsList)
        assert cell(sweeps, "alpha", "done") == "████████ 4/4"
        assert cell(sweeps, "beta", "done") == "░░░░░░░░ 0/2"
        # accuracy at epoch 3 of fake_train: min(99, 50 + 30 * (1 + lr)) - 0.1 * seed
        assert cell(sweeps, "alpha", "best") == "95 accuracy"
        first = str(Store(cli.home).runs(sweep="alpha")[0].id)
        assert cell(runs, first, "status") == "✓ done"
        assert cell(runs, first, "p:lr") == "0.1" and cell(runs, first, "p:seed") == "0"
        assert cell(runs, first, "epoch").endswith("3/3")
        assert cell(runs, first, "latest") == "83" and len(cell(runs, first, "curve")) == 3
        header = str(app.screen.query_one("#header").render())
        assert "daemon stopped" in header and "CPU only" in header
        # tab to the sweeps, down to beta: the runs table follows
        await pilot.press("tab", "down")
        await wait_until(pilot, lambda: runs.row_count == 2, what="beta's runs")
        # only what varies in beta gets a column (seed is the same in both)
        assert [c.label.plain for c in runs.columns.values()][:4] == ["#▲", "status", "lr",
                                                                      "device"]


async def test_live_updates_keep_the_cursor_and_cancel_retry(cli, sweep_file):
    path = sweep_file("live", "[grid]\nlr = [0.1, 0.2, 0.3]\nseed = [0]\n",
                      script_args="--epochs 40 --sleep 0.15")
    cli("queue", "add", path, check=0)
    daemon = cli.start("queue", "run", "--cpu-slots", "2", env=cli_env(cli.home))
    store = Store(cli.home)
    try:
        app = GridrunApp(cli.home, start_daemon=False, refresh_s=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            runs = app.screen.query_one(RunsTable)
            ids = [str(r.id) for r in store.runs()]
            await wait_until(pilot, lambda: runs.row_count == 3 and
                             cell(runs, ids[1], "status") == "▶ running", what="run 2 running")
            await pilot.press("down")  # the cursor on run 2
            assert runs.selected_run_id == int(ids[1])
            before = cell(runs, ids[1], "epoch")
            await wait_until(pilot, lambda: cell(runs, ids[1], "epoch") != before, 10,
                             what="a new epoch on screen")
            assert runs.selected_run_id == int(ids[1])  # updates did not move the cursor
            assert "running" in str(app.screen.query_one("#header").render())
            await pilot.press("c")   # a running run: asks first
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5,
                             what="the question")
            await pilot.press("y")
            await wait_until(pilot, lambda: store.run(int(ids[1])).status == "cancelled", 15,
                             what="the run to be cancelled")
            await wait_until(pilot, lambda: cell(runs, ids[1], "status") == "⊘ cancelled",
                             what="cancelled on screen")
            await pilot.press("R")
            await wait_until(pilot, lambda: store.run(int(ids[1])).attempt == 2,
                             what="the retry")
            # the whole sweep: asks first, then cancels every queued and running run
            await pilot.press("tab", "c")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5,
                             what="the confirmation")
            await pilot.press("y")
            await wait_until(pilot, lambda: all(r.status in ("cancelled", "done")
                                                for r in store.runs()), 20, what="all cancelled")
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=30)


async def test_filter_help_and_palette(cli, sweep_file):
    cli("queue", "add", sweep_file("f", "[grid]\nlr = [0.1, 0.25, 0.3]\nseed = [0]\n"), check=0)
    app = GridrunApp(cli.home, start_daemon=False, refresh_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        runs = app.screen.query_one(RunsTable)
        await wait_until(pilot, lambda: runs.row_count == 3, what="runs")
        await pilot.press("slash", "0", ".", "2", "5")
        await wait_until(pilot, lambda: runs.row_count == 1, what="the filter")
        await pilot.press("escape")
        await wait_until(pilot, lambda: runs.row_count == 3, what="the filter cleared")
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), 5, what="help")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen), 5, what="back")
        commands = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Results", "New sweep", "Cancel", "Retry", "Help"} <= set(commands)


async def test_the_interface_starts_a_daemon_and_quitting_leaves_it_running(cli, sweep_file):
    path = sweep_file("bg", "[grid]\nlr = [0.1, 0.2]\nseed = [0]\n", script_args="--epochs 8 --sleep 0.2")
    cli("queue", "add", path, check=0)
    app = GridrunApp(cli.home, start_daemon=True, refresh_s=0.2)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: daemon_pid(cli.home) is not None, 15,
                             what="the daemon")
            await pilot.press("q")
        pid = daemon_pid(cli.home)
        assert pid is not None  # the interface closed, the daemon goes on
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(
                r.status != "done" for r in Store(cli.home).runs()):
            time.sleep(0.2)
        assert [r.status for r in Store(cli.home).runs()] == ["done", "done"]
    finally:
        cli("queue", "stop", "--now", check=0)
