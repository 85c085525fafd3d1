"""Fused runs: several runs of the built-in trainer trained together in one process.

    python -m gridrun.experiments.fused --run-dir D1 --run-dir D2 ...   # each D has config.toml

Runs that share everything that shapes the computation (experiments.fusion_key) are stacked:
their parameters, buffers and optimizer states become M x ... tensors
(`torch.func.stack_module_state`), one `vmap(functional_call)` forward and one backward train
them all, and experiments.fused_optim applies each member's own optimizer hyperparameters.
Everything else stays per member and is the lone trainer's own code (experiments.train):
the model is created, seeded and checkpointed as there; each member's torch generator state is
swapped in around its own draws (data order, augmentation, mixup), so a member sees the very
batches it sees alone; its scheduler steps a proxy optimizer (experiments.fused_optim).

Each member stays a run: its metrics.jsonl (engine.report.report_to), its checkpoint.pt in the
lone trainer's format (a member resumes alone or in a group), its lines in <dir>/stdout.log and,
when it ends, <dir>/fused_status.json: {"status": "done" | "failed" | "cancelled", "exit_code":
0 | 1 | 2, "error": text or null}. A member that diverges or is stuck fails alone, early stopping
ends one member, and a file <dir>/cancel (polled after each epoch) takes a member out; the others
go on. Members that cannot train together (other keys, checkpoints at other epochs) are trained
in turn, each set fused.

Numbers: a member equals its lone run up to float rounding (the stacked kernels sum in another
order); with dropout, the masks come from a generator of the group, so those runs are equal in
distribution only.

Exit status: 0 when every member ended done, 1 when any failed or was cancelled, 2 a usage error.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from gridrun.engine.report import report_to
from gridrun.experiments import checkpoint
from gridrun.experiments import data as datasets
from gridrun.experiments import fused_mlp
from gridrun.experiments.augment import create_pipeline, mixup
from gridrun.experiments.config import TrainerError, group, read_toml, resolve
from gridrun.experiments.fused_optim import StackedOptimizer
from gridrun.experiments.fusion_key import fusion_key, why_alone
from gridrun.experiments.models import count_params, create_model
from gridrun.experiments.optim import create_optimizer, create_scheduler
from gridrun.experiments.train import (
    STUCK_EPOCHS, Plan, _check_early_stop, _device, _early_stop_due, _inputs, _interval, _named,
    _seed, _stuck, use_thread_share)

STATUS_FILE = "fused_status.json"
CANCEL_FILE = "cancel"
LOG_FILE = "stdout.log"


@dataclass(eq=False)
class Member:
    """One run of a group: what the lone trainer keeps for it, between the group's steps."""
    run_dir: Path
    cfg: dict
    model: nn.Module | None = None      # the run's weights at its last checkpoint
    optimizer: Any = None               # proxy: the scheduler sets its lr; its state is saved
    scheduler: Any = None
    interval: str = "epoch"
    rng: dict = field(default_factory=dict)     # checkpoint.rng_state()'s format, kept current
    history: list[dict] = field(default_factory=list)
    checkpoint_due: checkpoint.Due | None = None
    status: dict | None = None          # set when the member ends

    @property
    def name(self) -> str:
        return self.run_dir.name

    def log(self, line: str) -> None:
        """One line of the member's stdout.log, echoed on the group's stdout with its name."""
        print(f"[{self.name}] {line}", flush=True)
        try:
            with open(self.run_dir / LOG_FILE, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError:
            pass                        # the log is a courtesy; metrics.jsonl is the record

    def emit(self, metrics: dict) -> None:
        report_to(self.run_dir, **metrics)
        self.log(" ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in metrics.items()))

    def end(self, status: str, exit_code: int, error: str | None = None) -> None:
        if error:
            self.log(error)
        self.status = {"status": status, "exit_code": exit_code, "error": error}
        tmp = self.run_dir / f"{STATUS_FILE}.tmp"
        tmp.write_text(json.dumps(self.status) + "\n")
        os.replace(tmp, self.run_dir / STATUS_FILE)


class MemberRng:
    """Swaps a member's torch generator state in around its draws: each member draws the same
    numbers as its lone run, and the group's own draws (dropout masks) touch none of them."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.index = device.index if device.index is not None else (
            torch.cuda.current_device() if self.cuda else 0)

    @contextlib.contextmanager
    def of(self, member: Member):
        saved = self._get()
        self._set(member.rng["torch"], member.rng["cuda"])
        try:
            yield
        finally:
            member.rng["torch"], cuda = self._get()
            if self.cuda:
                states = list(member.rng["cuda"]) or torch.cuda.get_rng_state_all()
                states[self.index] = cuda
                member.rng["cuda"] = states
            self._set(*saved)

    def _get(self) -> tuple[Tensor, Any]:
        return torch.get_rng_state(), (torch.cuda.get_rng_state(self.index) if self.cuda
                                       else None)

    def _set(self, cpu: Tensor, cuda: Any) -> None:
        torch.set_rng_state(cpu)
        if isinstance(cuda, list):      # checkpoint.rng_state()'s list, one state per GPU
            cuda = cuda[self.index] if len(cuda) > self.index else None
        if self.cuda and cuda is not None:
            torch.cuda.set_rng_state(cuda, self.index)


# ---------------------------------------------------------------------------------------------
# Setting members up: the lone trainer's objects, one set per member

def _prepare(member: Member, data: datasets.Data, plan: Plan, device: torch.device) -> None:
    """Model, proxy optimizer, scheduler and generator state as the lone run makes them, then
    its checkpoint when one of the same parameters is there. Raises TrainerError."""
    cfg = member.cfg
    _seed(cfg["seed"])
    member.model = create_model(cfg, data.shape, data.classes).to(device)
    member.optimizer = create_optimizer(cfg["optimizer"], member.model, lr=cfg["lr"],
                                        weight_decay=cfg["weight_decay"],
                                        momentum=cfg["momentum"], extra=group(cfg, "optim"))
    member.interval = _interval(cfg)
    member.scheduler = create_scheduler(cfg["scheduler"], member.optimizer,
                                        length=plan.scheduler_length(member.interval),
                                        extra=group(cfg, "sched"))
    _check_early_stop(cfg, data.val is not None, data.classes >= 100)
    member.rng = checkpoint.rng_state()
    member.checkpoint_due = checkpoint.Due(cfg["checkpoint_every"])
    state = checkpoint.load(member.run_dir)
    if state is not None and state["config"] != cfg:
        member.log(f"warning: {member.run_dir / checkpoint.FILE} was written for other "
                   "parameters; starting from fresh weights")
        state = None
    if state is not None:
        member.model.load_state_dict(state["model"])
        member.optimizer.load_state_dict(state["optimizer"])
        if member.scheduler is not None:
            member.scheduler.load_state_dict(state["scheduler"])
        member.rng = state["rng"]
        member.history = state["history"]
        member.log(f"resuming from {member.run_dir / checkpoint.FILE} at epoch "
                   f"{len(member.history) + 1}")


def _fail_setup(member: Member, e: Exception) -> None:
    member.end("failed", 2, f"error: {e}")


# ---------------------------------------------------------------------------------------------
# The stack: M members' weights and optimizer state as M x ... tensors

class Stack:
    """The members' weights as one M x P tensor (`flat`, member m's parameters one after
    another in row m), their buffers stacked M x ..., the stacked optimizer and the forward."""

    def __init__(self, members: list[Member], steps_done: int):
        self.members = members
        models = [m.model for m in members]
        self.base = copy.deepcopy(models[0]).to("meta")     # the structure, no storage
        params, self.buffers = stack_module_state(models)
        self.names = list(params)
        self.shapes = [params[n].shape[1:] for n in self.names]
        self.flat = torch.cat([params[n].detach().flatten(1) for n in self.names], 1)
        self.flat.requires_grad_()
        self.optimizer = StackedOptimizer(members[0].cfg["optimizer"], self.flat, self.shapes,
                                          [m.optimizer for m in members], steps_done)

        self._views: list[Tensor] | None = None
        layers = fused_mlp.plan(self.base, self.names)
        self.mlp = fused_mlp.StackedMLP(layers) if layers is not None else None
        if self.mlp is not None:
            mlp = self.mlp
            self.train_forward = lambda params, buffers, x: mlp.forward(params, x, True)
            self.eval_forward = lambda params, buffers, x: mlp.forward(
                params, x.expand(len(params[0]), *x.shape), False)
            return

        def call(params: list[Tensor], buffers: dict[str, Tensor], x: Tensor) -> Tensor:
            return functional_call(self.base, (dict(zip(self.names, params)), buffers), (x,))

        self.train_forward = vmap(call, randomness="different")
        self.eval_forward = vmap(call, in_dims=(0, 0, None), randomness="different")

    def __len__(self) -> int:
        return len(self.members)

    def params(self, flat: Tensor | None = None) -> list[Tensor]:
        """Each parameter, M x its shape, as a view of `flat` (the stack's own by default: made
        once, as the optimizer updates `flat` in place)."""
        if flat is None:
            if self._views is None:
                self._views = self.params(self.flat)
            return self._views
        views, offset = [], 0
        for shape in self.shapes:
            n = shape.numel()
            views.append(flat[:, offset:offset + n].view(len(flat), *shape))
            offset += n
        return views

    def keep(self, members: list[Member]) -> None:
        """Only `members` go on (the others ended)."""
        if members == self.members:
            return
        rows = self.rows(members).to(self.flat.device)
        self.members = members
        self.flat = self.flat.detach()[rows].requires_grad_()
        self._views = None
        self.buffers = {n: b[rows] for n, b in self.buffers.items()}
        self.optimizer.keep(self.flat, rows, [m.optimizer for m in members])

    @torch.no_grad()
    def export(self, i: int) -> None:
        """Member i's weights and optimizer state back into its own model and proxy."""
        member = self.members[i]
        named = dict(zip(self.names, self.params(self.flat.detach())))
        for name, p in member.model.named_parameters():
            p.copy_(named[name][i])
        for name, b in member.model.named_buffers():
            if name in self.buffers:
                b.copy_(self.buffers[name][i])
        self.optimizer.export(i)

    def rows(self, members: list[Member]) -> Tensor:
        return torch.tensor([self.members.index(m) for m in members], dtype=torch.long)

    def loss_and_grad(self, x: Tensor, y: Tensor, partner: Tensor, lam: Tensor | None,
                      label_smoothing: float, amp) -> tuple[Tensor, Tensor, Tensor]:
        """One step's forward and backward for every member: losses (M), logits (M x b x C),
        both detached, and the gradient laid out as `flat` (M x P). `amp` is None or the
        autocast context to run the forward in."""
        params = self.params()
        if self.mlp is not None and amp is None:
            losses, logits, grads = self.mlp.loss_and_grads(params, x, y, partner, lam,
                                                            label_smoothing)
        else:
            with amp if amp is not None else contextlib.nullcontext():
                logits = self.train_forward(params, self.buffers, x)             # M x b x C
                losses = _member_losses(logits, y, label_smoothing)
                if lam is not None:
                    losses = torch.lerp(_member_losses(logits, partner, label_smoothing),
                                        losses, lam)
            grads = torch.autograd.grad(losses.sum(), params)
            losses, logits = losses.detach(), logits.detach()
        return losses, logits, torch.cat([g.flatten(1) for g in grads], 1)


# ---------------------------------------------------------------------------------------------
# Training one set of members that fuse and start at the same epoch

def train_group(members: list[Member], device: torch.device) -> None:
    """Train `members` (same fusion key, same start) together; each ends with its status."""
    cfg0 = members[0].cfg
    data = datasets.load(cfg0, device)
    plan = Plan.of(cfg0, len(data.train))
    for member in list(members):
        try:
            _prepare(member, data, plan, device)
        except TrainerError as e:
            _fail_setup(member, e)
    members = [m for m in members if m.status is None]
    starts = {len(m.history) for m in members}
    if len(starts) > 1:         # resumed at other epochs: each epoch's set in turn
        for start in sorted(starts):
            _train(data, plan, [m for m in members if len(m.history) == start], device)
    elif members:
        _train(data, plan, members, device)


def _train(data: datasets.Data, plan: Plan, members: list[Member], device: torch.device) -> None:
    cfg0 = members[0].cfg
    start = len(members[0].history) + 1
    steps_done = sum(plan.steps_in(e) for e in range(1, start))
    stack = Stack(members, steps_done)
    rng = MemberRng(device)
    pipeline = create_pipeline(cfg0["augment"], group(cfg0, "aug"))
    label_smoothing = cfg0["label_smoothing"]
    top5 = data.classes >= 100
    n_train = len(data.train)

    amp = cfg0["amp"] and device.type == "cuda"

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if amp else contextlib.nullcontext()

    # without augmentation a batch is rows of the normalised training set: normalise it once
    # (4 bytes a pixel: up to 512 MiB; a bigger set is normalised batch by batch, as alone)
    pixels = data.train.x
    inputs = _inputs(data, pixels, None) if not cfg0["augment"] and \
        pixels.numel() * 4 <= 512 << 20 else None

    for epoch in range(start, plan.epochs + 1):
        _leave(stack, data, plan, autocast, top5, epoch)
        if not len(stack):
            return
        active = stack.members
        started = time.perf_counter()
        lrs = [m.optimizer.param_groups[0]["lr"] for m in active]
        steps = plan.steps_in(epoch)
        stack.base.train()
        orders = []
        for m in active:
            with rng.of(m):
                orders.append(torch.randperm(n_train, device=device))
        order = torch.stack(orders)                         # M x n_train
        draws = bool(cfg0["augment"]) or any(m.cfg["mixup_alpha"] for m in active)
        clip = torch.tensor([m.cfg["grad_clip"] for m in active], device=device)
        clipping = bool(clip.any())
        sums = torch.zeros(len(active), 2, device=device)
        for i in range(steps):
            idx = order[:, i * plan.batch_size:(i + 1) * plan.batch_size]
            x, y, partner, lam = _batch(data, inputs, idx, active, pipeline, rng, draws)
            losses, logits, grad = stack.loss_and_grad(x, y, partner, lam, label_smoothing,
                                                       autocast() if amp else None)
            if clipping:
                grad = _clip(grad, clip)
            stack.optimizer.step(grad)
            for m in active:
                if m.scheduler is not None and m.interval == "step":
                    m.scheduler.step()
            target = y if lam is None else torch.where(lam[:, None] >= 0.5, y, partner)
            hits = (logits.argmax(2) == target).sum(1)
            sums += torch.stack([losses.float() * y.shape[1], hits.float()], 1)
        samples = min(steps * plan.batch_size, n_train)
        parts = [sums]
        if data.val is not None:
            parts.append(_evaluate(stack, data, data.val, plan.batch_size, autocast, top5))
        stats = torch.cat(parts, 1).tolist()                # the epoch's one host sync
        seconds = time.perf_counter() - started
        for i, (m, lr, row_stats) in enumerate(zip(active, lrs, stats)):
            _end_of_epoch(stack, i, m, epoch, plan, data, row_stats, samples, seconds, lr, top5)
        stack.keep([m for m in active if m.status is None])
        if not len(stack):
            return
    _leave(stack, data, plan, autocast, top5, plan.epochs + 1)


def _batch(data: datasets.Data, inputs: Tensor | None, idx: Tensor, members: list[Member],
           pipeline, rng: MemberRng, draws: bool) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Each member's batch (M x b x ...), labels, mixup partners' labels and weights. `inputs`
    is the normalised training set when there is no augmentation, else None."""
    y = data.train.y[idx]
    if not draws:           # nothing random per batch: all members' batches in one gather
        flat = inputs[idx.reshape(-1)] if inputs is not None else \
            _inputs(data, data.train.x[idx.reshape(-1)], None)
        return flat.view(*idx.shape, *flat.shape[1:]), y, y, None
    xs, partners, lams = [], [], []
    for m, rows, labels in zip(members, idx, y):
        with rng.of(m):
            x = inputs[rows] if inputs is not None else \
                _inputs(data, data.train.x[rows], pipeline)
            partner, lam = labels, torch.ones((), device=x.device)
            if m.cfg["mixup_alpha"]:
                x, partner, lam = mixup(x, labels, m.cfg["mixup_alpha"])
        xs.append(x)
        partners.append(partner)
        lams.append(lam)
    mixing = any(m.cfg["mixup_alpha"] for m in members)
    return (torch.stack(xs), y, torch.stack(partners),
            torch.stack(lams).float() if mixing else None)


def _member_losses(logits: Tensor, y: Tensor, label_smoothing: float) -> Tensor:
    """The lone trainer's mean cross-entropy, per member: M values."""
    flat = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none",
                           label_smoothing=label_smoothing)
    return flat.view(y.shape).mean(1)


def _clip(grad: Tensor, max_norm: Tensor) -> Tensor:
    """nn.utils.clip_grad_norm_ per member (a row of the M x P gradient); a member's max_norm 0
    leaves its gradient as it is."""
    norms = grad.norm(2, dim=1)
    coef = torch.where(max_norm > 0, (max_norm / (norms + 1e-6)).clamp(max=1.0),
                       torch.ones_like(norms))
    return grad * coef[:, None]


@torch.no_grad()
def _evaluate(stack: Stack, data: datasets.Data, split: datasets.Split, batch_size: int,
              autocast, top5: bool, members: list[Member] | None = None) -> Tensor:
    """experiments.train._evaluate for every member (or `members`): M x 3 sums on the device."""
    flat, buffers = stack.flat.detach(), stack.buffers
    if members is not None:
        rows = stack.rows(members).to(flat.device)
        flat = flat[rows]
        buffers = {n: b[rows] for n, b in buffers.items()}
    params = stack.params(flat)
    stack.base.eval()
    count = len(params[0])
    sums = torch.zeros(count, 3, device=split.y.device)
    for start in range(0, len(split), batch_size):
        x = _inputs(data, split.x[start:start + batch_size], None)
        y = split.y[start:start + batch_size]
        with autocast():
            logits = stack.eval_forward(params, buffers, x).float()             # M x b x C
        best = logits.topk(5 if top5 else 1, dim=2).indices
        ys = y.expand(count, -1)
        loss = F.cross_entropy(logits.flatten(0, 1), ys.flatten(), reduction="none")
        sums += torch.stack([loss.view(count, -1).sum(1),
                             (best[:, :, 0] == ys).sum(1).float(),
                             (best == ys[:, :, None]).any(2).sum(1).float()], 1)
    stack.base.train()
    return sums


def _end_of_epoch(stack: Stack, i: int, m: Member, epoch: int, plan: Plan, data: datasets.Data,
                  stats: list[float], samples: int, seconds: float, lr: float,
                  top5: bool) -> None:
    """experiments.train's end of an epoch for one member: its row, divergence, scheduler,
    checkpoint when due, stuck."""
    row = {"epoch": epoch, "epochs": plan.epochs,
           "train_loss": stats[0] / samples, "train_acc": stats[1] / samples}
    if data.val is not None:
        row.update(_named("val", stats[2:], len(data.val), top5))
    row.update(lr=lr, epoch_seconds=seconds, samples_per_s=samples / seconds)
    stuck = _stuck(m.history + [row], data.classes)
    if stuck and not any("warning" in r for r in m.history):
        row["warning"] = "not_learning"
    m.emit(row)
    for name in ("train_loss", "val_loss"):
        if not math.isfinite(row.get(name, 0.0)):
            m.end("failed", 1, f"diverged at epoch {epoch}: {name} is {row[name]}")
            return
    m.history.append(row)
    if m.scheduler is not None and m.interval == "epoch":
        if m.cfg["scheduler"] == "plateau":
            m.scheduler.step(row.get("val_loss", row["train_loss"]))
        else:
            m.scheduler.step()
    stopping = stuck and m.cfg["stop_on_stuck"]
    if m.checkpoint_due(epoch == plan.epochs or stopping or _early_stop_due(m.cfg, m.history)):
        stack.export(i)
        checkpoint.save(m.run_dir, {
            "model": m.model.state_dict(), "optimizer": m.optimizer.state_dict(),
            "scheduler": m.scheduler.state_dict() if m.scheduler is not None else {},
            "rng": m.rng, "epoch": epoch, "config": m.cfg, "history": m.history,
        })
    if stopping:
        m.end("failed", 1,
              f"stopped at epoch {epoch}: the loss has sat at chance level (ln {data.classes} "
              f"= {math.log(data.classes):.3f}) with chance accuracy for {STUCK_EPOCHS} epochs "
              "(stop_on_stuck = true); check lr, the normalisation and the model")


def _leave(stack: Stack, data: datasets.Data, plan: Plan, autocast, top5: bool,
           epoch: int) -> None:
    """Before epoch `epoch` (plan.epochs + 1: after the last): members cancelled, stopped early
    or finished leave the group; those that finished get their test metrics."""
    cancelled = [m for m in stack.members if (m.run_dir / CANCEL_FILE).exists()]
    for m in cancelled:
        m.end("cancelled", 1, f"cancelled before epoch {epoch}")
    finished = [m for m in stack.members if m.status is None and (
        epoch > plan.epochs or _early_stop_due(m.cfg, m.history))]
    if finished:
        test = _evaluate(stack, data, data.test, plan.batch_size, autocast, top5,
                         finished).tolist()
        for m, sums in zip(finished, test):
            if len(m.history) < plan.epochs:
                m.log(f"stopped early after epoch {len(m.history)}: no improvement of "
                      f"{m.cfg['early_stop.metric']} for {m.cfg['early_stop.patience']} epochs")
            m.emit({**_named("test", sums, len(data.test), top5),
                    "params": count_params(m.model)})
            m.end("done", 0)
    if cancelled or finished:
        stack.keep([m for m in stack.members if m.status is None])


# ---------------------------------------------------------------------------------------------
# Command line

def plan_sets(members: list[Member]) -> list[list[Member]]:
    """Members in sets that can train fused, in the order given; a member that must run alone
    is a set of one."""
    sets: dict[str, list[Member]] = {}
    for i, m in enumerate(members):
        key = fusion_key(m.cfg)
        sets.setdefault(key if key is not None else f"alone:{i}", []).append(m)
    return list(sets.values())


def run(run_dirs: list[Path]) -> list[Member]:
    """Train the runs of `run_dirs`, fused where they can be; every member ends with a status."""
    members: list[Member] = []
    for run_dir in run_dirs:
        member = Member(run_dir, {})
        members.append(member)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            member.cfg = resolve(read_toml(run_dir / "config.toml"))
        except (TrainerError, OSError) as e:
            _fail_setup(member, e)
            continue
        reason = why_alone(member.cfg)
        if reason is not None:
            _fail_setup(member, TrainerError(
                f"this run cannot be fused ({reason}); train it with "
                "python -m gridrun.experiments.train"))
    for fused in plan_sets([m for m in members if m.status is None]):
        try:
            device = _device(fused[0].cfg["device"])
            train_group(fused, device)
        except TrainerError as e:
            for m in fused:
                if m.status is None:
                    _fail_setup(m, e)
        except Exception as e:      # noqa: BLE001 - a bug or an op vmap lacks ends this set
            if os.environ.get("GRIDRUN_DEBUG"):
                raise
            where = traceback.format_exc(limit=-1).strip().splitlines()[-3:]
            for m in fused:
                if m.status is None:
                    m.end("failed", 1, f"fused training failed: {type(e).__name__}: {e} "
                                       f"({' / '.join(s.strip() for s in where[:-1])})")
    return members


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m gridrun.experiments.fused",
        description="Train several runs of the built-in trainer together, in one process. "
                    "Each --run-dir holds the run's config.toml; each member writes its own "
                    "metrics.jsonl, checkpoint.pt, stdout.log and fused_status.json.")
    p.add_argument("--run-dir", dest="run_dirs", type=Path, action="append", required=True,
                   help="a run folder with its config.toml (give one per member)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    use_thread_share()
    if len(set(args.run_dirs)) != len(args.run_dirs):
        print("error: a --run-dir is given twice", file=sys.stderr)
        return 2
    members = run(args.run_dirs)
    return 0 if all(m.status and m.status["exit_code"] == 0 for m in members) else 1


if __name__ == "__main__":
    raise SystemExit(main())
