"""`gridrun gpus`: the devices runs can use, with memory and utilisation."""
from __future__ import annotations

import json

from gridrun.tui.options import AddressOption, Backend, BackendOption, JsonOption, console


def gpus(as_json: JsonOption = False, backend: BackendOption = Backend.local,
         address: AddressOption = None) -> None:
    """List the GPUs (honouring CUDA_VISIBLE_DEVICES), or say that there are none; with
    --backend ray, every node of the cluster and its GPUs."""
    if backend == "ray":
        return cluster(as_json, address)
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


def cluster(as_json: bool, address: str | None) -> None:
    from gridrun.engine.ray_backend import cluster_gpus, connect

    nodes = cluster_gpus(connect(address))
    if as_json:
        print(json.dumps({"nodes": nodes}, indent=2))
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for name in ("node", "cpus", "gpu", "name", "memory", "used", "util", "resources"):
        table.add_column(name, justify="right" if name in ("cpus", "gpu", "memory", "used",
                                                           "util") else "left")
    for node in nodes:
        res = node["resources"]
        custom = ", ".join(f"{k}={v:g}" for k, v in res.items() if k not in ("CPU", "GPU"))
        cpus = f"{res.get('CPU', 0):g}"
        if not node["gpus"]:
            gpu_note = f"{res['GPU']:g} (Ray)" if res.get("GPU") else "-"
            table.add_row(node["node_ip"], cpus, gpu_note, node["nvml"] if res.get("GPU") else
                          "", "", "", "", custom)
            continue
        for g in node["gpus"]:
            used = "n/a" if g["memory_used"] is None else f"{g['memory_used'] / 2**30:.1f} GiB"
            util = "n/a" if g["utilization"] is None else f"{g['utilization']}%"
            table.add_row(node["node_ip"], cpus, str(g["index"]), g["name"],
                          f"{g['memory_total'] / 2**30:.1f} GiB", used, util, custom)
            cpus, custom = "", ""
    console().print(table)
