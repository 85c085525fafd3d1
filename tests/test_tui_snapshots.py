"""Snapshots of the interface on a fixed sample store (tests/sample_store.py), at 80x24 and
120x40: the dashboard, a run's detail and the results. Update them with
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
