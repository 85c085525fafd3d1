"""Warm starts against cold ones, end to end.

    PYTHONPATH=. .venv/bin/python bench/warm.py [--skip-example]

1. 8 built-in-trainer runs on digits (5 epochs, --cpu-slots 2) through `gridrun queue run`,
   warm (the default), against ONE of those runs started cold by its replay command (run.json's
   argv, cwd and env, in a fresh run folder), in --pairs interleaved passes; then the 8 cold
   (GRIDRUN_WARM=0) once. Target: warm <= 2x one.
2. `make run`'s example sweep (examples/digits.toml, --cpu-slots 2), warm and cold.
3. Launch overhead, fork (or exec) to the first line of output, of a script that imports torch
   and prints: forked from a zygote that preloaded torch, against `python script.py`.
Every case in a fresh home; the load average before each is printed, since the machine is
shared.
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
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EIGHT = """\
name = "eight"
seeds = [0, 1]
[params]
dataset = "digits"
model = "mlp"
epochs = 5
batch_size = 64
[grid]
optimizer = ["sgd", "adam"]
lr = [0.01, 0.1]
[resources]
gpus = 0
"""


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def queue_run(path: Path, home: Path, warm: bool) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDRUN_")}
    env.update(GRIDRUN_HOME=str(home), GRIDRUN_WARM="1" if warm else "0", CUDA_VISIBLE_DEVICES="")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gridrun.tui.cli", "queue", "run", str(path),
                    "--cpu-slots", "2"], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def replay_one(run_dir: Path, scratch: Path) -> float:
    """The run's replay (run.json), in a copy of its folder without the checkpoint."""
    replay = json.loads((run_dir / "run.json").read_text())
    scratch.mkdir()
    shutil.copy(run_dir / "config.toml", scratch / "config.toml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDRUN_")}
    env.update(replay["env"], GRIDRUN_RUN_DIR=str(scratch))
    start = time.perf_counter()
    subprocess.run(replay["argv"], cwd=replay["cwd"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def first_line_overhead(reps: int) -> tuple[list[float], list[float]]:
    """Seconds from fork/exec to the first line of a script that imports torch and prints."""
    from gridrun.engine.warm import Zygote, close
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        script = tmp / "first.py"
        script.write_text("import time, torch\nprint(time.time(), flush=True)\n")
        zygote = Zygote(("torch",), tmp / "zygote.log", lambda: None)
        while zygote.state == "starting":
            time.sleep(0.05)
        assert zygote.state == "ready", zygote.reason
        warm, cold = [], []
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for i in range(reps):
            for kind in ("warm", "cold"):
                log = tmp / f"{kind}{i}.log"
                start = time.time()
                if kind == "warm":
                    pid = zygote.fork({"target": ["path", str(script)], "args": [],
                                       "cwd": str(tmp), "env": env, "log": str(log)})
                    while zygote.exit_code(pid, wait_s=1) is None:
                        pass
                else:
                    with open(log, "wb") as out:
                        subprocess.run([sys.executable, str(script)], cwd=tmp, env=env,
                                       stdout=out, check=True)
                first = float(log.read_text().split()[0])
                (warm if kind == "warm" else cold).append(first - start)
        close(zygote)
    return warm, cold


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-example", action="store_true")
    ap.add_argument("--reps", type=int, default=5, help="launch overhead samples")
    ap.add_argument("--pairs", type=int, default=3, help="warm-8 / one-cold passes")
    args = ap.parse_args()
    print(f"cores: {len(os.sched_getaffinity(0))}, {time.strftime('%Y-%m-%d %H:%M')}\n")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = tmp / "eight.toml"
        path.write_text(EIGHT)
        print("| case | load avg before | wall |\n|---|---:|---:|")
        warm8, ones = [], []
        for rep in range(args.pairs):   # interleaved, so a load spike hits both sides alike
            before = load()
            warm8.append(queue_run(path, tmp / f"home-warm{rep}", True))
            print(f"| 8 runs, warm (gridrun queue run --cpu-slots 2), pass {rep + 1} | {before} "
                  f"| {warm8[-1]:.1f} s |", flush=True)
            first = sorted((tmp / f"home-warm{rep}" / "eight").iterdir())[0]
            before = load()
            ones.append(replay_one(first, tmp / f"replay{rep}"))
            print(f"| ONE of them, cold, by its replay command, pass {rep + 1} | {before} "
                  f"| {ones[-1]:.1f} s |", flush=True)
        before = load()
        cold8 = queue_run(path, tmp / "home-cold", False)
        print(f"| 8 runs, cold (GRIDRUN_WARM=0) | {before} | {cold8:.1f} s |")
        one = statistics.median(ones)
        print(f"\nmedian warm 8 / median one cold: {statistics.median(warm8) / one:.2f}x "
              f"(per pass: {', '.join(f'{w / o:.2f}x' for w, o in zip(warm8, ones))}); "
              f"cold 8 / median one cold: {cold8 / one:.2f}x\n")
        if not args.skip_example:
            example = ROOT / "examples" / "digits.toml"
            print("| make run's sweep (examples/digits.toml, 8 runs of 8 epochs) | load avg before | wall |\n|---|---:|---:|")
            for label, warm in (("warm", True), ("cold (GRIDRUN_WARM=0)", False)):
                before = load()
                seconds = queue_run(example, tmp / f"example-{warm}", warm)
                print(f"| {label} | {before} | {seconds:.1f} s |", flush=True)
    before = load()
    warm, cold = first_line_overhead(args.reps)
    print(f"\nlaunch to first output line of `import torch; print(...)`, median of {args.reps} "
          f"(load avg before {before}):\n")
    print("| start | median | min | max |\n|---|---:|---:|---:|")
    for label, xs in (("warm (forked from a zygote with torch)", warm), ("cold (python script.py)", cold)):
        print(f"| {label} | {statistics.median(xs) * 1000:.0f} ms | {min(xs) * 1000:.0f} ms "
              f"| {max(xs) * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
