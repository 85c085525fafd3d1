"""The run detail screen driven by Textual's Pilot, against a store filled by real short runs
of the stand-in trainer, and a real daemon for the live parts."""
from __future__ import annotations

import contextlib
import io
import os
import signal
import sqlite3
import time
from pathlib import Path

from rich.console import Console
from textual.widgets import DataTable, Log, Tabs

from gridrun.engine.logview import read_from, start_offset
from gridrun.engine.store import Store
from tests.conftest import cli_env, wait_until
from gridrun.tui.app import GridrunApp
from gridrun.tui.screens.dashboard import DashboardScreen
from gridrun.tui.screens.run_detail import LOG_LINES, RunDetailScreen
from gridrun.tui.widgets.runs_table import RunsTable


def screen_text(app) -> str:
    """What the terminal shows, as plain text."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False)
    console.print(app.screen._compositor.render_update(
        full=True, screen_stack=app._background_screens))
    return console.export_text()


def column(table: DataTable, key: str) -> list[str]:
    return [getattr(v, "plain", str(v)) for v in table.get_column(key)]


async def open_detail(pilot, app, run_id: int) -> RunDetailScreen:
    """From the dashboard: the cursor to the run, enter."""
    runs = app.screen.query_one(RunsTable)
    await wait_until(pilot, lambda: str(run_id) in {k.value for k in runs.rows},
                     what="the run on the dashboard")
    runs.move_cursor(row=runs.get_row_index(str(run_id)))
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen), 5,
                     what="the detail screen")
    return app.screen


async def test_a_finished_run_at_80_columns_then_120(cli, sweep_file):
    path = sweep_file("fin", "[params]\nepochs = 3\n[grid]\nlr = [0.1, 0.5]\nseed = [0]\n")
    cli("queue", "run", path, check=0)
    store = Store(cli.home)
    run = store.runs()[1]  # lr=0.5
    app = GridrunApp(cli.home, start_daemon=False, refresh_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_detail(pilot, app, run.id)
        metrics = screen.query_one("#rd-metrics", DataTable)
        await wait_until(pilot, lambda: metrics.row_count == 3, 10, what="3 epochs")
        # one row per epoch, keyed by the store's seq
        assert [k.value for k in metrics.rows] == [str(s) for s, _ in
                                                   store.metrics_after(run.id, 0)]
        assert column(metrics, "epoch") == ["1", "2", "3"]
        assert column(metrics, "accuracy") == ["65", "80", "95"]  # 50 + 10 * epoch * 1.5
        # small terminal: tabs, the charts first; loss and accuracy side by side, lr below
        assert screen.query_one(Tabs).display and not screen.has_class("-wide")
        for chart in ("#chart-loss", "#chart-acc", "#chart-lr"):
            assert screen.query_one(chart).display, chart
        assert not screen.query_one("#rd-empty").display
        text = screen_text(app)
        assert "fin #2" in text and "✓ done" in text and "attempt 1" in text
        assert "loss 0.05556" in text and "accuracy 95%" in text and "lr 0.5" in text
        assert not screen.query_one("#rd-metrics").display  # behind its tab
        # 3: every parameter, the varying ones first
        await pilot.press("3")
        await pilot.pause(0.1)
        text = screen_text(app)
        assert text.index("lr ") < text.index("epochs ") and "0.5" in text
        # the path, folded at the pane's width wherever that falls
        folded = "".join(line.strip(" │") for line in text.splitlines())
        assert "folder" in text and "0002-lr=0.5" in folded, text
        # 4: the tail of stdout.log
        await pilot.press("4")
        log = screen.query_one("#rd-log", Log)
        await wait_until(pilot, lambda: any("Epoch [3/3]" in line for line in log.lines), 5,
                         what="the log")
        assert log.display and "Epoch [3/3], Loss: 0.055556" in screen_text(app)
        # 2 and j/k: the metrics table, its cursor on the last epoch, k moves it up
        await pilot.press("2")
        assert metrics.display and metrics.cursor_row == 2
        await pilot.press("k")
        assert metrics.cursor_row == 1
        # o: the folder, said and copied
        await pilot.press("o")
        assert app.clipboard == run.run_dir
        assert any(run.run_dir in n.message for n in app._notifications)
        # a wide terminal: every pane at once, no tabs
        await pilot.resize_terminal(120, 40)
        await wait_until(pilot, lambda: screen.has_class("-wide"), 5, what="the wide layout")
        assert not screen.query_one(Tabs).display
        for pane in ("#rd-charts", "#chart-loss", "#rd-metrics", "#rd-params-pane", "#rd-log"):
            assert screen.query_one(pane).display, pane
        text = screen_text(app)
        assert "Epoch [3/3]" in text and "accuracy 95%" in text and "stdout.log" in text
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen), 5,
                         what="the dashboard again")


async def test_a_queued_run_has_no_metrics_yet_and_may_disappear(cli, sweep_file):
    cli("queue", "add", sweep_file("q", "[grid]\nlr = [0.1]\nseed = [0]\n"), check=0)
    run = Store(cli.home).runs()[0]
    # output left by an earlier attempt, longer than the screen keeps
    Path(run.run_dir).mkdir(parents=True)
    (Path(run.run_dir) / "stdout.log").write_text("".join(f"step {i}\n" for i in range(5000)))
    app = GridrunApp(cli.home, start_daemon=False, refresh_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_detail(pilot, app, run.id)
        await wait_until(pilot, lambda: "· queued" in screen_text(app), 5, what="the status")
        assert screen.query_one("#rd-empty").display
        assert "no metrics yet" in screen_text(app)
        await pilot.press("4")
        log = screen.query_one("#rd-log", Log)
        await wait_until(pilot, lambda: log.line_count > 0, 5, what="the log")
        assert log.line_count <= LOG_LINES + 1 and log.lines[-2] == "step 4999"
        await pilot.pause(0.1)
        assert "step 4999" in screen_text(app)  # the view follows the end
        # the run goes away under the screen (a store edited by hand)
        db = sqlite3.connect(cli.home / "gridrun.db")
        with db:
            db.execute("DELETE FROM runs WHERE id = ?", (run.id,))
        db.close()
        await wait_until(pilot, lambda: "no longer in the store" in screen_text(app), 5,
                         what="the run gone")
        await pilot.press("o")  # still answers
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen), 5,
                         what="back")


async def test_live_epochs_then_cancel_and_retry(cli, sweep_file):
    path = sweep_file("live", "[grid]\nlr = [0.1]\nseed = [0]\n",
                      script_args="--epochs 15 --sleep 0.4")
    cli("queue", "add", path, check=0)
    store = Store(cli.home)
    run_id = store.runs()[0].id
    daemons = [cli.start("queue", "run", path, env=cli_env(cli.home))]
    try:
        app = GridrunApp(cli.home, start_daemon=False, refresh_s=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: store.run(run_id).status == "running", 15,
                             what="the run to start")
            screen = await open_detail(pilot, app, run_id)
            metrics = screen.query_one("#rd-metrics", DataTable)
            log = screen.query_one("#rd-log", Log)
            await wait_until(pilot, lambda: metrics.row_count >= 1, 10, what="a first epoch")
            seen = metrics.row_count
            await wait_until(pilot, lambda: metrics.row_count > seen, 10,
                             what="the table to grow")
            assert column(metrics, "epoch") == [str(i) for i in range(1, metrics.row_count + 1)]
            await wait_until(pilot, lambda: any("Epoch [2/15]" in x for x in log.lines), 5,
                             what="the log to grow")
            assert "▶ running" in screen_text(app)
            await pilot.press("c")
            await wait_until(pilot, lambda: store.run(run_id).status == "cancelled", 10,
                             what="the run cancelled")
            await wait_until(pilot, lambda: "⊘ cancelled" in screen_text(app), 5,
                             what="cancelled on screen")
            await pilot.press("R")
            await wait_until(pilot, lambda: store.run(run_id).attempt == 2, 5, what="the retry")
            assert store.run(run_id).status in ("queued", "running")
            await wait_until(pilot, lambda: "attempt 2" in screen_text(app), 5,
                             what="attempt 2 on screen")
            # the queue had emptied and its daemon gone: a new one runs attempt 2, whose
            # history replaces attempt 1's on screen
            daemons.append(cli.start("queue", "run", env=cli_env(cli.home)))

            def shows_attempt_2() -> bool:
                run = store.run(run_id)
                seqs = [str(s) for s, _ in store.metrics_after(run_id, 0)]
                return (run.status == "running" and len(seqs) >= 2
                        and [k.value for k in metrics.rows] == seqs
                        and screen.cursor.key == (2, run.started, True))
            await wait_until(pilot, shows_attempt_2, 15, what="attempt 2's epochs")
            assert column(metrics, "epoch") == [str(i) for i in range(1, metrics.row_count + 1)]
            assert "--- gridrun: attempt 2 ---" in log.lines
    finally:
        for daemon in daemons:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(timeout=30)


def test_logview_reads_whole_lines_and_collapses_progress_bars(tmp_path):
    log = tmp_path / "stdout.log"
    log.write_bytes(b"start\r\n 10%\r 50%\r100%\n\x1b[31mred\x1b[0m \xff\nhalf a li")
    text, offset = read_from(log, 0)
    assert text == "start\n100%\nred \ufffd\n" and offset == log.stat().st_size - 9
    assert read_from(log, offset) == ("", offset)            # the line is still being written
    assert read_from(log, offset, final=True) == ("half a li", log.stat().st_size)
    assert read_from(log, 10_000) == ("", 0)                  # truncated: start over
    assert read_from(tmp_path / "missing.log", 0) == ("", 0)
    log.write_bytes(b"line\n" * 10_000)
    text, offset = read_from(log, 0, max_bytes=1000)
    assert text.startswith("... 49,000 bytes skipped ...\nline\n") and offset == 50_000
    assert start_offset(log, 1000) == 49_000
