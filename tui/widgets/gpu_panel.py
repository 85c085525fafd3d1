"""One line per GPU: utilisation and memory bars, a short utilisation history, runs on it."""
from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from gridrun.engine.feed import GpuView
from gridrun.tui.widgets.cells import sparkline


def _bar(fraction: float | None, width: int = 10) -> Text:
    if fraction is None:
        return Text("n/a".ljust(width), style="dim")
    filled = max(0, min(width, round(fraction * width)))
    style = "green3" if fraction < 0.7 else ("yellow3" if fraction < 0.9 else "red1")
    return Text("█" * filled, style=style) + Text("░" * (width - filled), style="grey42")


class GpuPanel(Static):
    """Shows `GpuView`s; "CPU only" where there is no GPU."""

    def show(self, gpus: tuple[GpuView, ...], nvml: str = "") -> None:
        if not gpus:
            self.update(Text.assemble(("CPU only", "bold"), "  runs use CPU slots",
                                      (f"  ({nvml})" if nvml else "", "dim")))
            return
        table = Table.grid(padding=(0, 1))
        for _ in range(6):
            table.add_column(no_wrap=True)
        for g in gpus:
            util = None if g.utilization is None else g.utilization / 100
            mem = None if g.memory_used_gb is None else g.memory_used_gb / max(g.memory_total_gb, 1e-9)
            mem_text = "n/a" if g.memory_used_gb is None else \
                f"{g.memory_used_gb:.0f}/{g.memory_total_gb:.0f}G"
            table.add_row(Text(f"gpu{g.index}", style="bold"), _bar(util),
                          Text("n/a" if g.utilization is None else f"{g.utilization:>3}%"),
                          _bar(mem), Text(mem_text),
                          Text(f"{sparkline(g.history, 16)} {g.runs} run" + ("s" if g.runs != 1 else "")))
        self.update(table)

    def show_cluster(self, nodes: list[dict]) -> None:
        """The Ray cluster of a `--backend ray` daemon: one line per node (from daemon.json)."""
        table = Table.grid(padding=(0, 1))
        for node in nodes:
            res = node.get("resources") or {}
            custom = " ".join(f"{k}={v:g}" for k, v in res.items() if k not in ("CPU", "GPU"))
            table.add_row(Text(str(node.get("ip", "?")), style="bold"),
                          Text(f"{res.get('CPU', 0):g} CPU"), Text(f"{res.get('GPU', 0):g} GPU"),
                          Text(custom, style="dim"))
        self.update(Text.assemble(("Ray cluster", "bold"), f"  {len(nodes)} nodes") if not nodes
                    else table)
