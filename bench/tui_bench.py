"""The interface on a big store: first paint, the event-loop cost of a refresh tick, idle CPU.

    .venv/bin/python bench/tui_bench.py [--runs 10000] [--epochs 50]

Builds a store of RUNS runs (one sweep, 10 of them running) with EPOCHS metric rows each
(500,000 rows by default), then, headless (Textual's run_test):
- first paint: from App start to the runs table showing the first sweep's rows (measured in
  a fresh process);
- tick: the time the event loop spends applying one refresh (the `FeedUpdated` handler)
  when 10 running runs each reported a new epoch, and the worker's poll time beside it;
- idle: the process's CPU over 10 s with nothing running, as % of one core.
Targets (issue 4): first paint < 2 s, tick < 50 ms of the event loop, idle < 3 % of a core.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gridrun.engine.matrix import load  # noqa: E402
from gridrun.engine.store import Progress, Store  # noqa: E402


def build_store(home: Path, runs: int, epochs: int) -> Store:
    per_axis = round(runs ** 0.5)
    path = home.parent / "big.toml"
    path.write_text('name = "big"\nmetric = "val_acc"\ncommand = ["python3", "t.py"]\n'
                    f"[grid]\nlr = {[round(0.001 * (i + 1), 6) for i in range(per_axis)]}\n"
                    f"wd = {[round(1e-5 * (i + 1), 8) for i in range(runs // per_axis)]}\n")
    store = Store(home)
    store.add_sweep(load(path))
    rng = random.Random(0)
    all_runs = store.runs()
    batch = []
    for run in all_runs:
        rows = [{"epoch": e + 1, "epochs": epochs, "train_loss": rng.random(),
                 "val_acc": rng.random(), "lr": 0.001} for e in range(epochs)]
        batch.append(Progress(run.id, "report", rows, rows[-1], set(rows[-1]), set()))
        if len(batch) == 500:
            store.save_progress(batch)
            batch = []
    store.save_progress(batch)
    for run in all_runs[:-10]:
        store.mark_running(run.id, "cpu", 1, None)
        store.finish(run.id, "done", 0, None)
    for run in all_runs[-10:]:
        store.mark_running(run.id, "cpu", os.getpid(), None)
    return store


async def measure(home: Path) -> dict[str, float]:
    """In a fresh process, as a user starts it: nothing of the store-building is warm."""
    from gridrun.engine.store import Store
    from gridrun.tui.app import GridrunApp
    from gridrun.tui.screens.dashboard import DashboardScreen
    from gridrun.tui.widgets.runs_table import RunsTable

    store = Store(home)
    timings: dict[str, list[float]] = {"tick": [], "poll": []}
    original = DashboardScreen.on_feed_updated

    def timed(self, message):
        start = time.perf_counter()
        original(self, message)
        timings["tick"].append(time.perf_counter() - start)
        timings["poll"].append(message.snapshot.took_s)
    DashboardScreen.on_feed_updated = timed

    start = time.perf_counter()
    app = GridrunApp(home, start_daemon=False, refresh_s=1.0)
    async with app.run_test(size=(200, 60)) as pilot:
        table = app.screen.query_one(RunsTable)
        lags: list[float] = []

        def probe(expected=[time.perf_counter() + 0.01]):
            now = time.perf_counter()
            lags.append(now - expected[0])
            expected[0] = now + 0.01
        prober = app.set_interval(0.01, probe)
        while table.row_count == 0:
            await pilot.pause(0.005)
        first_paint = time.perf_counter() - start
        # the sparklines of 10,000 runs fill over the next polls; then all rows are there
        while app.screen.feed.pending:
            await pilot.pause(0.1)
        filled = time.perf_counter() - start
        worst_lag = max(lags)
        prober.stop()  # a 100 Hz probe would be most of the idle figure
        # ten running runs report an epoch, three times
        running = store.runs(status="running")
        for round_ in range(3):
            store.save_progress([Progress(r.id, "report", [{"epoch": 51 + round_,
                                                            "val_acc": 0.5}],
                                          {"epoch": 51 + round_}, {"epoch"}, set())
                                 for r in running])
            seen = len(timings["tick"])
            while len(timings["tick"]) < seen + 2:
                await pilot.pause(0.05)
        ticks, polls = timings["tick"][-4:], timings["poll"][-4:]
        for run in running:  # idle means nothing running
            store.finish(run.id, "done", 0, None)
        await pilot.pause(5.0)  # let the last repaints settle before measuring idle
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        wall0 = time.perf_counter()
        await pilot.pause(10.0)
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        idle = ((cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)) / (
            time.perf_counter() - wall0)
    return {"first_paint_s": first_paint, "filled_s": filled, "worst_lag_ms": 1000 * worst_lag,
            "tick_ms": 1000 * max(ticks), "poll_ms": 1000 * max(polls), "idle_pct": 100 * idle,
            "rows": table.row_count}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(asyncio.run(measure(args.measure))))
        return
    home = Path(tempfile.mkdtemp(prefix="gridrun-tui-bench-")) / "home"
    t0 = time.perf_counter()
    store = build_store(home, args.runs, args.epochs)
    built = time.perf_counter() - t0
    out = subprocess.run([sys.executable, __file__, "--measure", str(home)], check=True,
                         capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    print(f"store: {len(store.runs()):,} runs, {args.runs * args.epochs:,} metric rows "
          f"(built in {built:.1f} s); 200x60 terminal, headless\n")
    print("| measure | value | target |\n|---|---|---|")
    print(f"| first paint (app start to the runs table filled) | {result['first_paint_s']:.2f} s | < 2 s |")
    print(f"| every sparkline filled in (the series of 10,000 runs) | {result['filled_s']:.2f} s | - |")
    print(f"| longest event-loop stall meanwhile | {result['worst_lag_ms']:.0f} ms | - |")
    print(f"| refresh tick on the event loop (10 runs changed) | {result['tick_ms']:.1f} ms | < 50 ms |")
    print(f"| the worker's poll of the store (off the loop) | {result['poll_ms']:.1f} ms | - |")
    print(f"| idle CPU, nothing changing | {result['idle_pct']:.1f} % of a core | < 3 % |")


if __name__ == "__main__":
    main()
