"""Optimizers and learning-rate schedulers by name, their arguments checked against torch's
signatures (an unknown optim.* or sched.* argument is an error, never dropped).

Names and classes come from the schema's tables (experiments.schema.OPTIMIZERS, SCHEDULERS).
Scheduler arguments the user leaves unset get defaults that fit the run's length, counted in the
unit the scheduler steps in (epochs or optimizer steps: see experiments.train.Plan).
"""
from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch.optim import Optimizer, lr_scheduler

from gridrun.experiments import schema
from gridrun.experiments.config import TrainerError, check_kwargs

OPTIMIZERS: dict[str, type[Optimizer]] = {
    name: getattr(torch.optim, cls) for name, cls in schema.OPTIMIZERS.items()
    if hasattr(torch.optim, cls)    # Adafactor arrived in torch 2.5
}


def list_optimizers() -> list[str]:
    return list(OPTIMIZERS)


def _signature(cls: type) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(cls.__init__).parameters)


def create_optimizer(name: str, params: Iterable[torch.nn.Parameter], *, lr: float,
                     weight_decay: float, momentum: float, extra: Mapping[str, Any]) -> Optimizer:
    """`extra` is the optim.* group. weight_decay and momentum go to the optimizers that take
    them; elsewhere a non-zero value is ignored with a warning (the schema's promise)."""
    if name not in OPTIMIZERS:
        raise TrainerError(f"optimizer {name!r} needs torch.optim.{schema.OPTIMIZERS[name]}, "
                           f"which torch {torch.__version__} does not have")
    cls = OPTIMIZERS[name]
    if cls is torch.optim.SparseAdam:
        raise TrainerError("optimizer sparse_adam (torch.optim.SparseAdam) needs sparse "
                           "gradients, which only nn.Embedding(sparse=True) gives; the built-in "
                           "models have none: use adam")
    sig = _signature(cls)
    accepted = [k for k in sig if k not in ("self", "params", "lr", "weight_decay", "momentum")]
    for named in ("lr", "weight_decay", "momentum"):
        if named in extra:
            raise TrainerError(f"optim.{named}: set `{named}` itself, not optim.{named}")
    check_kwargs(f"{name} (torch.optim.{cls.__name__})", extra, accepted, "optim.")
    kwargs: dict[str, Any] = {"lr": lr}
    for named, value in (("weight_decay", weight_decay), ("momentum", momentum)):
        if named in sig:
            kwargs[named] = value
        elif value:
            print(f"warning: {name} takes no {named}; {named} = {value} is ignored",
                  file=sys.stderr)
    for key, value in extra.items():
        # TOML has no tuples; where torch's default is one (betas, etas), give it one
        kwargs[key] = tuple(value) if isinstance(value, list) and isinstance(
            sig[key].default, tuple) else value
    try:
        return cls(params, **kwargs)
    except (ValueError, TypeError) as e:
        raise TrainerError(f"optimizer {name}: {e}") from None


def _cycles_momentum(opt: Optimizer) -> bool:
    """CyclicLR and OneCycleLR cycle momentum (or Adam's beta1) by default; an optimizer without
    either, or SGD without momentum, must not get one behind the user's back."""
    return "betas" in opt.defaults or opt.defaults.get("momentum", 0) > 0


# name -> (length in scheduler steps, optimizer) -> defaults for the arguments left unset
_FITTED: dict[str, Callable[[int, Optimizer], dict[str, Any]]] = {
    "step": lambda n, opt: {"step_size": max(1, n // 3)},
    "multistep": lambda n, opt: {"milestones": sorted({max(1, n // 2), max(1, 3 * n // 4)})},
    "exponential": lambda n, opt: {"gamma": 0.01 ** (1 / n)},     # lr / 100 at the end
    "cosine": lambda n, opt: {"T_max": n},
    "plateau": lambda n, opt: {},
    "cyclic": lambda n, opt: {"base_lr": opt.defaults["lr"] / 10, "max_lr": opt.defaults["lr"],
                              "step_size_up": max(1, n // 4),     # two cycles per run
                              "cycle_momentum": _cycles_momentum(opt)},
    "onecycle": lambda n, opt: {"max_lr": opt.defaults["lr"], "total_steps": n,
                                "cycle_momentum": _cycles_momentum(opt)},
}
SCHEDULERS: dict[str, type | None] = {
    name: None if cls is None else getattr(lr_scheduler, cls)
    for name, cls in schema.SCHEDULERS.items()
}
assert set(_FITTED) | {"none"} == set(SCHEDULERS)


def list_schedulers() -> list[str]:
    return list(SCHEDULERS)


def create_scheduler(name: str, opt: Optimizer, *, length: int, extra: Mapping[str, Any]):
    """The scheduler (None for "none"); `length` is the run's length in scheduler steps."""
    cls = SCHEDULERS[name]
    if cls is None:
        if extra:
            raise TrainerError(f"sched.{next(iter(extra))}: scheduler = \"none\" takes no "
                               "arguments")
        return None
    accepted = [k for k in _signature(cls) if k not in ("self", "optimizer", "verbose")]
    check_kwargs(f"{name} (torch.optim.lr_scheduler.{cls.__name__})", extra, accepted, "sched.")
    kwargs = {**_FITTED[name](length, opt), **extra}
    if "total_steps" in kwargs and "total_steps" not in extra and (
            {"epochs", "steps_per_epoch"} & set(extra)):
        del kwargs["total_steps"]       # onecycle counted the user's way: epochs x steps_per_epoch
    try:
        return cls(opt, **kwargs)
    except (ValueError, TypeError) as e:
        raise TrainerError(f"scheduler {name}: {e}") from None
