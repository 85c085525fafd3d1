"""Where the next run may start: a pure function of the devices' current load.

A run asking for `gpus = k >= 2` gets k idle devices. A one-GPU run shares a device with
others when that is allowed: by count (`--slots-per-gpu N`) or by memory (`gpu_mem_gb`
given in the sweep, or measured by the daemon from the sweep's first runs). A run with no
estimate and no slot count gets a device to itself. `gpus = 0` runs take CPU slots.
"""
from __future__ import annotations

from dataclasses import dataclass, field

MEMORY_HEADROOM = 0.92  # leave a little of each device for the CUDA context and fragmentation


@dataclass
class Tenant:
    run_id: int
    mem_gb: float | None   # None: no estimate, so it owns the device
    exclusive: bool = False


@dataclass
class DeviceLoad:
    index: int
    memory_gb: float
    tenants: list[Tenant] = field(default_factory=list)
    max_runs: int | None = None  # lowered after an out-of-memory while sharing

    def fits(self, mem_gb: float | None, exclusive: bool, slots_per_gpu: int | None) -> bool:
        if not self.tenants:
            return True
        if exclusive or any(t.exclusive for t in self.tenants):
            return False
        if self.max_runs is not None and len(self.tenants) >= self.max_runs:
            return False
        if slots_per_gpu is not None:
            return len(self.tenants) < slots_per_gpu
        if mem_gb is None or any(t.mem_gb is None for t in self.tenants):
            return False
        used = sum(t.mem_gb for t in self.tenants)
        return used + mem_gb <= self.memory_gb * MEMORY_HEADROOM


@dataclass(frozen=True)
class Need:
    gpus: int                 # 0 = CPU
    mem_gb: float | None      # per device; None = unknown
    exclusive: bool = False


def place(need: Need, devices: list[DeviceLoad], cpu_free: int,
          slots_per_gpu: int | None) -> list[int] | None:
    """GPU indices for the run ([] = a CPU slot), or None when it must wait."""
    if need.gpus == 0:
        return [] if cpu_free > 0 else None
    if need.gpus > 1:
        idle = [d.index for d in devices if not d.tenants]
        return idle[: need.gpus] if len(idle) >= need.gpus else None
    # one GPU: prefer the device with the fewest runs, then the most memory free
    candidates = [d for d in devices if d.fits(need.mem_gb, need.exclusive, slots_per_gpu)]
    if not candidates:
        return None
    best = min(candidates, key=lambda d: (len(d.tenants),
                                          sum(t.mem_gb or 0 for t in d.tenants) - d.memory_gb))
    return [best.index]


def reserve(need: Need, devices: list[DeviceLoad]) -> list[int]:
    """The devices a waiting multi-GPU run holds back from later one-GPU runs: those with the
    fewest runs now, which free first, so that it starts once they end."""
    by_load = sorted(devices, key=lambda d: (len(d.tenants), d.index))
    return [d.index for d in by_load[: need.gpus]]
