"""Expanding and storing a big run matrix: the target is a 10,000-run file in under a second.

    .venv/bin/python bench/matrix_store.py [--runs-per-axis 10]

Builds a 10 x 10 x 10 x 10 grid (10,000 runs; seeds included), then times `matrix.load`
(parse, validate, expand) and `Store.add_sweep` (one transaction into a fresh SQLite store),
and re-adding the same file (idempotent: nothing new). Prints a markdown table.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gridrun.engine.matrix import load  # noqa: E402
from gridrun.engine.store import Store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs-per-axis", type=int, default=10)
    n = parser.parse_args().runs_per_axis
    tmp = Path(tempfile.mkdtemp(prefix="gridrun-bench-"))
    axis = lambda scale: "[" + ", ".join(f"{scale * (i + 1):g}" for i in range(n)) + "]"  # noqa: E731
    path = tmp / "big.toml"
    path.write_text(f'name = "big"\nmetric = "val_acc"\nseeds = {list(range(n))}\n'
                    'command = ["python3", "train.py", "--lr", "{lr}", "--wd", "{wd}"]\n'
                    f"[params]\nepochs = 5\n[grid]\nlr = {axis(0.001)}\nwd = {axis(0.0001)}\n"
                    f"batch_size = {axis(16)}\n")
    t0 = time.perf_counter()
    spec = load(path)
    t1 = time.perf_counter()
    store = Store(tmp / "home")
    t2 = time.perf_counter()
    result = store.add_sweep(spec)
    t3 = time.perf_counter()
    again = store.add_sweep(load(path))
    t4 = time.perf_counter()
    assert result.added == len(spec.runs) and again.added == 0
    print(f"| step | {len(spec.runs):,} runs |\n|---|---|")
    print(f"| load: parse, validate, expand | {(t1 - t0) * 1000:.0f} ms |")
    print(f"| open a new store | {(t2 - t1) * 1000:.0f} ms |")
    print(f"| add_sweep (one transaction) | {(t3 - t2) * 1000:.0f} ms |")
    print(f"| total, file to stored runs | {(t3 - t0) * 1000:.0f} ms |")
    print(f"| add the same file again (0 new) | {(t4 - t3) * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
