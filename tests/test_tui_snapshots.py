"""Snapshots of the interface on a fixed sample store (tests/sample_store.py), at 80x24 and
120x40: the dashboard, a run's detail, the results, a delete confirmation, the help, the daemon's
slots, a log search and an empty home. Update them with
`pytest tests/test_tui_snapshots.py --snapshot-update` after a deliberate change, and look at
the SVGs under tests/__snapshots__/ before committing them."""
from __future__ import annotations

import pytest

from tests import sample_store
from gridrun.tui.app import GridrunApp
from gridrun.tui.widgets.runs_table import RunsTable

SIZES = [(80, 24), (120, 40)]


@pytest.fixture(scope="module")
def home():
    return sample_store.build()


def app_for(home) -> GridrunApp:
    # refresh_s long: one poll fills the screen, no timer fires while the picture is taken
    return GridrunApp(home, start_daemon=False, refresh_s=3600)


async def filled(pilot) -> None:
    table = pilot.app.screen.query_one(RunsTable)
    while table.row_count == 0:
        await pilot.pause(0.05)
    await pilot.pause(0.2)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_dashboard(snap_compare, home, size):
    assert snap_compare(app_for(home), terminal_size=size, run_before=filled)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_run_detail(snap_compare, home, size):
    async def open_failed_run(pilot):
        await filled(pilot)
        await pilot.press("down", "down", "down", "down", "down", "enter")  # run 6, failed
        await pilot.pause(1.0)
    assert snap_compare(app_for(home), terminal_size=size, run_before=open_failed_run)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_results(snap_compare, home, size):
    async def open_results(pilot):
        await filled(pilot)
        await pilot.press("r")
        await pilot.pause(1.0)
    assert snap_compare(app_for(home), terminal_size=size, run_before=open_results)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_delete_sweep_confirmation(snap_compare, home, size):
    async def ask_to_delete(pilot):
        await filled(pilot)
        await pilot.press("tab", "D")     # the sweeps list: every run of the sweep
        await pilot.pause(0.5)
    assert snap_compare(app_for(home), terminal_size=size, run_before=ask_to_delete)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_help(snap_compare, home, size):
    async def open_help(pilot):
        await filled(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.5)
    assert snap_compare(app_for(home), terminal_size=size, run_before=open_help)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_daemon_slots_dialog(snap_compare, home, size):
    async def open_slots(pilot):
        await filled(pilot)
        pilot.app.action_slots()          # the command palette's "Daemon slots"
        await pilot.pause(0.5)
        for box in pilot.app.screen.query("Input"):
            box.cursor_blink = False      # the picture must not depend on the blink's phase
        await pilot.pause(0.1)
    assert snap_compare(app_for(home), terminal_size=size, run_before=open_slots)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_log_search(snap_compare, home, size):
    async def search_the_log(pilot):
        await filled(pilot)
        await pilot.press("down", "down", "down", "down", "down", "enter")  # run 6, failed
        await pilot.pause(1.0)
        await pilot.press("slash", *"epoch", "enter")
        await pilot.pause(0.5)
    assert snap_compare(app_for(home), terminal_size=size, run_before=search_the_log)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_empty_home(snap_compare, size):
    import shutil

    empty = sample_store.HOME.parent / "empty"
    shutil.rmtree(empty, ignore_errors=True)

    async def shown(pilot):
        while not pilot.app.screen.query_one("#empty-home").display:
            await pilot.pause(0.05)
        await pilot.pause(0.2)
    assert snap_compare(app_for(empty), terminal_size=size, run_before=shown)
