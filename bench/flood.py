"""A run that floods its output: how fast the daemon's reading keeps up, and what it costs in
memory.

    .venv/bin/python bench/flood.py [--mb 40]

1. In process: a stdout.log of per-step metric lines, and a metrics.jsonl of rows, each read
   by engine.tail.RunTail to the end (poll until drained, as after a run's exit) with and
   without storing what it found (engine.store.Store.save_progress): lines per second.
2. The real daemon (`gridrun queue run`) running tests/scripts/hostile.py, which prints
   --mb megabytes of per-step lines, and a run that prints 1 MB: the daemon's peak resident
   memory (VmHWM, sampled until it exits) for each, and the rows it stored.

Prints markdown tables for bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "tests" / "scripts" / "hostile.py"


def write_stdout(path: Path, mb: float) -> int:
    lines = 0
    with open(path, "w") as f:
        size, step = 0, 0
        while size < mb * 2**20:
            step += 1
            line = (f"epoch {step // 1000 + 1} step {step}: loss {1 / step:.6f} "
                    f"lr 0.001 grad_norm {step % 7 + 0.5:.3f}\n")
            f.write(line)
            size += len(line)
            lines += 1
    return lines


def write_jsonl(path: Path, mb: float) -> int:
    lines = 0
    with open(path, "w") as f:
        size = 0
        while size < mb * 2**20:
            lines += 1
            line = json.dumps({"epoch": lines, "loss": 1 / lines, "acc": 0.5}) + "\n"
            f.write(line)
            size += len(line)
    return lines


def read_all(run_dir: Path, store) -> tuple[float, int]:
    from gridrun.engine.tail import RunTail

    tail = RunTail(1, run_dir)
    rows = 0
    start = time.perf_counter()
    while True:
        progress = tail.poll(final=True)
        if progress is not None:
            rows += len(progress.rows)
            if store is not None:
                store.save_progress([progress])
        if tail.drained:
            return time.perf_counter() - start, rows


def in_process(mb: float) -> list[str]:
    from gridrun.engine.matrix import loads
    from gridrun.engine.store import Store

    out = ["| input | lines | read + parse (lines/s) | read + parse + store (lines/s) | rows |",
           "|---|---:|---:|---:|---:|"]
    for kind in ("stdout.log (per-step lines)", "metrics.jsonl"):
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = Path(tmp) / "run"
            run_dir.mkdir()
            if kind.startswith("stdout"):
                lines = write_stdout(run_dir / "stdout.log", mb)
            else:
                lines = write_jsonl(run_dir / "metrics.jsonl", mb)
            alone, rows = read_all(run_dir, None)
            store = Store(Path(tmp) / "home")
            store.add_sweep(loads('name = "b"\ncommand = ["x"]\n[grid]\nlr = [1]\n', "b.toml",
                                  check_program=False))
            stored, _ = read_all(run_dir, store)
            store.close()
        out.append(f"| {mb:g} MB {kind} | {lines:,} | {lines / alone:,.0f} | "
                   f"{lines / stored:,.0f} | {rows:,} |")
    return out


def daemon_peak(mb: float) -> tuple[float, float, int]:
    """(peak RSS of the daemon in MiB, wall seconds, rows stored) for one flooding run."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        sweep = Path(tmp) / "flood.toml"
        sweep.write_text(f'name = "flood"\ncommand = [{json.dumps(sys.executable)}, '
                         f'{json.dumps(str(HOSTILE))}, "flood", "{mb}"]\n[grid]\nrep = [1]\n')
        env = {**os.environ, "GRIDRUN_HOME": str(home)}
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "gridrun.tui.cli", "queue", "run",
                                 str(sweep)], env=env, stdout=subprocess.DEVNULL)
        peak = 0
        while proc.poll() is None:
            try:
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.02)
        wall = time.perf_counter() - start
        out = subprocess.run([sys.executable, "-m", "gridrun.tui.cli", "queue", "ls", "--json"],
                             env=env, capture_output=True, text=True, check=True)
        (run,) = json.loads(out.stdout)
        shown = subprocess.run([sys.executable, "-m", "gridrun.tui.cli", "queue", "show",
                                str(run["id"]), "--json"], env=env, capture_output=True,
                               text=True, check=True)
        rows = len(json.loads(shown.stdout)["history"])
        assert run["status"] == "done", run
    return peak / 1024, wall, rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=40)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}\n")
    print("\n".join(in_process(args.mb)))
    print("\n| run prints | daemon peak RSS (VmHWM) | wall, start to exit | rows stored |")
    print("|---|---:|---:|---:|")
    for mb in (1, args.mb):
        peak, wall, rows = daemon_peak(mb)
        print(f"| {mb:g} MB of per-step lines | {peak:.0f} MiB | {wall:.1f} s | {rows:,} |")


if __name__ == "__main__":
    main()
