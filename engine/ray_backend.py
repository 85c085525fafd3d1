"""`gridrun queue run --backend ray`: the same daemon, its runs on a Ray cluster.

The daemon keeps its store, its loop and its children; only how a run's process is started
and signalled changes (the hook points of engine.daemon.Daemon). Each run becomes one Ray
actor (engine.ray_node.RunActor) holding the run's resources: `num_cpus=1`, `num_gpus` from
`gpus` (a fraction of one GPU from `gpu_mem_gb` against the cluster's GPU memory, or from
`--slots-per-gpu`), and the `[resources] ray = {...}` custom resources. Ray picks the node; the
actor starts the command there and the daemon polls it for the new bytes of stdout.log and
metrics.jsonl, which it appends to the local run folder: the local tail, `queue ls`, `results`
and the interface see a local run.

The daemon submits a run only when the cluster's free resources (its totals less what this
daemon's runs hold) cover it, so a run marked `running` is not left waiting in Ray's queue; a
run that no node could ever hold fails at once with what it asked for.

Lifetime: the actors belong to the daemon's Ray job. When the daemon dies, Ray kills them, and
engine/ray_keeper.py stops each run's process group (SIGTERM, SIGKILL after the grace). The
next daemon still stops a run it finds alive on its node (same pid and start time, kept in the
run folder's ray.json) before requeueing it, as the local recovery does: no run goes twice.

Ray is imported only inside functions: none of this costs the light commands anything.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from gridrun.engine import executor
from gridrun.engine.daemon import KILL_GRACE_S, TICK_S, Daemon, Options
from gridrun.engine.errors import GridrunError
from gridrun.engine.ray_node import STREAMED
from gridrun.engine.store import Run, Store

INSTALL_HINT = "pip install 'gridrun[ray]'"
POLL_BYTES = 1 << 20          # per file and poll: a tick stays short however much a run prints
POLL_WAIT_S = 0.2             # an actor answers a poll at once when its run ends, else after this
START_TIMEOUT_S = 120.0       # a recovery reaper that no node answers is given up after this
NODES_EVERY_S = 5.0           # nodes joining or leaving are noticed this often
RAY_FILE = "ray.json"         # in the run folder: where the run went (node, pid), for recovery
GPU_FRACTION_STEP = 0.01      # Ray takes GPU fractions with at most a few decimals


def import_ray():
    try:
        import ray
    except ImportError:
        raise GridrunError("--backend ray needs Ray, which is not installed",
                           hint=f"install it with: {INSTALL_HINT}") from None
    return ray


def connect(address: str | None):
    """Join the cluster at `address` (else $RAY_ADDRESS, else a cluster started on this
    machine by `ray start --head`) as a driver; returns the ray module."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    address = address or os.environ.get("RAY_ADDRESS") or "auto"
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False,
                 configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GridrunError(f"cannot reach a Ray cluster at {address}: {first}",
                           hint="start one with `ray start --head`, then pass its address "
                                "with --address HOST:6379 (or set RAY_ADDRESS)") from None
    return ray


# -- the cluster as the daemon sees it ------------------------------------------------------

@dataclass(frozen=True)
class Node:
    node_id: str
    ip: str
    resources: dict[str, float]   # CPU, GPU and custom resources (Ray's bookkeeping ones left out)


def _schedulable(resources: dict) -> dict[str, float]:
    hidden = ("memory", "object_store_memory")
    return {k: float(v) for k, v in resources.items()
            if k not in hidden and not k.startswith(("node:", "accelerator_type:"))}


def cluster_nodes(ray) -> list[Node]:
    return [Node(n["NodeID"], n.get("NodeManagerAddress", "?"),
                 _schedulable(n.get("Resources", {}))) for n in ray.nodes() if n.get("Alive")]


def run_request(resources: dict, cluster_has_gpus: bool, gpu_memory_gb: float | None,
                slots_per_gpu: int | None) -> dict[str, float]:
    """The Ray resources one run holds: a pure function of its sweep's [resources]."""
    gpus = resources.get("gpus")
    gpus = gpus if gpus is not None else (1 if cluster_has_gpus else 0)
    request = {"CPU": 1.0}
    if gpus == 1 and (slots_per_gpu or (resources.get("gpu_mem_gb") and gpu_memory_gb)):
        share = 1 / slots_per_gpu if slots_per_gpu else resources["gpu_mem_gb"] / gpu_memory_gb
        steps = max(1, int(share / GPU_FRACTION_STEP + 0.999999))
        request["GPU"] = min(1.0, steps * GPU_FRACTION_STEP)
    elif gpus:
        request["GPU"] = float(gpus)
    for name, amount in (resources.get("ray") or {}).items():
        request[name] = float(amount)
    return request


def fits(request: dict[str, float], free: dict[str, float]) -> bool:
    return all(amount <= free.get(name, 0.0) + 1e-9 for name, amount in request.items())


def describe_request(request: dict[str, float]) -> str:
    return ", ".join(f"{name}={amount:g}" for name, amount in request.items())


# -- one run as a Popen-like handle -----------------------------------------------------------

class RayProc:
    """What the daemon holds for a run on the cluster: poll(), wait() and pid like a Popen.

    poll() also moves the run's new output home: it takes the answer of the last poll sent
    to the actor (never waiting for it), appends its bytes to the local files, and sends the
    next. The exit code is given only once every byte the run wrote is home. Then the actor
    goes to `on_free` (the daemon's pool of idle actors) unless it failed.
    """

    def __init__(self, ray, actor, request: dict[str, float], run_dir: Path,
                 launch: executor.Launch, on_free):
        self.ray = ray
        self.actor = actor
        self.run_dir = run_dir
        self.request = request
        self.on_free = on_free
        self.pid: int | None = None      # the run's process group on its node, once started
        self.info: dict | None = None    # node_id, node_ip, gpus, shared
        self.returncode: int | None = None
        files = {name: (run_dir / name).read_bytes() for name in ("run.json", "config.toml")}
        self.pending = self.actor.start.remote(launch.argv, launch.cwd, launch.env,
                                               str(run_dir), files, KILL_GRACE_S)

    def poll(self) -> int | None:
        if self.returncode is not None or self.pending is None:
            return self.returncode
        ready, _ = self.ray.wait([self.pending], timeout=0)
        if not ready:
            return None
        try:
            answer = self.ray.get(ready[0])
        except Exception as e:  # noqa: BLE001 - the actor died, its node left, ...: this run's end
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            return self._fail(f"the run's Ray actor failed: {first[:300]}")
        try:
            if self.info is None:
                return self._started(answer)
            self._append(answer["chunks"])
        except OSError as e:   # the local disk is full, the folder went away: this run's end
            return self._fail(f"cannot write the run's files home: {e.strerror or e}")
        if answer["code"] is not None:
            return self._end(answer["code"], None)
        self.pending = self.actor.poll.remote(POLL_BYTES, POLL_WAIT_S)
        return None

    def _started(self, info: dict) -> int | None:
        self.info = info
        if "error" in info:
            return self._end(127, info["error"])
        self.pid = info["pid"]
        record = {k: info[k] for k in ("node_id", "node_ip", "pid", "start", "gpus", "shared",
                                       "actor_pid")}
        tmp = self.run_dir / (RAY_FILE + ".tmp")
        tmp.write_text(json.dumps(record) + "\n")
        os.replace(tmp, self.run_dir / RAY_FILE)
        self.pending = self.actor.poll.remote(POLL_BYTES, POLL_WAIT_S)
        return None

    def _append(self, chunks: dict[str, bytes]) -> None:
        for name, data in chunks.items():
            if name in STREAMED:
                with open(self.run_dir / name, "ab") as f:
                    f.write(data)

    def _fail(self, reason: str) -> int:
        """The actor is lost to this run: killing it makes Ray kill the run's waiter, and the
        keeper then stops the run's group on its node."""
        try:
            self.ray.kill(self.actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
        self.actor = None
        return self._end(1, reason)

    def _end(self, code: int, reason: str | None) -> int:
        self.returncode = code
        self.pending = None
        if self.actor is not None:
            self.on_free(self.request, self.actor)
        if reason is not None:   # the daemon quotes the log's last lines as the run's error
            try:
                with open(self.run_dir / "stdout.log", "ab") as log:
                    log.write(f"gridrun: {reason}\n".encode())
            except OSError:
                pass
        return code

    def device(self) -> str | None:
        if self.info is None:
            return "ray: starting"    # Ray is starting its actor (a worker process)
        if "error" in self.info:
            return None
        gpus = self.info.get("gpus") or []
        return f"{self.info['node_ip']} " + (f"cuda:{','.join(gpus)}" if gpus else "cpu")

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            # an actor runs one call at a time, in order: a signal sent before start() has
            # answered reaches the run right after it starts
            self.actor.signal.remote(sig)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.time() + timeout
        while self.poll() is None:
            if deadline is not None and time.time() > deadline:
                raise TimeoutError
            time.sleep(0.02)
        return self.returncode


# -- the daemon ----------------------------------------------------------------------------------

class RayDaemon(Daemon):
    """The daemon of engine.daemon, with its runs placed by Ray instead of on this machine."""

    fuses = False   # one run, one actor: its own launch pass below never forms fused groups

    def __init__(self, home: Path, store: Store, options: Options, address: str | None = None,
                 on_event=None):
        super().__init__(home, store, options, on_event)
        self.address = address
        self.gpus = []            # this machine's devices are not the cluster's
        self.ray = None
        self.nodes: list[Node] = []
        self.nodes_seen = 0.0
        self.gpu_memory_gb: float | None = None
        self._actor_class = None
        self._requests: dict[int, dict[str, float]] = {}   # run id -> what it asked Ray for
        # actors whose run ended, each holding its resources, for the next run asking the same
        self.idle: list[tuple[dict[str, float], object]] = []
        os.set_blocking(self._wake_r, False)   # wait() drains it without the selector

    def connect(self) -> None:
        if self.ray is None:
            self.ray = connect(self.address)
            from gridrun.engine.ray_node import RunActor

            self._actor_class = self.ray.remote(RunActor)
            self._refresh_nodes(force=True)

    def run(self) -> int:
        try:
            self.connect()
        except BaseException:
            self.lock.release()   # a cluster out of reach leaves the home to the next daemon
            raise
        return super().run()

    def _describe_self(self) -> None:
        super()._describe_self()
        path = self.home / "daemon.json"
        info = json.loads(path.read_text())
        address = self.address or os.environ.get("RAY_ADDRESS") or "auto"
        cpus = sum(n.resources.get("CPU", 0) for n in self.nodes)
        gpus = sum(n.resources.get("GPU", 0) for n in self.nodes)
        info.update(backend="ray", address=address,
                    nodes=[{"ip": n.ip, "resources": n.resources} for n in self.nodes],
                    # what `queue status` and the interface's header say about the devices
                    gpus=f"Ray cluster at {address}: {len(self.nodes)} node(s), {cpus:g} CPU, "
                         f"{gpus:g} GPU")
        tmp = self.home / "daemon.json.tmp"
        tmp.write_text(json.dumps(info) + "\n")
        os.replace(tmp, path)

    # hook points of Daemon ------------------------------------------------------------------

    def spawn_process(self, run: Run, launch: executor.Launch, log_path: Path) -> RayProc:
        request = self._requests.pop(run.id)
        try:
            actor = self._actor_for(request)
            return RayProc(self.ray, actor, request, log_path.parent, launch, self._free_actor)
        except Exception as e:  # noqa: BLE001 - a submit Ray refuses fails this run, not the daemon
            raise OSError(f"Ray refused the run: {e}") from None

    def _actor_for(self, request: dict[str, float]):
        for i, (held, actor) in enumerate(self.idle):
            if held == request:
                del self.idle[i]
                return actor
        custom = {k: v for k, v in request.items() if k not in ("CPU", "GPU")}
        return self._actor_class.options(num_cpus=request.get("CPU", 0),
                                         num_gpus=request.get("GPU", 0), resources=custom,
                                         max_restarts=0).remote()

    def _free_actor(self, request: dict[str, float], actor) -> None:
        self.idle.append((request, actor))
        self.launch_due = 0.0

    def _drop_idle(self) -> None:
        """Idle actors the launch pass did not reuse give their resources back."""
        for _, actor in self.idle:
            self.ray.kill(actor, no_restart=True)
        self.idle = []

    def wait(self) -> None:
        """Sleep until an actor answers (a run's output, or its end), or one tick."""
        pending = [c.proc.pending for c in self.children.values() if c.proc.pending is not None]
        if not pending:
            return super().wait()
        self.ray.wait(pending, num_returns=1, timeout=TICK_S)
        try:
            os.read(self._wake_r, 4096)
        except BlockingIOError:
            pass

    def signal_child(self, proc, sig: int) -> None:
        proc.send_signal(sig)

    def exit_fd(self, proc) -> None:
        return None   # the tick polls the actors

    # recovery ---------------------------------------------------------------------------------

    def recover(self) -> None:
        """Stop what the dead daemon's runs left on their nodes, then requeue them as locally."""
        from gridrun.engine.ray_node import stop_leftover
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        reaper = self.ray.remote(stop_leftover)
        alive = {n.node_id for n in self.nodes}
        waiting = []
        for run in self.store.runs(status="running"):
            try:
                where = json.loads((Path(run.run_dir) / RAY_FILE).read_text())
            except (OSError, ValueError):
                continue     # never started on a node, or a local run: the local rules apply
            if not isinstance(where, dict) or where.get("node_id") not in alive \
                    or not isinstance(where.get("pid"), int):
                continue     # its node left the cluster, and its processes with it
            strategy = NodeAffinitySchedulingStrategy(where["node_id"], soft=False)
            waiting.append(reaper.options(num_cpus=0, scheduling_strategy=strategy).remote(
                where.get("pid"), run.run_dir, KILL_GRACE_S))
        if waiting:
            try:
                self.ray.wait(waiting, num_returns=len(waiting), timeout=START_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - a node that cannot answer has nothing to stop
                pass
        super().recover()

    # placing and launching --------------------------------------------------------------------

    def _refresh_nodes(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self.nodes_seen < NODES_EVERY_S:
            return
        self.nodes_seen = now
        self.nodes = cluster_nodes(self.ray)

    def _gpu_memory(self) -> float | None:
        """The smallest GPU memory of the cluster, measured once on its nodes (packing by
        `gpu_mem_gb` turns into a fraction of it)."""
        if self.gpu_memory_gb is None:
            sizes = [g["memory_total"] for node in cluster_gpus(self.ray) for g in node["gpus"]
                     if g["memory_total"]]
            self.gpu_memory_gb = min(sizes) / 2**30 if sizes else 0.0
        return self.gpu_memory_gb or None

    def launch(self) -> None:
        now = time.time()
        if now < self.launch_due:
            return
        self.launch_due = now + 1.0
        try:
            self._launch()
        finally:
            self._drop_idle()

    def _launch(self) -> None:
        self._refresh_nodes()
        free: dict[str, float] = {}
        for node in self.nodes:
            for name, amount in node.resources.items():
                free[name] = free.get(name, 0.0) + amount
        for child in self.children.values():
            for name, amount in child.proc.request.items():
                free[name] = free.get(name, 0.0) - amount
        if free.get("CPU", 0.0) < 1 - 1e-9:
            return            # every run holds a CPU: nothing more can start
        queued = self.store.queued()
        if not queued:
            return
        self._sweeps = {}
        has_gpus = any(n.resources.get("GPU") for n in self.nodes)
        for run in queued:
            if run.id in self.children:
                continue
            resources = self._spec(run).get("resources", {})
            mem = self._gpu_memory() if resources.get("gpu_mem_gb") and has_gpus else None
            request = run_request(resources, has_gpus, mem, self.opt.slots_per_gpu)
            if not any(fits(request, n.resources) for n in self.nodes):
                error = (f"needs {describe_request(request)} but no node of the Ray cluster "
                         "has that much")
                self.store.fail_queued(run.id, error)
                self.touched.add(run.id)
                self._emit("finished", run.id, f"failed: {error}")
                continue
            if not fits(request, free):
                continue
            self._requests[run.id] = request
            if self._start(run, self._spec(run), []) is None:
                self._requests.pop(run.id, None)
                continue
            for name, amount in request.items():
                free[name] -= amount
            if free.get("CPU", 0.0) < 1 - 1e-9:
                break

    def poll_tails(self) -> None:
        for child in self.children.values():
            device = child.proc.device()
            if device is not None and child.device != device:
                if child.proc.pid is not None:
                    child.started = time.time()   # timeout_min counts from the start on its node
                child.device = device
                self.store.set_device(child.run.id, device)
        super().poll_tails()


def cluster_gpus(ray) -> list[dict]:
    """Every alive node with its GPUs (NVML on the node itself), for `gridrun gpus`."""
    from gridrun.engine.ray_node import node_gpus
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(node_gpus)
    nodes = cluster_nodes(ray)
    refs = [probe.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
        n.node_id, soft=False)).remote() for n in nodes]
    answers = []
    for node, ref in zip(nodes, refs):
        try:
            answer = ray.get(ref, timeout=START_TIMEOUT_S)
        except Exception as e:  # noqa: BLE001 - a node that cannot answer is listed as such
            answer = {"node_ip": node.ip, "nvml": f"n/a ({type(e).__name__})", "gpus": []}
        answers.append({**answer, "resources": node.resources})
    return answers
