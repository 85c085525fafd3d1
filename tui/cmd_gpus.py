"""`gridrun gpus`: the devices runs can use, with memory and utilisation."""
from __future__ import annotations

import json

from gridrun.tui.options import JsonOption, console


def gpus(as_json: JsonOption = False) -> None:
    """List the GPUs (honouring CUDA_VISIBLE_DEVICES), or say that there are none."""
    from gridrun.engine import gpus as gpu_info

    devices = gpu_info.list_gpus()
    if as_json:
        print(json.dumps({"nvml": gpu_info.nvml_status(), "gpus": [
            {"index": g.index, "uuid": g.uuid, "name": g.name, "memory_total": g.memory_total,
             "memory_used": g.memory_used, "utilization": g.utilization} for g in devices]},
            indent=2))
        return
    if not devices:
        print(f"no GPU: runs go to CPU slots ({gpu_info.nvml_status()})")
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for name in ("gpu", "name", "memory", "used", "util"):
        table.add_column(name, justify="right" if name != "name" else "left")
    for g in devices:
        used = "n/a" if g.memory_used is None else f"{g.memory_used / 2**30:.1f} GiB"
        util = "n/a" if g.utilization is None else f"{g.utilization}%"
        table.add_row(str(g.index), g.name, f"{g.memory_total_gb:.1f} GiB", used, util)
    console().print(table)
