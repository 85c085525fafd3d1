"""The built-in trainer: `python -m gridrun.experiments.train`, the command of every sweep without one.

Under gridrun the run folder is `$GRIDRUN_RUN_DIR` and the parameters are its `config.toml`
(the names of experiments/schema.py; nested tables are dotted names). By hand:

    python -m gridrun.experiments.train --set dataset=digits --set epochs=3 [--run-dir DIR]
    python -m gridrun.experiments.train study.toml --set lr=0.01     # a config or a sweep's [params]
    python -m gridrun.experiments.train --params                     # every parameter, with defaults

The whole training set lives on the device as uint8; each epoch draws a random permutation
there, and every batch is indexed, augmented and normalised on the device: no DataLoader, no
worker processes. The host waits for the device once per epoch, when the epoch's sums are read.
After each epoch: one `report()` (metrics.jsonl), then, every `checkpoint_every` seconds and
after the last epoch, an atomic checkpoint.pt. Started again on a folder with a checkpoint of the
same parameters, a run goes on from the epoch after the checkpoint's.

Exit status: 0 done (early stopping included); 1 diverged, or stuck at chance level with
`stop_on_stuck`; 2 a problem with the parameters or the files (one line on stderr).
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gridrun.engine.report import ENV_RUN_DIR, report
from gridrun.experiments import checkpoint, schema
from gridrun.experiments import data as datasets
from gridrun.experiments.augment import Pipeline, create_pipeline, mixup
from gridrun.experiments.config import TrainerError, group, parse_set, read_toml, resolve
from gridrun.experiments.models import count_params, create_model
from gridrun.experiments.optim import create_optimizer, create_scheduler

STUCK_EPOCHS = 3            # epochs at chance level before a run is called not learning
STEP_SCHEDULERS = ("cyclic", "onecycle")   # sched_interval = "auto" steps these per batch


class Diverged(Exception):
    pass


class Stuck(Exception):
    pass


@dataclass(frozen=True)
class Plan:
    """How long the run is, in optimizer steps: the one place epochs and iterations meet."""
    batch_size: int
    steps_per_epoch: int
    total_steps: int
    epochs: int             # passes over the training set; with `iterations` the last may be short

    @classmethod
    def of(cls, cfg: dict, n_train: int) -> Plan:
        batch = min(cfg["batch_size"], n_train)
        # a last batch of a single sample is left out: BatchNorm cannot train on one sample
        per_epoch = n_train // batch + (n_train % batch > 1)
        if cfg["iterations"]:
            total = cfg["iterations"]
            return cls(batch, per_epoch, total, -(-total // per_epoch))
        return cls(batch, per_epoch, cfg["epochs"] * per_epoch, cfg["epochs"])

    def steps_in(self, epoch: int) -> int:
        """Optimizer steps in epoch `epoch` (from 1)."""
        return min(self.steps_per_epoch, self.total_steps - (epoch - 1) * self.steps_per_epoch)

    def scheduler_length(self, interval: str) -> int:
        return self.total_steps if interval == "step" else self.epochs


def train(cfg: dict, run_dir: Path) -> tuple[list[dict], dict]:
    """Train one run; returns the per-epoch metrics and the final (test) metrics.

    Raises TrainerError (bad parameters, missing files), Diverged, Stuck (stop_on_stuck)."""
    device = _device(cfg["device"])
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True   # batches keep one shape: pick kernels once
    _seed(cfg["seed"])
    data = datasets.load(cfg, device)
    model = create_model(cfg, data.shape, data.classes).to(device)
    forward = torch.compile(model) if cfg["compile"] else model
    plan = Plan.of(cfg, len(data.train))
    optimizer = create_optimizer(cfg["optimizer"], model, lr=cfg["lr"],
                                 weight_decay=cfg["weight_decay"], momentum=cfg["momentum"],
                                 extra=group(cfg, "optim"))
    interval = _interval(cfg)
    scheduler = create_scheduler(cfg["scheduler"], optimizer,
                                 length=plan.scheduler_length(interval),
                                 extra=group(cfg, "sched"))
    pipeline = create_pipeline(cfg["augment"], group(cfg, "aug"))
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg["label_smoothing"])
    top5 = data.classes >= 100
    _check_early_stop(cfg, data.val is not None, top5)

    def autocast():
        if cfg["amp"] and device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    history: list[dict] = []
    state = checkpoint.load(run_dir)
    if state is not None and state["config"] != cfg:
        print(f"warning: {run_dir / checkpoint.FILE} was written for other parameters; "
              "starting from fresh weights", file=sys.stderr)
        state = None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        checkpoint.set_rng_state(state["rng"])
        history = state["history"]
        print(f"resuming from {run_dir / checkpoint.FILE} at epoch {len(history) + 1}",
              file=sys.stderr)

    n_train = len(data.train)
    due = checkpoint.Due(cfg["checkpoint_every"])
    for epoch in range(len(history) + 1, plan.epochs + 1):
        if _early_stop_due(cfg, history):
            break
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        steps = plan.steps_in(epoch)
        model.train()
        order = torch.randperm(n_train, device=device)
        sums = torch.zeros(2, device=device)          # loss x samples, correct predictions
        for i in range(steps):
            idx = order[i * plan.batch_size:(i + 1) * plan.batch_size]
            x, y = _inputs(data, data.train.x[idx], pipeline), data.train.y[idx]
            partner, lam = y, None
            if cfg["mixup_alpha"]:
                x, partner, lam = mixup(x, y, cfg["mixup_alpha"])
            out: dict[str, torch.Tensor] = {}

            def closure():                            # LBFGS calls it several times per step
                optimizer.zero_grad(set_to_none=True)
                with autocast():
                    logits = forward(x)
                    loss = criterion(logits, y)
                    if lam is not None:
                        loss = torch.lerp(criterion(logits, partner), loss, lam)
                loss.backward()
                if cfg["grad_clip"]:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
                out["logits"] = logits.detach()
                return loss

            loss = optimizer.step(closure)
            if scheduler is not None and interval == "step":
                scheduler.step()
            target = y if lam is None else torch.where(lam >= 0.5, y, partner)
            hits = (out["logits"].argmax(1) == target).sum()
            sums += torch.stack([loss.detach().float() * len(y), hits.float()])
        samples = min(steps * plan.batch_size, n_train)
        parts = [sums]
        if data.val is not None:
            parts.append(_evaluate(forward, data, data.val, plan.batch_size, autocast, top5))
        stats = torch.cat(parts).tolist()                 # the epoch's one host sync
        seconds = time.perf_counter() - started

        row = {"epoch": epoch, "epochs": plan.epochs,
               "train_loss": stats[0] / samples, "train_acc": stats[1] / samples}
        if data.val is not None:
            row.update(_named("val", stats[2:], len(data.val), top5))
        row.update(lr=lr, epoch_seconds=seconds, samples_per_s=samples / seconds)
        stuck = _stuck(history + [row], data.classes)
        if stuck and not any("warning" in r for r in history):
            row["warning"] = "not_learning"
        _emit(row)
        for name in ("train_loss", "val_loss"):
            if not math.isfinite(row.get(name, 0.0)):
                raise Diverged(f"diverged at epoch {epoch}: {name} is {row[name]}")
        history.append(row)
        if scheduler is not None and interval == "epoch":
            if cfg["scheduler"] == "plateau":
                scheduler.step(row.get("val_loss", row["train_loss"]))
            else:
                scheduler.step()
        stopping = stuck and cfg["stop_on_stuck"]
        if due(epoch == plan.epochs or stopping or _early_stop_due(cfg, history)):
            checkpoint.save(run_dir, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else {},
                "rng": checkpoint.rng_state(), "epoch": epoch, "config": cfg,
                "history": history,
            })
        if stopping:
            raise Stuck(
                f"stopped at epoch {epoch}: the loss has sat at chance level (ln {data.classes} "
                f"= {math.log(data.classes):.3f}) with chance accuracy for {STUCK_EPOCHS} epochs "
                "(stop_on_stuck = true); check lr, the normalisation and the model")

    if len(history) < plan.epochs:
        print(f"stopped early after epoch {len(history)}: no improvement of "
              f"{cfg['early_stop.metric']} for {cfg['early_stop.patience']} epochs",
              file=sys.stderr)
    test = _evaluate(forward, data, data.test, plan.batch_size, autocast, top5).tolist()
    final = {**_named("test", test, len(data.test), top5), "params": count_params(model)}
    _emit(final)
    return history, final


# ---------------------------------------------------------------------------------------------
# The pieces of the loop

def _device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        where = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
        raise TrainerError(f'device = "cuda" but no GPU is visible{where}')
    return torch.device(name)


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)             # the CPU's and every GPU's generator


def _interval(cfg: dict) -> str:
    interval = cfg["sched_interval"]
    if interval == "auto":
        interval = "step" if cfg["scheduler"] in STEP_SCHEDULERS else "epoch"
    return interval


def _inputs(data: datasets.Data, pixels: torch.Tensor, pipeline: Pipeline | None) -> torch.Tensor:
    """uint8 images -> the normalised float batch the model takes (augmented when training)."""
    x = pixels.float().div_(255)
    if pipeline is not None:
        x = pipeline.pixels(x)
    x = (x - data.mean) / data.std
    return pipeline.normalized(x) if pipeline is not None else x


@torch.no_grad()
def _evaluate(forward, data: datasets.Data, split: datasets.Split, batch_size: int, autocast,
              top5: bool) -> torch.Tensor:
    """[summed cross-entropy, correct, correct in the top 5] on the device (no host sync).
    The loss is plain cross-entropy (no label smoothing), comparable between runs."""
    forward.eval()
    sums = torch.zeros(3, device=split.y.device)
    for start in range(0, len(split), batch_size):
        x = _inputs(data, split.x[start:start + batch_size], None)
        y = split.y[start:start + batch_size]
        with autocast():
            logits = forward(x).float()
        best = logits.topk(5 if top5 else 1, dim=1).indices
        sums += torch.stack([F.cross_entropy(logits, y, reduction="sum"),
                             (best[:, 0] == y).sum().float(),
                             (best == y[:, None]).any(1).sum().float()])
    return sums


def _named(prefix: str, sums: list[float], count: int, top5: bool) -> dict[str, float]:
    named = {f"{prefix}_loss": sums[0] / count, f"{prefix}_acc": sums[1] / count}
    if top5:
        named[f"{prefix}_top5"] = sums[2] / count
    return named


def _check_early_stop(cfg: dict, has_val: bool, top5: bool) -> None:
    if not cfg["early_stop.patience"]:
        return
    metric = cfg["early_stop.metric"]
    if metric.startswith("val_") and not has_val:
        raise TrainerError(f"early_stop.metric = {metric!r} needs a validation set; set "
                           "val_split above 0 or watch train_loss")
    if metric.endswith("top5") and not top5:
        raise TrainerError(f"early_stop.metric = {metric!r} is reported for 100 classes or "
                           "more only")


def _early_stop_due(cfg: dict, history: list[dict]) -> bool:
    """A pure function of the history, so a resumed run decides as an uninterrupted one."""
    patience = cfg["early_stop.patience"]
    if not patience or len(history) < cfg["early_stop.min_epochs"]:
        return False
    metric = cfg["early_stop.metric"]
    sign = -1 if metric.endswith("loss") else 1
    best, since = -math.inf, 0
    for row in history:
        value = sign * row[metric]
        if value > best + cfg["early_stop.min_delta"]:
            best, since = value, 0
        else:
            since += 1
    return since >= patience


def _stuck(history: list[dict], classes: int) -> bool:
    """The last STUCK_EPOCHS epochs had a train loss within 2% of ln(classes) (uniform output)
    and chance accuracy: the reports' 2.3026 on CIFAR-10 for twenty epochs."""
    chance_loss = math.log(classes)
    chance_acc = min(2 / classes, 1 / classes + 0.05)
    rows = history[-STUCK_EPOCHS:]
    return len(rows) == STUCK_EPOCHS and all(
        abs(r["train_loss"] - chance_loss) < 0.02 * chance_loss
        and r["train_acc"] <= chance_acc and r.get("val_acc", 0) <= chance_acc for r in rows)


def _emit(metrics: dict) -> None:
    """report() them; under gridrun also one readable line for stdout.log (by hand, report()
    prints that line itself)."""
    report(**metrics)
    if os.environ.get(ENV_RUN_DIR):
        print(" ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in metrics.items()), flush=True)


# ---------------------------------------------------------------------------------------------
# Command line

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m gridrun.experiments.train",
        description="The built-in trainer. Under gridrun it reads $GRIDRUN_RUN_DIR/config.toml.")
    p.add_argument("config", nargs="?", type=Path,
                   help="a TOML file of parameters (a sweep file's [params] table is used)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
                   help="set one parameter, the value in TOML syntax (--set mlp.hidden=[64])")
    p.add_argument("--run-dir", type=Path,
                   help="folder for checkpoint.pt (default: $GRIDRUN_RUN_DIR, else a new "
                        "temporary folder); a folder with a checkpoint resumes")
    p.add_argument("--params", action="store_true", help="list every parameter and exit")
    return p


def use_thread_share() -> None:
    """Take the intra-op thread count gridrun gives this run (OMP_NUM_THREADS, its share of
    the cores) also when torch was imported before the variable was set, as in a warm start."""
    with contextlib.suppress(ValueError):
        threads = int(os.environ.get("OMP_NUM_THREADS", ""))
        if threads > 0:
            torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    use_thread_share()
    if args.params:
        print(schema.describe(), end="")
        return 0
    try:
        run_dir = args.run_dir or (Path(os.environ[ENV_RUN_DIR]) if os.environ.get(ENV_RUN_DIR)
                                   else None)
        if run_dir is None:
            run_dir = Path(tempfile.mkdtemp(prefix="gridrun-train-"))
            print(f"run folder: {run_dir}", file=sys.stderr)
        run_dir.mkdir(parents=True, exist_ok=True)
        config = args.config or run_dir / "config.toml"
        given = read_toml(config) if args.config or config.exists() else {}
        given.update(parse_set(s) for s in args.sets)
        train(resolve(given), run_dir)
    except TrainerError as e:
        if os.environ.get("GRIDRUN_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (Diverged, Stuck) as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
