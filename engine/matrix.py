"""A run-matrix TOML file -> a validated `SweepSpec` with every run's parameters.

Runs = [params] merged with each point of grid x zip x sample, plus [[include]], minus
[[exclude]], times `seeds`. Every check happens here, before anything is stored, and each
error names the file, line and column (see `tomlpos`). The run count is computed from the
sizes before anything is expanded, so a typo'd 10^9-run grid fails at once.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import re
import shutil
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridrun.engine.errors import GridrunError, did_you_mean
from gridrun.engine.tomlpos import Locator, syntax_error

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MAX_RUNS = 100_000
NAME_RE = re.compile(r"^[a-z0-9_-]+$")
TOP_KEYS = ("name", "description", "metric", "mode", "seeds", "command", "workdir", "params",
            "grid", "zip", "sample", "include", "exclude", "resources", "parse", "stages",
            "warm", "preload")
MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
RESOURCE_KEYS = ("gpus", "gpu_mem_gb", "timeout_min", "retries", "priority", "ray", "fuse")
# Ray's own resource names: `gpus` and the CPU share already ask for them
RAY_RESERVED = ("CPU", "GPU", "memory", "object_store_memory")
STAGE_KEYS = ("name", "grid", "zip", "params")
DISTRIBUTIONS = ("uniform", "log_uniform", "int_uniform", "choice")
# names a command template may use besides the parameters
TEMPLATE_EXTRAS = ("run_dir", "run_id", "sweep", "index", "attempt")
_TEMPLATE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


@dataclass(frozen=True)
class Resources:
    gpus: int | None = None          # None: 1 where a GPU exists, else 0 (decided when placed)
    gpu_mem_gb: float | None = None
    timeout_min: float | None = None
    retries: int = 0
    priority: int = 0
    ray: dict[str, float] | None = None   # custom Ray resources per run (--backend ray only)
    fuse: bool = True                # built-in-trainer runs may train fused (engine.groups)


@dataclass(frozen=True)
class RunSpec:
    params: dict[str, Any]
    stage: int = 1

    @property
    def key(self) -> str:
        """Canonical identity of a run within its sweep: what makes adds idempotent."""
        return canonical(self.params)


@dataclass(frozen=True)
class SweepSpec:
    name: str
    source: str                      # absolute path of the TOML file
    workdir: str                     # absolute; where each run's process starts
    command: tuple[str, ...] | None  # None: the built-in trainer
    description: str = ""
    metric: str | None = None
    mode: str = "max"
    seeds: tuple[int, ...] = ()
    resources: Resources = field(default_factory=Resources)
    parse_patterns: tuple[str, ...] = ()
    varying: tuple[str, ...] = ()    # keys whose value differs: grid, zip, sample, include order
    stages: tuple[dict, ...] = ()    # later stages, kept for the daemon to expand
    runs: tuple[RunSpec, ...] = ()
    warm: bool | None = None         # forked from a zygote (engine.warm); None: only the
                                     # built-in trainer is, `false` turns it off for it too
    preload: tuple[str, ...] = ()    # modules that zygote imports first

    def to_json(self) -> dict:
        """The sweep-level settings the store keeps (runs are stored one by one)."""
        return {
            "source": self.source, "workdir": self.workdir,
            "command": list(self.command) if self.command else None,
            "description": self.description, "metric": self.metric, "mode": self.mode,
            "seeds": list(self.seeds), "resources": self.resources.__dict__,
            "parse_patterns": list(self.parse_patterns), "varying": list(self.varying),
            "stages": list(self.stages), "warm": self.warm, "preload": list(self.preload),
        }


def canonical(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def builtin_command() -> tuple[str, ...]:
    """The built-in trainer, run by the daemon's own interpreter. `-P` (Python 3.11+) keeps the
    run's working directory, the sweep file's folder, off `sys.path`: nothing a user keeps
    there can stand in for a module of gridrun."""
    safe_path = ("-P",) if sys.version_info >= (3, 11) else ()
    return (sys.executable, *safe_path, "-m", "gridrun.experiments.train")


# ----------------------------------------------------------------------------------------------
# Loading


def read_toml(path: str | Path) -> tuple[Path, str, dict]:
    """Read and parse a TOML file; every way it can be unreadable is a GridrunError."""
    p = Path(path)
    if p.is_dir():
        raise GridrunError("is a directory, expected a TOML file", path=str(path))
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise GridrunError("no such file", path=str(path)) from None
    except OSError as e:
        raise GridrunError(f"cannot read: {e.strerror}", path=str(path)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise GridrunError(f"not UTF-8 text (byte {e.start}), expected a TOML file",
                           path=str(path)) from None
    return p, text, parse_text(text, str(path))


def parse_text(text: str, shown: str) -> dict:
    if not text.strip():
        raise GridrunError("empty file, expected a TOML run matrix", path=shown,
                           hint='start from `name = "my-sweep"` and a [grid] table')
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        message, line, col = syntax_error(text, str(e))   # where it was opened, if unclosed
        raise GridrunError(f"invalid TOML: {message[:1].lower()}{message[1:]}",
                           path=shown, line=line, col=col) from None


def load(path: str | Path, *, max_runs: int = MAX_RUNS, check_program: bool = True) -> SweepSpec:
    p, text, data = read_toml(path)
    return _Builder(p, text, data, max_runs, check_program).build()


def loads(text: str, path: str | Path, *, max_runs: int = MAX_RUNS,
          check_program: bool = True) -> SweepSpec:
    """A run matrix from text being edited, as if it were the file at `path` (which names the
    sweep by default and anchors relative paths); the file need not exist."""
    p = Path(path)
    return _Builder(p, text, parse_text(text, str(p)), max_runs, check_program).build()


def flatten(table: Mapping[str, Any], prefix: str = "", *, keep=lambda v: False) -> dict[str, Any]:
    """Nested tables become dotted names: {"optim": {"betas": x}} -> {"optim.betas": x}."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not keep(value):
            flat.update(flatten(value, name + ".", keep=keep))
        else:
            flat[name] = value
    return flat


def unflatten(params: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of flatten, for writing config.toml as the user would."""
    nested: dict[str, Any] = {}
    # "a" and "a.b" both given cannot both nest: such names stay flat (quoted keys in TOML)
    clashing = {n for n in params for other in params if other.startswith(n + ".")}
    for name, value in params.items():
        if name in clashing or any(name.startswith(c + ".") for c in clashing):
            nested[name] = value
            continue
        node = nested
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


_MISSING = object()


def _plain(value: Any) -> bool:
    """A value a parameter may take: str, number, bool, or a (nested) list of those."""
    if isinstance(value, (str, int, float, bool)):
        return True
    return isinstance(value, list) and all(_plain(v) for v in value)


def _holds_nul(value: Any) -> bool:
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return isinstance(value, str) and "\0" in value


def _is_distribution(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in DISTRIBUTIONS


def _looks_like_distribution(value: Any) -> bool:
    """`{ normal = [0, 1] }` is a misspelt distribution, not a nested table of parameters."""
    return (isinstance(value, dict) and len(value) == 1
            and not isinstance(next(iter(value.values())), dict))


class _Builder:
    """One pass over one file; raises the first error found, with its position."""

    def __init__(self, path: Path, text: str, data: dict, max_runs: int, check_program: bool):
        self.path = path.resolve()
        self.shown = str(path)
        self.loc = Locator(text)
        self.data = data
        self.max_runs = max_runs
        self.check_program = check_program

    # -- errors ---------------------------------------------------------------------------------

    def error(self, message: str, table: str = "", key: str | None = None, nth: int = 0,
              hint: str | None = None) -> GridrunError:
        line, col = self.loc.find(table, key, nth)
        return GridrunError(message, path=self.shown, line=line, col=col, hint=hint)

    def expect(self, ok: bool, message: str, table: str = "", key: str | None = None, **kw):
        if not ok:
            raise self.error(message, table, key, **kw)

    def table(self, name: str) -> dict:
        value = self.data.get(name, {})
        self.expect(isinstance(value, dict), f"[{name}] must be a table", "", name)
        return value

    # -- the pieces -----------------------------------------------------------------------------

    def build(self) -> SweepSpec:
        for key in self.data:
            if key not in TOP_KEYS:
                raise self.error(f'unknown key "{key}", expected one of {", ".join(TOP_KEYS)}',
                                 "", key, hint=did_you_mean(key, TOP_KEYS))
        name = self.sweep_name()
        workdir = self.workdir()
        command = self.command()
        params = self.params_table()
        grid = self.grid()
        zipped = self.zipped()
        sample_count, sample = self.sample()
        includes = self.list_of_tables("include")
        excludes = self.list_of_tables("exclude")
        seeds = self.seeds()
        self.check_overlaps(params, grid, zipped, sample, seeds)

        points = len(zipped[next(iter(zipped))]) if zipped else 1
        count = math.prod(len(v) for v in grid.values()) * points * max(sample_count, 1)
        if includes and not (grid or zipped or sample_count):
            count = 0
        count = (count + len(includes)) * max(len(seeds), 1)
        if count > self.max_runs:
            raise self.error(f"expands to {count:,} runs, over the limit of {self.max_runs:,}",
                             "grid", hint="pass --max-runs N to lift the limit")

        runs = list(self.expand(name, params, grid, zipped, sample_count, sample, includes, seeds))
        runs = self.apply_excludes(runs, excludes)
        names = self.all_names(params, grid, zipped, sample, includes, seeds)
        if command is None:
            self.check_schema(runs, names, includes)
        else:
            self.check_template(command, names, runs)
        for run in runs:
            for key, value in run.items():
                if isinstance(value, str) and "\0" in value:
                    raise self.error(f'value of "{key}" holds a NUL character, which no '
                                     "argument can carry", *self.where(key, value))
        specs = tuple(RunSpec(r) for r in dedupe(runs))
        return SweepSpec(
            name=name, source=str(self.path), workdir=str(workdir), command=command,
            description=self.string("description", ""), metric=self.metric(),
            mode=self.mode(), seeds=tuple(seeds), resources=self.resources(),
            parse_patterns=self.parse_patterns(), varying=varying_keys(names, specs),
            stages=self.stages(), runs=specs, warm=self.warm(command), preload=self.preload())

    def string(self, key: str, default: str | None) -> str | None:
        value = self.data.get(key, default)
        self.expect(value is None or isinstance(value, str),
                    f"{key} must be a string, got {type_name(value)}", "", key)
        return value

    def sweep_name(self) -> str:
        if "name" in self.data:
            name = self.string("name", None)
            self.expect(bool(name) and NAME_RE.fullmatch(name) is not None,
                        f'invalid sweep name "{name}", expected lowercase letters, digits, '
                        "'_' and '-'", "", "name")
            return name
        derived = re.sub(r"[^a-z0-9_-]+", "-", self.path.stem.lower()).strip("-")
        if not derived:
            raise self.error("cannot derive a sweep name from the file name",
                             hint='add `name = "my-sweep"` at the top')
        return derived

    def workdir(self) -> Path:
        rel = self.string("workdir", None)
        if rel is None:
            return self.path.parent
        workdir = (self.path.parent / rel).resolve()
        self.expect(workdir.is_dir(), f'workdir "{rel}" is not a directory', "", "workdir")
        return workdir

    def command(self) -> tuple[str, ...] | None:
        if "command" not in self.data:
            return None
        cmd = self.data["command"]
        self.expect(isinstance(cmd, list) and len(cmd) > 0 and all(isinstance(a, str) for a in cmd),
                    "command must be a non-empty list of strings", "", "command",
                    hint='e.g. command = ["python", "train.py", "--lr", "{lr}"]')
        if self.check_program and "{" not in cmd[0]:
            program = cmd[0]
            found = shutil.which(program) if "/" not in program else None
            if found is None and "/" in program:
                candidate = Path(program) if Path(program).is_absolute() else self.workdir() / program
                found = str(candidate) if candidate.is_file() else None
            self.expect(found is not None, f'command program "{program}" not found on PATH '
                        "or as a file", "", "command")
        return tuple(cmd)

    def warm(self, command: tuple[str, ...] | None) -> bool | None:
        """`warm = true` forks the runs from a zygote of gridrun's own Python (engine.warm):
        only `python script.py ...` or `python -m module ...` with that interpreter can."""
        warm = self.data.get("warm")
        self.expect(warm is None or isinstance(warm, bool),
                    f"warm must be true or false, got {type_name(warm)}", "", "warm")
        if not warm or command is None:   # the built-in trainer can always start warm
            return warm
        hint = 'e.g. command = ["python", "train.py", "--lr", "{lr}"]'
        shape = len(command) >= 2 and "{" not in command[0] + command[1] and (
            command[1].endswith(".py") or (command[1] == "-m" and len(command) >= 3
                                           and MODULE_RE.fullmatch(command[2]) is not None))
        self.expect(shape, "warm = true needs a command that runs a Python script or module, "
                    "expected [python, script.py, ...] or [python, -m, module, ...]", "",
                    "command", hint=hint)
        if self.check_program:
            program = command[0]
            found = shutil.which(program) if "/" not in program else str(self.workdir() / program)
            ours = Path(sys.executable)
            same = found is not None and Path(found).is_file() and Path(found).resolve() == \
                ours.resolve() and Path(found).absolute().parent == ours.absolute().parent
            self.expect(same, f"warm = true runs the script in gridrun's own Python ({ours}); "
                        f'"{program}" is {found or "not found"}', "", "command",
                        hint=f'set command[0] to "{ours}", or leave warm out to start it cold')
        return warm

    def preload(self) -> tuple[str, ...]:
        preload = self.data.get("preload", [])
        self.expect(isinstance(preload, list) and all(
            isinstance(m, str) and MODULE_RE.fullmatch(m) for m in preload),
            "preload must be a list of module names", "", "preload",
            hint='e.g. preload = ["torch", "torchvision"]')
        warm = self.data.get("warm", "command" not in self.data)   # the built-in trainer: warm
        self.expect(not preload or warm is True, "preload applies to warm starts only", "",
                    "preload", hint="add warm = true")
        return tuple(preload)

    def params_table(self) -> dict:
        params = flatten(self.table("params"))
        for key, value in params.items():
            self.check_value(value, "params", key)
        return params

    def check_value(self, value: Any, table: str, key: str, nth: int = 0) -> None:
        self.expect(_plain(value), f'value of "{key}" is {type_name(value)}, expected a string, '
                    "number, boolean or a list of those", table, key, nth=nth)
        self.expect(not _holds_nul(value), f'value of "{key}" holds a NUL character, which no '
                    "argument can carry", table, key, nth=nth)

    def grid(self) -> dict[str, list]:
        grid = flatten(self.table("grid"))
        for key, values in grid.items():
            self.expect(isinstance(values, list), f'grid value "{key}" must be a list, got '
                        f"{type_name(values)}", "grid", key,
                        hint=f"write {key} = [{toml_repr(values)}], or move it to [params]")
            self.expect(len(values) > 0, f'grid value "{key}" is an empty list', "grid", key)
            for value in values:
                self.check_value(value, "grid", key)
        return grid

    def zipped(self) -> dict[str, list]:
        zipped = flatten(self.table("zip"))
        lengths = {}
        for key, values in zipped.items():
            self.expect(isinstance(values, list) and values,
                        f'zip value "{key}" must be a non-empty list', "zip", key)
            for value in values:
                self.check_value(value, "zip", key)
            lengths[key] = len(values)
        if len(set(lengths.values())) > 1:
            first, n = next(iter(lengths.items()))
            for key, length in lengths.items():
                if length != n:
                    raise self.error(f'zip lists have unequal lengths: "{first}" has {n}, '
                                     f'"{key}" has {length}', "zip", key)
        return zipped

    def sample(self) -> tuple[int, dict[str, dict]]:
        table = self.table("sample")
        if not table:
            return 0, {}
        count = table.get("count")
        self.expect(isinstance(count, int) and not isinstance(count, bool) and count >= 1,
                    "[sample] needs count = N (an integer >= 1)", "sample", "count")
        dists = flatten({k: v for k, v in table.items() if k != "count"},
                        keep=_looks_like_distribution)
        for key, dist in dists.items():
            if not _is_distribution(dist):
                raise self.error(f'sample "{key}" must be one of {{ uniform = [a, b] }}, '
                                 "{ log_uniform = [a, b] }, { int_uniform = [a, b] }, "
                                 "{ choice = [...] }", "sample", key)
            kind, args = next(iter(dist.items()))
            if kind == "choice":
                self.expect(isinstance(args, list) and args, f'sample "{key}": choice needs a '
                            "non-empty list", "sample", key)
                for value in args:
                    self.check_value(value, "sample", key)
                continue
            ok = (isinstance(args, list) and len(args) == 2
                  and all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
                  and args[0] <= args[1])
            self.expect(ok, f'sample "{key}": {kind} needs [low, high] numbers with low <= high',
                        "sample", key)
            if kind == "int_uniform":
                self.expect(all(isinstance(a, int) for a in args),
                            f'sample "{key}": int_uniform needs integer bounds', "sample", key)
            if kind == "log_uniform":
                self.expect(args[0] > 0, f'sample "{key}": log_uniform needs low > 0',
                            "sample", key)
        return count, dists

    def list_of_tables(self, name: str) -> list[dict]:
        value = self.data.get(name, [])
        self.expect(isinstance(value, list) and all(isinstance(t, dict) for t in value),
                    f"{name} must be written as [[{name}]] tables", "", name)
        tables = [flatten(t) for t in value]
        for i, t in enumerate(tables):
            for key, v in t.items():
                self.check_value(v, name, key, nth=i)
        return tables

    def seeds(self) -> list[int]:
        seeds = self.data.get("seeds", [])
        ok = isinstance(seeds, list) and all(isinstance(s, int) and not isinstance(s, bool)
                                             for s in seeds)
        self.expect(ok, "seeds must be a list of integers", "", "seeds")
        self.expect(len(set(seeds)) == len(seeds), "seeds has a duplicate", "", "seeds")
        return seeds

    def check_overlaps(self, params, grid, zipped, sample, seeds) -> None:
        tables = {"params": params, "grid": grid, "zip": zipped, "sample": sample}
        owner: dict[str, str] = {}
        for table, keys in tables.items():
            for key in keys:
                if key in owner:
                    raise self.error(f'"{key}" is given in both [{owner[key]}] and [{table}]',
                                     table, key)
                owner[key] = table
        if seeds and "seed" in owner:
            raise self.error(f'"seed" is in [{owner["seed"]}] and seeds = [...] is set too',
                             "", "seeds", hint="keep one of them")

    def expand(self, name, params, grid, zipped, sample_count, sample, includes, seeds
               ) -> Iterator[dict]:
        grid_points = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
        zip_points = [dict(zip(zipped, combo)) for combo in zip(*zipped.values())] or [{}]
        sample_points = draw_samples(name, sample_count, sample) or [{}]
        swept = bool(grid or zipped or sample_count)
        # a study of [[include]] runs alone is exactly those runs, not [params] plus them
        bases = [{**params, **g, **z, **s}
                 for g in grid_points for z in zip_points for s in sample_points
                 ] if swept or not includes else []
        bases += [{**params, **inc} for inc in includes]
        for base in bases:
            if seeds:
                for seed in seeds:
                    yield {**base, "seed": seed}
            else:
                yield base

    def apply_excludes(self, runs: list[dict], excludes: list[dict]) -> list[dict]:
        if not excludes:
            return runs
        known = {k for r in runs for k in r}
        for i, exc in enumerate(excludes):
            for key in exc:
                if key not in known:
                    raise self.error(f'[[exclude]] names "{key}", which no run has', "exclude",
                                     key, nth=i, hint=did_you_mean(key, known))
        kept = [r for r in runs if not any(all(r.get(k, _MISSING) == v for k, v in exc.items())
                                           for exc in excludes)]
        if not kept:
            raise self.error("[[exclude]] removes every run", "exclude",
                             hint="an exclude drops runs that match all of its keys")
        return kept

    def all_names(self, params, grid, zipped, sample, includes, seeds) -> list[str]:
        names: dict[str, None] = {}
        for table in (grid, zipped, sample, *includes, params):
            names.update(dict.fromkeys(table))
        if seeds:
            names["seed"] = None
        return list(names)

    def where(self, key: str, value: Any = _MISSING) -> tuple[str, str, int]:
        """(table, key, nth) of where a parameter is written; with a value, the [[include]]
        that gives that value."""
        if key == "seed" and "seeds" in self.data:
            return "", "seeds", 0
        candidates = []
        for table in ("grid", "zip", "sample", "params"):
            section = self.data.get(table, {})
            # only [sample] holds distributions: `vit = { heads = [4] }` is a dotted name
            keep = _looks_like_distribution if table == "sample" else (lambda v: False)
            flat = flatten(section, keep=keep) if isinstance(section, dict) else {}
            if key in flat:
                given = flat[key]
                holds = given == value or (table in ("grid", "zip") and isinstance(given, list)
                                           and value in given)
                candidates.append((not holds, table))
        if value is _MISSING and candidates:
            return candidates[0][1], key, 0
        if candidates and min(candidates)[0] is False:
            return min(candidates, key=lambda c: c[0])[1], key, 0
        includes = self.data.get("include", [])
        for nth, inc in enumerate(includes if isinstance(includes, list) else []):
            flat = flatten(inc) if isinstance(inc, dict) else {}
            if key in flat and (value is _MISSING or flat[key] == value):
                return "include", key, nth
        if candidates:
            return candidates[0][1], key, 0
        return "", key, 0

    def check_schema(self, runs: list[dict], names: list[str], includes: list[dict]) -> None:
        """Built-in trainer: every name must be one of its parameters, every value allowed
        (each run's values are checked, so sampled values and seeds are too)."""
        from gridrun.experiments import schema  # torch-free by contract

        known = schema.known_names()
        for key in names:
            if not schema.is_free(key) and schema.lookup(key) is None:
                raise self.error(f'unknown parameter "{key}" for the built-in trainer',
                                 *self.where(key), hint=did_you_mean(key, known)
                                 or "set command = [...] to run your own script")
        checked: set[str] = set()
        for run in runs:
            for key, value in run.items():
                if schema.is_free(key):
                    continue
                token = canonical({"k": key, "v": value})
                if token in checked:
                    continue
                checked.add(token)
                if problem := schema.check(key, value):
                    raise self.error(f'"{key}": {problem}', *self.where(key, value))
        self.check_run_rules(runs, schema)

    def check_run_rules(self, runs: list[dict], schema) -> None:
        """Rules between parameters (vit.width a multiple of vit.heads, optim.* arguments the
        chosen optimizer takes, ...), on each run's values over the defaults, reported where
        the file sets the value that breaks it: a varied value before a [params] one."""
        defaults = schema.defaults()
        checked: set[str] = set()
        for run in runs:
            token = canonical({k: v for k, v in run.items() if k != "seed"})
            if token in checked:
                continue
            checked.add(token)
            violation = schema.check_run({**defaults, **run})
            if violation is None:
                continue
            places = [self.where(name, run[name]) for name in violation.names if name in run]
            varied = [place for place in places if place[0] != "params"]
            place = (varied or places or [("", None, 0)])[0]
            raise self.error(violation.message, *place)

    def check_template(self, command: tuple[str, ...], names: list[str], runs: list[dict]
                       ) -> None:
        allowed = set(names) | set(TEMPLATE_EXTRAS)
        everywhere = set.intersection(*(set(r) for r in runs)) | set(TEMPLATE_EXTRAS)
        for arg in command:
            if "\0" in arg:
                raise self.error("a command argument holds a NUL character", "", "command")
            for match in _TEMPLATE.finditer(arg):
                ref = match.group(1)
                if ref is None:
                    continue
                if ref not in allowed:
                    raise self.error(f'command uses "{{{ref}}}", which no parameter provides',
                                     "", "command", hint=did_you_mean(ref, allowed))
                if ref not in everywhere:
                    missing = sum(1 for r in runs if ref not in r)
                    raise self.error(f'command uses "{{{ref}}}", which {missing} of the '
                                     f"{len(runs)} runs do not have", "", "command",
                                     hint=f"give {ref} a default in [params]")

    def metric(self) -> str | None:
        return self.string("metric", None)

    def mode(self) -> str:
        mode = self.string("mode", "max")
        self.expect(mode in ("max", "min"), f'mode must be "max" or "min", got "{mode}"', "",
                    "mode")
        return mode

    def resources(self) -> Resources:
        table = self.table("resources")
        for key in table:
            if key not in RESOURCE_KEYS:
                raise self.error(f'unknown key "{key}" in [resources], expected one of '
                                 f'{", ".join(RESOURCE_KEYS)}', "resources", key,
                                 hint=did_you_mean(key, RESOURCE_KEYS))
        def number(key, integer, low, default):
            value = table.get(key, default)
            if value is None:
                return None
            good_type = isinstance(value, int) if integer else isinstance(value, (int, float))
            self.expect(good_type and not isinstance(value, bool) and value >= low,
                        f"{key} must be {'an integer' if integer else 'a number'} >= {low}, "
                        f"got {toml_repr(value)}", "resources", key)
            return value
        timeout = number("timeout_min", False, 0, None)
        self.expect(timeout is None or timeout > 0, "timeout_min must be > 0", "resources",
                    "timeout_min")
        mem = number("gpu_mem_gb", False, 0, None)
        self.expect(mem is None or mem > 0, "gpu_mem_gb must be > 0", "resources", "gpu_mem_gb")
        priority = table.get("priority", 0)
        self.expect(isinstance(priority, int) and not isinstance(priority, bool),
                    "priority must be an integer", "resources", "priority")
        fuse = table.get("fuse", True)
        self.expect(isinstance(fuse, bool), f"fuse must be true or false, got {toml_repr(fuse)}",
                    "resources", "fuse")
        return Resources(gpus=number("gpus", True, 0, None), gpu_mem_gb=mem,
                         timeout_min=timeout, retries=number("retries", True, 0, 0),
                         priority=priority, ray=self.ray_resources(table.get("ray")),
                         fuse=fuse)

    def ray_resources(self, value: Any) -> dict[str, float] | None:
        """`ray = { bigmem = 1 }`: custom resources a node offers (`ray start --resources`)."""
        if value is None:
            return None
        self.expect(isinstance(value, dict), "ray must be a table of resource = amount, like "
                    "{ bigmem = 1 }", "resources", "ray")
        for name, amount in value.items():
            self.expect(name not in RAY_RESERVED and not name.startswith("node:"),
                        f'"{name}" in ray = {{...}} is set by gridrun, expected a custom '
                        "resource name", "resources", "ray",
                        hint="`gpus` and `gpu_mem_gb` ask for GPUs; every run holds one CPU")
            self.expect(isinstance(amount, (int, float)) and not isinstance(amount, bool)
                        and math.isfinite(amount) and amount > 0,
                        f"ray resource {name} must be a number > 0, got {toml_repr(amount)}",
                        "resources", "ray")
        return {name: float(amount) for name, amount in value.items()}

    def parse_patterns(self) -> tuple[str, ...]:
        table = self.table("parse")
        for key in table:
            if key != "patterns":
                raise self.error(f'unknown key "{key}" in [parse], expected "patterns"', "parse",
                                 key, hint=did_you_mean(key, ["patterns"]))
        patterns = table.get("patterns", [])
        self.expect(isinstance(patterns, list) and all(isinstance(p, str) for p in patterns),
                    "patterns must be a list of regular expressions", "parse", "patterns")
        for pattern in patterns:
            try:
                compiled = re.compile(pattern)
            except re.error as e:
                raise self.error(f"invalid regular expression {pattern!r}: {e}", "parse",
                                 "patterns") from None
            self.expect(bool(compiled.groupindex), f"pattern {pattern!r} has no named group",
                        "parse", "patterns", hint="name the value: (?P<val_acc>[0-9.]+)")
        return tuple(patterns)

    def stages(self) -> tuple[dict, ...]:
        stages = self.list_of_tables_raw("stages")
        builtin = "command" not in self.data
        for i, stage in enumerate(stages):
            for key in stage:
                if key not in STAGE_KEYS:
                    raise self.error(f'unknown key "{key}" in [[stages]], expected one of '
                                     f'{", ".join(STAGE_KEYS)}', "stages", key, nth=i,
                                     hint=did_you_mean(key, STAGE_KEYS))
            tables = {}
            for part in ("grid", "zip", "params"):
                table = stage.get(part, {})
                self.expect(isinstance(table, dict), f"a stage's {part} must be a table",
                            "stages", part, nth=i)
                tables[part] = flatten(table)
            for part in ("grid", "zip"):
                for key, values in tables[part].items():
                    self.expect(isinstance(values, list) and len(values) > 0,
                                f'stage {i + 2}: {part} value "{key}" must be a non-empty list',
                                "stages", f"{part}.{key}", nth=i)
            self.expect(bool(tables["grid"] or tables["zip"]),
                        f"stage {i + 2} varies nothing: give it a grid", "stages", nth=i)
            if len({len(v) for v in tables["zip"].values()}) > 1:
                raise self.error(f"stage {i + 2}: zip lists have unequal lengths", "stages",
                                 "zip", nth=i)
            values = [(k, v) for k, vs in (*tables["grid"].items(), *tables["zip"].items())
                      for v in vs] + list(tables["params"].items())
            for key, value in values:
                self.check_value(value, "stages", key, nth=i)
                if builtin:
                    self.check_stage_schema(key, value, i)
        if stages:
            self.expect(self.data.get("metric") is not None,
                        "[[stages]] keep the best of each stage, which needs metric = \"...\"",
                        "", "stages")
        return tuple(stages)

    def check_stage_schema(self, key: str, value: Any, nth: int) -> None:
        from gridrun.experiments import schema

        if schema.is_free(key):
            return
        if schema.lookup(key) is None:
            raise self.error(f'unknown parameter "{key}" for the built-in trainer', "stages",
                             key, nth=nth, hint=did_you_mean(key, schema.known_names()))
        if problem := schema.check(key, value):
            raise self.error(f'"{key}": {problem}', "stages", key, nth=nth)

    def list_of_tables_raw(self, name: str) -> list[dict]:
        value = self.data.get(name, [])
        self.expect(isinstance(value, list) and all(isinstance(t, dict) for t in value),
                    f"{name} must be written as [[{name}]] tables", "", name)
        return value


def draw_samples(name: str, count: int, dists: dict[str, dict]) -> list[dict]:
    """`count` random points, seeded by the sweep name so that re-adding draws the same runs."""
    if not count:
        return []
    rng = random.Random(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big"))
    points = []
    for _ in range(count):
        point = {}
        for key, dist in dists.items():
            kind, args = next(iter(dist.items()))
            if kind == "uniform":
                value: Any = rng.uniform(*args)
            elif kind == "log_uniform":
                value = math.exp(rng.uniform(math.log(args[0]), math.log(args[1])))
            elif kind == "int_uniform":
                value = rng.randint(int(args[0]), int(args[1]))
            else:
                value = rng.choice(args)
            # 6 significant digits: readable in tables and folder names, stable across runs
            point[key] = float(f"{value:.6g}") if isinstance(value, float) else value
        points.append(point)
    return points


def dedupe(runs: list[dict]) -> list[dict]:
    seen: dict[str, dict] = {}
    for run in runs:
        seen.setdefault(canonical(run), run)
    return list(seen.values())


def varying_keys(names: list[str], runs: tuple[RunSpec, ...]) -> tuple[str, ...]:
    """The keys whose value is not the same in every run, in the order of `names` (grid, zip,
    sample, include, params, seed): the most deliberate variation first."""
    varying = []
    for name in names:
        values = {canonical({"v": r.params.get(name, None)}) for r in runs}
        if len(values) > 1:
            varying.append(name)
    return tuple(varying)


def slug(params: Mapping[str, Any], varying: tuple[str, ...] | list[str]) -> str:
    """A folder-safe name from the varying parameters: [A-Za-z0-9._=-], at most 80 chars."""
    parts = [f"{k}={format_value(params[k])}" for k in varying if k in params]
    text = "_".join(parts) or "run"
    text = re.sub(r"[^A-Za-z0-9._=-]+", "-", text)
    text = re.sub(r"\.{2,}", ".", text)  # never '..', even inside a name
    return text[:80].strip("-.") or "run"


def format_value(value: Any) -> str:
    """How a parameter value is written into argv and slugs."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def render_command(command: tuple[str, ...], values: Mapping[str, Any]) -> list[str]:
    """Fill `{name}` in each argument separately; `{{` and `}}` are literal braces."""
    def fill(match: re.Match) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        return format_value(values[match.group(1)])
    return [_TEMPLATE.sub(fill, arg) for arg in command]


def type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def toml_repr(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    return format_value(value)
