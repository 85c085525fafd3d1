"""Each run its share of the host's cores.

A PyTorch (or NumPy/MKL) process starts one intra-op thread per core it can see. Two such
processes side by side on a 2-core machine fight over the cores and each epoch slows down
9-90x; one thread each, they run as fast as one alone. So every run gets the cores divided by
the runs that may share them, through OMP_NUM_THREADS / MKL_NUM_THREADS (which the built-in
trainer also hands to torch.set_num_threads). A value the user set in the daemon's environment
wins, and so does one a command sets itself (`command = ["env", "OMP_NUM_THREADS=4", ...]`).
"""
from __future__ import annotations

import os
from collections.abc import Mapping

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def host_cores() -> int:
    """The cores this process may run on (its affinity mask, e.g. under taskset or a cgroup
    cpuset), not the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def sharers(*, cpu_slots: int, gpu_count: int, slots_per_gpu: int | None, running: int) -> int:
    """How many runs may use the host's cores at once: every CPU slot, and the GPU runs (one
    per GPU, or slots_per_gpu each); runs packed by memory can be more, so never fewer than
    the runs now going plus the one being started. Fixed by the daemon's options, not by the
    moment: the same sweep gets the same share (and the same numbers) run after run."""
    planned = cpu_slots + gpu_count * (slots_per_gpu or 1)
    return max(1, planned, running + 1)


def thread_share(cores: int, runs: int) -> int:
    return max(1, cores // max(1, runs))


def thread_env(share: int, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables to add to a run's environment; none when the user set either (MKL falls
    back to OMP_NUM_THREADS, so a user's OMP_NUM_THREADS=4 must not meet our MKL_NUM_THREADS)."""
    environ = os.environ if environ is None else environ
    if any(environ.get(name) for name in THREAD_VARS):
        return {}
    return {name: str(share) for name in THREAD_VARS}
