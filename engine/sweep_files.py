"""Sweep files being written in the interface: where to start from, reading one to edit, and
saving edited text so that it queues exactly what was previewed.

Text being edited is always validated as if it were the file it came from (its `origin`): that
file's folder anchors relative paths (`workdir`, a script in `command`) and its stem names the
sweep when the text gives no `name`. Queueing it then follows one rule (`save_sweep_text`):

- the origin file holds exactly this text: it is queued as it is, nothing is written;
- otherwise the text is saved as `<home>/sweeps/<name>.toml`. When that is another folder than
  the origin's, a `workdir` line keeps the runs starting where they would have (the text's own
  relative `workdir` is made absolute; an absolute one is kept as it is).

Nothing is written, and nothing queued, from text with an error. No UI here: the interface calls
these from worker threads.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gridrun.engine import matrix
from gridrun.engine.errors import GridrunError
from gridrun.engine.store import AddResult, Store
from gridrun.engine.tomlpos import Locator

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SWEEPS_DIR = "sweeps"              # <home>/sweeps/<name>.toml: sweeps written in the interface
MAX_EDIT_BYTES = 2_000_000         # a run matrix is a page of text; more is not one to edit
MAX_LISTED = 60                    # files listed per folder
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# top-level keys of which a TOML file needs one to be listed as a sweep (pyproject.toml is not)
_SWEEP_KEYS = {"grid", "params", "command", "zip", "sample", "include", "seeds", "stages"}


# ----------------------------------------------------------------------------------------------
# Starting points


@dataclass(frozen=True)
class Template:
    key: str
    title: str
    description: str
    text: str


def _python() -> str:
    """The interpreter a user's own command should name: `python` where it resolves."""
    for name in ("python", "python3"):
        if shutil.which(name):
            return name
    return sys.executable


def templates() -> list[Template]:
    """The built-in starting points (their `command` names an interpreter found on PATH)."""
    digits = """\
# The built-in trainer on scikit-learn's bundled 8x8 digits (no
# download): 3 optimizers x 2 learning rates x 2 seeds = 12 runs,
# a few seconds each, even on a CPU.
name = "digits-optimizers"
description = "MLP on digits: optimizer x learning rate"
metric = "val_acc"       # the headline metric of tables and 'best'
mode = "max"
seeds = [0, 1]           # each configuration once per seed

[params]                 # the same in every run
dataset = "digits"
model = "mlp"
mlp.hidden = [64]
epochs = 5
batch_size = 64

[grid]                   # every combination of these lists
optimizer = ["sgd", "adam", "rmsprop"]
lr = [0.01, 0.001]

[resources]
gpus = 0                 # 8x8 images: a CPU is plenty (1: a GPU each)
timeout_min = 10
"""
    own = f"""\
# Your own training script. gridrun runs `command` once per run, in
# this file's folder (or `workdir`), each {{name}} replaced by the
# run's value and {{run_dir}} by its own folder. Metrics come from
# what the script prints ("epoch 3 loss 0.31 val_acc 0.97"), or from
#   from gridrun import report; report(epoch=3, val_acc=0.97)
name = "my-sweep"
description = "my script: learning rate x batch size"
metric = "val_acc"
mode = "max"
seeds = [0, 1, 2]
command = ["{_python()}", "train.py", "--lr", "{{lr}}",
           "--batch-size", "{{batch_size}}", "--epochs", "{{epochs}}",
           "--seed", "{{seed}}", "--out", "{{run_dir}}"]
# workdir = "path/to/project"   # where runs start, from this file

[params]
epochs = 10

[grid]
lr = [0.1, 0.01, 0.001]
batch_size = [64, 128]

[resources]
# gpus = 1        # per run (default: 1 where a GPU exists, else 0)
timeout_min = 60
"""
    return [
        Template("digits", "digits with the built-in trainer",
                 "an MLP on 8x8 digits, optimizer x learning rate, 12 short runs", digits),
        Template("own-script", "your own script",
                 "command = [...] with {lr}-style placeholders, run in your folder", own),
    ]


def template(key: str) -> Template:
    for t in templates():
        if t.key == key:
            return t
    raise GridrunError(f'no template "{key}"', hint=", ".join(t.key for t in templates()))


@dataclass(frozen=True)
class Start:
    """One starting point the new-sweep screen offers."""
    group: str                 # "templates", "here", "saved", "experiments", "examples"
    title: str                 # what the list shows: a template's title or a file's short path
    description: str           # a template's, or the file's `description = ...`
    template: str | None = None
    path: Path | None = None


def _describe(path: Path) -> str | None:
    """The file's description for the list; None when it is not a run matrix at all."""
    try:
        raw = path.read_bytes()[:MAX_EDIT_BYTES]
        data = tomllib.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError):
        return None
    except tomllib.TOMLDecodeError:
        return "(not valid TOML yet)"
    if not _SWEEP_KEYS & set(data):
        return None
    description = data.get("description")
    return description if isinstance(description, str) else ""


def shown_path(path: Path, cwd: Path) -> str:
    """A path as short as it can be said: relative to cwd, else under ~, else absolute."""
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        pass
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except (ValueError, RuntimeError):
        return str(path)


def list_starts(home: str | Path, cwd: str | Path | None = None) -> list[Start]:
    """Templates, then the run matrices in the current folder, the ones saved in the home, the
    project's studies (experiments/) and its examples (examples/). Reads each file's head."""
    home = Path(home).absolute()
    cwd = Path(cwd or Path.cwd()).absolute()
    starts = [Start("templates", t.title, t.description, template=t.key) for t in templates()]
    folders = [("here", cwd), ("saved", home / SWEEPS_DIR),
               ("experiments", PROJECT_ROOT / "experiments"),
               ("examples", PROJECT_ROOT / "examples")]
    seen: set[Path] = set()
    for group, folder in folders:
        try:
            files = sorted(p for p in folder.glob("*.toml") if p.is_file())[:MAX_LISTED]
        except OSError:
            continue
        for path in files:
            real = path.resolve()
            if real in seen:
                continue
            seen.add(real)
            description = _describe(path)
            if description is not None:
                starts.append(Start(group, shown_path(path.absolute(), cwd), description,
                                    path=path.absolute()))
    return starts


# ----------------------------------------------------------------------------------------------
# Reading and saving


def resolve_path(typed: str | Path, cwd: str | Path | None = None) -> Path:
    """What a user typed (~ expanded, relative to cwd) as an absolute path."""
    path = Path(typed).expanduser()
    return path if path.is_absolute() else Path(cwd or Path.cwd()).absolute() / path


def read_sweep_text(path: str | Path, cwd: str | Path | None = None) -> tuple[Path, str]:
    """A sweep file's absolute path and text, to edit: any text, even invalid TOML, is returned
    (the editor is where it gets fixed); what cannot be edited as text is a GridrunError."""
    p = resolve_path(path, cwd)
    shown = str(path)
    if not str(path).strip():
        raise GridrunError("no path given, expected a TOML file")
    if p.is_dir():
        raise GridrunError("is a directory, expected a TOML file", path=shown)
    try:
        size = p.stat().st_size
        if size > MAX_EDIT_BYTES:
            raise GridrunError(f"too large to edit ({size / 1e6:.1f} MB), expected a run matrix",
                               path=shown)
        raw = p.read_bytes()
    except FileNotFoundError:
        raise GridrunError("no such file", path=shown) from None
    except OSError as e:
        raise GridrunError(f"cannot read: {e.strerror}", path=shown) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise GridrunError(f"not UTF-8 text (byte {e.start}), expected a TOML file",
                           path=shown) from None
    return p, text


def check_text(text: str, origin: str | Path) -> matrix.SweepSpec:
    """Validate text as if it were the file at `origin` (GridrunError with line and column)."""
    return matrix.loads(text, Path(origin).absolute())


@dataclass(frozen=True)
class Summary:
    """What a valid sweep expands to, for a preview: plain, formatted data."""
    name: str
    count: int                           # runs of the first stage
    columns: tuple[str, ...]             # the varying parameters (all of them for a single run)
    distinct: dict[str, int]             # number of distinct values of each column
    rows: tuple[tuple[str, ...], ...]    # the first runs' values of those columns
    command: str                         # "built-in trainer" or the command as written
    workdir: str
    later_stages: int


def summarize(spec: matrix.SweepSpec, limit: int = 200) -> Summary:
    runs = spec.runs
    columns = spec.varying or (tuple(runs[0].params) if runs else ())
    distinct = {c: len({matrix.canonical({"v": r.params.get(c)}) for r in runs})
                for c in columns}
    rows = tuple(tuple(matrix.format_value(r.params[c]) if c in r.params else "-"
                       for c in columns) for r in runs[:limit])
    command = (" ".join(spec.command) if spec.command
               else "the built-in trainer (python -m gridrun.experiments.train)")
    return Summary(spec.name, len(runs), tuple(columns), distinct, rows, command, spec.workdir,
                   len(spec.stages))


def _same_text(a: str, b: str) -> bool:
    return a.replace("\r\n", "\n") == b.replace("\r\n", "\n")


def _holds(path: Path, text: str) -> bool:
    """The file exists and holds exactly this text."""
    try:
        return path.is_file() and _same_text(path.read_bytes().decode("utf-8"), text)
    except (OSError, UnicodeDecodeError):
        return False


def _toml_string(value: str) -> str:
    # a JSON string is a TOML basic string (same quotes and escapes)
    return json.dumps(value, ensure_ascii=False)


def anchor_workdir(text: str, folder: str | Path) -> str:
    """The text, with its runs starting in `folder` wherever the file is saved: a `workdir`
    line is added when the text has none, and its own relative `workdir` is made absolute
    (relative to `folder`). The text must be valid TOML."""
    folder = Path(folder).absolute()
    data = tomllib.loads(text)
    given = data.get("workdir")
    if given is None:
        line = (f"workdir = {_toml_string(str(folder))}"
                "   # where the runs start: the folder this sweep was written in")
        return f"{line}\n{text}"
    if not isinstance(given, str) or Path(given).is_absolute():
        return text
    lineno, _ = Locator(text).find("", "workdir")
    lines = text.splitlines(keepends=True)
    if lineno is None or lineno > len(lines):
        raise GridrunError('cannot find the "workdir" line to make it absolute',
                           hint="write workdir as an absolute path")
    absolute = (folder / given).resolve()
    ending = "\n" if lines[lineno - 1].endswith("\n") else ""
    lines[lineno - 1] = (f"workdir = {_toml_string(str(absolute))}"
                         f"   # was {_toml_string(given)}, relative to {folder}{ending}")
    return "".join(lines)


def sweeps_dir(home: str | Path) -> Path:
    return Path(home).absolute() / SWEEPS_DIR


def _prepare(home: str | Path, text: str, origin: str | Path
             ) -> tuple[Path, str | None, matrix.SweepSpec]:
    """(where the sweep is queued from, the text to write there or None, its spec)."""
    origin = Path(origin).absolute()
    spec = check_text(text, origin)           # raises before anything is written
    if _holds(origin, text):
        return origin, None, spec
    target = sweeps_dir(home) / f"{spec.name}.toml"
    final = text
    if target.parent.resolve() != origin.parent.resolve():
        final = anchor_workdir(text, origin.parent)
    saved = matrix.loads(final, target)       # the file as it will be read back
    if [r.key for r in saved.runs] != [r.key for r in spec.runs] or saved.name != spec.name:
        raise GridrunError("saving the sweep would change its runs", path=str(target),
                           hint="give it an absolute workdir and save it yourself")
    return target, final, saved


def _write_atomic(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        raise GridrunError(f"cannot save the sweep: {e.strerror}", path=str(path)) from None


def save_sweep_text(home: str | Path, text: str, origin: str | Path) -> Path:
    """The file to queue this text from: `origin` itself when it holds exactly this text,
    else `<home>/sweeps/<name>.toml`, written (atomically) with the runs still starting in the
    origin's folder. Text with an error raises GridrunError and writes nothing."""
    path, final, _ = _prepare(home, text, origin)
    if final is not None:
        _write_atomic(path, final)
    return path


@dataclass(frozen=True)
class Queued:
    path: Path                 # the file queued
    saved: bool                # written now (False: an existing file queued as it is)
    result: AddResult

    @property
    def name(self) -> str:
        return self.result.sweep


def queue_sweep_text(store: Store, text: str, origin: str | Path) -> Queued:
    """Save (when needed) and queue text being edited; runs already queued are left alone.
    Nothing is written or queued from text with an error."""
    path, final, spec = _prepare(store.home, text, origin)
    if final is not None:
        _write_atomic(path, final)
    return Queued(path, final is not None, store.add_sweep(spec))


def save_file_and_queue(store: Store, text: str, path: str | Path, loaded: str) -> Queued:
    """A file opened for editing: the edit is written back to THAT file (atomically), then it
    is queued. `loaded` is the text it held when opened: a file changed on disk since then is
    not overwritten. Text with an error writes and queues nothing."""
    path = Path(path).absolute()
    spec = check_text(text, path)             # raises before anything is written
    if _holds(path, text):
        return Queued(path, False, store.add_sweep(spec))
    if path.exists() and not _holds(path, loaded):
        raise GridrunError("the file changed on disk since it was opened; not overwritten",
                           path=str(path), hint="your edit is still in the editor: save it "
                                                "elsewhere, or ctrl+o opens the file again")
    _write_atomic(path, text)
    return Queued(path, True, store.add_sweep(spec))


def is_bundled(path: str | Path) -> bool:
    """A file that ships with gridrun (its studies and examples): edits of it are saved to the
    home's sweeps folder, never into the installation."""
    real = Path(path).resolve()
    return any(real.is_relative_to((PROJECT_ROOT / folder).resolve())
               for folder in ("experiments", "examples"))
