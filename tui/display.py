"""What `gridrun queue run` shows while the daemon works.

On a terminal: a live rich panel, one line per running run (sweep, varying parameters,
device, epoch bar, latest metrics, elapsed). Piped or in CI: plain timestamped lines, one per
start and end, so a log reads well. Both end with a summary.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO

from gridrun.engine.store import Run, Store
from gridrun.tui import fmt


class _Base:
    def __init__(self, store: Store, out: TextIO | None = None):
        self.store = store
        self.out = out or sys.stdout
        self.varying: dict[int, list[str]] = {}
        self.metric: dict[int, str | None] = {}
        self.started = time.time()

    def _sweep_info(self, run: Run) -> tuple[list[str], str | None]:
        if run.sweep_id not in self.varying:
            sweep = self.store.sweep_by_id(run.sweep_id)
            self.varying[run.sweep_id] = [k for k in sweep.varying] if sweep else []
            self.metric[run.sweep_id] = sweep.metric if sweep else None
        return self.varying[run.sweep_id], self.metric[run.sweep_id]

    def label(self, run: Run) -> str:
        varying, _ = self._sweep_info(run)
        return f"{run.sweep}#{run.index} {fmt.params_text(run.params, varying)}"


class PlainDisplay(_Base):
    """Timestamped lines, flushed one by one (a pipe must not hold them back)."""

    def on_event(self, kind: str, run: Run, detail: str) -> None:
        if kind == "progress":
            return
        if kind == "started":
            text = f"start  {self.label(run)}  on {detail}" + (
                f" (attempt {run.attempt})" if run.attempt > 1 else "")
        elif kind == "finished":
            _, metric = self._sweep_info(run)
            metrics = fmt.metrics_text(run.last_metrics, first=metric)
            took = fmt.elapsed(run.started, run.ended)
            text = f"end    {self.label(run)}  {detail}  {took}  {metrics}"
        else:
            text = f"{kind:<6} {self.label(run)}  {detail}"
        self.out.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        self.out.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class LiveDisplay(_Base):
    """A rich Live table of the running runs, above a scroll of finished ones."""

    def __init__(self, store: Store, daemon_children: dict):
        super().__init__(store)
        from rich.console import Console
        from rich.live import Live

        self.children = daemon_children
        self.console = Console(highlight=False)
        self.live = Live(console=self.console, refresh_per_second=4, transient=True,
                         get_renderable=self.render)

    def __enter__(self):
        self.live.__enter__()
        return self

    def __exit__(self, *exc):
        self.live.__exit__(*exc)
        return False

    def on_event(self, kind: str, run: Run, detail: str) -> None:
        if kind in ("finished", "requeued"):
            _, metric = self._sweep_info(run)
            style = fmt.STATUS_STYLE.get(run.status, "")
            glyph = fmt.STATUS_GLYPH.get(run.status, " ")
            self.console.print(
                f"[dim]{time.strftime('%H:%M:%S')}[/] [{style}]{glyph} {run.status:<9}[/]"
                f" {self.label(run)}  [dim]{fmt.elapsed(run.started, run.ended)}[/]  "
                f"{fmt.metrics_text(run.last_metrics, first=metric)}"
                + (f"  [red]{detail[:120]}[/]" if run.status == "failed" else ""),
                markup=True, soft_wrap=True)

    def render(self):
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        counts = self.store.counts()
        table = Table(box=None, pad_edge=False, expand=False, show_header=bool(self.children),
                      title=(f"[bold]gridrun[/] {counts['running']} running · {counts['queued']}"
                             f" queued · {counts['done']} done · {counts['failed']} failed · "
                             f"{fmt.duration(time.time() - self.started)}"),
                      title_justify="left")
        for name in ("run", "params", "device", "epoch", "", "metrics", "elapsed"):
            table.add_column(name, no_wrap=True, overflow="ellipsis",
                             max_width=40 if name in ("params", "metrics") else None)
        for child in list(self.children.values()):
            run: Run = child.run
            varying, metric = self._sweep_info(run)
            last = child.tail.last
            epoch, total = last.get("epoch"), last.get("epochs") or run.params.get("epochs")
            bar = (ProgressBar(total=float(total), completed=float(epoch), width=12)
                   if isinstance(epoch, (int, float)) and isinstance(total, (int, float)) and total
                   else "")
            table.add_row(f"{run.sweep}#{run.index}", fmt.params_text(run.params, varying),
                          child.device, fmt.epoch_text(last, run.params), bar,
                          fmt.metrics_text(last, limit=3, first=metric),
                          fmt.duration(time.time() - child.started))
        return table


def print_summary(store: Store, run_ids: set[int], took: float, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    runs = store.runs(ids=run_ids) if run_ids else []
    if not runs:
        out.write("nothing to run: the queue is empty\n")
        return
    counts = {s: sum(1 for r in runs if r.status == s)
              for s in ("done", "failed", "cancelled", "queued")}
    parts = [f"{n} {s}" for s, n in counts.items() if n]
    out.write(f"{len(runs)} runs: {', '.join(parts)} in {fmt.duration(took)}\n")
    failed = [r for r in runs if r.status == "failed"]
    for run in failed[:10]:
        first = (run.error or "").splitlines()[0] if run.error else ""
        out.write(f"  failed {run.sweep}#{run.index} (id {run.id}): {first[:160]}\n")
    if len(failed) > 10:
        out.write(f"  ... and {len(failed) - 10} more\n")
    if failed:
        out.write("hint: `gridrun queue show ID` for a run's output, "
                  "`gridrun queue retry --failed` to run them again\n")
    flagged = [r for r in runs if r.flags]
    for run in flagged[:10]:
        out.write(f"  warning {run.sweep}#{run.index} (id {run.id}): {', '.join(run.flags)}\n")
    out.flush()
