"""`gridrun queue ...`: add, run, ls, show, status, cancel, retry, stop, rm, slots."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from gridrun.engine.errors import GridrunError
from gridrun.tui import fmt
from gridrun.tui.options import (AddressOption, Backend, BackendOption, HomeOption, JsonOption,
                                 backend_args, console, open_home)

app = typer.Typer(help="Queue runs and run the queue.", no_args_is_help=True,
                  rich_markup_mode=None)

Files = Annotated[list[Path], typer.Argument(help="Run-matrix TOML files.", show_default=False)]
MaxRuns = Annotated[int, typer.Option("--max-runs", help="Refuse files that expand to more runs.")]
Ids = Annotated[Optional[list[int]], typer.Argument(help="Run ids (see `gridrun queue ls`).",
                                                    show_default=False)]
SweepOpt = Annotated[Optional[str], typer.Option("--sweep", help="Every run of this sweep.")]


def load_all(files: list[Path], max_runs: int):
    """Validate every file before anything is stored: one bad file queues nothing."""
    from gridrun.engine.matrix import load

    specs = [load(f, max_runs=max_runs) for f in files]
    names = [s.name for s in specs]
    for name in set(names):
        if names.count(name) > 1:
            raise GridrunError(f'two files name the same sweep "{name}"',
                               hint="give each a distinct `name = ...`")
    return specs


def print_expansion(spec, out) -> None:
    from rich.table import Table

    table = Table(title=f"{spec.name}: {len(spec.runs)} runs", title_justify="left",
                  box=None, pad_edge=False)
    table.add_column("#", justify="right")
    for key in spec.varying:
        table.add_column(key)
    shown = spec.runs if len(spec.runs) <= 200 else spec.runs[:200]
    from gridrun.engine.matrix import format_value
    for i, run in enumerate(shown, 1):
        table.add_row(str(i), *[format_value(run.params.get(k, "-")) for k in spec.varying])
    out.print(table)
    if len(spec.runs) > len(shown):
        out.print(f"... {len(spec.runs) - len(shown)} more (--json lists them all)")


@app.command("add")
def add(files: Files, home: HomeOption = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Expand and show; store nothing.")] = False,
        as_json: JsonOption = False, max_runs: MaxRuns = 100_000) -> None:
    """Validate run-matrix files and queue their runs (adding a file again queues only new points)."""
    specs = load_all(files, max_runs)
    if dry_run:
        if as_json:
            print(json.dumps([r.params for s in specs for r in s.runs], indent=2))
            return
        out = console()
        for spec in specs:
            print_expansion(spec, out)
        return
    _, store = open_home(home)
    results = [store.add_sweep(spec) for spec in specs]
    if as_json:
        print(json.dumps([{"sweep": r.sweep, "added": r.added, "existing": r.existing,
                           "run_ids": r.new_run_ids} for r in results], indent=2))
        return
    for r in results:
        already = f" ({r.existing} already queued)" if r.existing else ""
        print(f"queued {r.added} runs in sweep {r.sweep}{already}")


@app.command("run")
def run(files: Annotated[Optional[list[Path]], typer.Argument(
            help="Files to add first.", show_default=False)] = None,
        home: HomeOption = None,
        watch: Annotated[bool, typer.Option("--watch", help="Keep waiting for new runs.")] = False,
        slots_per_gpu: Annotated[Optional[int], typer.Option(
            "--slots-per-gpu", min=1, help="Runs sharing one GPU.")] = None,
        cpu_slots: Annotated[int, typer.Option(
            "--cpu-slots", min=1, help="Runs at once on the CPU (runs with gpus = 0).")] = 1,
        detach: Annotated[bool, typer.Option("--detach", help="Run the daemon in the background.")] = False,
        max_runs: MaxRuns = 100_000, backend: BackendOption = Backend.local,
        address: AddressOption = None) -> int:
    """Run the queue until it is empty: exit 0 when every run ended done or cancelled, 1 when any failed."""
    from gridrun.engine.daemon import Daemon, DaemonBusy, Options
    from gridrun.engine.home import daemon_pid

    if backend == "ray":
        from gridrun.engine.ray_backend import import_ray
        import_ray()   # without Ray installed: say how to install it, before anything changes
    home_path, store = open_home(home)
    held = daemon_pid(home_path)
    if held is not None:
        raise GridrunError(f"a daemon (pid {held}) already runs the queue of {home_path}",
                           hint="`gridrun queue add FILE` queues runs for it; "
                                "`gridrun queue status` shows it")
    specs = load_all(files or [], max_runs)
    for spec in specs:
        result = store.add_sweep(spec)
        already = f" ({result.existing} already queued)" if result.existing else ""
        print(f"queued {result.added} runs in sweep {result.sweep}{already}", flush=True)
    if detach:
        return _detach(home_path, watch, slots_per_gpu, cpu_slots,
                       backend_args(backend, address))

    options = Options(cpu_slots=cpu_slots, slots_per_gpu=slots_per_gpu, watch=watch,
                      sweeps_of_interest={s.name for s in specs})
    from gridrun.tui.display import LiveDisplay, PlainDisplay, print_summary

    if backend == "ray":
        from gridrun.engine.ray_backend import RayDaemon
        daemon = RayDaemon(home_path, store, options, address=address)
    else:
        daemon = Daemon(home_path, store, options)
    try:
        daemon.acquire()
    except DaemonBusy as e:
        raise GridrunError(f"a daemon (pid {e.pid}) already runs the queue of {home_path}") from None
    log = open(home_path / "daemon.log", "a", buffering=1)
    log_display = PlainDisplay(store, log)
    display = LiveDisplay(store, daemon.children) if sys.stdout.isatty() \
        else PlainDisplay(store)

    def on_event(kind, run_, detail):
        log_display.on_event(kind, run_, detail)
        display.on_event(kind, run_, detail)

    daemon.on_event = on_event
    started = time.time()
    with display:
        code = daemon.run()
    log.close()
    print_summary(store, daemon.touched | {r.id for s in specs for r in store.runs(sweep=s.name)},
                  time.time() - started)
    if code in (130, 143):
        print("interrupted: the runs in flight were stopped and requeued", file=sys.stderr)
    return code


def _detach(home: Path, watch: bool, slots_per_gpu: int | None, cpu_slots: int,
            backend: tuple[str, ...] = ()) -> int:
    """Start `queue run` again in its own session, its output going to daemon.log."""
    from gridrun.engine.control import start_daemon

    pid = start_daemon(home, watch=watch, cpu_slots=cpu_slots, slots_per_gpu=slots_per_gpu,
                       backend_args=backend)
    print(f"daemon started in the background (pid {pid}); log: {home / 'daemon.log'}")
    return 0


def _sweep_varying(store) -> dict[int, list[str]]:
    return {s.id: s.varying for s in store.sweeps()}


@app.command("ls")
def ls(home: HomeOption = None, sweep: Annotated[Optional[str], typer.Option(
           "--sweep", help="Only this sweep.")] = None,
       status: Annotated[Optional[str], typer.Option("--status", help="Only runs in this state.")] = None,
       as_json: JsonOption = False) -> None:
    """List runs: status, device, varying parameters, latest metrics and flags."""
    from gridrun.engine.control import check_status

    check_status(status)
    _, store = open_home(home)
    if sweep is not None:
        store.require_sweep(sweep)
    runs = store.runs(sweep=sweep, status=status)
    if as_json:
        from gridrun.engine.results import twin_runs

        twins = twin_runs(runs)
        print(json.dumps([{**r.to_json(), "same_metrics_as": twins.get(r.id)} for r in runs],
                         indent=2))
        return
    if not runs:
        print("no runs" + (f" in sweep {sweep}" if sweep else "") +
              (f" with status {status}" if status else ""))
        return
    from gridrun.engine.results import twin_runs

    varying = _sweep_varying(store)
    metrics = {s.id: s.metric for s in store.sweeps()}
    twins = twin_runs(runs)
    rows = []
    for r in runs:
        note = ", ".join(r.flags + ([f"same metrics as #{twins[r.id]}"] if r.id in twins else []))
        error = r.error if r.status == "failed" and r.error else ""
        rows.append({"id": str(r.id), "sweep": r.sweep, "#": str(r.index),
                     "status": f"{fmt.STATUS_GLYPH[r.status]} {r.status}",
                     "device": r.device or "-", "try": str(r.attempt),
                     "params": fmt.params_text(r.params, varying.get(r.sweep_id, [])),
                     "epoch": fmt.epoch_text(r.last_metrics, r.params),
                     "metrics": fmt.metrics_text(r.last_metrics, first=metrics.get(r.sweep_id)),
                     "time": fmt.elapsed(r.started, r.ended),
                     "note": (note + " " if note and error else note), "error": error})
    _print_runs(rows, [r.status for r in runs])


# the columns of `queue ls`; those with a minimum width give up room on a narrow terminal
LS_COLUMNS = (("id", None), ("sweep", 6), ("#", None), ("status", None), ("device", 4),
              ("try", None), ("params", 10), ("epoch", None), ("metrics", 8), ("time", None),
              ("note", 14))


def _print_runs(rows: list[dict], statuses: list[str]) -> None:
    """One line a run, in the terminal's width: long values end in an ellipsis at a word,
    a failed run's error keeps its end (the exception)."""
    from rich.cells import cell_len
    from rich.table import Table
    from rich.text import Text

    from gridrun.tui.fit import ellipsize, error_tail, share_widths

    out = console()
    names = [name for name, _ in LS_COLUMNS]
    natural = [max([cell_len(name)] + [cell_len(row[name] + row["error"]) if name == "note"
                                        else cell_len(row[name]) for row in rows])
               for name in names]
    gaps = len(names) - 1   # one space right of each column but the last
    widths = share_widths(natural, [m for _, m in LS_COLUMNS], out.width - gaps)
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0))
    for name, width in zip(names, widths):
        table.add_column(name, justify="right" if name in ("id", "#", "try") else "left",
                         width=width, no_wrap=True, overflow="ellipsis")
    for row, state in zip(rows, statuses):
        cells = []
        for name, width in zip(names, widths):
            if name == "note":
                left = width - cell_len(row["note"])
                text = (row["note"] + error_tail(row["error"], left) if row["error"] and left > 8
                        else ellipsize(row["note"] + row["error"], width))
            else:
                text = ellipsize(row[name], width)
            style = fmt.STATUS_STYLE.get(state, "") if name == "status" else ""
            cells.append(Text(text, style=style))
        table.add_row(*cells)
    out.print(table)


@app.command("show")
def show(run_id: Annotated[int, typer.Argument(help="Run id.")], home: HomeOption = None,
         as_json: JsonOption = False) -> None:
    """One run: parameters, status, metrics found, its folder and the command that replays it."""
    from gridrun.engine.control import replay_command, select_runs

    _, store = open_home(home)
    run_ = select_runs(store, [run_id], None)[0]
    replay = replay_command(run_)
    history = store.metrics(run_.id)
    if as_json:
        print(json.dumps({**run_.to_json(), "replay": replay, "history": history}, indent=2))
        return
    out = console()
    style = fmt.STATUS_STYLE.get(run_.status, "")
    out.print(f"run {run_.id}: {run_.sweep}#{run_.index}  [{style}]{run_.status}[/]"
              f"  attempt {run_.attempt}  device {run_.device or '-'}"
              f"  {fmt.elapsed(run_.started, run_.ended)}")
    out.print(f"folder:  {run_.run_dir}")
    if replay:
        out.print(f"replay:  {replay}", soft_wrap=True)
    out.print("params:  " + ", ".join(f"{k}={v!r}" for k, v in run_.params.items()), soft_wrap=True)
    out.print(f"metrics found: {', '.join(run_.metric_names) or 'none yet'}")
    if run_.last_metrics:
        out.print(f"latest:  {fmt.metrics_text(run_.last_metrics, limit=12)}")
    if run_.flags:
        out.print(f"[yellow]warnings: {', '.join(run_.flags)}[/]")
    if run_.error:
        out.print(f"[red]error:[/] {run_.error}", soft_wrap=True)
    if history:
        from rich.table import Table

        names = [n for n in dict.fromkeys(k for row in history for k in row) if n != "time"]
        table = Table(box=None, pad_edge=False, title="history", title_justify="left")
        for name in names:
            table.add_column(name, justify="right")
        for row in history[-30:]:
            table.add_row(*[fmt.number(row.get(n)) for n in names])
        out.print(table)


@app.command("status")
def status(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """The daemon (pid, slots, devices) and how many runs are in each state."""
    from gridrun.engine.control import daemon_info

    home_path, store = open_home(home)
    info = daemon_info(home_path)
    counts = store.counts()
    if as_json:
        print(json.dumps({"home": str(home_path), "daemon": info, "counts": counts}, indent=2))
        return
    print(f"home:   {home_path}")
    if info:
        slots = f"{info.get('cpu_slots', '?')} CPU slot(s)"
        if info.get("slots_per_gpu"):
            slots += f", {info['slots_per_gpu']} per GPU"
        print(f"daemon: running, pid {info['pid']}"
              + (f", {slots}, devices: {info.get('gpus', '?')}" if "cpu_slots" in info else "")
              + (", watching" if info.get("watch") else ""))
    else:
        print("daemon: stopped")
    print("runs:   " + ", ".join(f"{n} {s}" for s, n in counts.items()))


@app.command("cancel")
def cancel(ids: Ids = None, sweep: SweepOpt = None, home: HomeOption = None) -> None:
    """Cancel runs: queued ones at once, running ones are stopped by the daemon (SIGTERM, then SIGKILL)."""
    from gridrun.engine import control

    home_path, store = open_home(home)
    runs = control.select_runs(store, ids, sweep)
    result = control.cancel(store, home_path, runs)
    if result.cancelled:
        print(f"cancelled {len(result.cancelled)} run(s)")
    if result.requested:
        print(f"asked the daemon to stop {len(result.requested)} running run(s)")
    if result.untouched and not (result.cancelled or result.requested):
        print("nothing to cancel: those runs have already finished")


@app.command("retry")
def retry(ids: Ids = None,
          failed: Annotated[bool, typer.Option("--failed", help="Every failed run.")] = False,
          sweep: SweepOpt = None, home: HomeOption = None) -> None:
    """Queue failed or cancelled runs again, as a new attempt."""
    from gridrun.engine import control

    _, store = open_home(home)
    if failed:
        if sweep is not None:
            store.require_sweep(sweep)
        runs = store.runs(sweep=sweep, status="failed")
    else:
        runs = control.select_runs(store, ids, sweep)
    retried = control.retry(store, runs)
    print(f"queued {len(retried)} run(s) again" if retried else
          "nothing to retry: no failed or cancelled run among those")
    if retried:
        from gridrun.engine.home import daemon_pid, resolve_home

        if daemon_pid(resolve_home(home)) is None:
            print("hint: no daemon is running; `gridrun queue run` runs them")


@app.command("stop")
def stop(now: Annotated[bool, typer.Option(
            "--now", help="Interrupt running runs and requeue them.")] = False,
         home: HomeOption = None) -> None:
    """Stop the daemon: after its running runs finish, or at once with --now."""
    from gridrun.engine import control

    home_path, store = open_home(home)
    pid = control.stop(store, home_path, now)
    if pid is None:
        print(f"no daemon is running in {home_path}")
        return
    if now:
        stopped = control.wait_until_stopped(home_path, 15)
        print(f"daemon {pid} stopped; its running runs were requeued" if stopped else
              f"asked daemon {pid} to stop now; it is still stopping its runs")
    else:
        running = store.counts()["running"]
        print(f"asked daemon {pid} to stop after its {running} running run(s) finish")


@app.command("rm")
def rm(ids: Ids = None, sweep: SweepOpt = None,
       force: Annotated[bool, typer.Option(
           "--force", help="Cancel queued and running runs first, then delete them.")] = False,
       home: HomeOption = None) -> None:
    """Delete ended runs (done, failed, cancelled) and their folders; a sweep left empty goes too."""
    from gridrun.engine import control

    home_path, store = open_home(home)
    runs = control.select_runs(store, ids, sweep)
    if not runs:
        print("nothing to delete")
        return
    result = control.delete(store, home_path, runs, force=force)
    print(f"deleted {len(result.deleted)} run(s) and their folders")
    for name in result.sweeps:
        print(f"removed sweep {name} (no run left)")
    for note in result.folders_kept:
        print(f"kept {note}", file=sys.stderr)


@app.command("slots")
def slots(cpu: Annotated[Optional[int], typer.Option(
              "--cpu", min=1, help="Runs at once on the CPU.")] = None,
          per_gpu: Annotated[Optional[int], typer.Option(
              "--per-gpu", min=0, help="Runs sharing one GPU (0: pack by memory).")] = None,
          home: HomeOption = None) -> None:
    """Change the running daemon's slot counts; it applies them on its next tick."""
    from gridrun.engine import control

    home_path, store = open_home(home)
    pid = control.set_slots(store, home_path, cpu, per_gpu)
    wanted = ", ".join(part for part in (
        f"{cpu} CPU slot(s)" if cpu is not None else "",
        (f"{per_gpu} per GPU" if per_gpu else "GPU packing by memory")
        if per_gpu is not None else "") if part)
    print(f"asked daemon {pid} for {wanted}")
