"""A small store whose every figure is fixed: the sample the interface's snapshot tests show.

Two sweeps, every run finished or waiting (nothing that depends on the clock), timestamps
and metric histories made up but plausible, a failed run, a run flagged not learning, and a
stdout.log per run. Built at a fixed path so that the header reads the same on every machine.
"""
from __future__ import annotations

import json
import math
import shutil
import sqlite3
import tempfile
from pathlib import Path

from gridrun.engine.matrix import loads
from gridrun.engine.store import Progress, Store

HOME = Path(tempfile.gettempdir()) / "gridrun-snapshots" / "runs"
T0 = 1_790_000_000.0  # a fixed start time

MNIST = """\
name = "mnist-optim"
metric = "val_acc"
seeds = [0, 1]
command = ["python3", "train.py", "--optimizer", "{optimizer}", "--lr", "{lr}"]
[params]
epochs = 6
[grid]
optimizer = ["sgd", "adam"]
lr = [0.1, 0.01]
[resources]
gpus = 0
"""

CIFAR = """\
name = "cifar-cnn"
metric = "val_acc"
command = ["python3", "train.py", "--aug", "{augment}"]
[params]
epochs = 6
[grid]
augment = ["none", "flip", "crop"]
[resources]
gpus = 0
"""


def curve(epochs: int, final: float, speed: float, seed: int) -> list[dict]:
    rows = []
    for e in range(1, epochs + 1):
        acc = final - (final - 0.1) * math.exp(-speed * e) - 0.003 * seed
        loss = 2.3 * math.exp(-speed * e) + 0.05 + 0.01 * seed
        rows.append({"epoch": e, "epochs": epochs, "train_loss": round(loss * 0.9, 4),
                     "val_loss": round(loss, 4), "train_acc": round(acc + 0.01, 4),
                     "val_acc": round(acc, 4), "lr": 0.01})
    return rows


def build(home: Path = HOME) -> Path:
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    store = Store(home)
    for text, name in ((MNIST, "mnist-optim"), (CIFAR, "cifar-cnn")):
        store.add_sweep(loads(text, home.parent / f"{name}.toml", check_program=False))
    plan = {  # run index -> (status, final val_acc, speed)
        ("mnist-optim", 1): ("done", 0.97, 0.9), ("mnist-optim", 2): ("done", 0.97, 0.9),
        ("mnist-optim", 3): ("done", 0.93, 0.4), ("mnist-optim", 4): ("done", 0.93, 0.4),
        ("mnist-optim", 5): ("done", 0.98, 1.1), ("mnist-optim", 6): ("failed", 0.96, 1.0),
        ("mnist-optim", 7): ("done", 0.11, 0.0), ("mnist-optim", 8): ("cancelled", None, 0),
        ("cifar-cnn", 1): ("done", 0.71, 0.5), ("cifar-cnn", 2): ("done", 0.74, 0.5),
        ("cifar-cnn", 3): ("queued", None, 0),
    }
    finished = []
    for run in store.runs():
        status, final, speed = plan[(run.sweep, run.index)]
        folder = Path(run.run_dir)
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        if final is not None:
            epochs = 3 if status == "failed" else 6
            rows = curve(epochs, final, speed, run.params.get("seed", 0))
            if final < 0.2:  # stuck at chance: ln(10)
                rows = [{**r, "train_loss": 2.3026, "val_loss": 2.3026} for r in rows]
            store.save_progress([Progress(run.id, "report", rows, rows[-1], set(rows[-1]),
                                          {"not_learning"} if final < 0.2 else set())])
            with open(folder / "metrics.jsonl", "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
        log = "".join(f"Epoch [{r['epoch']}/6], Loss: {r['train_loss']}, "
                      f"Accuracy: {100 * r['train_acc']:.2f}%\n" for r in rows)
        if status == "failed":
            log += "Traceback (most recent call last):\nRuntimeError: CUDA error: device-side assert\n"
        (folder / "stdout.log").write_text(log)
        finished.append((run, status))
    # the clock's part, written directly: the store's own API stamps the time of the call
    conn = sqlite3.connect(home / "gridrun.db", isolation_level=None)
    for run, status in finished:
        start = T0 + 60 * run.id
        ended = None if status == "queued" else start + 40 + 5 * run.index
        conn.execute("UPDATE runs SET status = ?, started = ?, ended = ?, device = ?, "
                     "exit_code = ?, error = ? WHERE id = ?",
                     (status, None if status == "queued" else start, ended,
                      None if status == "queued" else "cpu",
                      {"done": 0, "failed": 1}.get(status),
                      "exit code 1: RuntimeError: CUDA error: device-side assert"
                      if status == "failed" else None, run.id))
    conn.close()
    return home
