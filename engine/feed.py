"""What the interface shows, read incrementally from the store.

`Feed.poll()` returns a `Snapshot`: the daemon, the devices, the sweeps (counts, best headline
value) and the runs that changed since the last poll, each with its headline-metric series for
the sparkline. Runs are found by the store's change counter and their metric rows by `seq`, so
a poll on a quiet 10,000-run store costs two tiny queries. Plain dataclasses out; the
interface calls this from a worker thread, never from its event loop.
"""
from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from gridrun.engine import gpus as gpu_info
from gridrun.engine.control import daemon_info
from gridrun.engine.results import GUESSES, is_loss, numeric
from gridrun.engine.store import Run, Store, Sweep

HISTORY = 40  # utilisation samples kept per GPU
# Metric series of runs seen for the first time are read at most this many runs a poll: a big
# store paints its tables at once and fills the sparklines over the next few polls.
SERIES_BATCH = 1000


@dataclass(frozen=True)
class GpuView:
    index: int
    name: str
    memory_total_gb: float
    memory_used_gb: float | None
    utilization: int | None
    history: tuple[int, ...]        # recent utilisation samples, oldest first
    runs: int                       # runs of this home on it


@dataclass(frozen=True)
class SweepView:
    name: str
    id: int
    metric: str | None
    mode: str
    varying: tuple[str, ...]
    counts: dict[str, int]
    best: float | None
    # lowest and highest headline value of any of its runs: one scale for the sparklines of
    # the whole sweep, so that rows compare with each other
    scale: tuple[float, float] | None = None
    eta_s: float | None = None      # until its last run ends, at the pace seen so far

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class RunView:
    run: Run
    series: tuple[float, ...]       # the headline metric over epochs
    latest: float | None
    best: float | None
    epoch: float | None
    epochs: float | None
    elapsed_s: float | None
    eta_s: float | None
    series_only: bool = False       # only its series was filled in: the run itself is as before


@dataclass(frozen=True)
class Snapshot:
    version: int
    daemon: dict | None
    gpus: tuple[GpuView, ...]
    nvml: str
    sweeps: tuple[SweepView, ...]
    runs: tuple[RunView, ...]       # changed since the last poll (all, on the first)
    first: bool
    took_s: float
    removed: tuple[int, ...] = ()   # runs deleted since the last poll


@dataclass
class _Track:
    attempt: int
    seq: int = 0
    points: list[tuple[float | None, float]] = field(default_factory=list)  # (epoch, value)


class Feed:
    def __init__(self, store: Store, home: Path):
        self.store = store
        self.home = Path(home)
        self.version = -1
        self.tracks: dict[int, _Track] = {}
        self.sweeps: dict[int, Sweep] = {}
        self.util: dict[int, deque] = {}
        self.best: dict[int, float] = {}
        # sweep id -> run id -> its best, for the runs a sweep's best may come from: done or
        # still going. A failed or cancelled run's value is no result (as in the tables).
        self.run_bests: dict[int, dict[int, float]] = {}
        self.scales: dict[int, tuple[float, float]] = {}   # sweep id -> (low, high)
        self.guessed: dict[int, str] = {}          # sweep id -> headline, when it names none
        self.counts: dict[int, dict[str, int]] = {}
        self.pending: dict[int, Run] = {}          # runs whose series is still to be read
        self.known: set[int] = set()               # every run id seen (to notice deletions)
        self.pace: dict[int, _Pace] = {}           # run id -> what its sweep's ETA needs

    def poll(self) -> Snapshot:
        started = time.perf_counter()
        first = self.version < 0
        version = self.store.change_counter()
        moved = version != self.version
        changed = self.store.runs_changed_since(self.version) if moved else []
        self.version = version
        if moved or first:  # a deletion moves the counter without changing any run
            self.sweeps = {s.id: s for s in self.store.sweeps()}
        self.known.update(r.id for r in changed)
        views = self._series(changed)
        removed: tuple[int, ...] = ()
        if moved or first:
            self.counts = {c.sweep.id: c.counts for c in self.store.sweep_counts()}
            if sum(sum(c.values()) for c in self.counts.values()) < len(self.known):
                removed = self._forget_deleted()
        now = time.time()
        daemon = daemon_info(self.home)
        # no daemon, no progress: an ETA would be a promise nobody keeps
        sweeps = tuple(SweepView(s.name, s.id, *self._metric_mode(s), tuple(s.varying),
                                 self.counts.get(s.id, {}), self.best.get(s.id),
                                 self.scales.get(s.id),
                                 self._sweep_eta(s.id, now) if daemon else None)
                       for s in self.sweeps.values())
        return Snapshot(version, daemon, self._gpus(),
                        gpu_info.nvml_status() if first else "", sweeps, tuple(views), first,
                        time.perf_counter() - started, removed)

    def _metric_mode(self, sweep: Sweep | None, runs: list[Run] = ()) -> tuple[str | None, str]:
        """The sweep's headline, or the first usual name its runs report when it names none."""
        if sweep is not None and sweep.metric:
            return sweep.metric, sweep.mode
        sweep_id = sweep.id if sweep is not None else -1
        if sweep_id not in self.guessed:
            names = {n for r in runs for n in r.metric_names}
            if found := next((g for g in GUESSES if g in names), None):
                self.guessed[sweep_id] = found
        metric = self.guessed.get(sweep_id)
        return metric, "min" if metric and is_loss(metric) else "max"

    def _series(self, changed: list[Run]) -> list[RunView]:
        """Views of the changed runs, and of pending runs whose series is read this time."""
        budget = SERIES_BATCH
        to_read: dict[int, Run] = {}
        for run in changed:
            track = self.tracks.get(run.id)
            known = track is not None and track.attempt == run.attempt and run.id not in self.pending
            if known or budget > 0:
                to_read[run.id] = run
                self.pending.pop(run.id, None)
                budget -= 0 if known else 1
            else:
                self.pending[run.id] = run
        backfill = set()
        for run_id in list(self.pending)[:max(budget, 0)]:
            if run_id not in to_read:
                to_read[run_id] = self.pending.pop(run_id)
                backfill.add(run_id)
        by_sweep: dict[int, list[Run]] = {}
        for run in to_read.values():
            by_sweep.setdefault(run.sweep_id, []).append(run)
        views = [self._view(run, _Track(run.attempt), "max")
                 for run in changed if run.id in self.pending]
        for sweep_id, runs in by_sweep.items():
            metric, mode = self._metric_mode(self.sweeps.get(sweep_id), runs)
            self._read_points(runs, metric)
            for run in runs:
                views.append(self._view(run, self.tracks[run.id], mode, run.id in backfill))
                if views[-1].series:
                    low, high = self.scales.get(sweep_id, (math.inf, -math.inf))
                    self.scales[sweep_id] = (min(low, *views[-1].series),
                                             max(high, *views[-1].series))
                self.pace[run.id] = _Pace.of(views[-1], sweep_id)
                self._note_best(sweep_id, run, views[-1].best, mode)
        return views

    def _note_best(self, sweep_id: int, run: Run, best: float | None, mode: str) -> None:
        bests = self.run_bests.setdefault(sweep_id, {})
        if best is None or run.status not in ("done", "running"):
            if bests.pop(run.id, None) is None:
                return
        else:
            bests[run.id] = best
        if bests:
            self.best[sweep_id] = (max if mode == "max" else min)(bests.values())
        else:
            self.best.pop(sweep_id, None)

    def _read_points(self, runs: list[Run], metric: str | None) -> None:
        """New rows of each run's headline metric; a new attempt or a rewound history (an
        epoch at or before one already seen) is read again from the start."""
        fresh, incremental = [], []
        for run in runs:
            track = self.tracks.get(run.id)
            if track is None or track.attempt != run.attempt:
                self.tracks[run.id] = _Track(run.attempt)
                fresh.append(run.id)
            else:
                incremental.append(run.id)
        if metric is None:
            return
        rows = self.store.metric_series(fresh, metric) if fresh else []
        # one query for the incremental runs too, from the smallest seq any of them knows
        if incremental:
            low = min(self.tracks[i].seq for i in incremental)
            rows += [r for r in self.store.metric_series(incremental, metric, low)
                     if r[1] > self.tracks[r[0]].seq]
        rewound = set()
        for run_id, seq, epoch, value in rows:
            track = self.tracks[run_id]
            track.seq = max(track.seq, seq)
            if not numeric(value):
                continue
            last_epoch = track.points[-1][0] if track.points else None
            if numeric(epoch) and numeric(last_epoch) and epoch <= last_epoch:
                rewound.add(run_id)
            track.points.append((epoch if numeric(epoch) else None, float(value)))
        for run_id in rewound:
            track = self.tracks[run_id]
            track.points, track.seq = [], 0
            for _, seq, epoch, value in self.store.metric_series([run_id], metric):
                track.seq = seq
                if numeric(value):
                    track.points.append((epoch if numeric(epoch) else None, float(value)))

    def _view(self, run: Run, track: _Track, mode: str, series_only: bool = False) -> RunView:
        values = [v for _, v in track.points]
        best = (max(values) if mode == "max" else min(values)) if values else None
        last = run.last_metrics
        epoch = last.get("epoch") if numeric(last.get("epoch")) else None
        epochs = last.get("epochs") or run.params.get("epochs")
        epochs = epochs if numeric(epochs) else None
        elapsed = None
        if run.started:
            elapsed = (run.ended or time.time()) - run.started
        eta = None
        if run.status == "running" and elapsed and epoch and epochs and epoch > 0:
            eta = elapsed / epoch * max(epochs - epoch, 0)
        return RunView(run, tuple(values), values[-1] if values else None, best, epoch, epochs,
                       elapsed, eta, series_only)

    def _gpus(self) -> tuple[GpuView, ...]:
        devices = gpu_info.list_gpus()
        views = []
        on_device: dict[int, int] = {}
        for run in self.store.runs(status="running") if devices else []:
            if run.device and run.device.startswith("cuda:"):
                for index in run.device[5:].split(","):
                    if index.isdigit():
                        on_device[int(index)] = on_device.get(int(index), 0) + 1
        for g in devices:
            history = self.util.setdefault(g.index, deque(maxlen=HISTORY))
            if g.utilization is not None:
                history.append(g.utilization)
            views.append(GpuView(g.index, g.name, g.memory_total_gb,
                                 None if g.memory_used is None else g.memory_used / 2**30,
                                 g.utilization, tuple(history), on_device.get(g.index, 0)))
        return tuple(views)


    # -- deleted runs and the sweeps' ETA --------------------------------------------------------

    def _forget_deleted(self) -> tuple[int, ...]:
        """Runs deleted since the last look: dropped from every record; the best value of
        their sweeps is recomputed from the runs that are left."""
        present = self.store.run_ids()
        removed = tuple(sorted(self.known - present))
        self.known &= present
        touched = {self.pace[i].sweep_id for i in removed if i in self.pace}
        for run_id in removed:
            self.tracks.pop(run_id, None)
            self.pending.pop(run_id, None)
            self.pace.pop(run_id, None)
        for sweep_id in touched:
            mode = self._metric_mode(self.sweeps.get(sweep_id))[1]
            bests = self.run_bests.get(sweep_id, {})
            for run_id in removed:
                bests.pop(run_id, None)
            self.best.pop(sweep_id, None)
            if bests:
                self.best[sweep_id] = (max if mode == "max" else min)(bests.values())
            # the sparkline scale is left as it was: it only needs to cover the runs shown
        return removed

    def _sweep_eta(self, sweep_id: int, now: float) -> float | None:
        """Seconds until the sweep's last run ends: the work left (what its running runs
        still need, plus its queued runs at the mean duration of its finished ones), spread
        over as many runs at once as it has running now. None until one run has finished."""
        counts = self.counts.get(sweep_id, {})
        queued, running = counts.get("queued", 0), counts.get("running", 0)
        if not queued and not running:
            return None
        paces = [p for p in self.pace.values() if p.sweep_id == sweep_id]
        took = [p.took_s for p in paces if p.took_s is not None]
        mean = sum(took) / len(took) if took else None
        left = 0.0
        for p in paces:
            if p.running:
                if p.eta_s is not None:
                    left += max(p.eta_s - (now - p.seen), 0.0)
                elif mean is not None and p.started is not None:
                    left += max(mean - (now - p.started), 0.0)
                else:
                    return None
        if queued:
            if mean is None:
                return None
            left += queued * mean
        return left / max(running, 1)


@dataclass(frozen=True)
class _Pace:
    """What a sweep's ETA needs of one run, as of its last change."""
    sweep_id: int
    running: bool
    started: float | None
    took_s: float | None            # how long it ran, once done
    eta_s: float | None             # its own ETA when seen
    seen: float
    best: float | None

    @classmethod
    def of(cls, view: RunView, sweep_id: int) -> _Pace:
        run = view.run
        took = run.ended - run.started if run.status == "done" and run.started and run.ended \
            else None
        return cls(sweep_id, run.status == "running", run.started, took, view.eta_s,
                   time.time(), view.best)
