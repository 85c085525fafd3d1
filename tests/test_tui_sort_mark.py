"""Sort, filter and marks on the runs table, driven by Pilot against real runs (a finished
sweep) and a real daemon (a live one)."""
from __future__ import annotations

import os
import signal

from gridrun.engine.store import Store
from gridrun.tui import widgets
from gridrun.tui.app import GridrunApp
from gridrun.tui.screens.confirm import ConfirmScreen
from gridrun.tui.widgets.runs_table import RunsTable
from tests.conftest import cli_env, wait_until


def column(table: RunsTable, key: str) -> list[str]:
    """A column's cells, top to bottom as shown."""
    out = []
    for row in table.ordered_rows:
        value = table.get_cell(row.key, key)
        out.append(value.plain if hasattr(value, "plain") else str(value))
    return out


def titles(table: RunsTable) -> list[str]:
    return [c.label.plain for c in table.columns.values()]


def question(app) -> str:
    return str(app.screen.question) if isinstance(app.screen, ConfirmScreen) else ""


async def test_sort_by_keys_and_clicks_across_pages_then_filter(cli, sweep_file, monkeypatch):
    monkeypatch.setattr(widgets.runs_table, "PAGE", 4)   # three pages of the six runs
    cli("queue", "run", sweep_file("s", "seeds = [0, 1]\n[grid]\nlr = [0.3, 0.1, 0.2]\n"),
        "--cpu-slots", "2", check=0)
    app = GridrunApp(cli.home, start_daemon=False, refresh_s=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        runs = app.screen.query_one(RunsTable)
        await wait_until(pilot, lambda: runs.row_count == 4, what="the first page")
        assert titles(runs)[:4] == ["#▲", "status", "lr", "seed"]
        await pilot.press("greater_than_sign", "greater_than_sign")   # # -> status -> lr
        await wait_until(pilot, lambda: titles(runs)[2] == "lr▲", what="sorted by lr")
        assert column(runs, "p:lr") == ["0.1", "0.1", "0.2", "0.2"]
        assert titles(runs)[0] == "#"
        await pilot.press("I")                                        # reversed
        await wait_until(pilot, lambda: titles(runs)[2] == "lr▼", what="reversed")
        # the whole sweep is sorted before it is paged: the first page has the largest lr
        assert column(runs, "p:lr") == ["0.3", "0.3", "0.2", "0.2"]
        await pilot.press("right_square_bracket")
        await wait_until(pilot, lambda: column(runs, "p:lr") == ["0.1", "0.1"],
                         what="the second page")
        await pilot.press("less_than_sign")                           # back to status
        await wait_until(pilot, lambda: titles(runs)[1] == "status▼", what="by status")
        # a click on the seed column's title sorts by it, a second one reverses
        x = runs.content_region.x - runs.region.x + 2 + sum(
            c.get_render_width(runs) for c in list(runs.columns.values())[:3])
        y = runs.content_region.y - runs.region.y
        await pilot.click(RunsTable, offset=(x, y))
        await wait_until(pilot, lambda: "seed▲" in titles(runs), what="clicked: by seed")
        await pilot.press("left_square_bracket")
        await wait_until(pilot, lambda: column(runs, "p:seed") == ["0", "0", "0", "1"],
                         what="seed 0 first")
        await pilot.click(RunsTable, offset=(x, y))
        await wait_until(pilot, lambda: "seed▼" in titles(runs), what="clicked again")
        assert column(runs, "p:seed") == ["1", "1", "1", "0"]
        # the filter: comparisons and fields beside plain words, every term holds
        await pilot.press("slash", *"lr>0.15")
        await wait_until(pilot, lambda: runs.matching == 4, what="lr > 0.15")
        await pilot.press("space", *"seed=1")
        await wait_until(pilot, lambda: runs.matching == 2, what="and seed = 1")
        assert sorted(column(runs, "p:lr")) == ["0.2", "0.3"]
        await pilot.press("space", *"status:fail")
        await wait_until(pilot, lambda: runs.matching == 0, what="none failed")
        await pilot.press("escape")
        await wait_until(pilot, lambda: runs.matching == 6, what="cleared")
        # marks: two runs, one question for both, deleted together
        await pilot.press("I", "left_square_bracket")
        await wait_until(pilot, lambda: titles(runs)[3] == "seed▲" and runs.page == 0,
                         what="seed ascending, first page")
        first_two = [int(row.key.value) for row in runs.ordered_rows[:2]]
        runs.move_cursor(row=0)
        await pilot.press("space", "space")     # each marks, then moves down
        assert runs.marked == set(first_two)
        assert column(runs, "index")[0].startswith("●")
        await pilot.press("D")
        await wait_until(pilot, lambda: "Delete the marked 2 runs (2 done)" in question(app),
                         5, what="one question for the marked runs")
        await pilot.press("y")
        store = Store(cli.home)
        await wait_until(pilot, lambda: len(store.runs()) == 4, 20, what="two runs deleted")
        assert not {r.id for r in store.runs()} & set(first_two)
        await wait_until(pilot, lambda: runs.matching == 4 and not runs.marked,
                         what="the table without them, nothing marked")


async def test_marked_runs_are_cancelled_and_retried_and_a_running_run_asks(cli, sweep_file):
    path = sweep_file("live", "[grid]\nlr = [0.1, 0.2, 0.3, 0.4]\nseed = [0]\n",
                      script_args="--epochs 60 --sleep 0.15")
    cli("queue", "add", path, check=0)
    daemon = cli.start("queue", "run", "--cpu-slots", "2", env=cli_env(cli.home))
    store = Store(cli.home)
    try:
        app = GridrunApp(cli.home, start_daemon=False, refresh_s=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            runs = app.screen.query_one(RunsTable)
            ids = [r.id for r in store.runs()]
            await wait_until(pilot, lambda: runs.row_count == 4 and
                             column(runs, "status")[:2] == ["▶ running"] * 2, 20,
                             what="two runs running")
            # a single running run: c asks first, n leaves it running
            await pilot.press("c")
            await wait_until(pilot, lambda: "Cancel run live #" in question(app)
                             and "running" in question(app), 5, what="the question")
            await pilot.press("n")
            assert store.run(ids[0]).status == "running"
            # sorted by epoch, highest first: the running runs lead, and keep leading live
            for _ in range(len(runs.columns)):    # > until the epoch column
                if "epoch▲" in titles(runs):
                    break
                await pilot.press("greater_than_sign")
            await pilot.press("I")
            await wait_until(pilot, lambda: "epoch▼" in titles(runs), what="by epoch")
            await wait_until(pilot, lambda: column(runs, "status")[:2] == ["▶ running"] * 2,
                             what="the running runs first")
            # mark one running and one queued run: one question names both states
            running = int(runs.ordered_rows[0].key.value)
            queued = next(i for i in ids if store.run(i).status == "queued")
            await pilot.press("space")
            runs.move_cursor(row=runs.get_row_index(str(queued)))
            await pilot.press("space")
            assert runs.marked == {running, queued}
            await pilot.press("c")
            await wait_until(pilot, lambda: "Cancel the marked 2 runs (1 queued, 1 running)"
                             in question(app), 5, what="one question")
            await pilot.press("y")
            await wait_until(pilot, lambda: store.run(running).status == "cancelled" and
                             store.run(queued).status == "cancelled", 20, what="both cancelled")
            others = [i for i in ids if i not in (running, queued)]
            assert all(store.run(i).status != "cancelled" for i in others)
            # retry both, marked again
            await pilot.press("I")          # ascending: cancelled/queued (no epoch) sort last
            await wait_until(pilot, lambda: not runs.marked, what="marks cleared")
            for run_id in (running, queued):
                runs.move_cursor(row=runs.get_row_index(str(run_id)))
                await pilot.press("space")
            await pilot.press("R")
            await wait_until(pilot, lambda: "Retry the marked 2 runs (2 cancelled)"
                             in question(app), 5, what="the retry question")
            await pilot.press("y")
            await wait_until(pilot, lambda: store.run(running).attempt == 2 and
                             store.run(queued).status != "cancelled", 20, what="retried")
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=30)


async def test_at_80_columns_the_epoch_and_warning_columns_stay(cli, sweep_file):
    """Three varying parameters at 80 columns: the optional columns go first (curve, time,
    ...), the epoch and the warning mark of a diverged run stay; at 120 all are back."""
    cli("queue", "run", sweep_file(
        "wide", "[grid]\nlr = [0.1, 0.2]\nseed = [0, 1]\noptimizer_name = ['sgd', 'adamw']\n",
        script_args="--marker {optimizer_name} --nan-at 2"), "--cpu-slots", "2", check=0)
    app = GridrunApp(cli.home, start_daemon=False, refresh_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        runs = app.screen.query_one(RunsTable)
        await wait_until(pilot, lambda: runs.row_count == 8, what="the runs")
        await wait_until(pilot, lambda: "⚠" in column(runs, "warn"), what="the warning")
        shown = list(runs.columns)
        assert {"index", "status", "p:lr", "p:seed", "p:optimizer_name", "epoch",
                "warn"} <= {k.value for k in shown}
        assert "curve" not in {k.value for k in shown}
        assert sum(c.get_render_width(runs) for c in runs.columns.values()) <= \
            runs.scrollable_content_region.width
        await pilot.resize_terminal(120, 40)
        await wait_until(pilot, lambda: "curve" in {k.value for k in runs.columns},
                         what="the curve back at 120 columns")
        assert "warn" in {k.value for k in runs.columns}


async def test_the_run_detail_overlays_the_marked_runs(cli, sweep_file):
    """Two runs marked, a third opened: its charts draw the marked runs' curves too."""
    from gridrun.tui.screens.run_detail import RunDetailScreen

    cli("queue", "run", sweep_file("o", "[grid]\nlr = [0.1, 0.2, 0.3]\nseed = [0]\n"),
        "--cpu-slots", "2", check=0)
    app = GridrunApp(cli.home, start_daemon=False, refresh_s=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        runs = app.screen.query_one(RunsTable)
        await wait_until(pilot, lambda: runs.row_count == 3, what="the runs")
        await pilot.press("space", "space", "enter")    # #1 and #2 marked, #3 opened
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen), 5,
                         what="the run detail")
        screen = app.screen
        await wait_until(pilot, lambda: [label for label, _ in screen.overlay_rows]
                         == ["#1", "#2"], what="the marked runs read")
        loss = screen.query_one("#chart-loss")
        await wait_until(pilot, lambda: loss.display and any(
            "#1 loss" in t and "#2 loss" in t and "#3 loss" in t for t in loss.titles),
            what="three loss curves on one chart")
        # loss at epoch 3 = 1 / (3 (1 + 10 lr)): each run's own last value in the title
        assert any("#1 loss 0.1667" in t and "#2 loss 0.1111" in t for t in loss.titles)
