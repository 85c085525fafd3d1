"""Which built-in-trainer runs can be trained fused, in one process (experiments.fused).

Standard library only, like experiments.schema: the daemon (engine/, torch-free) groups queued
runs by `fusion_key(params)`, and the fused trainer checks its members with the same function.

Runs fuse when they share everything that shapes the computation (model and its settings, data
and split, batch size, length, augmentation pipeline, precision, optimizer and its flags) and
differ only in what a fused group carries per member: the names in `CARRIED` (lr, weight decay,
momentum, seed, scheduler and its arguments, early stopping, ...) and the optimizer arguments in
`FUSABLE_OPTIMIZERS[name]` (betas, eps, alpha, nesterov, ...). Every other parameter is part of
the key, so members of one group agree on it.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gridrun.experiments import schema

# Parameters each member of a group may set to its own value.
CARRIED: frozenset[str] = frozenset({
    "lr", "weight_decay", "momentum", "seed", "scheduler", "sched_interval", "grad_clip",
    "mixup_alpha", "stop_on_stuck", "checkpoint_every", "early_stop.patience",
    "early_stop.min_epochs", "early_stop.metric", "early_stop.min_delta",
})
CARRIED_GROUPS: tuple[str, ...] = ("sched.",)

# optimizer -> its optim.* arguments a member may set to its own value (the fused update rule
# takes them as per-member tensors). Its other arguments (amsgrad, centered, maximize, ...) are
# part of the key. Optimizers not listed run alone.
FUSABLE_OPTIMIZERS: dict[str, frozenset[str]] = {
    "sgd": frozenset({"dampening", "nesterov"}),
    "adam": frozenset({"betas", "eps"}),
    "adamw": frozenset({"betas", "eps"}),
    "adamax": frozenset({"betas", "eps"}),
    "rmsprop": frozenset({"alpha", "eps"}),
    "adagrad": frozenset({"lr_decay", "eps", "initial_accumulator_value"}),
}

# Settings the fused loop does not take: torch.compile of a vmapped model, channels-last layouts.
_ALONE_WHEN_SET = ("compile", "channels_last")


def why_alone(params: Mapping[str, Any]) -> str | None:
    """Why a run with these parameters (dotted names, defaults filled in or not) must run alone,
    or None when it can be fused with others of its key."""
    cfg = _resolved(params)
    optimizer = cfg.get("optimizer")
    if optimizer not in FUSABLE_OPTIMIZERS:
        return (f"optimizer {optimizer!r} has no fused update rule (fusable: "
                f"{', '.join(FUSABLE_OPTIMIZERS)})")
    for name in _ALONE_WHEN_SET:
        if cfg.get(name):
            return f"{name} = true"
    return None


def fusion_key(params: Mapping[str, Any]) -> str | None:
    """A text equal for runs that can train fused together; None for a run that must run alone.

    `params` are a run's parameters as dotted names; unset ones count as their defaults, so a
    run that spells out a default fuses with one that leaves it out."""
    if why_alone(params) is not None:
        return None
    cfg = _resolved(params)
    carried_optim = {f"optim.{name}" for name in FUSABLE_OPTIMIZERS[cfg["optimizer"]]}
    shared = {name: value for name, value in cfg.items()
              if name not in CARRIED and name not in carried_optim
              and not name.startswith(CARRIED_GROUPS)}
    return json.dumps(shared, sort_keys=True, separators=(",", ":"), default=str)


def _resolved(params: Mapping[str, Any]) -> dict[str, Any]:
    cfg = schema.defaults()
    cfg.update({name: list(v) if isinstance(v, tuple) else v for name, v in params.items()})
    return cfg
