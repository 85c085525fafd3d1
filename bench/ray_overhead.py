"""Launch overhead per run: the Ray backend on a local cluster against the local backend.

    .venv/bin/python bench/ray_overhead.py [--runs N]

Both run the same sweep of N runs that do nothing (`python -c pass`), two at a time
(`--cpu-slots 2` locally; a one-node Ray cluster with 2 CPUs, each run holding one). The
marginal cost of a run is (wall(N runs) - wall(1 run)) / (N - 1): it leaves out what is paid
once per `queue run` (for Ray: joining the cluster). Needs root (the cluster lives in a
network namespace of its own, see tests/ray_cluster.py) and Ray. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.ray_cluster import local_cluster  # noqa: E402


def sweep(folder: Path, runs: int) -> Path:
    path = folder / f"noop{runs}.toml"
    path.write_text(f'name = "noop{runs}"\ncommand = ["{sys.executable}", "-c", "pass", "{{i}}"]\n'
                    f"[grid]\ni = {list(range(runs))}\n[resources]\ngpus = 0\n")
    return path


def wall(argv: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def measure(prefix: list[str], backend: list[str], runs: int, env: dict) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        one = wall(prefix + [sys.executable, "-m", "gridrun.tui.cli", "queue", "run",
                             str(sweep(Path(tmp), 1)), "--home", f"{tmp}/h1", *backend], env)
        many = wall(prefix + [sys.executable, "-m", "gridrun.tui.cli", "queue", "run",
                              str(sweep(Path(tmp), runs)), "--home", f"{tmp}/hn", *backend], env)
    return one, many


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=16)
    n = ap.parse_args().runs
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    rows = [("local (--cpu-slots 2)", *measure([], ["--cpu-slots", "2"], n, env))]
    with local_cluster(head_args=("--num-cpus=2", "--num-gpus=0")) as cluster:
        rows.append(("ray, local cluster (2 CPUs)",
                     *measure(cluster.enter(), ["--backend", "ray", "--address",
                                                cluster.address], n, env)))
    print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{n} runs of `python -c pass`, 2 at a time\n")
    print("| backend | 1 run, whole `queue run` | N runs | marginal per run |")
    print("|---|---|---|---|")
    for name, one, many in rows:
        print(f"| {name} | {one:.2f} s | {many:.2f} s | {(many - one) / (n - 1) * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
