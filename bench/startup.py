"""Start-up time of the light CLI paths, and proof that they load neither torch nor textual.

    .venv/bin/python bench/startup.py [--reps N]

Times `gridrun --help`, `gridrun queue ls` (empty store) and `gridrun queue status` as fresh
processes (median of N), and `python -c pass` as the floor. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "torchvision", "textual")


def timed(argv: list[str], env: dict, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        subprocess.run(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def heavy_modules(args: list[str], env: dict) -> list[str]:
    code = (f"import sys; sys.argv = ['gridrun'] + {args!r}\n"
            "from gridrun.tui.cli import app\nfrom gridrun.tui.errors import run_app\n"
            "import contextlib, io\n"
            "with contextlib.redirect_stdout(io.StringIO()): run_app(app, sys.argv[1:])\n"
            "import json; print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return [m for m in json.loads(out.splitlines()[-1]) if m.split(".")[0] in HEAVY]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=10)
    reps = parser.parse_args().reps
    home = tempfile.mkdtemp(prefix="gridrun-bench-")
    env = {**os.environ, "GRIDRUN_HOME": home, "PYTHONPATH": str(ROOT)}
    gridrun = [sys.executable, "-m", "gridrun.tui.cli"]
    rows = [("python -c pass (floor)", [sys.executable, "-c", "pass"], None),
            ("gridrun --help", gridrun + ["--help"], ["--help"]),
            ("gridrun queue ls", gridrun + ["queue", "ls"], ["queue", "ls"]),
            ("gridrun queue status", gridrun + ["queue", "status"], ["queue", "status"])]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"\n| command | median of {reps} | heavy modules loaded |\n|---|---|---|")
    for label, argv, args in rows:
        seconds = timed(argv, env, reps)
        heavy = "-" if args is None else (", ".join(heavy_modules(args, env)) or "none")
        print(f"| `{label}` | {seconds * 1000:.0f} ms | {heavy} |")


if __name__ == "__main__":
    main()
