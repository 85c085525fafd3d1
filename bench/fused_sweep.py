"""A whole sweep through the daemon, fused against `[resources] fuse = false`, side by side.

    .venv/bin/python bench/fused_sweep.py                  # 16 runs, 150 epochs, 2 CPU slots
    .venv/bin/python bench/fused_sweep.py --epochs 20      # quicker

Workload (issue 14): 16 digits MLP runs (one hidden layer of 128, batch 64), SGD with momentum
0.9, lr in 0.01, 0.02, 0.05, 0.1 by 4 seeds, `gridrun queue run FILE --cpu-slots 2` in a fresh
home each time, end to end (start-up, data, training, checkpoints, metrics into the store). Each
trainer process gets one thread (OMP_NUM_THREADS=1: the machine's two cores, one per slot).
Prints a markdown table: seconds end to end and the speed-up, and the mean final test accuracy
of each side from `gridrun results --format json`.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sweep_text(name: str, epochs: int, fuse: bool) -> str:
    return (f'name = "{name}"\nmetric = "val_acc"\nseeds = [0, 1, 2, 3]\n'
            f'[params]\ndataset = "digits"\nepochs = {epochs}\nbatch_size = 64\n'
            'optimizer = "sgd"\nmomentum = 0.9\n[params.mlp]\nhidden = [128]\n'
            '[grid]\nlr = [0.01, 0.02, 0.05, 0.1]\n'
            f'[resources]\ngpus = 0\nfuse = {str(fuse).lower()}\n')


def gridrun(home: Path, *args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDRUN_")}
    env.update(GRIDRUN_HOME=str(home), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "gridrun.tui.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=home.parent)


def side(root: Path, epochs: int, fuse: bool, slots: int) -> tuple[float, float]:
    name = "fused" if fuse else "alone"
    folder = root / name
    folder.mkdir()
    path = folder / f"{name}.toml"
    path.write_text(sweep_text(name, epochs, fuse))
    start = time.perf_counter()
    res = gridrun(folder / "home", "queue", "run", str(path), "--cpu-slots", str(slots),
                  timeout=7200)
    seconds = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"{name}: exit {res.returncode}\n{res.stdout}\n{res.stderr}")
    table = json.loads(gridrun(folder / "home", "results", name, "--format", "json",
                               "--metric", "test_acc", timeout=120).stdout)
    return seconds, statistics.mean(row["mean"] for row in table["rows"])   # one row per lr


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--slots", type=int, default=2)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gridrun-bench-sweep-"))
    try:
        alone_s, alone_acc = side(root, args.epochs, False, args.slots)
        fused_s, fused_acc = side(root, args.epochs, True, args.slots)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"16 digits MLP-128 runs (4 lr x 4 seeds), SGD momentum 0.9, {args.epochs} epochs, "
          f"{args.slots} CPU slots, one thread per trainer\n")
    print("| sweep | seconds end to end | speed-up | mean test acc |")
    print("|---|---:|---:|---:|")
    print(f"| fuse = false | {alone_s:.0f} | 1.0x | {alone_acc:.3f} |")
    print(f"| fused | {fused_s:.0f} | {alone_s / fused_s:.1f}x | {fused_acc:.3f} |")


if __name__ == "__main__":
    main()
