"""The GPUs this process may use, from NVML, and what each holds.

Like nvitop's libnvml: `pynvml` (nvidia-ml-py) is imported and NVML initialised lazily, once, on
the first query, so importing this module costs nothing on a CPU-only machine; every query
afterwards answers None ("n/a") or an empty result instead of raising. `nvml_status()` says why
NVML is unavailable. Memory sizes are bytes; `memory_total_gb` is GiB (2**30), which is what
nvidia-smi and the marketing names call "GB" (an "80GB" H100 is 79.6 GiB -> "80 GB").

Indices in CUDA_VISIBLE_DEVICES are read as NVML (PCI bus) indices. CUDA agrees only under
CUDA_DEVICE_ORDER=PCI_BUS_ID, so children given `Gpu.index` should get that setting too
(or be given `Gpu.uuid`, which means the same device under any order).

Test seam: with GRIDRUN_FAKE_GPUS set and not empty (read from the same mapping as
CUDA_VISIBLE_DEVICES), `list_gpus` returns fake devices instead of asking NVML, still restricted
by CUDA_VISIBLE_DEVICES: "2x16" is two devices of 16 GiB, "24,80" two devices of 24 and 80 GiB
(decimals allowed), named "Fake GPU", with uuid "GPU-fake-<i>", memory_used 0 and utilization 0.
A malformed value raises GridrunError; nothing else here raises on a machine without a GPU.
"""
from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gridrun.engine.errors import GridrunError

FAKE_ENV = "GRIDRUN_FAKE_GPUS"
_GIB = 2**30


@dataclass(frozen=True)
class Gpu:
    index: int                 # NVML (physical) index; what the child's CUDA_VISIBLE_DEVICES gets
    uuid: str                  # "GPU-…"; "" when NVML could not say
    name: str
    memory_total: int          # bytes (0 when NVML could not say)
    memory_used: int | None    # bytes, None = n/a
    utilization: int | None    # percent, None = n/a

    @property
    def memory_total_gb(self) -> float:
        return self.memory_total / _GIB


# NVML state: initialised at most once per process (nvmlInit is reference-counted and cheap to
# keep; re-trying a missing driver on every daemon tick would only repeat the same failure).
_lock = threading.Lock()
_tried = False
_nvml = None        # the pynvml module once nvmlInit succeeded
_reason = ""        # why NVML is unavailable, when _nvml is None

# NVML error codes whose plain meaning a user can act on; others show NVML's own text.
_REASONS = {
    12: "NVML library not found (no NVIDIA driver)",
    9: "NVIDIA driver not loaded",
    4: "no permission to use NVML",
    18: "NVIDIA driver and library versions differ (reload the driver or reboot after an upgrade)",
}


def _init():
    """The initialised pynvml module, or None with the reason in `_reason`."""
    global _tried, _nvml, _reason
    with _lock:
        if not _tried:
            _tried = True
            try:
                import pynvml  # lazily: a CPU-only import of gridrun never loads it
            except ImportError:
                _reason = "nvidia-ml-py (pynvml) is not installed"
                return None
            try:
                pynvml.nvmlInit()
                _nvml = pynvml
            except Exception as exc:  # NVMLError subclasses, or ctypes failing to load the .so
                code = getattr(exc, "value", None)
                _reason = _REASONS.get(code) or f"NVML unavailable: {exc}"
        return _nvml


def _query(name: str, *args):
    """pynvml.<name>(*args), or None when NVML cannot answer. Broad on purpose: pynvml raises
    NVMLError subclasses, NVMLLibraryMismatchError (not an NVMLError) for functions an old
    driver lacks, and an old binding lacks some functions; no status query may take the daemon
    down."""
    try:
        return getattr(_nvml, name)(*args)
    except Exception:
        return None


def _handles():
    """(NVML index, handle) of every device NVML can reach; lost devices are left out."""
    if _init() is None:
        return []
    count = _query("nvmlDeviceGetCount") or 0
    pairs = ((i, _query("nvmlDeviceGetHandleByIndex", i)) for i in range(count))
    return [(i, h) for i, h in pairs if h is not None]


def _nvml_gpus() -> list[Gpu]:
    gpus = []
    for i, h in _handles():
        mem = _query("nvmlDeviceGetMemoryInfo", h)
        util = _query("nvmlDeviceGetUtilizationRates", h)
        gpus.append(Gpu(index=i, uuid=_query("nvmlDeviceGetUUID", h) or "",
                        name=_query("nvmlDeviceGetName", h) or "n/a",
                        memory_total=int(mem.total) if mem is not None else 0,
                        memory_used=int(mem.used) if mem is not None else None,
                        utilization=int(util.gpu) if util is not None else None))
    return gpus


_FAKE_COUNT = re.compile(r"\s*([1-9][0-9]*)\s*x\s*([0-9]+(?:\.[0-9]+)?)\s*", re.IGNORECASE)
_FAKE_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*")


def _fake_gpus(value: str) -> list[Gpu]:
    if m := _FAKE_COUNT.fullmatch(value):
        sizes = [m.group(2)] * int(m.group(1))
    else:
        parts = [_FAKE_SIZE.fullmatch(p) for p in value.split(",")]
        sizes = [p.group(1) for p in parts] if all(parts) else []
    if not sizes or any(float(s) <= 0 for s in sizes):
        raise GridrunError(f"{FAKE_ENV}={value!r}: expected COUNTxGIB like '2x16' "
                           "or a comma list of GiB like '24,80'")
    return [Gpu(index=i, uuid=f"GPU-fake-{i}", name="Fake GPU",
                memory_total=int(float(s) * _GIB), memory_used=0, utilization=0)
            for i, s in enumerate(sizes)]


def parse_visible_devices(value: str | None, gpus: Sequence[Gpu]) -> list[Gpu]:
    """The devices of `gpus` that CUDA_VISIBLE_DEVICES=value leaves visible, in its order.

    None (unset) leaves all. Entries are NVML indices or UUIDs ("GPU-…", a unique prefix such as
    "GPU-8f3a" will do). As CUDA does, the list ends at the first entry that names no device,
    so "", "-1" and "none" leave none; a device named twice or ambiguously also ends it, and so
    does a MIG device ("MIG-…"), which gridrun does not schedule on.
    """
    if value is None:
        return list(gpus)
    chosen: list[Gpu] = []
    for entry in (e.strip() for e in value.split(",")):
        if re.fullmatch(r"[0-9]+", entry):  # ASCII only: isdigit() takes "²", \d "١"
            found = [g for g in gpus if g.index == int(entry)]
        elif entry.lower().startswith("gpu-") and len(entry) > 4:
            key = entry.lower()
            found = ([g for g in gpus if g.uuid.lower() == key]
                     or [g for g in gpus if g.uuid.lower().startswith(key)])
        else:
            found = []
        if len(found) != 1 or found[0] in chosen:
            break
        chosen.append(found[0])
    return chosen


def list_gpus(environ: Mapping[str, str] | None = None) -> list[Gpu]:
    """Devices this process may use: NVML's (or GRIDRUN_FAKE_GPUS's), restricted by
    environ's CUDA_VISIBLE_DEVICES; [] when NVML is unavailable. environ defaults to os.environ."""
    env = os.environ if environ is None else environ
    fake = env.get(FAKE_ENV)
    gpus = _fake_gpus(fake) if fake else _nvml_gpus()
    return parse_visible_devices(env.get("CUDA_VISIBLE_DEVICES"), gpus)


def nvml_status() -> str:
    """"ok (driver 550.54, 2 devices)", or why NVML is unavailable. NVML only: GRIDRUN_FAKE_GPUS
    does not change it."""
    if _init() is None:
        return _reason
    driver = _query("nvmlSystemGetDriverVersion") or "n/a"
    count = _query("nvmlDeviceGetCount")
    if count is None:
        return f"NVML initialised (driver {driver}) but cannot count devices"
    return f"ok (driver {driver}, {count} device{'' if count == 1 else 's'})"


def process_memory() -> dict[int, int]:
    """pid -> bytes of GPU memory it holds, summed over devices; {} when n/a.

    A process that is both compute and graphics ("C+G") is listed by both calls on the same
    device with the same figure, so each device counts a pid once. Figures NVML cannot give
    (None, e.g. under WDDM) count as 0. The pids are NVML's: in a container without the host's
    pid namespace they are host pids.
    """
    totals: dict[int, int] = {}
    for _, h in _handles():
        on_device: dict[int, int] = {}
        for kind in ("Compute", "Graphics"):
            # The unversioned call wants the newest NVML; older drivers answer the _v2 one.
            procs = _query(f"nvmlDeviceGet{kind}RunningProcesses", h)
            if procs is None:
                procs = _query(f"nvmlDeviceGet{kind}RunningProcesses_v2", h)
            for p in procs or []:
                used = getattr(p, "usedGpuMemory", None) or 0
                on_device[p.pid] = max(on_device.get(p.pid, 0), int(used))
        for pid, used in on_device.items():
            totals[pid] = totals.get(pid, 0) + used
    return totals


def _gb(x: float) -> str:
    return f"{round(x):d}" if x >= 10 else f"{round(x, 1):g}"


def describe(gpus: list[Gpu]) -> str:
    """One line for headers: "2× NVIDIA H100 80GB HBM3 (80 GB)", groups in first-seen order
    joined by " + ", or "CPU only"."""
    groups: dict[tuple[str, str], int] = {}
    for g in gpus:
        key = (g.name, _gb(g.memory_total_gb))
        groups[key] = groups.get(key, 0) + 1
    return " + ".join(f"{n}× {name} ({gb} GB)" for (name, gb), n in groups.items()) or "CPU only"
