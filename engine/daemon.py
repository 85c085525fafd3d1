"""The loop behind `gridrun queue run`: one per home, under its lock (engine.home).

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
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gridrun.engine import cpu_share, executor, gpus as gpu_info, groups, stages, warm
from gridrun.engine.home import DaemonLock, daemon_pid
from gridrun.engine.matrix import builtin_command
from gridrun.engine.placement import DeviceLoad, Need, Tenant, place, reserve
from gridrun.engine.store import Progress, Run, Store
from gridrun.engine.tail import ATTEMPT_KEY, READ_BUDGET, RunTail, attempt_marker_line

TICK_S = 0.25          # metrics reach the store at least this often while runs go
# SIGTERM, then SIGKILL this much later (DESIGN: 10 s; the tests shorten it through the env)
KILL_GRACE_S = float(os.environ.get("GRIDRUN_KILL_GRACE_S", "10"))
MEASURE_EVERY_S = 2.0  # NVML per-process memory is polled at most this often
OOM_MARKERS = ("CUDA out of memory", "OutOfMemoryError", "CUDA error: out of memory")
MEASURE_MARGIN = 1.2   # a measured peak plus 20% (and 256 MiB) becomes the sweep's estimate
KILL_WAIT_S = 2.0      # how long a SIGKILLed fused trainer is waited for after its last member


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
    tail: RunTail | None                 # None once reading its files failed
    pidfd: int | None = None
    end_reason: str | None = None        # 'cancelled' | 'timeout' | 'stopped' | 'fault'
    fault: str | None = None             # why gridrun itself ended it (its data, not its code)
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
    fuses = True   # forms fused groups (engine.groups); a backend that cannot sets False

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
        self.stage_errors: dict[int, str] = {}  # sweep_id -> why its next stage cannot be made
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        self.warm = warm.WarmPool(self.home, self._warm_changed)

    # -- life cycle ----------------------------------------------------------------------------

    def acquire(self) -> None:
        if not self.lock.acquire():
            raise DaemonBusy(daemon_pid(self.home))

    def run(self) -> int:
        """Run until the queue is empty (or forever with watch); returns the exit code."""
        self._install_signals()
        try:
            self.recover()
            for run_id in self.store.clear_requests():
                self._emit("finished", run_id, "cancelled")
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
                self.signal_child(child.proc, signal.SIGKILL)
            self.warm.close()
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

    def _warm_changed(self) -> None:
        """A zygote became ready (its waiting runs can start) or a warm child's status came:
        from the zygote's reader thread."""
        self.launch_due = 0.0
        self._wake()

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
        """Runs marked running belong to a dead daemon. Their processes (found by pid, and by
        the mark in their environment, which also finds a run started but not yet recorded)
        are stopped all at once, one grace period in all; then the runs are requeued."""
        orphans = self.store.runs(status="running")
        groups = executor.orphan_groups(self.home)
        groups |= {r.pid for r in orphans if executor.same_process(r.pid, r.pid_start)}
        if groups:
            executor.stop_groups(groups, KILL_GRACE_S)
        for run in orphans:
            self.store.requeue(run.id, error="interrupted: its daemon stopped")
            self.on_event("requeued", run, "interrupted by a daemon crash; resumes")

    # -- children -------------------------------------------------------------------------------

    def reap(self) -> int:
        """Conclude the children that have exited; returns how many did."""
        reaped = 0
        for run_id, child in list(self.children.items()):
            code = child.proc.poll()
            # a fused member ends when the trainer concludes it, while the others may go on
            ended = groups.member_status(Path(child.run.run_dir)) if child.group else None
            if code is None and ended is None:
                continue
            if ended is None and child.group and code == 0:
                ended = ("failed", 1, "the fused trainer ended without concluding this run")
            if getattr(child.proc, "status_lost", False) and child.end_reason is None:
                child.end_reason = "stopped"  # its zygote died first: requeue, as after a crash
            reaped += 1
            del self.children[run_id]
            self.launch_due = 0.0
            if not self._group_alive(child):   # the last of its process: release the process
                self._release(child, code)
            try:
                self._final_tail(child)
            except Exception as e:  # noqa: BLE001 - one run's data ends that run only
                child.fault = child.fault or f"could not read its output: {executor.one_line(e)}"
            try:
                if ended is not None:
                    self._conclude_member(child, code, *ended)
                else:
                    self._conclude(child, code)
            except Exception as e:  # noqa: BLE001
                error = f"could not conclude the run: {executor.one_line(e)}"
                self.store.finish(run_id, "failed", code, error)
                self._emit("finished", run_id, f"failed: {error}")
        return reaped

    def _group_alive(self, child: Child) -> bool:
        """Whether another member of child's fused group is still a child: the process, its
        pidfd and its process group are theirs then."""
        return bool(child.group) and any(c.proc is child.proc for c in self.children.values())

    def _release(self, child: Child, code: int | None) -> None:
        """Done with a run's process: its pidfd closed, whatever the script left behind killed.
        A fused trainer can still be running when its last member is concluded (it wrote the
        member's status and is on its way out): it is killed and reaped too."""
        if child.pidfd is not None:
            self.selector.unregister(child.pidfd)
            os.close(child.pidfd)
        self.signal_child(child.proc, signal.SIGKILL)
        if code is None:
            try:
                child.proc.wait(timeout=KILL_WAIT_S)
            except subprocess.TimeoutExpired:
                pass    # unkillable for now (D state): the interpreter reaps it later

    def _conclude_member(self, child: Child, code: int | None, status: str, member_code: int,
                         error: str | None) -> None:
        """A fused member the trainer concluded (engine.groups), or one its process left
        unconcluded. What gridrun ended it for (a fault, a stop, a timeout) goes first."""
        run = child.run
        if child.end_reason in ("fault", "stopped", "timeout"):
            self._conclude(child, member_code if code is None else code)
        elif status == "done":
            self.store.finish(run.id, "done", 0, None)
            self._emit("finished", run.id, "done")
        elif status == "cancelled" or child.end_reason == "cancelled":
            self.store.finish(run.id, "cancelled", member_code, "cancelled")
            self._emit("finished", run.id, "cancelled")
        elif error and any(m in error for m in OOM_MARKERS):
            self.store.requeue(run.id, exclusive=True, error="out of GPU memory in a fused group")
            self._emit("requeued", run.id, "out of GPU memory in a fused group; requeued alone")
        elif run.retries_left > 0:
            self.store.requeue(run.id, use_retry=True, error=error)
            self._emit("requeued", run.id, f"failed ({error}); retrying")
        else:
            self.store.finish(run.id, "failed", member_code, error)
            self._emit("finished", run.id, f"failed: {error}")

    def advance_stages(self) -> None:
        """Start the next stage of staged sweeps whose current stage has ended."""
        for sweep in self.store.sweeps():
            while sweep.spec.get("stages") and sweep.id not in self.stage_errors:
                try:
                    step = stages.advance(self.store, sweep)
                except Exception as e:  # noqa: BLE001 - one sweep's problem stops that sweep
                    self.stage_errors[sweep.id] = executor.one_line(e)
                    last = next(iter(self.store.runs(sweep=sweep.name)[-1:]), None)
                    if last is not None:
                        self.on_event("stage", last, "the next stage could not be made: "
                                      + self.stage_errors[sweep.id])
                    break
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
        if child.group:   # the fused trainer's own output (a traceback) is in the group's log
            log = groups.log_path(Path(run.run_dir), child.group[0])
        if child.fault is not None:
            self.store.finish(run.id, "failed", code, child.fault)
            self._emit("finished", run.id, f"failed: {child.fault}")
            return
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
        lines = executor.tail_lines(log)
        text = "\n".join(lines)
        if child.shared and any(m in text for m in OOM_MARKERS):
            # sharing caused it: run it alone, and give that GPU fewer runs of this sweep
            gpu = child.gpu_indices[0]
            sharing = 1 + sum(1 for c in self._processes() if gpu in c.gpu_indices)
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
        """Everything the run wrote, to the end, a bounded piece at a time."""
        if child.tail is None:
            return
        # what is there now, and no more: a process that escaped the run's group and goes on
        # writing must not keep the loop reading forever
        polls = 2 + sum(_size(Path(child.run.run_dir) / name)
                        for name in ("stdout.log", "metrics.jsonl")) // READ_BUDGET
        for _ in range(polls):
            progress = child.tail.poll(final=True, peak_mem_mb=child.peak_mem_mb)
            if progress is not None:
                self.store.save_progress([progress])
            if child.tail.drained:
                break

    def _fault(self, child: Child, reason: str) -> None:
        """gridrun cannot go on with this run (its data broke something): kill its group; it
        ends failed with `reason` once reaped. Other runs go on."""
        if child.fault is None:
            child.fault = reason
        child.end_reason = "fault"
        child.tail = None
        if self._live_companions(child):
            groups.request_cancel(Path(child.run.run_dir))   # the others go on
        else:
            self.signal_child(child.proc, signal.SIGKILL)

    def _live_companions(self, child: Child) -> list[Child]:
        """The other members of child's fused group that nothing is ending."""
        return [c for c in self.children.values()
                if c.proc is child.proc and c is not child and c.end_reason is None]

    # -- requests and deadlines ---------------------------------------------------------------

    def apply_requests(self) -> None:
        requests = self.store.pending_requests()
        for request_id, kind, run_id in requests:
            if kind == "slots":
                self.apply_slots(self.store.request_data(request_id))
            elif kind == "cancel" and run_id in self.children:
                child = self.children[run_id]
                if self._live_companions(child):
                    # the fused trainer drops it after the epoch; the others go on
                    child.end_reason = child.end_reason or "cancelled"
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
            self.signal_child(child.proc, signal.SIGTERM)

    def enforce_deadlines(self) -> None:
        now = time.time()
        for child in self.children.values():
            if child.timeout_s is not None and child.term_sent is None \
                    and now - child.started > child.timeout_s:
                self._terminate(child, "timeout")
            if child.term_sent is not None and now - child.term_sent > KILL_GRACE_S:
                self.signal_child(child.proc, signal.SIGKILL)

    def stop_all(self, requeue: bool) -> None:
        """SIGTERM or Ctrl-C on the daemon: stop every run as a group, requeue it, wait."""
        for child in self.children.values():
            self._terminate(child, "stopped" if requeue else "cancelled")
        deadline = time.time() + KILL_GRACE_S
        while self.children:
            self.reap()
            if time.time() > deadline:
                for child in self.children.values():
                    self.signal_child(child.proc, signal.SIGKILL)
            time.sleep(0.02)

    # -- placing and launching ----------------------------------------------------------------

    def _loads(self) -> list[DeviceLoad]:
        loads = {g.index: DeviceLoad(g.index, g.memory_total / 2**30) for g in self.gpus}
        for child in self._processes():
            need = self._mem_need(child.run)
            if need is not None and child.group:    # a fused group: its runs' sum
                need *= self._members(child)
            for i in child.gpu_indices:
                if i in loads:
                    loads[i].tenants.append(Tenant(child.run.id, need, child.run.exclusive))
        return list(loads.values())

    def _processes(self) -> list[Child]:
        """One child per process: a fused group's members share theirs, and one slot."""
        seen: dict[int, Child] = {}
        for child in self.children.values():
            seen.setdefault(id(child.proc), child)
        return list(seen.values())

    def _members(self, child: Child) -> int:
        """How many runs child's process still trains (1 for a run alone)."""
        return sum(1 for c in self.children.values() if c.proc is child.proc)

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
        reserved: set[int] = set()   # devices kept for a waiting multi-GPU run
        for run in queued:
            if run.id in self.children:
                continue
            try:
                cpu_free -= self._try_start(run, loads, cpu_free, reserved, queued)
            except Exception as e:  # noqa: BLE001 - one run's problem ends that run only
                error = f"could not start the run: {executor.one_line(e)}"
                self.store.fail_queued(run.id, error)
                self.touched.add(run.id)
                self._emit("finished", run.id, f"failed: {error}")
            if cpu_free <= 0 and not self.gpus:
                break          # nothing else can start either

    def _try_start(self, run: Run, loads: list[DeviceLoad], cpu_free: int,
                   reserved: set[int], queued: list[Run]) -> int:
        """Place and start one queued run if it fits; returns the CPU slots it took (0 or 1).
        A run that can fuse takes the later queued runs it can train with (engine.groups):
        one process, one CPU slot or one GPU tenant for the group.
        A multi-GPU run that must wait reserves the devices likeliest to free first, so that
        later one-GPU runs cannot keep taking them and starve it."""
        spec = self._spec(run)
        fusable = self.fuses and groups.group_key(run, spec) is not None
        if not fusable and self.warm.warming(spec):
            return 0   # its warm worker is importing; started cold beside it, it would crawl
        wanted = spec.get("resources", {}).get("gpus")
        gpus_needed = wanted if wanted is not None else (1 if self.gpus else 0)
        if gpus_needed > len(self.gpus):
            have = f"{len(self.gpus)} GPU" + ("" if len(self.gpus) == 1 else "s")
            self.store.fail_queued(run.id, f"needs {gpus_needed} GPU(s) but this machine "
                                   f"has {have} visible")
            self.touched.add(run.id)
            self._emit("finished", run.id, f"failed: needs {gpus_needed} GPU(s), {have}")
            return 0
        for d in loads:
            d.max_runs = self.max_per_gpu.get((run.sweep_id, d.index))
        need = Need(gpus_needed, self._mem_need(run), run.exclusive)
        free = [d for d in loads if d.index not in reserved]
        where = place(need, free, cpu_free, self.opt.slots_per_gpu)
        if where is None:
            if gpus_needed > 1:
                reserved |= set(reserve(need, free))
            return 0
        members = [run]
        if fusable:
            members = groups.companions(run, spec, queued, self._group_limit(run, where),
                                        set(self.children))
        if len(members) > 1:
            child = self._start_group(members, spec, where)
        else:
            child = self._start(run, spec, where)
        if child is None:
            return 0
        if where:
            for d in loads:
                if d.index in where:
                    if d.tenants:
                        child.shared = True
                        for other in self.children.values():
                            if d.index in other.gpu_indices:
                                other.shared = True
                    mem = need.mem_gb * len(members) if need.mem_gb is not None else None
                    d.tenants.append(Tenant(run.id, mem, run.exclusive))
            return 0
        return 1

    def _group_limit(self, run: Run, where: list[int]) -> int:
        gpu_mem = next((g.memory_total / 2**30 for g in self.gpus
                        if where and g.index == where[0]), None)
        return groups.group_limit(bool(where), self._mem_need(run), gpu_mem)

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
        """Prepare, mark running, spawn. Marked before it is spawned: a crash in between leaves
        a run marked running whose process (if any) the next daemon finds by its environment,
        never a started run still marked queued that would be started twice."""
        run_dir = Path(run.run_dir)
        self.touched.add(run.id)
        try:
            command = tuple(spec["command"]) if spec.get("command") else builtin_command()
            launch = executor.build_launch(
                run_id=run.id, sweep=run.sweep, index=run.index, attempt=run.attempt,
                params=run.params, run_dir=run_dir, command=command, workdir=spec["workdir"],
                gpu_indices=gpu_indices)
            if gpu_indices:
                launch.env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # NVML's numbering, CUDA's too
            launch.env.update(self._thread_env())
            self._prepare_attempt(run, run_dir)
            executor.write_run_files(run_dir, run.params, launch)
            tail = RunTail(run.id, run_dir, tuple(spec.get("parse_patterns", ())))
        except Exception as e:  # noqa: BLE001 - its command or folder: this run's problem
            error = f"could not prepare the run: {executor.one_line(e)}"
            self.store.fail_queued(run.id, error)
            self._emit("finished", run.id, f"failed: {error}")
            return None
        if not self.store.mark_running(run.id, launch.device):
            return None  # cancelled between our read and now
        try:
            proc = self.spawn_process(run, launch, run_dir / "stdout.log")
        except Exception as e:  # noqa: BLE001
            reason = e.strerror if isinstance(e, OSError) and e.strerror else executor.one_line(e)
            error = f"could not start {launch.argv[0]!r}: {reason}"
            self.store.finish(run.id, "failed", None, error)
            self._emit("finished", run.id, f"failed: {error}")
            return None
        timeout_min = spec.get("resources", {}).get("timeout_min")
        child = Child(run=run, proc=proc, device=launch.device, gpu_indices=gpu_indices,
                      started=time.time(), timeout_s=timeout_min * 60 if timeout_min else None,
                      tail=tail)
        self.children[run.id] = child   # from here on, reap() concludes it whatever happens
        try:
            self.store.set_pid(run.id, proc.pid, executor.process_start_time(proc.pid))
        except Exception as e:  # noqa: BLE001
            self._fault(child, f"could not record the run's process: {executor.one_line(e)}")
        try:
            child.pidfd = self.exit_fd(proc)
            if child.pidfd is not None:
                self.selector.register(child.pidfd, selectors.EVENT_READ, run.id)
        except (AttributeError, OSError):
            child.pidfd = None  # no pidfd (old kernel): the tick notices the exit instead
        self._emit("started", run.id, launch.device)
        return child

    def _start_group(self, members: list[Run], spec: dict, gpu_indices: list[int]
                     ) -> Child | None:
        """One fused trainer process for `members` (engine.groups), in _start's order: each
        member prepared as if alone (its run.json and config.toml), marked running, then the
        one process spawned (cold: the fused trainer is not a warm target) and its pid
        recorded for each. Every member is a child of its own sharing that process and its
        pidfd. Returns the first started member's child."""
        prepared: list[tuple[Run, executor.Launch, RunTail]] = []
        threads = self._thread_env()   # the group's process is one sharer of the cores
        for run in members:
            self.touched.add(run.id)
            run_dir = Path(run.run_dir)
            try:
                launch = executor.build_launch(
                    run_id=run.id, sweep=run.sweep, index=run.index, attempt=run.attempt,
                    params=run.params, run_dir=run_dir, command=builtin_command(),
                    workdir=spec["workdir"], gpu_indices=gpu_indices)
                if gpu_indices:
                    launch.env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # NVML's numbering, CUDA's too
                launch.env.update(threads)    # its replay, alone, runs as it ran here
                self._prepare_attempt(run, run_dir)
                groups.prepare(run_dir)
                executor.write_run_files(run_dir, run.params, launch)
                tail = RunTail(run.id, run_dir, tuple(spec.get("parse_patterns", ())))
            except Exception as e:  # noqa: BLE001 - this member's folder: its problem only
                error = f"could not prepare the run: {executor.one_line(e)}"
                self.store.fail_queued(run.id, error)
                self._emit("finished", run.id, f"failed: {error}")
                continue
            prepared.append((run, launch, tail))
        marked = [member for member in prepared     # the others were cancelled meanwhile
                  if self.store.mark_running(member[0].id, member[1].device)]
        if not marked:
            return None
        first_run, first, _ = marked[0]
        try:   # marked running: from here a failure must conclude every member
            dropped = ("GRIDRUN_RUN_DIR", "GRIDRUN_RUN_ID", "GRIDRUN_PARAMS")   # one run's
            env = {k: v for k, v in first.env.items() if k not in dropped}
            argv = list(groups.command(Path(run.run_dir) for run, _, _ in marked))
            group_launch = executor.Launch(argv, first.cwd, env, first.device)
            proc = executor.spawn(group_launch, groups.log_path(Path(first_run.run_dir),
                                                                first_run.id), self.home)
        except Exception as e:  # noqa: BLE001
            reason = e.strerror if isinstance(e, OSError) and e.strerror else executor.one_line(e)
            error = f"could not start the fused trainer: {reason}"
            for run, _, _ in marked:
                self.store.finish(run.id, "failed", None, error)
                self._emit("finished", run.id, f"failed: {error}")
            return None
        timeout_min = spec.get("resources", {}).get("timeout_min")
        ids = tuple(run.id for run, _, _ in marked)
        children = []
        for run, launch, tail in marked:
            child = Child(run=run, proc=proc, device=launch.device, gpu_indices=gpu_indices,
                          started=time.time(),
                          timeout_s=timeout_min * 60 if timeout_min else None,
                          tail=tail, group=ids)
            self.children[run.id] = child   # from here on, reap() concludes it
            children.append(child)
            try:
                self.store.set_pid(run.id, proc.pid, executor.process_start_time(proc.pid))
            except Exception as e:  # noqa: BLE001
                self._fault(child, f"could not record the run's process: {executor.one_line(e)}")
        try:   # one pidfd for the group, closed with its last member (reap)
            pidfd = self.exit_fd(proc)
            if pidfd is not None:
                self.selector.register(pidfd, selectors.EVENT_READ, ids[0])
        except (AttributeError, OSError):
            pidfd = None  # no pidfd (old kernel): the tick notices the exit instead
        for child in children:
            child.pidfd = pidfd
            self._emit("started", child.run.id, f"{child.device} (fused, {len(ids)} runs)")
        return children[0]

    # -- how a run's process is started and signalled: the hook points a backend overrides
    #    (engine.ray_backend.RayDaemon runs each run as a Ray actor on a cluster) -------------

    def spawn_process(self, run: Run, launch: executor.Launch, log_path: Path):
        """Start the run; a Popen or an object with Popen's poll(), wait() and pid. A run its
        sweep lets start warm is forked by a zygote (engine.warm); else, or when the warm path
        fails, a cold process."""
        env = {**launch.env, executor.HOME_MARK: str(self.home)}   # as a cold run's (recovery)
        warm_proc = self.warm.spawn(self._spec(run), launch.argv, launch.cwd, env, log_path)
        return warm_proc or executor.spawn(launch, log_path, self.home)

    def signal_child(self, proc, sig: int) -> None:
        """Signal the run's whole process group."""
        executor.signal_group(proc.pid, sig)

    def exit_fd(self, proc) -> int | None:
        """A descriptor that turns readable when the run exits (None: the tick notices)."""
        return os.pidfd_open(proc.pid)

    def _thread_env(self) -> dict[str, str]:
        """OMP/MKL_NUM_THREADS: this run's share of the host's cores (engine.cpu_share)."""
        runs = cpu_share.sharers(cpu_slots=self.opt.cpu_slots, gpu_count=len(self.gpus),
                                 slots_per_gpu=self.opt.slots_per_gpu,
                                 running=len(self._processes()))   # a fused group is one
        return cpu_share.thread_env(cpu_share.thread_share(cpu_share.host_cores(), runs))

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
        for child in list(self.children.values()):
            if child.tail is None:
                continue
            peak = peaks.get(child.run.id)
            if peak is not None and (child.peak_mem_mb is None or peak > child.peak_mem_mb):
                child.peak_mem_mb = peak
                self._learn_estimate(child)
            try:
                progress = child.tail.poll(peak_mem_mb=peak)
            except Exception as e:  # noqa: BLE001 - one run's output ends that run only
                self._fault(child, f"could not read its output: {executor.one_line(e)}")
                continue
            if progress is not None:
                updates.append((child, progress))
                self.on_event("progress", child.run, "")
        self._save(updates)

    def _save(self, updates: list[tuple[Child, Progress]]) -> None:
        """One transaction for the tick; when it fails, run by run, so that only a run whose
        data cannot be stored ends. A store that is unusable for everyone stops the daemon."""
        try:
            self.store.save_progress([p for _, p in updates])
            return
        except sqlite3.OperationalError:
            raise
        except Exception:  # noqa: BLE001 - find whose data it was
            pass
        for child, progress in updates:
            try:
                self.store.save_progress([progress])
            except sqlite3.OperationalError:
                raise
            except Exception as e:  # noqa: BLE001
                self._fault(child, f"could not store its metrics: {executor.one_line(e)}")

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
        if child.peak_mem_mb is None or child.tail is None or not child.tail.rows_seen:
            return  # before its first epoch, a run has not reached its peak
        # a fused group's process holds all its members: the estimate is per run
        estimate = child.peak_mem_mb / max(1, len(child.group)) * MEASURE_MARGIN / 1024 + 0.25
        sweep_id = child.run.sweep_id
        self.mem_estimate_gb[sweep_id] = max(self.mem_estimate_gb.get(sweep_id, 0), estimate)

    # -- slot counts changed while it runs (`gridrun queue slots`, the interface) -------------

    def apply_slots(self, data: dict) -> None:
        """New slot counts from a `slots` request; daemon.json says them. Runs already going
        keep going: fewer slots only means fewer new starts."""
        cpu, per_gpu = data.get("cpu_slots"), data.get("slots_per_gpu")
        if isinstance(cpu, int) and not isinstance(cpu, bool) and cpu >= 1:
            self.opt.cpu_slots = cpu
        if isinstance(per_gpu, int) and not isinstance(per_gpu, bool) and per_gpu >= 0:
            self.opt.slots_per_gpu = per_gpu or None   # 0: pack by memory, no fixed count
        path = self.home / "daemon.json"
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            info = {}
        info = {**(info if isinstance(info, dict) else {}), "pid": os.getpid(),
                "cpu_slots": self.opt.cpu_slots, "slots_per_gpu": self.opt.slots_per_gpu}
        tmp = self.home / "daemon.json.tmp"
        tmp.write_text(json.dumps(info) + "\n")
        os.replace(tmp, path)
        self.launch_due = 0.0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
