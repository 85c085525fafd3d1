"""New sweep (n): start from a template, a study, an example or a file's path; edit the run
matrix with TOML highlighting while a live preview shows what it expands to (or the error, its
line and a hint); ctrl+s queues it.

Two views share the screen: the picker (a filter/path box over a list of starting points) and
the editor (the text beside its preview on a wide terminal, above it on a narrow one). Every
file read, validation, save and store write runs in a thread worker that posts a message back.
"""
from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.theme import Theme
from textual.timer import Timer
from textual.widgets import (Button, ContentSwitcher, DataTable, Footer, Input, OptionList,
                             Static, TextArea)
from textual.widgets.option_list import Option

from gridrun.engine import sweep_files
from gridrun.engine.errors import GridrunError
from gridrun.engine.sweep_files import Start, Summary
from gridrun.tui.messages import (ActionDone, SweepChecked, SweepQueued, SweepStartsListed,
                          SweepTextLoaded)

CHECK_DELAY_S = 0.3          # validate this long after the last keystroke
PATH_OPTION = "path"         # the picker's "open what was typed as a path" entry
GROUP_TITLES = {
    "templates": "templates",
    "here": "in this folder",
    "saved": "written here before (home/sweeps)",
    "experiments": "studies (experiments/)",
    "examples": "examples",
}


def _unexpected(e: Exception) -> GridrunError:
    """A bug in a worker is shown where the user is looking, not raised into the app."""
    return GridrunError(f"internal error: {type(e).__name__}: {e}",
                        hint="run with GRIDRUN_DEBUG=1 and report it")


class NewSweepScreen(Screen):
    CSS_PATH = "../styles/new_sweep.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    BINDINGS = [
        Binding("ctrl+s", "queue", "Queue"),
        Binding("ctrl+o", "pick", "Open…"),
        Binding("ctrl+g", "goto_error", "Go to error"),
        # before the editor's own ctrl+a (line start): select all, as editors elsewhere do
        Binding("ctrl+a", "select_all", "Select all", show=False, priority=True),
        Binding("escape", "back", "Back"),
        Binding("down", "pick_move(1)", show=False),
        Binding("up", "pick_move(-1)", show=False),
    ]

    def __init__(self, cwd: str | Path | None = None):
        super().__init__()
        self.cwd = Path(cwd or Path.cwd()).absolute()
        self.starts: list[Start] = []
        self.origin: Path | None = None      # the file the text is validated as
        self.label = ""                      # how the origin is named to the user
        self.from_file = False               # the text came from an existing file
        self.in_place = False                # ... a user's one: edits are saved to it
        self.original = ""                   # the text as loaded
        self.generation = 0                  # bumped by each validation started
        self.checked_text: str | None = None
        self.summary: Summary | None = None
        self.error: GridrunError | None = None
        self.queueing = False
        self._timer: Timer | None = None
        self._rows: tuple = ()                # the rows the preview table shows

    # -- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="ns-bar"):
            yield Static(id="ns-title")
            yield Button("Queue ctrl+s", id="ns-queue", variant="primary", compact=True)
        with ContentSwitcher(initial="ns-pick", id="ns-switcher"):
            with Vertical(id="ns-pick"):
                yield Input(placeholder="filter the list, or a TOML file's path; enter opens",
                            id="ns-path")
                yield OptionList(id="ns-starts")
                yield Static(id="ns-pick-error")
            with Container(id="ns-edit"):
                yield TextArea(id="ns-editor", language="toml", show_line_numbers=True,
                               soft_wrap=False)
                with Vertical(id="ns-preview"):
                    yield Static(id="ns-verdict")
                    yield Static(id="ns-details")
                    yield DataTable(id="ns-runs", cursor_type="none", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#ns-preview").border_title = "preview"
        self.query_one("#ns-starts").border_title = "start from"
        self.query_one("#ns-queue").display = False
        self.query_one("#ns-pick-error").display = False
        self._theme_changed(self.app.current_theme)
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)
        self._title()
        self.query_one("#ns-path", Input).focus()
        self.list_starts()

    def _theme_changed(self, theme: Theme) -> None:
        """Syntax colours that read on the app's background: the theme's own on dark themes,
        GitHub's on light ones."""
        self.query_one("#ns-editor", TextArea).theme = "css" if theme.dark else "github_light"

    @property
    def editing(self) -> bool:
        return self.query_one(ContentSwitcher).current == "ns-edit"

    @property
    def editor(self) -> TextArea:
        return self.query_one("#ns-editor", TextArea)

    def dirty(self) -> bool:
        return self.origin is not None and self.editor.text != self.original

    def _title(self) -> None:
        title = Text.assemble(("New sweep", "bold"), "  ")
        if not self.editing:
            title.append("pick a starting point: a template, a study, or a file's path",
                         style="dim")
        else:
            title.append(self.label)
            if self.dirty():
                title.append("  edited", style="italic")
        self.query_one("#ns-title", Static).update(title)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action in ("queue", "pick"):
            return self.editing
        if action == "goto_error":
            return self.editing and self.error is not None and self.error.line is not None
        if action == "pick_move":
            return not self.editing
        return True

    # -- the picker ------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="ns-starts")
    def list_starts(self) -> None:
        try:
            starts = sweep_files.list_starts(self.app.home, self.cwd)
        except Exception as e:  # noqa: BLE001 - the templates still work
            self.post_message(SweepTextLoaded(None, None, "", error=_unexpected(e)))
            starts = [Start("templates", t.title, t.description, template=t.key)
                      for t in sweep_files.templates()]
        self.post_message(SweepStartsListed(starts))

    def on_sweep_starts_listed(self, message: SweepStartsListed) -> None:
        self.starts = message.starts
        self._fill(self.query_one("#ns-path", Input).value)

    def _fill(self, typed: str) -> None:
        """The starting points that match every word typed, by group; with something typed,
        a first entry opens it as a path."""
        words = typed.lower().split()
        options: list[Option | None] = []
        first_match = None
        if typed.strip():
            options.append(Option(Text.assemble(("open path ", "bold"), typed.strip()),
                                  id=PATH_OPTION))
        group = None
        for i, start in enumerate(self.starts):
            haystack = f"{start.group} {start.title} {start.description}".lower()
            if not all(w in haystack for w in words):
                continue
            if start.group != group:
                group = start.group
                options.append(Option(Text(GROUP_TITLES.get(group, group), style="bold"),
                                      disabled=True))
            prompt = Text.assemble((start.title, "bold"), "  ", (start.description, "dim"),
                                   no_wrap=True, overflow="ellipsis")
            if first_match is None:
                first_match = len(options)
            options.append(Option(prompt, id=f"start:{i}"))
        starts = self.query_one("#ns-starts", OptionList)
        starts.set_options(options)
        if options:
            starts.highlighted = first_match if first_match is not None else 0

    @on(Input.Changed, "#ns-path")
    def _typed(self, event: Input.Changed) -> None:
        self.query_one("#ns-pick-error").display = False
        self._fill(event.value)

    @on(Input.Submitted, "#ns-path")
    def _submitted(self, event: Input.Submitted) -> None:
        option = self.query_one("#ns-starts", OptionList).highlighted_option
        if option is not None and option.id:
            self._open(option.id)
        elif event.value.strip():
            self._open(PATH_OPTION)

    @on(OptionList.OptionSelected, "#ns-starts")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self._open(event.option.id)

    def action_pick_move(self, step: int) -> None:
        starts = self.query_one("#ns-starts", OptionList)
        starts.action_cursor_down() if step > 0 else starts.action_cursor_up()

    def _open(self, option_id: str) -> None:
        if option_id == PATH_OPTION:
            self.load(None, self.query_one("#ns-path", Input).value.strip())
        else:
            self.load(self.starts[int(option_id.split(":", 1)[1])], None)

    @work(thread=True, exclusive=True, group="ns-load")
    def load(self, start: Start | None, typed: str | None) -> None:
        """Read a starting point: a template, a listed file, or a typed path."""
        try:
            if start is not None and start.template is not None:
                template = sweep_files.template(start.template)
                message = SweepTextLoaded(template.text, self.cwd / f"{template.key}.toml",
                                          f"template: {template.title}")
            else:
                path, text = sweep_files.read_sweep_text(
                    start.path if start is not None else typed, self.cwd)
                message = SweepTextLoaded(text, path, sweep_files.shown_path(path, self.cwd),
                                          from_file=True,
                                          in_place=not sweep_files.is_bundled(path))
        except GridrunError as e:
            message = SweepTextLoaded(None, None, "", error=e)
        except Exception as e:  # noqa: BLE001 - shown, not raised into the app
            message = SweepTextLoaded(None, None, "", error=_unexpected(e))
        self.post_message(message)

    def on_sweep_text_loaded(self, message: SweepTextLoaded) -> None:
        if message.error is not None:
            box = self.query_one("#ns-pick-error", Static)
            box.update(Content.assemble(("✗ ", "bold $text-error"), str(message.error),
                                        *(("\n", ("hint: ", "bold"), message.error.hint)
                                          if message.error.hint else ())))
            box.display = True
            return
        if self.dirty():
            self.app.confirm_then(f"Replace your edits of {self.label} with {message.label}?",
                                  lambda: self._start_editing(message))
        else:
            self._start_editing(message)

    def _start_editing(self, message: SweepTextLoaded) -> None:
        self.origin, self.label, self.from_file = message.origin, message.label, message.from_file
        self.in_place = message.in_place
        self.summary = self.error = None
        self.checked_text = None
        editor = self.editor
        editor.load_text(message.text or "")
        self.original = editor.text
        editor.cursor_location = (0, 0)
        editor.scroll_home(animate=False)
        self.query_one(ContentSwitcher).current = "ns-edit"
        self.query_one("#ns-queue").display = True
        self.query_one("#ns-pick-error").display = False
        editor.focus()
        self._title()
        self.refresh_bindings()
        self.check_now()

    def action_pick(self) -> None:
        self.query_one(ContentSwitcher).current = "ns-pick"
        self.query_one("#ns-queue").display = False
        self.query_one("#ns-path", Input).focus()
        self._title()
        self.refresh_bindings()
        self.list_starts()       # files may have come or gone

    # -- editing and the live preview -------------------------------------------------------------

    @on(TextArea.Changed, "#ns-editor")
    def _edited(self) -> None:
        if self.origin is None:
            return
        self._title()
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(CHECK_DELAY_S, self.check_now)
        self.query_one("#ns-preview").border_subtitle = "checking…"

    def check_now(self) -> None:
        """Validate the text as it is now, in a worker (an unchanged text is not checked
        again)."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        text = self.editor.text
        if text == self.checked_text or self.origin is None:
            self.query_one("#ns-preview").border_subtitle = ""
            return
        self.checked_text = text
        self.generation += 1
        self.query_one("#ns-preview").border_subtitle = "checking…"
        self.check(text, self.origin, self.generation)

    @work(thread=True, exclusive=True, group="ns-check")
    def check(self, text: str, origin: Path, generation: int) -> None:
        try:
            message = SweepChecked(generation,
                                   sweep_files.summarize(sweep_files.check_text(text, origin)))
        except GridrunError as e:
            message = SweepChecked(generation, None, e)
        except Exception as e:  # noqa: BLE001 - a preview bug must not end the app
            message = SweepChecked(generation, None, _unexpected(e))
        self.post_message(message)

    def on_sweep_checked(self, message: SweepChecked) -> None:
        if message.generation != self.generation:
            return                              # an answer to an older text
        self.query_one("#ns-preview").border_subtitle = ""
        self.error = message.error
        if message.summary is not None:
            self._show_summary(message.summary)
        else:
            self._show_error(message.error)
        self.refresh_bindings()

    def _where_queued(self, name: str) -> str:
        """What ctrl+s will do with the text, in words."""
        if self.from_file and not self.dirty():
            return f"ctrl+s queues {self.label} as it is"
        if self.in_place:
            return f"ctrl+s saves your edit to {self.label} and queues it"
        target = sweep_files.sweeps_dir(self.app.home) / f"{name}.toml"
        return f"ctrl+s saves {sweep_files.shown_path(target, self.cwd)} and queues it"

    def _show_summary(self, summary: Summary) -> None:
        runs = "run" if summary.count == 1 else "runs"
        varies = " · ".join(f"{c} ×{summary.distinct[c]}" for c in summary.columns
                            if summary.distinct[c] > 1) or "nothing"
        stages = f" + {summary.later_stages} later stage(s)" if summary.later_stages else ""
        self._say(
            [Content.assemble(("✓ ", "bold $text-success"), (f"{summary.count:,} {runs}", "bold"),
                              f" in sweep {summary.name}{stages}"),
             Content.assemble(("varies ", "dim"), varies),
             Content(self._where_queued(summary.name)).stylize("dim")],
            [Content.assemble(("command ", "dim"), summary.command),
             Content.assemble(("starts in ", "dim"),
                              sweep_files.shown_path(Path(summary.workdir), self.cwd))])
        shown = len(summary.rows)
        self.query_one("#ns-preview").border_title = (
            f"preview · the first {shown:,} of {summary.count:,} runs"
            if summary.count > shown else "preview")
        self.summary = summary
        self._show_table(summary)

    def _say(self, lines: list[Content], details: list[Content]) -> None:
        """The verdict, always shown, and details that a narrow terminal leaves out."""
        self.query_one("#ns-verdict", Static).update(Content("\n").join(lines))
        self.query_one("#ns-details", Static).update(Content("\n").join(details))

    def _show_table(self, summary: Summary) -> None:
        table = self.query_one("#ns-runs", DataTable)
        table.display = True
        if table.columns and [str(c.label) for c in table.columns.values()][1:] == \
                list(summary.columns) and self._rows == summary.rows:
            return                               # the same expansion: keep the scroll position
        self._rows = summary.rows
        table.clear(columns=True)
        table.add_column("#", key="#")
        for column in summary.columns:
            table.add_column(column, key=column)
        for i, row in enumerate(summary.rows, 1):
            table.add_row(str(i), *row)

    def _show_error(self, error: GridrunError | None) -> None:
        assert error is not None
        where = (f"line {error.line}, col {error.col}: " if error.line is not None
                 and error.col is not None else f"line {error.line}: " if error.line else "")
        lines = [Content.assemble(("✗ ", "bold $text-error"), (where, "bold"), error.message)]
        if error.hint:
            lines.append(Content.assemble(("hint: ", "bold $text-warning"), error.hint))
        if error.line is not None:
            lines.append(Content(f"ctrl+g (or a click here) goes to line {error.line}")
                         .stylize("dim"))
        self._say(lines, [Content("nothing is queued while the text has an error")
                          .stylize("dim")])
        self.query_one("#ns-preview").border_title = "preview"
        self.query_one("#ns-runs", DataTable).display = False

    def action_goto_error(self) -> None:
        error = self.error
        if error is None or error.line is None or not self.editing:
            return
        editor = self.editor
        row = min(max(error.line - 1, 0), editor.document.line_count - 1)
        col = min(max((error.col or 1) - 1, 0), len(editor.document.get_line(row)))
        editor.focus()
        editor.cursor_location = (row, col)
        editor.scroll_cursor_visible(center=True)

    @on(events.Click, "#ns-verdict")
    def _verdict_clicked(self) -> None:
        self.action_goto_error()

    # -- queueing ------------------------------------------------------------------------------------

    @on(Button.Pressed, "#ns-queue")
    def _queue_pressed(self) -> None:
        self.action_queue()

    def action_queue(self) -> None:
        if not self.editing or self.origin is None or self.queueing:
            return
        self.queueing = True
        self.query_one("#ns-preview").border_subtitle = "queueing…"
        self.queue(self.editor.text, self.origin, self.original if self.in_place else None)

    @work(thread=True, exclusive=True, group="ns-queue")
    def queue(self, text: str, origin: Path, loaded: str | None) -> None:
        """Validate again (the preview may be behind), save where needed, add to the store.
        A user's file opened for editing is saved to itself (`loaded`: what it held when
        opened); a template, a study or an example goes to the home's sweeps folder."""
        try:
            message = SweepQueued(
                sweep_files.save_file_and_queue(self.app.store, text, origin, loaded)
                if loaded is not None else
                sweep_files.queue_sweep_text(self.app.store, text, origin))
        except GridrunError as e:
            message = SweepQueued(None, e)
        except Exception as e:  # noqa: BLE001 - nothing was queued; say so
            message = SweepQueued(None, _unexpected(e))
        self.post_message(message)

    def on_sweep_queued(self, message: SweepQueued) -> None:
        self.queueing = False
        self.query_one("#ns-preview").border_subtitle = ""
        if message.queued is None:
            error = message.error
            self.error = error
            self._show_error(error)
            self.refresh_bindings()
            self.notify(str(error), title="nothing queued", severity="error")
            return
        queued = message.queued
        result = queued.result
        text = f"queued {result.added} run{'' if result.added == 1 else 's'} in sweep " \
               f"{result.sweep}"
        if result.existing:
            text += f" ({result.existing} already in the store)"
        if queued.saved:
            text += f"; saved {sweep_files.shown_path(queued.path, self.cwd)}"
        self._leave(text, result.sweep)

    # -- leaving ---------------------------------------------------------------------------------------

    def action_back(self) -> None:
        if not self.editing and self.origin is not None:
            # back from the picker to the text being edited
            self.query_one(ContentSwitcher).current = "ns-edit"
            self.query_one("#ns-queue").display = True
            self.editor.focus()
            self._title()
            self.refresh_bindings()
        elif self.dirty():
            self.app.confirm_then(f"Discard your edits of {self.label}?", self._leave)
        else:
            self._leave()

    def _leave(self, text: str | None = None, sweep: str | None = None) -> None:
        app = self.app
        app.pop_screen()
        if sweep is not None and hasattr(app.screen, "select_sweep"):
            app.screen.select_sweep(sweep)             # the dashboard shows the new sweep
        if text is not None:
            below = app.screen
            if hasattr(below, "on_action_done"):
                below.post_message(ActionDone(text))   # the dashboard says it and refreshes
            else:
                app.notify(text)

    def action_select_all(self) -> None:
        """ctrl+a: the whole text in the editor, or all of what was typed in the path box."""
        focused = self.focused
        if isinstance(focused, (TextArea, Input)):
            focused.select_all()
