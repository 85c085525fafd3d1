"""The loop behind `gridrun queue run`: one per home, under an flock.

Each tick: reap finished children -> apply requests (cancel, stop) -> enforce timeouts and
kill deadlines -> place and spawn queued runs -> tail the running runs' files into the store
-> sleep until a child exits or a short tick passes. Only this loop changes a running run's
status.

Restore rules (what a run found `running` at start-up becomes): its daemon died, so the run
goes back to `queued` with attempt + 1. If its process is still alive (the same pid with the
same start time), its whole group is killed first, so no run is ever running twice. It then
resumes from its checkpoint (the built-in trainer's checkpoint.pt is kept) or starts over.
"""
from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gridrun.engine import executor, gpus as gpu_info, groups, stages
from gridrun.engine.home import DaemonLock, daemon_pid
from gridrun.engine.matrix import builtin_command
from gridrun.engine.placement import DeviceLoad, Need, Tenant, place
from gridrun.engine.store import Run, Store
from gridrun.engine.tail import ATTEMPT_KEY, RunTail, attempt_marker_line

TICK_S = 0.25          # metrics reach the store at least this often while runs go
# SIGTERM, then SIGKILL this much later (DESIGN: 10 s; the tests shorten it through the env)
KILL_GRACE_S = float(os.environ.get("GRIDRUN_KILL_GRACE_S", "10"))
MEASURE_EVERY_S = 2.0  # NVML per-process memory is polled at most this often
OOM_MARKERS = ("CUDA out of memory", "OutOfMemoryError", "CUDA error: out of memory")
MEASURE_MARGIN = 1.2   # a measured peak plus 20% (and 256 MiB) becomes the sweep's estimate


class DaemonBusy(Exception):
    def __init__(self, pid: int | None):
        super().__init__(pid)
        self.pid = pid


@dataclass
class Child:
    run: Run
    proc: subprocess.Popen
    device: str
    gpu_indices: list[int]
    started: float
    timeout_s: float | None
    tail: RunTail
    pidfd: int | None = None
    end_reason: str | None = None        # 'cancelled' | 'timeout' | 'stopped'
    term_sent: float | None = None
    peak_mem_mb: float | None = None
    shared: bool = False                 # its GPU held other runs while it ran
    group: tuple[int, ...] = ()          # a fused group's run ids (this one's too); () alone


Event = Callable[[str, Run, str], None]   # (kind, run, detail): started, finished, requeued, ...


@dataclass
class Options:
    cpu_slots: int = 1
    slots_per_gpu: int | None = None
    watch: bool = False
    sweeps_of_interest: set[str] = field(default_factory=set)  # judged for the exit code


class Daemon:
    def __init__(self, home: Path, store: Store, options: Options, on_event: Event | None = None):
        self.home = Path(home)
        self.store = store
        self.opt = options
        self.on_event = on_event or (lambda kind, run, detail: None)
        self.lock = DaemonLock(self.home)
        self.children: dict[int, Child] = {}
        self.selector = selectors.DefaultSelector()
        self.stopping = False       # graceful: start nothing new, let running runs finish
        self.interrupted: str | None = None
        self.touched: set[int] = set()
        self.gpus = gpu_info.list_gpus()
        self.mem_estimate_gb: dict[int, float] = {}     # sweep_id -> measured estimate
        self.max_per_gpu: dict[tuple[int, int], int] = {}  # (sweep, gpu) -> cap after an OOM
        self.last_measure = 0.0
        self._sweeps: dict[int, object] = {}   # sweep_id -> Sweep, refreshed each launch pass
        self.launch_due = 0.0                   # when the queue is next read for new runs
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)

    # -- life cycle ----------------------------------------------------------------------------

    def acquire(self) -> None:
        if not self.lock.acquire():
            raise DaemonBusy(daemon_pid(self.home))

    def run(self) -> int:
        """Run until the queue is empty (or forever with watch); returns the exit code."""
        self._install_signals()
        try:
            self.recover()
            self.store.clear_requests()
            self._describe_self()
            self.advance_stages()
            while True:
                if self.reap():
                    self.advance_stages()
                self.apply_requests()
                self.enforce_deadlines()
                if self.interrupted:
                    self.stop_all(requeue=True)
                    break
                if not self.stopping:
                    self.launch()
                self.poll_tails()
                if not self.children and (self.stopping or (not self.opt.watch
                                                            and not self.store.counts()["queued"])):
                    break
                self.wait()
        finally:
            for child in list(self.children.values()):  # only on an unexpected error
                executor.kill_group(child.proc.pid)
            self.lock.release()
        return self.exit_code()

    def _describe_self(self) -> None:
        info = {"pid": os.getpid(), "started": time.time(), "cpu_slots": self.opt.cpu_slots,
                "slots_per_gpu": self.opt.slots_per_gpu, "watch": self.opt.watch,
                "gpus": gpu_info.describe(self.gpus)}
        tmp = self.home / "daemon.json.tmp"
        tmp.write_text(json.dumps(info) + "\n")
        os.replace(tmp, self.home / "daemon.json")

    def exit_code(self) -> int:
        if self.interrupted:
            return 130 if self.interrupted == "SIGINT" else 143
        judged = self.store.runs(ids=self.touched) if self.touched else []
        for name in self.opt.sweeps_of_interest:
            judged += self.store.runs(sweep=name)
        return 1 if any(r.status == "failed" for r in judged) else 0

    def _install_signals(self) -> None:
        def handler(signum, frame):
            self.interrupted = signal.Signals(signum).name
            self._wake()
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def wait(self) -> None:
        """Sleep until a child exits (its pidfd turns readable), a signal, or one tick."""
        for key, _ in self.selector.select(timeout=TICK_S):
            if key.fileobj == self._wake_r:
                os.read(self._wake_r, 4096)

    # -- restore ------------------------------------------------------------------------------

    def recover(self) -> None:
        for run in self.store.runs(status="running"):
            if executor.same_process(run.pid, run.pid_start):
                executor.terminate_group(run.pid)
                deadline = time.time() + KILL_GRACE_S
                while executor.group_alive(run.pid) and time.time() < deadline:
                    time.sleep(0.05)
                executor.kill_group(run.pid)
            self.store.requeue(run.id, error="interrupted: its daemon stopped")
            self.on_event("requeued", run, "interrupted by a daemon crash; resumes")

    # -- children -------------------------------------------------------------------------------

    def reap(self) -> int:
        """Conclude the children that have exited; returns how many did."""
        reaped = 0
        for run_id, child in list(self.children.items()):
            code = child.proc.poll()
            ended = groups.member_status(Path(child.run.run_dir)) if child.group else None
            if code is None and ended is None:
                continue
            if ended is None and child.group and code == 0:
                ended = ("failed", 1, "the fused trainer ended without concluding this run")
            reaped += 1
            del self.children[run_id]
            self.launch_due = 0.0
            if code is not None and not self._group_alive(child):
                if child.pidfd is not None:
                    self.selector.unregister(child.pidfd)
                    os.close(child.pidfd)
                executor.kill_group(child.proc.pid)   # whatever the script left behind
            self._final_tail(child)
            if ended is not None:
                self._conclude_member(child, *ended)
            else:
                self._conclude(child, code)
        return reaped

    def _group_alive(self, child: Child) -> bool:
        """Whether another member of child's fused group is still a child (it owns the pidfd
        and the process group then)."""
        return any(c.proc is child.proc for c in self.children.values())

    def _conclude_member(self, child: Child, status: str, code: int, error: str | None) -> None:
        """A fused member the trainer concluded (engine.groups)."""
        run = child.run
        if status == "done":
            self.store.finish(run.id, "done", 0, None)
            self._emit("finished", run.id, "done")
        elif status == "cancelled" or child.end_reason == "cancelled":
            self.store.finish(run.id, "cancelled", code, "cancelled")
            self._emit("finished", run.id, "cancelled")
        elif error and any(m in error for m in OOM_MARKERS):
            self.store.requeue(run.id, exclusive=True, error="out of GPU memory in a fused group")
            self._emit("requeued", run.id, "out of GPU memory in a fused group; requeued alone")
        elif run.retries_left > 0:
            self.store.requeue(run.id, use_retry=True, error=error)
            self._emit("requeued", run.id, f"failed ({error}); retrying")
        else:
            self.store.finish(run.id, "failed", code, error)
            self._emit("finished", run.id, f"failed: {error}")

    def advance_stages(self) -> None:
        """Start the next stage of staged sweeps whose current stage has ended."""
        for sweep in self.store.sweeps():
            while sweep.spec.get("stages"):
                step = stages.advance(self.store, sweep)
                if step is None:
                    break
                number, base = step
                sweep = self.store.sweep(sweep.name)
                first = next(iter(self.store.runs(sweep=sweep.name, status="queued")), None)
                keys = ", ".join(stages.stage_keys(sweep, number))
                if first is not None:
                    self.on_event("stage", first, f"stage {number}: {keys} over the best of "
                                  f"stage {number - 1}")
                self.launch_due = 0.0

    def _conclude(self, child: Child, code: int) -> None:
        run = child.run
        log = Path(run.run_dir) / "stdout.log"
        if child.end_reason == "stopped":
            self.store.requeue(run.id, error="stopped; requeued")
            self._emit("requeued", run.id, "stopped by the daemon; requeued")
            return
        if child.end_reason == "cancelled":
            self.store.finish(run.id, "cancelled", code, "cancelled")
            self._emit("finished", run.id, "cancelled")
            return
        if child.end_reason == "timeout":
            minutes = f"{child.timeout_s / 60:g}"
            self.store.finish(run.id, "failed", code, f"timed out after {minutes} min")
            self._emit("finished", run.id, f"failed: timed out after {minutes} min")
            return
        if code == 0:
            self.store.finish(run.id, "done", 0, None)
            self._emit("finished", run.id, "done")
            return
        if child.group:
            log = groups.log_path(Path(run.run_dir), child.group[0])
        lines = executor.tail_lines(log)
        text = "\n".join(lines)
        if child.shared and any(m in text for m in OOM_MARKERS):
            # sharing caused it: run it alone, and give that GPU fewer runs of this sweep
            gpu = child.gpu_indices[0]
            sharing = 1 + sum(1 for c in self.children.values() if gpu in c.gpu_indices)
            key = (run.sweep_id, gpu)
            self.max_per_gpu[key] = max(1, min(self.max_per_gpu.get(key, sharing), sharing) - 1)
            self.store.requeue(run.id, exclusive=True, error="out of GPU memory while sharing")
            self._emit("requeued", run.id, "out of GPU memory while sharing; requeued alone")
            return
        reason = f"exit code {code}" if code > 0 else f"killed by {signal_name(-code)}"
        error = reason + (": " + " | ".join(lines) if lines else " (no output)")
        if run.retries_left > 0:
            self.store.requeue(run.id, use_retry=True, error=error)
            self._emit("requeued", run.id, f"failed ({reason}); retrying")
            return
        self.store.finish(run.id, "failed", code, error)
        self._emit("finished", run.id, f"failed: {error}")

    def _emit(self, kind: str, run_id: int, detail: str) -> None:
        run = self.store.run(run_id)
        if run is not None:
            self.on_event(kind, run, detail)

    def _final_tail(self, child: Child) -> None:
        progress = child.tail.poll(final=True, peak_mem_mb=child.peak_mem_mb)
        if progress is not None:
            self.store.save_progress([progress])
        child.tail.close()

    # -- requests and deadlines ---------------------------------------------------------------

    def apply_requests(self) -> None:
        requests = self.store.pending_requests()
        for _, kind, run_id in requests:
            if kind == "cancel" and run_id in self.children:
                child = self.children[run_id]
                others = [c for c in self.children.values() if c.proc is child.proc
                          and c is not child and c.end_reason is None]
                if others:      # the fused trainer drops it after the epoch; the others go on
                    child.end_reason = "cancelled"
                    groups.request_cancel(Path(child.run.run_dir))
                else:
                    self._terminate(child, "cancelled")
            elif kind == "stop":
                self.stopping = True
            elif kind == "stop_now":
                self.stopping = True
                for child in self.children.values():
                    self._terminate(child, "stopped")
        if requests:
            self.launch_due = 0.0
        self.store.finish_requests(r[0] for r in requests)

    def _terminate(self, child: Child, reason: str) -> None:
        if child.end_reason is None:
            child.end_reason = reason
        if child.term_sent is None:
            child.term_sent = time.time()
            executor.terminate_group(child.proc.pid)

    def enforce_deadlines(self) -> None:
        now = time.time()
        for child in self.children.values():
            if child.timeout_s is not None and child.term_sent is None \
                    and now - child.started > child.timeout_s:
                self._terminate(child, "timeout")
            if child.term_sent is not None and now - child.term_sent > KILL_GRACE_S:
                executor.kill_group(child.proc.pid)

    def stop_all(self, requeue: bool) -> None:
        """SIGTERM or Ctrl-C on the daemon: stop every run as a group, requeue it, wait."""
        for child in self.children.values():
            self._terminate(child, "stopped" if requeue else "cancelled")
        deadline = time.time() + KILL_GRACE_S
        while self.children:
            self.reap()
            if time.time() > deadline:
                for child in self.children.values():
                    executor.kill_group(child.proc.pid)
            time.sleep(0.02)

    # -- placing and launching ----------------------------------------------------------------

    def _loads(self) -> list[DeviceLoad]:
        loads = {g.index: DeviceLoad(g.index, g.memory_total / 2**30) for g in self.gpus}
        for child in self._processes():
            for i in child.gpu_indices:
                if i in loads:
                    need = self._mem_need(child.run)
                if need is not None and child.group:    # a fused group: its runs' sum
                    need *= sum(1 for c in self.children.values() if c.proc is child.proc)
                loads[i].tenants.append(Tenant(child.run.id, need, child.run.exclusive))
        return list(loads.values())

    def _mem_need(self, run: Run) -> float | None:
        spec = self._spec(run)
        given = spec.get("resources", {}).get("gpu_mem_gb")
        return given if given is not None else self.mem_estimate_gb.get(run.sweep_id)

    def _spec(self, run: Run) -> dict:
        sweep = self._sweeps.get(run.sweep_id)
        if sweep is None:
            sweep = self.store.sweep_by_id(run.sweep_id)
            self._sweeps[run.sweep_id] = sweep
        return sweep.spec

    def launch(self) -> None:
        # The queue is read when a slot may have freed (a child ended, a request came) or,
        # for runs added meanwhile, once a second: not every tick, which costs with big queues.
        now = time.time()
        if now < self.launch_due:
            return
        self.launch_due = now + 1.0
        if self._no_room():
            return  # a full machine need not read the queue (it may hold thousands of runs)
        queued = self.store.queued()
        if not queued:
            return
        self._sweeps = {}
        cpu_free = self.opt.cpu_slots - sum(1 for c in self._processes() if not c.gpu_indices)
        loads = self._loads()
        for run in queued:
            if run.id in self.children:
                continue
            spec = self._spec(run)
            wanted = spec.get("resources", {}).get("gpus")
            gpus_needed = wanted if wanted is not None else (1 if self.gpus else 0)
            if gpus_needed > len(self.gpus):
                have = f"{len(self.gpus)} GPU" + ("" if len(self.gpus) == 1 else "s")
                self.store.fail_queued(run.id, f"needs {gpus_needed} GPU(s) but this machine "
                                       f"has {have} visible")
                self.touched.add(run.id)
                self._emit("finished", run.id, f"failed: needs {gpus_needed} GPU(s), {have}")
                continue
            for d in loads:
                d.max_runs = self.max_per_gpu.get((run.sweep_id, d.index))
            need = Need(gpus_needed, self._mem_need(run), run.exclusive)
            where = place(need, loads, cpu_free, self.opt.slots_per_gpu)
            if where is None:
                if gpus_needed == 0 and cpu_free <= 0 and not self.gpus:
                    break          # nothing else can start either
                continue
            members = groups.companions(run, spec, queued, self._group_limit(run, where),
                                        set(self.children))
            child = (self._start_group(members, spec, where) if len(members) > 1
                     else self._start(run, spec, where))
            if child is None:
                continue
            if where:
                for d in loads:
                    if d.index in where:
                        if d.tenants:
                            child.shared = True
                            for other in self.children.values():
                                if d.index in other.gpu_indices:
                                    other.shared = True
                        d.tenants.append(Tenant(run.id, need.mem_gb, run.exclusive))
            else:
                cpu_free -= 1

    def _processes(self) -> list[Child]:
        """One child per process: a fused group's members share theirs, and one slot."""
        seen: dict[int, Child] = {}
        for child in self.children.values():
            seen.setdefault(id(child.proc), child)
        return list(seen.values())

    def _group_limit(self, run: Run, where: list[int]) -> int:
        gpu_mem = next((g.memory_total / 2**30 for g in self.gpus if where and
                        g.index == where[0]), None)
        return groups.group_limit(bool(where), self._mem_need(run), gpu_mem)

    def _start_group(self, members: list[Run], spec: dict, gpu_indices: list[int]
                     ) -> Child | None:
        """One fused trainer process for `members` (engine.groups); each member is a child of
        its own, sharing that process. Returns the first member's child."""
        launches = []
        for run in members:
            launch = executor.build_launch(
                run_id=run.id, sweep=run.sweep, index=run.index, attempt=run.attempt,
                params=run.params, run_dir=Path(run.run_dir), command=builtin_command(),
                workdir=spec["workdir"], gpu_indices=gpu_indices)
            launches.append(launch)
            self.touched.add(run.id)
        first = launches[0]
        group_launch = executor.Launch(
            list(groups.command(Path(r.run_dir) for r in members)), first.cwd,
            {k: v for k, v in first.env.items() if k not in ("GRIDRUN_RUN_DIR", "GRIDRUN_RUN_ID",
                                                              "GRIDRUN_PARAMS")},
            first.device)
        if gpu_indices:
            group_launch.env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        try:
            for run, launch in zip(members, launches):
                self._prepare_attempt(run, Path(run.run_dir))
                groups.prepare(Path(run.run_dir))
                executor.write_run_files(Path(run.run_dir), run.params, launch)
            proc = executor.spawn(group_launch,
                                  groups.log_path(Path(members[0].run_dir), members[0].id))
        except OSError as e:
            error = f"could not start the fused trainer: {e.strerror or e}"
            for run in members:
                self.store.fail_queued(run.id, error)
                self._emit("finished", run.id, f"failed: {error}")
            return None
        pid_start = executor.process_start_time(proc.pid)
        timeout_min = spec.get("resources", {}).get("timeout_min")
        ids = tuple(r.id for r in members)
        children = []
        for run in members:
            if not self.store.mark_running(run.id, first.device, proc.pid, pid_start):
                groups.request_cancel(Path(run.run_dir))   # cancelled between read and now
                continue
            child = Child(run=run, proc=proc, device=first.device, gpu_indices=gpu_indices,
                          started=time.time(),
                          timeout_s=timeout_min * 60 if timeout_min else None,
                          tail=RunTail(run.id, Path(run.run_dir),
                                       tuple(spec.get("parse_patterns", ()))),
                          group=ids)
            self.children[run.id] = child
            children.append(child)
            self._emit("started", run.id, f"{first.device} (fused, {len(members)} runs)")
        if not children:
            executor.kill_group(proc.pid)
            proc.wait()
            return None
        try:   # one pidfd for the group, closed with its last member (reap)
            pidfd = os.pidfd_open(proc.pid)
            self.selector.register(pidfd, selectors.EVENT_READ, children[0].run.id)
        except (AttributeError, OSError):
            pidfd = None
        for child in children:
            child.pidfd = pidfd
        return children[0]

    def _no_room(self) -> bool:
        """Every CPU slot taken, and every GPU too (by count, or by a run that owns it)."""
        if sum(1 for c in self._processes() if not c.gpu_indices) < self.opt.cpu_slots:
            return False
        for load in self._loads():
            if not load.tenants:
                return False
            if self.opt.slots_per_gpu is not None and len(load.tenants) < self.opt.slots_per_gpu:
                return False
            if self.opt.slots_per_gpu is None and all(t.mem_gb is not None for t in load.tenants):
                return False  # packing by memory: the queue must be read to know
        return True

    def _start(self, run: Run, spec: dict, gpu_indices: list[int]) -> Child | None:
        run_dir = Path(run.run_dir)
        command = tuple(spec["command"]) if spec.get("command") else builtin_command()
        launch = executor.build_launch(
            run_id=run.id, sweep=run.sweep, index=run.index, attempt=run.attempt,
            params=run.params, run_dir=run_dir, command=command, workdir=spec["workdir"],
            gpu_indices=gpu_indices)
        if gpu_indices:
            launch.env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # NVML's numbering, CUDA's too
        self.touched.add(run.id)
        try:
            self._prepare_attempt(run, run_dir)
            executor.write_run_files(run_dir, run.params, launch)
            proc = executor.spawn(launch, run_dir / "stdout.log")
        except OSError as e:
            error = f"could not start {launch.argv[0]!r}: {e.strerror or e}"
            self.store.fail_queued(run.id, error)
            self._emit("finished", run.id, f"failed: {error}")
            return None
        if not self.store.mark_running(run.id, launch.device, proc.pid,
                                       executor.process_start_time(proc.pid)):
            executor.kill_group(proc.pid)  # cancelled between our read and now
            proc.wait()
            return None
        timeout_min = spec.get("resources", {}).get("timeout_min")
        child = Child(run=run, proc=proc, device=launch.device, gpu_indices=gpu_indices,
                      started=time.time(), timeout_s=timeout_min * 60 if timeout_min else None,
                      tail=RunTail(run.id, run_dir, tuple(spec.get("parse_patterns", ()))))
        try:
            child.pidfd = os.pidfd_open(proc.pid)
            self.selector.register(child.pidfd, selectors.EVENT_READ, run.id)
        except (AttributeError, OSError):
            child.pidfd = None  # no pidfd (old kernel): the tick notices the exit instead
        self.children[run.id] = child
        self._emit("started", run.id, launch.device)
        return child

    def _prepare_attempt(self, run: Run, run_dir: Path) -> None:
        """A new attempt appends to the run's files after a marker; the tail re-reads them
        from the start and keeps the earlier attempt's epochs before the one where the new
        attempt begins (see engine.tail): a resumed run keeps its history, a restarted one
        starts a fresh one."""
        run_dir.mkdir(parents=True, exist_ok=True)
        if run.attempt == 1:
            return
        self.store.reset_metrics(run.id)
        with open(run_dir / "stdout.log", "a") as log:
            log.write("\n" + attempt_marker_line(run.attempt))
        metrics = run_dir / "metrics.jsonl"
        if metrics.exists():
            with open(metrics, "a+b") as f:
                # a report torn by the kill must not swallow the marker
                f.seek(0, os.SEEK_END)
                torn = f.tell() > 0 and (f.seek(-1, os.SEEK_END) or f.read(1) != b"\n")
                f.write((b"\n" if torn else b"") + json.dumps({ATTEMPT_KEY: run.attempt}).encode()
                        + b"\n")

    # -- metrics ------------------------------------------------------------------------------

    def poll_tails(self) -> None:
        peaks = self._measure()
        updates = []
        for child in self.children.values():
            peak = peaks.get(child.run.id)
            if peak is not None and (child.peak_mem_mb is None or peak > child.peak_mem_mb):
                child.peak_mem_mb = peak
                self._learn_estimate(child)
            progress = child.tail.poll(peak_mem_mb=peak)
            if progress is not None:
                updates.append(progress)
                self.on_event("progress", child.run, "")
        self.store.save_progress(updates)

    def _measure(self) -> dict[int, float]:
        """Peak GPU memory per run, from NVML's per-process figures (only with GPUs)."""
        now = time.time()
        if not self.gpus or now - self.last_measure < MEASURE_EVERY_S:
            return {}
        self.last_measure = now
        used = gpu_info.process_memory()
        if not used:
            return {}
        per_run: dict[int, float] = {}
        for pid, nbytes in used.items():
            try:
                pgid = os.getpgid(pid)
            except OSError:
                continue
            for child in self.children.values():
                if child.proc.pid == pgid:
                    per_run[child.run.id] = per_run.get(child.run.id, 0) + nbytes / 2**20
        return per_run

    def _learn_estimate(self, child: Child) -> None:
        """The sweep's later runs are packed by what its first ones used, plus a margin."""
        if child.peak_mem_mb is None or child.tail.history == []:
            return  # before its first epoch, a run has not reached its peak
        # a fused group's process holds all its members: the estimate is per run
        estimate = child.peak_mem_mb / max(1, len(child.group)) * MEASURE_MARGIN / 1024 + 0.25
        sweep_id = child.run.sweep_id
        self.mem_estimate_gb[sweep_id] = max(self.mem_estimate_gb.get(sweep_id, 0), estimate)


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
