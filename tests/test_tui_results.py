"""The Results screen driven by Textual's Pilot, against stores filled by real short runs:
what `r` shows, choosing the metric, the group-by keys and the epoch, export (the same bytes as
`gridrun results --format md`, in the sweep folder and on the clipboard), a staged study, and
a table that fills in while its runs go."""
from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
from textual.content import Content
from textual.widgets import DataTable, Select, SelectionList

from tests.conftest import FAKE_TRAIN, Cli, wait_until
from gridrun.tui.app import GridrunApp
from gridrun.tui.screens.dashboard import DashboardScreen
from gridrun.tui.screens.results import ResultsScreen

PY, TRAIN = f'"{sys.executable}"', f'"{FAKE_TRAIN}"'
FLAT = (f'name = "grid"\nseeds = [0, 1]\nmetric = "accuracy"\n'
        f'command = [{PY}, {TRAIN}, "--lr", "{{lr}}", "--seed", "{{seed}}"]\n'
        '[grid]\nlr = [0.1, 0.5]\n')
# stage 1: lr 0.5 fails at epoch 2, 0.3 (89) beats 0.1 (83); stage 2 varies epochs over 0.3
STAGED = (f'name = "staged"\nmetric = "accuracy"\nmode = "max"\n'
          f'command = [{PY}, {TRAIN}, "--lr", "{{lr}}", "--epochs", "{{epochs}}", '
          '"--fail-at", "{fail_at}"]\n[params]\nepochs = 3\n[zip]\nlr = [0.1, 0.5, 0.3]\n'
          'fail_at = [0, 2, 0]\n[[stages]]\ngrid.epochs = [2, 5]\n')


def filled(folder: Path, body: str, rc: int) -> Cli:
    folder.mkdir(parents=True)
    path = folder / "sweep.toml"
    path.write_text(body)
    cli = Cli(folder / "home", folder)
    cli("queue", "run", path, check=rc)
    return cli


@pytest.fixture(scope="module")
def flat(tmp_path_factory) -> Cli:
    """lr 0.1 and 0.5, seeds 0 and 1, run to the end (read only: every test opens it)."""
    return filled(tmp_path_factory.mktemp("results") / "flat", FLAT, 0)


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Cli:
    return filled(tmp_path_factory.mktemp("results") / "staged", STAGED, 1)  # one run failed


def tables(app) -> list[DataTable]:
    return list(app.screen.query_one("#tables").query(DataTable))


def title(table: DataTable) -> str:
    return Content.from_markup(table.border_title or "").plain


def header(table: DataTable) -> list[str]:
    return [column.label.plain for column in table.ordered_columns]


def rows(table: DataTable) -> list[list[str]]:
    return [[cell.plain for cell in table.get_row_at(i)] for i in range(table.row_count)]


def column(table: DataTable, name: str) -> list[str]:
    return [row[header(table).index(name)] for row in rows(table)]


def toasts(app) -> str:
    """What the notifications on screen say, joined (long lines wrap in a toast)."""
    return " ".join(str(t.render()) for t in app.screen.query("Toast")).replace("\n", "")


def text(app, selector: str) -> str:
    return str(app.screen.query_one(selector).render())


async def open_results(pilot, app) -> DataTable:
    """On the dashboard, `r` on the selected sweep; the results table once it has rows."""
    await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen)
                     and app.screen.current is not None, what="the dashboard's sweep")
    await pilot.press("r")
    await wait_until(pilot, lambda: isinstance(app.screen, ResultsScreen)
                     and tables(app) and tables(app)[0].row_count, what="the results table")
    return tables(app)[0]


async def test_r_shows_mean_and_std_over_seeds_best_first(flat):
    app = GridrunApp(flat.home, start_daemon=False, refresh_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await open_results(pilot, app)
        # fake_train at epoch 3: accuracy = 50 + 30 (1 + lr) - 0.1 seed
        assert header(table) == ["lr", "accuracy", "n", "best epoch", "loss", "time/run"]
        assert [row[:4] for row in rows(table)] == [["0.5", "94.95 ± 0.07", "2", "3"],
                                                    ["0.1", "82.95 ± 0.07", "2", "3"]]
        assert "bold" in str(table.get_row_at(0)[1].style)         # the best row stands out
        assert "bold" not in str(table.get_row_at(1)[1].style)
        assert "4 runs: 4 done" in text(app, "#results-title")
        assert "higher is better" in text(app, "#results-summary")
        assert app.screen.query_one("#metric", Select).value == "accuracy"
        assert app.focused is table
        # best or last epoch: the header says which
        await pilot.press("l")
        await wait_until(pilot, lambda: header(tables(app)[0])[1] == "accuracy (last)",
                         what="the last-epoch table")
        assert header(tables(app)[0])[3] == "epoch"
        await pilot.press("l")
        await wait_until(pilot, lambda: header(tables(app)[0])[1] == "accuracy",
                         what="the best-epoch table again")
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)


async def test_metric_choice_ranks_by_loss_lowest_first(flat):
    app = GridrunApp(flat.home, start_daemon=False, refresh_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_results(pilot, app)
        select = app.screen.query_one("#metric", Select)
        await pilot.press("m")                           # the list of metrics opens
        assert select.expanded and app.focused is not None
        await pilot.press("down", "enter")               # accuracy -> loss
        await wait_until(pilot, lambda: header(tables(app)[0])[1] == "loss",
                         what="the loss table")
        table = tables(app)[0]
        # loss = 1 / (3 (1 + 10 lr)) + 0.001 seed: a loss is ranked lowest first (mode min);
        # in fake_train the higher lr has both the better accuracy and the lower loss
        # one precision for the column (4 digits of its largest), the spread at its mean's
        assert column(table, "loss") == ["0.0561 ± 0.0007", "0.1672 ± 0.0007"]
        assert column(table, "lr") == ["0.5", "0.1"]
        assert column(table, "accuracy") == ["94.95", "82.95"]   # now a plain column
        assert "lower is better" in text(app, "#results-summary")
        assert app.focused is table                      # back in the table to read it


async def test_group_by_makes_a_marginal_table_and_export_matches_the_cli(flat):
    app = GridrunApp(flat.home, start_daemon=False, refresh_s=0.2)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await open_results(pilot, app)
        keys = app.screen.query_one("#group-by", SelectionList)
        await pilot.press("g")                           # the keys the sweep varies
        assert keys.display and app.focused is keys
        assert [keys.get_option_at_index(i).value for i in range(keys.option_count)] == \
            ["lr", "seed"]
        keys.highlighted = 1
        await pilot.press("space")                       # seed
        await wait_until(pilot, lambda: header(tables(app)[0])[0] == "seed",
                         what="the table by seed")
        # per seed, averaged over lr: (95 + 83) / 2 and (94.9 + 82.9) / 2
        assert [row[:3] for row in rows(tables(app)[0])] == [["0", "89.00 ± 8.49", "2"],
                                                             ["1", "88.90 ± 8.49", "2"]]
        await pilot.press("escape")                      # closes the keys, not the screen
        assert not keys.display and isinstance(app.screen, ResultsScreen)
        await pilot.press("m", "down", "enter", "l")    # by loss, at each run's last epoch
        await wait_until(pilot, lambda: header(tables(app)[0])[1] == "loss (last)",
                         what="the loss table")
        await pilot.press("e")
        await wait_until(pilot, lambda: app.clipboard, what="the export")
        expected = flat("results", "grid", "--metric", "loss", "--group-by", "seed", "--last",
                        "--format", "md", check=0).stdout
        written = flat.home / "grid" / "results.md"
        assert written.read_text() == expected == app.clipboard
        assert expected.startswith("| seed | loss (last) | n | epoch |")
        await wait_until(pilot, lambda: str(written) in toasts(app), what="where it went")
        assert "copied to the clipboard" in toasts(app)


async def test_export_with_the_sweeps_own_choices_is_the_cli_default(flat):
    app = GridrunApp(flat.home, start_daemon=False, refresh_s=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_results(pilot, app)
        await pilot.press("e")
        await wait_until(pilot, lambda: app.clipboard, what="the export")
        expected = flat("results", "grid", "--format", "md", check=0).stdout
        assert (flat.home / "grid" / "results.md").read_text() == expected == app.clipboard
        assert expected.splitlines()[2].startswith("| **0.5** | **94.95 ± 0.07** | **2** |")


async def test_a_staged_study_shows_each_stage_with_the_chosen_configuration(staged):
    app = GridrunApp(staged.home, start_daemon=False, refresh_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_results(pilot, app)
        await wait_until(pilot, lambda: len(tables(app)) == 2, what="two stage tables")
        first, second = tables(app)
        assert title(first) == "stage 1: lr, fail_at  ✓ carried forward"
        assert title(second) == "stage 2: epochs"
        assert header(first)[:4] == ["chosen", "lr", "fail_at", "accuracy"]
        assert [row[:4] for row in rows(first)] == [["✓", "0.3", "0", "89.00"],
                                                    ["", "0.1", "0", "83.00"],
                                                    ["", "0.5", "2", "-"]]
        # the failed run's one epoch (65%) is no number: the row says it failed, n = 0
        assert column(first, "n") == ["1", "1", "0"]
        assert column(first, "status") == ["", "", "1 failed"]
        assert [row[:2] for row in rows(second)] == [["5", "99.00"], ["2", "76.00"]]
        assert "per stage" in text(app, "#results-summary")
        await pilot.press("tab")                         # down to the second stage
        assert app.focused is second
        await pilot.press("e")
        await wait_until(pilot, lambda: app.clipboard, what="the export")
        expected = staged("results", "staged", "--format", "md", check=0).stdout
        assert "### staged, stage 2: epochs" in expected
        assert (staged.home / "staged" / "results.md").read_text() == expected == app.clipboard


async def test_the_table_fills_in_while_the_runs_go(cli, tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(FLAT)
    cli("queue", "add", path, check=0)
    app = GridrunApp(cli.home, start_daemon=False, refresh_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await open_results(pilot, app)
        assert column(table, "accuracy") == ["-", "-"]
        assert column(table, "status") == ["2 queued", "2 queued"]
        assert "updating live" in text(app, "#results-title")
        table.move_cursor(row=1)                          # on lr 0.5, as it happens
        chosen = rows(table)[1][0]
        runner = asyncio.create_task(asyncio.to_thread(cli, "queue", "run", check=0))
        await wait_until(pilot, lambda: column(tables(app)[0], "accuracy")[0] == "94.95 ± 0.07"
                         and "4 done" in text(app, "#results-title"), 20,
                         what="the finished runs on screen")
        await runner
        table = tables(app)[0]
        assert column(table, "lr") == ["0.5", "0.1"]     # re-sorted best first
        assert "status" not in header(table)             # every run done: no status column
        assert rows(table)[table.cursor_row][0] == chosen  # the cursor stayed on its row


async def test_the_chart_draws_each_configuration_and_follows_the_row_and_metric(flat):
    """Under the table, each configuration's curve (mean over its seeds, by epoch); the
    selected row's is the highlighted one; `m` changes the metric of both; it fits 80x24."""
    app = GridrunApp(flat.home, start_daemon=False, refresh_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_results(pilot, app)
        screen = app.screen
        chart = screen.query_one("#results-chart")
        await wait_until(pilot, lambda: chart.display and len(screen.curves) == 2,
                         what="the chart")
        slow, fast = screen.curves[(0, '{"lr":0.1}')], screen.curves[(0, '{"lr":0.5}')]
        # accuracy = min(99, 50 + 10 epoch (1 + lr)) - 0.1 seed, seeds 0 and 1
        assert slow[0] == [1.0, 2.0, 3.0]
        assert [round(y, 2) for y in slow[1]] == [60.95, 71.95, 82.95]
        assert [round(y, 2) for y in fast[1]] == [64.95, 79.95, 94.95]
        assert screen.chart_selected == '{"lr":0.5}'        # the best row, under the cursor
        assert "lr=0.5" in chart.titles[0]
        await pilot.press("j")
        await wait_until(pilot, lambda: screen.chart_selected == '{"lr":0.1}',
                         what="the highlight to follow the row")
        assert "lr=0.1" in chart.titles[0]
        assert chart.region.height >= 6 and chart.region.bottom <= 23   # above the footer
        await pilot.press("m", "down", "enter")              # accuracy -> loss
        await wait_until(pilot, lambda: chart.titles and chart.titles[-1] == "loss"
                         and (0, '{"lr":0.1}') in screen.curves
                         and round(screen.curves[(0, '{"lr":0.1}')][1][-1], 4) == 0.1672,
                         what="the loss curves")
