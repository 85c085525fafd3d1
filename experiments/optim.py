"""Optimizers and learning-rate schedulers by name.

Names, classes and the arguments each takes come from the schema's tables
(experiments.schema.OPTIMIZERS, OPTIMIZER_ARGS, SCHEDULERS, SCHEDULER_ARGS), which
tests/test_schema.py keeps equal to torch's signatures; an unknown optim.* or sched.* argument
is refused before the run starts (schema.check_run), never dropped.
Scheduler arguments the user leaves unset get defaults that fit the run's length, counted in the
unit the scheduler steps in (epochs or optimizer steps: see experiments.train.Plan).
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer, lr_scheduler

from gridrun.experiments import schema
from gridrun.experiments.config import TrainerError

OPTIMIZERS: dict[str, type[Optimizer]] = {
    name: getattr(torch.optim, cls) for name, cls in schema.OPTIMIZERS.items()
    if hasattr(torch.optim, cls)    # an older torch (>= 2.4 is supported) lacks Adafactor, Muon
}


class MuonWithAdamW(Optimizer):
    """torch.optim.Muon takes 2-D parameters only, and is meant for the hidden layers' weight
    matrices (its docstring); this one optimizer steps Muon on those and AdamW on the rest
    (convolution kernels, biases, norms, tokens, the class layer), so the trainer, schedulers
    and checkpoints see a single optimizer. Both parts share `lr` and `weight_decay`; their
    param_groups are the very dicts this optimizer lists, so a scheduler moves both."""

    def __init__(self, matrices: list[nn.Parameter], rest: list[nn.Parameter], *, lr: float,
                 weight_decay: float, momentum: float, muon_args: Mapping[str, Any]):
        self.parts = []
        if matrices:
            self.parts.append(OPTIMIZERS["muon"](matrices, lr=lr, weight_decay=weight_decay,
                                               momentum=momentum, **muon_args))
        if rest:
            self.parts.append(torch.optim.AdamW(rest, lr=lr, weight_decay=weight_decay))
        super().__init__([g for part in self.parts for g in part.param_groups],
                         dict(self.parts[0].defaults))
        # Optimizer.__init__ copied the groups: share the parts' own dicts instead
        self.param_groups = [g for part in self.parts for g in part.param_groups]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for part in self.parts:
            part.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"parts": [part.state_dict() for part in self.parts]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for part, state in zip(self.parts, state_dict["parts"], strict=True):
            part.load_state_dict(state)


def _muon_split(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(2-D weights of the hidden layers, everything else); the class layer, the model's last
    nn.Linear, goes with the rest, as Muon's authors advise."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    head = {id(p) for p in linears[-1].parameters()} if linears else set()
    matrices, rest = [], []
    for param in model.parameters():
        if param.requires_grad:
            (matrices if param.ndim == 2 and id(param) not in head else rest).append(param)
    return matrices, rest


def create_optimizer(name: str, model: nn.Module, *, lr: float, weight_decay: float,
                     momentum: float, extra: Mapping[str, Any]) -> Optimizer:
    """`extra` is the optim.* group, already checked against schema.OPTIMIZER_ARGS (by
    schema.check_run, through config.resolve). weight_decay and momentum go to the optimizers
    that take them; elsewhere a non-zero value is ignored with a warning (the schema's promise)."""
    if name not in OPTIMIZERS:
        raise TrainerError(f"optimizer {name!r} needs torch.optim.{schema.OPTIMIZERS[name]}, "
                           f"which torch {torch.__version__} does not have")
    cls = OPTIMIZERS[name]
    sig = schema.OPTIMIZER_ARGS[name]
    kwargs: dict[str, Any] = {}
    for named, value in (("weight_decay", weight_decay), ("momentum", momentum)):
        if named in sig:
            kwargs[named] = value
        elif value:
            print(f"warning: {name} takes no {named}; {named} = {value} is ignored",
                  file=sys.stderr)
    for key, value in extra.items():
        # TOML has no tuples; where torch's default is one (betas, etas), give it one
        kwargs[key] = tuple(value) if isinstance(value, list) and isinstance(
            sig.get(key), tuple) else value
    try:
        if name == "muon":
            matrices, rest = _muon_split(model)
            return MuonWithAdamW(matrices, rest, lr=lr, weight_decay=kwargs.pop("weight_decay"),
                                 momentum=kwargs.pop("momentum"), muon_args=kwargs)
        return cls(model.parameters(), lr=lr, **kwargs)
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
    "cosine_restarts": lambda n, opt: {"T_0": max(1, n // 2)},     # two cycles per run
    "polynomial": lambda n, opt: {"total_iters": n},
    "constant": lambda n, opt: {},
    "linear": lambda n, opt: {},
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



def create_scheduler(name: str, opt: Optimizer, *, length: int, extra: Mapping[str, Any]):
    """The scheduler (None for "none"); `length` is the run's length in scheduler steps."""
    cls = SCHEDULERS[name]          # extra: checked against schema.SCHEDULER_ARGS already
    if cls is None:
        return None
    kwargs = {**_FITTED[name](length, opt), **extra}
    if "total_steps" in kwargs and "total_steps" not in extra and (
            {"epochs", "steps_per_epoch"} & set(extra)):
        del kwargs["total_steps"]       # onecycle counted the user's way: epochs x steps_per_epoch
    try:
        return cls(opt, **kwargs)
    except (ValueError, TypeError) as e:
        raise TrainerError(f"scheduler {name}: {e}") from None
