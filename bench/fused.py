"""Fused runs against the same runs one after another, in one process.

    .venv/bin/python bench/fused.py                 # 8 digits MLPs, 20 epochs, 1 thread
    .venv/bin/python bench/fused.py --checkpoint-every 0    # a checkpoint after every epoch
    .venv/bin/python bench/fused.py --runs 16 --epochs 150 --threads 2
    .venv/bin/python bench/fused.py --device cuda --dataset mnist --runs 27   # on a GPU

Workload (issue 14): the digits MLP (one hidden layer of 128, batch 64), SGD with momentum 0.9,
members differing in lr and seed (lr in 0.01, 0.02, 0.05, 0.1 by seeds 0, 1, ...). The serial
side trains each run with `experiments.train.train` in turn; the fused side trains all of them
with `experiments.fused.run` (one batched forward and backward per batch). Both sides write
metrics after every epoch and checkpoints as under gridrun (`checkpoint_every`: by default after
the last epoch of these short runs; `--checkpoint-every 0`: after every epoch); data loading is
inside both timings. Prints a markdown table: end to end (wall and CPU seconds of the whole
runs) and training throughput (the samples of every epoch over the epochs' own seconds, which
the trainers report as `epoch_seconds`: training steps and validation, without set-up, metrics
lines and checkpoints), and each side's mean final test accuracy, to show that the speed costs
nothing.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.pop("GRIDRUN_RUN_DIR", None)

import tomli_w  # noqa: E402
import torch  # noqa: E402

from gridrun.engine.matrix import unflatten  # noqa: E402
from gridrun.engine.report import read_metrics  # noqa: E402
from gridrun.experiments import fused  # noqa: E402
from gridrun.experiments.config import resolve  # noqa: E402
from gridrun.experiments.train import train  # noqa: E402

LRS = (0.01, 0.02, 0.05, 0.1)


def runs(count: int, epochs: int, dataset: str, device: str,
         checkpoint_every: float | None = None) -> list[dict]:
    every = {} if checkpoint_every is None else {"checkpoint_every": checkpoint_every}
    return [{"dataset": dataset, "model": "mlp", "mlp.hidden": [128], "batch_size": 64,
             "epochs": epochs, "optimizer": "sgd", "momentum": 0.9, "device": device,
             "lr": LRS[i % len(LRS)], "seed": i // len(LRS), **every} for i in range(count)]


class Clock:
    """Wall and CPU seconds: on a shared machine other work stretches the wall time, not the
    CPU time this process spends."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def serial(params: list[dict], root: Path) -> tuple[Clock, list[float], float]:
    """The runs one after another: the clock, their test accuracies, their epochs' seconds."""
    accs, epoch_seconds = [], 0.0
    with Clock() as clock:
        for i, p in enumerate(params):
            with contextlib.redirect_stdout(io.StringIO()):
                history, final = train(resolve(p), root / f"serial{i}")
            accs.append(final["test_acc"])
            epoch_seconds += sum(row["epoch_seconds"] for row in history)
    return clock, accs, epoch_seconds


def together(params: list[dict], root: Path) -> tuple[Clock, list[float], float]:
    """The runs fused: the clock, their test accuracies, the group's epochs' seconds."""
    dirs = []
    for i, p in enumerate(params):
        d = root / f"fused{i}"
        d.mkdir(parents=True)
        (d / "config.toml").write_text(tomli_w.dumps(unflatten(p)))
        dirs.append(d)
    with Clock() as clock, contextlib.redirect_stdout(io.StringIO()):
        members = fused.run(dirs)
    assert all(m.status["status"] == "done" for m in members), [m.status for m in members]
    accs = [[r for r in read_metrics(d / "metrics.jsonl") if "test_acc" in r][-1]["test_acc"]
            for d in dirs]
    epoch_seconds = sum(r["epoch_seconds"] for r in read_metrics(dirs[0] / "metrics.jsonl")
                        if "epoch" in r)
    return clock, accs, epoch_seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--checkpoint-every", type=float, default=None,
                    help="the runs' checkpoint_every (default: the trainer's)")
    ap.add_argument("--skip-serial", action="store_true",
                    help="time the fused side only (the serial one is runs x one run)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    params = runs(args.runs, args.epochs, args.dataset, args.device, args.checkpoint_every)
    root = Path(tempfile.mkdtemp(prefix="gridrun-bench-fused-"))
    try:
        # warm-up: imports, the dataset's first load, kernels picked
        together(runs(2, 1, args.dataset, args.device), root / "warm")
        fused_s, fused_acc, fused_epochs = together(params, root / "f")
        rows = read_metrics(root / "f" / "fused0" / "metrics.jsonl")
        samples = sum(r["samples_per_s"] * r["epoch_seconds"] for r in rows if "epoch" in r)
        if args.skip_serial:
            serial_s, serial_acc, serial_epochs = serial(params[:1], root / "s")
            serial_s.wall, serial_s.cpu = serial_s.wall * len(params), serial_s.cpu * len(params)
            serial_epochs *= len(params)
            note = f" (one run x {len(params)})"
        else:
            serial_s, serial_acc, serial_epochs = serial(params, root / "s")
            note = ""
    finally:
        shutil.rmtree(root, ignore_errors=True)
    total = samples * len(params)
    every = "trainer default" if args.checkpoint_every is None else f"{args.checkpoint_every:g} s"
    print(f"{len(params)} {args.dataset} MLP-128 runs, {args.epochs} epochs, batch 64, SGD "
          f"momentum 0.9, checkpoint_every {every}; device {args.device}, {args.threads} "
          f"thread(s), torch {torch.__version__}, {platform.processor() or platform.machine()}\n")
    print("| side | wall s | CPU s | speed-up (wall) | speed-up (CPU) | epochs' s | "
          "training samples/s | speed-up (training) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| one after another{note} | {serial_s.wall:.2f} | {serial_s.cpu:.2f} | 1.0x | 1.0x | "
          f"{serial_epochs:.2f} | {total / serial_epochs:,.0f} | 1.0x |")
    print(f"| fused | {fused_s.wall:.2f} | {fused_s.cpu:.2f} | "
          f"{serial_s.wall / fused_s.wall:.1f}x | {serial_s.cpu / fused_s.cpu:.1f}x | "
          f"{fused_epochs:.2f} | {total / fused_epochs:,.0f} | "
          f"{serial_epochs / fused_epochs:.1f}x |")
    print(f"\nmean test accuracy: one after another {statistics.mean(serial_acc):.3f}, "
          f"fused {statistics.mean(fused_acc):.3f}")


if __name__ == "__main__":
    main()
