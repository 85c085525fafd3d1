"""An epoch of two built-in-trainer runs side by side against one run alone.

    PYTHONPATH=. .venv/bin/python bench/threads.py [--epochs N]

Three sweeps of the digits MLP through `gridrun queue run`, each in a fresh home:
  alone        one run, --cpu-slots 1 (it gets every core)
  side by side two runs, --cpu-slots 2, each its share of the cores (what gridrun does)
  oversubscribed  the same two runs with OMP_NUM_THREADS set to every core in the daemon's
               environment (a user's setting wins): what every run did before the share
Prints the median `epoch_seconds` (epochs 2.. of every run, from metrics.jsonl) and the ratio
to alone, with the machine's load average before each.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sweep(folder: Path, seeds: list[int], epochs: int) -> Path:
    path = folder / "threads.toml"
    path.write_text(textwrap.dedent(f"""\
        name = "threads"
        seeds = {seeds}
        [params]
        dataset = "digits"
        model = "mlp"
        epochs = {epochs}
        batch_size = 64
        [resources]
        gpus = 0
        """))
    return path


def epoch_seconds(home: Path, extra_env: dict[str, str], slots: int, seeds: list[int],
                  epochs: int) -> list[float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(extra_env, GRIDRUN_HOME=str(home), CUDA_VISIBLE_DEVICES="")
    path = sweep(home.parent, seeds, epochs)
    subprocess.run([sys.executable, "-m", "gridrun.tui.cli", "queue", "run", str(path),
                    "--cpu-slots", str(slots)], env=env, check=True, stdout=subprocess.DEVNULL)
    times = []
    for metrics in (home / "threads").glob("*/metrics.jsonl"):
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        times += [r["epoch_seconds"] for r in rows if r.get("epoch", 0) >= 2]
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    cases = [("alone (--cpu-slots 1, every core)", {}, 1, [0]),
             ("alone, one thread (OMP_NUM_THREADS=1)", {"OMP_NUM_THREADS": "1"}, 1, [0]),
             ("side by side, each its share (--cpu-slots 2)", {}, 2, [0, 1]),
             ("side by side, each every core (OMP_NUM_THREADS=%d)" % cores,
              {"OMP_NUM_THREADS": str(cores)}, 2, [0, 1])]
    print(f"cores: {cores}, epochs per run: {args.epochs}\n")
    print("| case | load avg (1 min) before | median epoch | max epoch | vs alone |")
    print("|---|---:|---:|---:|---:|")
    base = None
    for label, extra, slots, seeds in cases:
        with tempfile.TemporaryDirectory() as tmp:
            load = os.getloadavg()[0]
            times = epoch_seconds(Path(tmp) / "home", extra, slots, seeds, args.epochs)
        median = statistics.median(times)
        base = base or median
        print(f"| {label} | {load:.2f} | {median * 1000:.1f} ms | {max(times) * 1000:.1f} ms "
              f"| {median / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
