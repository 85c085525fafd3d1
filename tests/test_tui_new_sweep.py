"""The new-sweep screen (n) as a user drives it: pick a template or a file, watch the preview,
make a mistake and see it named with its line and a hint, fix it, queue it with ctrl+s; plus the
engine helper that decides where edited text is saved (engine/sweep_files.py)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from gridrun.engine import matrix, sweep_files
from gridrun.engine.errors import GridrunError
from gridrun.engine.store import Store
from tests.conftest import ROOT
from gridrun.tui.app import GridrunApp
from gridrun.tui.screens.dashboard import DashboardScreen
from gridrun.tui.screens.new_sweep import NewSweepScreen

QUICKSTART = ROOT / "examples" / "quickstart.toml"


# -- driving the screen ---------------------------------------------------------------------------

async def until(pilot, predicate, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.05)


def screen(app) -> NewSweepScreen:
    assert isinstance(app.screen, NewSweepScreen), app.screen
    return app.screen


def verdict(app) -> str:
    return str(screen(app).query_one("#ns-verdict").content)


def notes(app) -> list[str]:
    return [n.message for n in app._notifications]


async def open_screen(pilot):
    """Press n on the dashboard and wait for the list of starting points."""
    await until(pilot, lambda: isinstance(pilot.app.screen, DashboardScreen), "the dashboard")
    await pilot.press("n")
    await until(pilot, lambda: isinstance(pilot.app.screen, NewSweepScreen)
                and pilot.app.screen.starts, "the starting points")


async def start_from(pilot, typed: str = ""):
    """Type a filter or a path (or nothing: the first template) and press enter."""
    if typed:
        await pilot.press(*typed)
    await pilot.press("enter")
    await until(pilot, lambda: screen(pilot.app).editing, "the editor")
    await checked(pilot)


async def checked(pilot):
    """Wait until the preview answers the text as it is now."""
    s = screen(pilot.app)
    await until(pilot, lambda: s.checked_text == s.editor.text and not s._timer
                and (s.summary is not None or s.error is not None)
                and not s.query_one("#ns-preview").border_subtitle, "the preview")


# -- the screen ------------------------------------------------------------------------------------

async def test_digits_template_at_80x24_error_fix_and_queue(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)          # templates are written as if in the current folder
    home = tmp_path / "home"
    app = GridrunApp(home, start_daemon=False, refresh_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_screen(pilot)
        s = screen(app)
        starts = s.query_one("#ns-starts")
        assert not s.editing and app.focused is s.query_one("#ns-path")
        assert "digits with the built-in trainer" in str(starts.highlighted_option.prompt)
        await start_from(pilot)          # enter: the highlighted first entry, the digits template
        assert "12 runs in sweep digits-optimizers" in verdict(app)
        assert "optimizer ×3 · lr ×2 · seed ×2" in verdict(app)
        table = s.query_one("#ns-runs")
        assert table.row_count == 12
        assert [str(c.label) for c in table.columns.values()] == ["#", "optimizer", "lr", "seed"]
        # narrow: the editor above its preview
        editor, preview = s.editor, s.query_one("#ns-preview")
        assert editor.region.bottom <= preview.region.y
        assert preview.region.bottom <= 23 and preview.region.height >= 8

        # a typo: [grid] -> [gird], typed over the header's first letters
        row = next(i for i, line in enumerate(editor.text.splitlines())
                   if line.startswith("[grid]"))
        editor.cursor_location = (row, 1)
        await pilot.press("delete", "delete", "delete", "delete", *"gird")
        await checked(pilot)
        assert editor.text.splitlines()[row].startswith("[gird]")
        text = verdict(app)
        assert f"line {row + 1}, col 1" in text and 'unknown key "gird"' in text
        assert 'did you mean "grid"?' in text
        assert not s.query_one("#ns-runs").display
        # ctrl+g puts the cursor on the error's line
        editor.cursor_location = (0, 0)
        await pilot.press("ctrl+g")
        assert editor.cursor_location == (row, 0) and app.focused is editor
        # a broken text queues nothing and writes nothing
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not s.queueing, "the queue attempt")
        assert isinstance(app.screen, NewSweepScreen)
        assert any('unknown key "gird"' in n for n in notes(app))
        assert Store(home).runs() == []
        assert not (home / "sweeps").exists()

        # fixed: back to 12 runs
        editor.cursor_location = (row, 1)
        await pilot.press("delete", "delete", "delete", "delete", *"grid")
        # enter in the editor is a newline, never "queue"
        lines = len(editor.text.splitlines())
        await pilot.press("end", "enter")
        assert len(editor.text.splitlines()) == lines + 1 and isinstance(app.screen,
                                                                         NewSweepScreen)
        await checked(pilot)
        assert "12 runs" in verdict(app)
        assert "saves" in verdict(app)    # a template is saved to the home before queueing
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen), "the dashboard")
        await until(pilot, lambda: any("queued 12 runs in sweep digits-optimizers" in n
                                       for n in notes(app)), "the notification")
        runs = Store(home).runs()
        assert len(runs) == 12 and {r.sweep for r in runs} == {"digits-optimizers"}
        assert {(r.params["optimizer"], r.params["lr"], r.params["seed"]) for r in runs} == {
            (o, lr, seed) for o in ("sgd", "adam", "rmsprop") for lr in (0.01, 0.001)
            for seed in (0, 1)}
        assert all(r.params["dataset"] == "digits" for r in runs)
        saved = home / "sweeps" / "digits-optimizers.toml"
        assert saved.is_file()
        spec = matrix.load(saved)
        assert spec.workdir == str(tmp_path.resolve()) and len(spec.runs) == 12

        # the same again: nothing new
        await open_screen(pilot)
        await start_from(pilot)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen), "the dashboard")
        await until(pilot, lambda: any(n.startswith("queued 0 runs in sweep digits-optimizers")
                                       for n in notes(app)), "the second notification")
        assert len(Store(home).runs()) == 12


async def test_quickstart_by_path_at_120x40_side_by_side(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    home = tmp_path / "home"
    before = QUICKSTART.read_bytes()
    app = GridrunApp(home, start_daemon=False, refresh_s=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_screen(pilot)
        await start_from(pilot, "quickstart")
        s = screen(app)
        assert "6 runs in sweep quickstart" in verdict(app)
        assert "queues examples/quickstart.toml as it is" in verdict(app)
        # wide: the editor beside its preview, both full height
        editor, preview = s.editor, s.query_one("#ns-preview")
        assert editor.region.right <= preview.region.x
        assert editor.region.y == preview.region.y and preview.region.height >= 30

        # a grid value that is not a list: "lr = [0.001, 0.01, 0.1]" becomes "lr = 1"
        row = editor.text.splitlines().index("lr = [0.001, 0.01, 0.1]")
        editor.cursor_location = (row, len("lr = "))
        await pilot.press("shift+end", "1")
        await checked(pilot)
        text = verdict(app)
        assert f"line {row + 1}" in text and 'grid value "lr" must be a list' in text
        assert "hint: write lr = [1], or move it to [params]" in text
        # undone, and one more learning rate: 8 runs, saved to the home (the example stays)
        await pilot.press("ctrl+z", "end", "left", *", 1.0")
        assert editor.text.splitlines()[row] == "lr = [0.001, 0.01, 0.1, 1.0]"
        await checked(pilot)
        assert "8 runs in sweep quickstart" in verdict(app)
        assert "saves" in verdict(app) and "sweeps/quickstart.toml" in verdict(app)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen), "the dashboard")
        runs = Store(home).runs(sweep="quickstart")
        assert sorted((r.params["lr"], r.params["seed"]) for r in runs) == [
            (lr, seed) for lr in (0.001, 0.01, 0.1, 1.0) for seed in (0, 1)]
        assert QUICKSTART.read_bytes() == before
        saved = home / "sweeps" / "quickstart.toml"
        spec = matrix.load(saved)                      # toy_train.py still found: workdir
        assert spec.workdir == str(QUICKSTART.parent) and len(spec.runs) == 8
        assert saved.read_text().startswith(f'workdir = "{QUICKSTART.parent}"')

        # the example as it is: queued from its own file; its 6 runs are already there
        await open_screen(pilot)
        await start_from(pilot, "examples/q")
        await pilot.press("shift+tab")       # from the editor to the Queue button
        assert app.focused is screen(app).query_one("#ns-queue")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen), "the dashboard")
        await until(pilot, lambda: any(n.startswith("queued 0 runs in sweep quickstart")
                                       for n in notes(app)), "the notification")
        assert len(Store(home).runs()) == 8
        assert Store(home).sweep("quickstart").spec["source"] == str(QUICKSTART)


async def test_broken_file_queues_nothing_and_esc_asks_before_discarding(tmp_path,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "broken"\n[params]\ndataset = "digits"\n[grid]\nlr = 0.1\n')
    app = GridrunApp(home, start_daemon=False, refresh_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_screen(pilot)
        # a path that is not there: said under the box, nothing opened
        await pilot.press(*"nope.toml", "enter")
        error = screen(app).query_one("#ns-pick-error")
        await until(pilot, lambda: error.display, "the error")
        assert "no such file" in str(error.content) and not screen(app).editing
        await pilot.press("ctrl+u")
        await start_from(pilot, "broken")    # listed: it is in the current folder
        assert "line 5" in verdict(app) and 'grid value "lr" must be a list' in verdict(app)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not screen(app).queueing
                    and any("must be a list" in n for n in notes(app)), "the refusal")
        assert isinstance(app.screen, NewSweepScreen)
        assert Store(home).runs() == [] and not (home / "sweeps").exists()

        # edited, then esc: asked first; "n" keeps the text, "y" discards it
        await pilot.press("end", "space", "#")   # a comment after the name
        await checked(pilot)
        await pilot.press("escape")
        await until(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen", "the question")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NewSweepScreen), "the editor again")
        assert screen(app).editor.text.startswith('name = "broken" #')
        await pilot.press("escape")
        await until(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen", "the question")
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen), "the dashboard")
        assert Store(home).runs() == []
        assert broken.read_text().endswith("lr = 0.1\n")


# -- the engine helper ---------------------------------------------------------------------------

GRID = 'command = ["python3", "run.py", "--lr", "{lr}"]\n[grid]\nlr = [0.1, 0.2]\n'


def test_unchanged_file_is_queued_as_it_is(tmp_path):
    origin = tmp_path / "study.toml"
    origin.write_text(GRID)
    assert sweep_files.save_sweep_text(tmp_path / "home", GRID, origin) == origin
    assert sweep_files.save_sweep_text(tmp_path / "home", GRID.replace("\n", "\r\n"),
                                       origin) == origin
    assert not (tmp_path / "home").exists()


def test_edited_text_is_saved_in_the_home_with_the_origin_folder_as_workdir(tmp_path):
    project = tmp_path / "My Project"
    project.mkdir()
    origin = project / "My Study.toml"          # no name in the text: "my-study" from the stem
    origin.write_text(GRID)
    edited = GRID.replace("0.2]", "0.2, 0.3]")
    path = sweep_files.save_sweep_text(tmp_path / "home", edited, origin)
    assert path == tmp_path / "home" / "sweeps" / "my-study.toml"
    text = path.read_text()
    assert text.startswith(f'workdir = "{project}"') and text.endswith(edited)
    spec = matrix.load(path)
    assert (spec.name, spec.workdir, len(spec.runs)) == ("my-study", str(project), 3)
    assert origin.read_text() == GRID                # the origin is never written


def test_own_relative_workdir_is_made_absolute_and_an_absolute_one_kept(tmp_path):
    (tmp_path / "code").mkdir()
    origin = tmp_path / "s.toml"
    text = f'name = "rel"\nworkdir = "code"  # my code\n{GRID}'
    path = sweep_files.save_sweep_text(tmp_path / "home", text, origin)
    saved = path.read_text()
    assert [line.startswith("workdir =") for line in saved.splitlines()] == [
        False, True, False, False, False]                   # the same line, made absolute
    assert 'was "code"' in saved
    assert matrix.load(path).workdir == str(tmp_path / "code")
    absolute = f'name = "abs"\nworkdir = "{tmp_path / "code"}"\n{GRID}'
    path = sweep_files.save_sweep_text(tmp_path / "home", absolute, origin)
    assert path.read_text() == absolute


def test_text_from_the_home_sweeps_folder_is_saved_in_place(tmp_path):
    home = tmp_path / "home"
    first = sweep_files.save_sweep_text(home, f'name = "a"\n{GRID}', tmp_path / "a.toml")
    edited = first.read_text().replace("0.2]", "0.2, 0.4]")
    again = sweep_files.save_sweep_text(home, edited, first)
    assert again == first and first.read_text() == edited     # no second workdir line
    assert len(matrix.load(first).runs) == 3


def test_broken_text_raises_with_its_line_and_writes_nothing(tmp_path):
    with pytest.raises(GridrunError) as e:
        sweep_files.save_sweep_text(tmp_path / "home", "[gird]\nlr = [1]\n", tmp_path / "b.toml")
    assert (e.value.line, e.value.hint) == (1, 'did you mean "grid"?')
    assert not (tmp_path / "home").exists()


def test_queue_sweep_text_adds_once(tmp_path):
    store = Store(tmp_path / "home")
    origin = tmp_path / "q.toml"
    first = sweep_files.queue_sweep_text(store, GRID, origin)
    assert (first.name, first.result.added, first.saved) == ("q", 2, True)
    again = sweep_files.queue_sweep_text(store, GRID, origin)
    assert (again.result.added, again.result.existing) == (0, 2)
    assert len(store.runs()) == 2


def test_read_sweep_text(tmp_path):
    broken = tmp_path / "b.toml"
    broken.write_text("[grid\n")
    assert sweep_files.read_sweep_text("b.toml", tmp_path) == (broken, "[grid\n")  # to be fixed
    (tmp_path / "latin1.toml").write_bytes(b"name = '\xe9'\n")
    for name, message in (("missing.toml", "no such file"), (".", "is a directory"),
                          ("latin1.toml", "not UTF-8")):
        with pytest.raises(GridrunError, match=message):
            sweep_files.read_sweep_text(name, tmp_path)


def test_starting_points_and_templates(tmp_path):
    starts = sweep_files.list_starts(tmp_path / "home", ROOT)
    assert [s.template for s in starts[:2]] == ["digits", "own-script"]
    titles = {s.title for s in starts}
    assert "examples/quickstart.toml" in titles and "experiments/r0_mnist_mlp.toml" in titles
    assert "pyproject.toml" not in titles                 # a TOML file, but no run matrix
    for t in sweep_files.templates():
        spec = sweep_files.check_text(t.text, tmp_path / f"{t.key}.toml")
        assert len(spec.runs) in (12, 18)
