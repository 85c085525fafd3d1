"""A run's parameters: read, merged over the schema's defaults, checked; and the trainer's errors.

The schema (experiments/schema.py) is the single source of names, kinds and defaults. Names under
the free groups (optim.*, sched.*, aug.<name>.*) pass the schema and are checked here, against
the keyword arguments of what they are handed to, by `check_kwargs`.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from gridrun.experiments import schema

if sys.version_info >= (3, 11):
    import tomllib
else:                                   # pyproject's `tomli; python_version < '3.11'`
    import tomli as tomllib


class TrainerError(Exception):
    """A problem the user can fix (a bad argument, a missing file): shown as one line, exit 2."""


def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested TOML tables back to dotted names: {"optim": {"betas": x}} -> {"optim.betas": x}.

    A copy of engine.matrix.flatten: experiments may reach the engine only through engine.report.
    """
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def read_toml(path: Path) -> dict[str, Any]:
    """A config file's parameters as dotted names; a sweep file's [params] table is taken too."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise TrainerError(f"{path}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise TrainerError(f"{path}: {e}") from None
    params = data.get("params")
    return flatten(params if isinstance(params, dict) else data)


def parse_set(text: str) -> tuple[str, Any]:
    """`--set name=value`: the value is read as TOML (`lr=0.1`, `mlp.hidden=[64]`), else as text."""
    name, eq, raw = text.partition("=")
    if not eq or not name.strip():
        raise TrainerError(f"--set {text!r}: expected name=value")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw                     # `dataset=mnist` without quotes
    return name.strip(), value


def resolve(given: Mapping[str, Any]) -> dict[str, Any]:
    """The schema's defaults overlaid with `given`; every value checked. Lists stay lists."""
    cfg = schema.defaults()
    problems = []
    for name, value in given.items():
        problem = schema.check(name, value)
        if problem is not None and problem.startswith("unknown"):   # it names the parameter
            problems.append(problem + schema.did_you_mean(name, schema.known_names()))
        elif problem is not None:
            problems.append(f"{name}: {problem}")
        cfg[name] = list(value) if isinstance(value, tuple) else value
    if problems:
        raise TrainerError("; ".join(problems))
    if violation := schema.check_run(cfg):     # what `gridrun queue add` refuses, by hand too
        raise TrainerError(violation.message)
    return cfg


def group(cfg: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The parameters under `prefix.` without it: group(cfg, "optim") -> {"betas": [...]}."""
    start = prefix + "."
    return {name[len(start):]: value for name, value in cfg.items() if name.startswith(start)}


def check_kwargs(what: str, given: Mapping[str, Any], accepted: Iterable[str], prefix: str) -> None:
    """Raise TrainerError naming the first argument of `given` that `what` does not take."""
    accepted = sorted(accepted)
    for name in given:
        if name not in accepted:
            raise TrainerError(
                f"{prefix}{name}: {what} takes no argument {name!r}"
                f"{schema.did_you_mean(name, accepted)}; it takes: "
                f"{', '.join(accepted) or 'none'}")
