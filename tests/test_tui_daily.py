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


async def test_the_log_follows_searches_and_the_replay_line_is_copied(cli, sweep_file):
    from gridrun.engine.control import replay_command
    from gridrun.tui.screens.run_detail import RunDetailScreen
    from gridrun.tui.widgets.log_pane import LogPane

    path = sweep_file("logs", "[grid]\nlr = [0.1]\nseed = [0]\n",
                      script_args="--epochs 2000 --sleep 0.03")
    cli("queue", "add", path, check=0)
    store = Store(cli.home)
    run_id = store.runs()[0].id
    daemon = cli.start("queue", "run", env=cli_env(cli.home, GRIDRUN_KILL_GRACE_S="1"))
    try:
        app = GridrunApp(cli.home, start_daemon=False, refresh_s=0.2)
        async with app.run_test(size=(80, 24)) as pilot:
            runs = app.screen.query_one(RunsTable)
            await wait_until(pilot, lambda: store.run(run_id).status == "running", 15,
                             what="the run running")
            await wait_until(pilot, lambda: runs.row_count == 1, what="the run listed")
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen), 5,
                             what="the detail")
            screen = app.screen
            log = screen.query_one("#rd-log", LogPane)
            await pilot.press("4")
            # it follows the end by default
            await wait_until(pilot, lambda: log.line_count > 60, 20, what="a long log")
            assert log.follow and log.is_vertical_scroll_end and log.max_scroll_y > 0
            # PageUp without Tab (the tab bar has the focus): it stops following
            assert not isinstance(app.focused, LogPane)
            await pilot.press("pageup")
            assert not log.follow and not log.is_vertical_scroll_end
            held, lines = log.scroll_y, log.line_count
            await wait_until(pilot, lambda: log.line_count > lines + 5, 10, what="more output")
            assert log.scroll_y == held and "paused" in log.border_subtitle
            await pilot.press("pagedown")
            assert log.scroll_y > held
            # f: follows again, at the end as lines come
            await pilot.press("f")
            lines = log.line_count
            await wait_until(pilot, lambda: log.line_count > lines + 5, 10, what="more output")
            await pilot.pause(0.3)
            assert log.follow and log.is_vertical_scroll_end
            # g / G: top and bottom
            await pilot.press("g")
            assert log.scroll_y == 0 and not log.follow
            await pilot.press("G")
            assert log.is_vertical_scroll_end and log.follow
            # /: search; n and N move between the lines that match, each brought into view
            await pilot.press("slash")
            await pilot.press(*"epoch [2/")
            await pilot.press("enter")
            assert log.hits and all("epoch [2/" in log.lines[i].lower() for i in log.hits)
            assert not log.follow and log.hit == 0 and "1 of 1" in log.border_subtitle

            def in_view(line: int) -> bool:
                return log.scroll_y <= line < log.scroll_y + log.scrollable_content_region.height
            assert in_view(log.hits[0])
            await pilot.press("slash")
            await pilot.press(*"], loss: 0.0")   # many lines
            await pilot.press("enter")
            assert len(log.hits) > 3
            first = log.hit
            await pilot.press("n")
            assert log.hit == first + 1 and in_view(log.hits[log.hit])
            current = log.lines[log.hits[log.hit]]
            await pilot.press("n", "n", "N")
            assert log.hit == first + 2 and in_view(log.hits[log.hit])
            assert log.lines[log.hits[log.hit - 1]] == current
            await pilot.press("slash", "x", "escape")   # esc closes the box, stays here
            assert isinstance(app.screen, RunDetailScreen)
            assert not screen.query_one("#rd-search").display
            # y: the replay command, copied whole; the parameters pane keeps it on one line
            await wait_until(pilot, lambda: screen.replay is not None, 5, what="the replay")
            await pilot.press("y")
            replay = replay_command(store.run(run_id))
            assert app.clipboard == replay and "--lr" in replay
            await pilot.press("3")
            await pilot.pause(0.2)
            shown = screen.query_one("#rd-replay")
            assert shown.size.width >= len(replay) > screen.query_one("#rd-params-pane").size.width
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=30)


async def test_search_hits_stay_on_their_lines_when_old_lines_are_dropped():
    """The log keeps its last max_lines lines: the search's hits move with their lines."""
    from textual.app import App

    from gridrun.tui.widgets.log_pane import LogPane

    class One(App):
        def compose(self):
            yield LogPane(max_lines=20)

    app = One()
    async with app.run_test(size=(60, 10)) as pilot:
        log = app.query_one(LogPane)
        log.write("".join(f"line {i}{' match' if i % 3 == 0 else ''}\n" for i in range(15)))
        assert log.search("match") == 5
        for _ in range(3):
            log.next_hit(1)
        current = log.lines[log.hits[log.hit]]
        assert current == "line 9 match"
        log.write("".join(f"more {i}\r\n" for i in range(3)))   # 19 lines: all kept
        assert log.lines[log.hits[log.hit]] == current
        log.write("".join(f"late {i}\n" for i in range(6)))      # 5 dropped from the top
        log.appended()
        assert log.lines[0] == "line 5"
        assert [log.lines[h] for h in log.hits] == ["line 6 match", "line 9 match",
                                                    "line 12 match"]
        assert log.lines[log.hits[log.hit]] == current
        log.next_hit(-1)
        assert log.lines[log.hits[log.hit]] == "line 6 match"
        await pilot.pause()


async def test_new_sweep_saves_an_opened_file_in_place_and_the_dashboard_shows_it(
        cli, sweep_file, tmp_path, monkeypatch):
    from tests.test_tui_new_sweep import checked, open_screen, screen, start_from, verdict

    monkeypatch.chdir(tmp_path)
    cli("queue", "add", sweep_file("first"), check=0)       # the dashboard shows this one
    mine = sweep_file("mine", "[grid]\nlr = [0.1, 0.2]\nseed = [0]\n")
    app = GridrunApp(cli.home, start_daemon=False, refresh_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        sweeps = app.screen.query_one(SweepsList)
        await wait_until(pilot, lambda: sweeps.selected == "first", what="the first sweep")
        await open_screen(pilot)
        await start_from(pilot, "mine.toml")
        editor = screen(app).editor
        assert "queues mine.toml as it is" in verdict(app)
        # ctrl+a selects the whole text (not the line start, as TextArea has it)
        await pilot.press("ctrl+a")
        assert editor.selected_text == editor.text
        row = editor.text.splitlines().index("lr = [0.1, 0.2]")
        editor.move_cursor((row, len("lr = [0.1, 0.2")))
        await pilot.press(*", 0.3")                               # lr = [0.1, 0.2, 0.3]
        await checked(pilot)
        assert "3 runs in sweep mine" in verdict(app)
        assert "saves your edit to mine.toml and queues it" in verdict(app)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen), 10,
                         what="the dashboard")
        # the user's file holds the edit; nothing was written to the home's sweeps folder
        assert "lr = [0.1, 0.2, 0.3]" in mine.read_text()
        assert not (cli.home / "sweeps").exists()
        assert "saved mine.toml" in notices(app)
        # the dashboard shows the new sweep and its runs
        runs = app.screen.query_one(RunsTable)
        await wait_until(pilot, lambda: sweeps.selected == "mine" and runs.row_count == 3,
                         10, what="the new sweep shown")
        assert len(Store(cli.home).runs(sweep="mine")) == 3


async def test_new_sweep_does_not_overwrite_a_file_changed_on_disk(cli, sweep_file, tmp_path,
                                                                    monkeypatch):
    from tests.test_tui_new_sweep import checked, open_screen, screen, start_from, verdict

    monkeypatch.chdir(tmp_path)
    mine = sweep_file("mine", "[grid]\nlr = [0.1, 0.2]\nseed = [0]\n")
    app = GridrunApp(cli.home, start_daemon=False, refresh_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_screen(pilot)
        await start_from(pilot, "mine.toml")
        editor = screen(app).editor
        row = editor.text.splitlines().index("lr = [0.1, 0.2]")
        editor.move_cursor((row, len("lr = [0.1, 0.2")))
        await pilot.press(*", 0.3")
        await checked(pilot)
        elsewhere = mine.read_text() + "# edited in another editor\n"
        mine.write_text(elsewhere)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "changed on disk" in notices(app), 10,
                         what="the refusal")
        assert isinstance(app.screen, type(screen(app))) and mine.read_text() == elsewhere
        assert Store(cli.home).runs() == []
        assert "changed on disk" in verdict(app)


async def test_group_by_opens_on_its_first_key(cli, sweep_file):
    from gridrun.tui.screens.results import ResultsScreen
    from tests.test_tui_results import header, tables

    cli("queue", "run", sweep_file("gb", "seeds = [0, 1]\n[grid]\nlr = [0.1, 0.5]\n"), check=0)
    app = GridrunApp(cli.home, start_daemon=False, refresh_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        runs = app.screen.query_one(RunsTable)
        await wait_until(pilot, lambda: runs.row_count == 4, what="the runs")
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, ResultsScreen) and tables(app),
                         10, what="the results")
        keys = app.screen.query_one("#group-by")
        await pilot.press("g")      # the list opens with its first key highlighted
        assert app.focused is keys and keys.highlighted == 0
        await pilot.press("space")  # so space toggles it, no arrow needed
        await wait_until(pilot, lambda: header(tables(app)[0])[0] == "lr", 10,
                         what="the table by lr")


KEY_NAMES = {"slash": "/", "question_mark": "?", "left_square_bracket": "[",
             "right_square_bracket": "]", "escape": "esc", "pageup": "PgUp",
             "pagedown": "PgDn", "down": "↓", "up": "↑", "less_than_sign": "<",
             "greater_than_sign": ">"}


def help_sections() -> dict[str, set[str]]:
    """The keys the help screen names, by section ("1-4" stands for 1, 2, 3 and 4)."""
    from gridrun.tui.screens.help import KEYS

    sections: dict[str, set[str]] = {}
    current = ""
    for keys, what in KEYS:
        if not what:
            current = keys
            continue
        for token in keys.replace(" / ", " ").split():
            if "-" in token and token.replace("-", "").isdigit():
                low, high = token.split("-")
                sections.setdefault(current, set()).update(
                    str(i) for i in range(int(low), int(high) + 1))
            else:
                sections.setdefault(current, set()).add(token)
    return sections


def test_the_help_lists_every_key_of_every_screen():
    from gridrun.tui.screens.help import HelpScreen
    from gridrun.tui.screens.new_sweep import NewSweepScreen
    from gridrun.tui.screens.results import ResultsScreen
    from gridrun.tui.screens.run_detail import RunDetailScreen

    sections = help_sections()
    screens = {"Dashboard": DashboardScreen, "New sweep": NewSweepScreen,
               "Run detail": RunDetailScreen, "Results": ResultsScreen,
               "Questions and dialogs": (ConfirmScreen, SlotsScreen), "Everywhere": GridrunApp}
    missing = []
    for section, classes in screens.items():
        for cls in classes if isinstance(classes, tuple) else (classes,):
            for binding in cls.BINDINGS:
                for key in binding.key.split(","):
                    name = KEY_NAMES.get(key, key)
                    if name not in sections[section] | sections["Everywhere"]:
                        missing.append(f"{section}: {name} ({binding.action})")
    assert missing == []
    # and the help's own keys close it
    assert {KEY_NAMES.get(k, k) for k in HelpScreen.BINDINGS[0].key.split(",")} <= \
        sections["Everywhere"]


async def test_sweeps_show_a_done_bar_failures_and_an_eta(cli, sweep_file):
    import re

    path = sweep_file("eta", "[params]\nseed = 0\n[zip]\nlr = [0.1, 0.2, 0.3, 0.4]\n"
                      "fail_at = [2, 0, 0, 0]\n",
                      script_args="--epochs 4 --sleep 0.4 --fail-at {fail_at}")
    cli("queue", "add", path, check=0)
    app = GridrunApp(cli.home, start_daemon=False, refresh_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        sweeps = app.screen.query_one(SweepsList)
        await wait_until(pilot, lambda: "eta" in {k.value for k in sweeps.rows}, what="the sweep")
        # no daemon: no ETA
        assert cell(sweeps, "eta", "eta") == "?" and cell(sweeps, "eta", "done") == "░" * 8 + " 0/4"
        daemon = cli.start("queue", "run", "--cpu-slots", "1")
        try:
            await wait_until(pilot, lambda: cell(sweeps, "eta", "failed") == "1", 30,
                             what="the failure counted")
            # once a run is done, the runs left get an ETA at that pace
            await wait_until(pilot, lambda: re.fullmatch(r"\d+s|\d+m\d\ds",
                                                         cell(sweeps, "eta", "eta")), 30,
                             what="an ETA")
            await wait_until(pilot, lambda: cell(sweeps, "eta", "done").endswith(" 3/4"), 40,
                             what="the sweep done")
            bar = cell(sweeps, "eta", "done")
            assert bar == "██████▓▓ 3/4" and cell(sweeps, "eta", "eta") == "-"
        finally:
            daemon.wait(timeout=60)
