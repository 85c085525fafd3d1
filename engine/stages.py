"""Staged studies: one factor at a time.

Stage 1 is the file's own matrix. Stage s+1 starts when every run of stage s has ended: the
best configuration of stage s (by the sweep's metric and mode, mean over seeds, over its done
runs only; a tie goes to the configuration that comes first in the file) becomes the base,
and the stage's own `grid` / `zip` / `params` vary over it, times the sweep's seeds.

The base chosen for each stage is kept in the sweep's spec (`stage_bases`), so a stage is
expanded once, adding the file again does not expand it again, and the tables can say which
configuration each stage carried forward. A stage's runs are found by their parameters, so a
point that an earlier stage already ran is not run twice.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from gridrun.engine.matrix import RunSpec, canonical, flatten, varying_keys
from gridrun.engine.results import ResultTable, build
from gridrun.engine.store import Run, Store, Sweep


@dataclass(frozen=True)
class StageInfo:
    number: int
    base: dict | None          # None for stage 1
    runs: list[Run]
    keys: list[str]            # what this stage varies (seed aside)


def stage_count(sweep: Sweep) -> int:
    return 1 + len(sweep.spec.get("stages", []))


def expanded(sweep: Sweep) -> int:
    """How many stages have runs in the store."""
    return 1 + len(sweep.spec.get("stage_bases", {}))


def stage_points(sweep: Sweep, number: int, base: dict) -> list[dict]:
    """The runs of stage `number` (>= 2) over a base configuration."""
    stage = sweep.spec["stages"][number - 2]
    params = {**base, **flatten(stage.get("params", {}))}
    grid = flatten(stage.get("grid", {}))
    zipped = flatten(stage.get("zip", {}))
    grid_points = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
    zip_points = [dict(zip(zipped, combo)) for combo in zip(*zipped.values())] or [{}]
    seeds = sweep.spec.get("seeds") or []
    points = []
    for g in grid_points:
        for z in zip_points:
            point = {**params, **g, **z}
            points += [{**point, "seed": s} for s in seeds] if seeds else [point]
    return points


def stage_keys(sweep: Sweep, number: int) -> list[str]:
    if number == 1:
        return []
    stage = sweep.spec["stages"][number - 2]
    return list(flatten(stage.get("grid", {}))) + list(flatten(stage.get("zip", {})))


def stages(store: Store, sweep: Sweep) -> list[StageInfo]:
    """Every expanded stage with its runs."""
    runs = store.runs(sweep=sweep.name)
    by_key = {canonical(r.params): r for r in runs}
    bases = sweep.spec.get("stage_bases", {})
    first = [r for r in runs if r.stage == 1]
    names = list(dict.fromkeys(k for r in first for k in r.params))
    infos = [StageInfo(1, None, first, [k for k in varying_keys(names, tuple(
        RunSpec(r.params) for r in first)) if k != "seed"])]
    for number in range(2, expanded(sweep) + 1):
        base = bases[str(number)]
        members = [by_key[canonical(p)] for p in stage_points(sweep, number, base)
                   if canonical(p) in by_key]
        infos.append(StageInfo(number, base, members, stage_keys(sweep, number)))
    return infos


def stage_table(store: Store, sweep: Sweep, info: StageInfo, **options) -> ResultTable:
    """The results of one stage, with the configuration it carried forward marked."""
    table = build(store, sweep.name, run_ids={r.id for r in info.runs},
                  group_by=info.keys or None, stage=info.number, **options)
    nxt = sweep.spec.get("stage_bases", {}).get(str(info.number + 1))
    if nxt is None:
        return table
    rows = [row.__class__(**{**row.__dict__, "chosen": all(nxt.get(k) == v for k, v in
                                                           row.config.items())})
            for row in table.rows]
    return ResultTable(**{**table.__dict__, "rows": rows})


def advance(store: Store, sweep: Sweep) -> tuple[int, dict] | None:
    """Expand the next stage when the current one has ended; (stage, base) when it did."""
    if expanded(sweep) >= stage_count(sweep):
        return None
    current = stages(store, sweep)[-1]
    if not current.runs or any(r.status in ("queued", "running") for r in current.runs):
        return None
    done = {r.id for r in current.runs if r.status == "done"}
    if not done:
        return None  # nothing to choose from: the study stops here (the tables say so)
    table = build(store, sweep.name, run_ids=done, group_by=current.keys or None)
    best = table.best
    if best is None:
        return None
    run = next(r for r in current.runs if r.id == best.run_ids[0])
    # the seed is the sweep's to vary (`seeds`); a seed fixed in [params] stays with the base
    varied_seed = bool(sweep.spec.get("seeds"))
    base = {k: v for k, v in run.params.items() if k != "seed" or not varied_seed}
    number = current.number + 1
    points = stage_points(sweep, number, base)
    store.add_stage(sweep.id, number, base, [RunSpec(p, stage=number) for p in points],
                    stage_keys(sweep, number))
    return number, base
