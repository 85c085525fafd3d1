"""How fast the output parser reads a run's stdout: megabytes of progress bars and noise.

    .venv/bin/python bench/output_parser.py [--reps N]

Feeds 10,000 carriage-return progress bars (~0.8 MB) and 10,000 lines of download noise to one
OutputParser in a single feed (median of N), as tests/test_report.py does without timing it.
"""
from __future__ import annotations

import argparse
import statistics
import time

from gridrun.engine.report import OutputParser

BAR = ("\rEpoch 1:  50%|█████     | {n}/100000 [00:01<00:01, 45.2it/s, loss=0.312, "
       "acc=0.9]")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    reps = parser.parse_args().reps
    text = "".join(BAR.format(n=i) for i in range(10_000))
    text += "".join(f"Downloading shard {'x' * 40}\n" for _ in range(10_000))
    times = []
    for _ in range(reps):
        p = OutputParser()
        start = time.perf_counter()
        p.feed(text)
        times.append(time.perf_counter() - start)
        assert p.current() == {"epoch": 1, "loss": 0.312, "acc": 0.9}
    mb = len(text.encode()) / 1e6
    median = statistics.median(times)
    print(f"| input | MB | median s | MB/s |\n|---|---:|---:|---:|\n"
          f"| 10,000 bars + 10,000 noise lines | {mb:.2f} | {median:.3f} | {mb / median:.1f} |")


if __name__ == "__main__":
    main()
