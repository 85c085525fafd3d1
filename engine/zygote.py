"""The warm worker: a process that has imported what runs need, and forks one child per run.

    python -P -m gridrun.engine.zygote FD MODULE...     (started by engine.warm, never by hand)

It imports the MODULEs (for the built-in trainer: torch, its optimizers and torch._dynamo,
numpy, scikit-learn's datasets, the trainer), says `ready`, then serves requests on the Unix
socket FD, one JSON object a line:

    -> {"id": 1, "target": ["module" | "cwd-module", "gridrun.experiments.train"]
                          | ["path", "/abs/train.py"],
        "args": [...], "cwd": ..., "env": {...}, "log": "/abs/stdout.log"}
    <- {"id": 1, "pid": 1234}   or   {"id": 1, "error": "..."}
    <- {"exit": 1234, "code": 0}        later; code < 0: killed by signal -code (as Popen says)

Each child becomes what a cold process would be: its own session (so its own process group),
stdin from /dev/null, stdout and stderr appended to the run's log, the run's working directory
and environment (set before anything in it can touch CUDA: the zygote never initialises CUDA),
fresh random seeds, default signal handlers; then the program runs as `__main__` with its
sys.argv. When the daemon's end of the socket closes (it stopped or was killed), the zygote
exits and leaves its children running, as cold processes are left: the next daemon's recovery
finds them by pid and start time.

engine never imports torch: the modules are imported by name, in this process only.
"""
from __future__ import annotations

import importlib
import io
import json
import os
import random
import selectors
import signal
import socket
import sys
import traceback


def main(argv: list[str]) -> int:
    sock = socket.socket(fileno=int(argv[0]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # its own session; the daemon ends it
    failed = preload(argv[1:])
    if failed:
        send(sock, {"failed": failed})
        return 1
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)   # wakes the selector
    send(sock, {"ready": os.getpid()})
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ, "request")
    sel.register(wake_r, selectors.EVENT_READ, "child")
    buffer = b""
    while True:
        for key, _ in sel.select():
            if key.data == "child":
                drain(wake_r)
                reap(sock)
                continue
            data = sock.recv(1 << 20)
            if not data:
                return 0          # the daemon is gone; the children go on
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                try:
                    request = json.loads(line)
                except ValueError:
                    continue
                serve(sock, request, (wake_r, wake_w, sel.fileno()))
        reap(sock)


def preload(modules: list[str]) -> str | None:
    """Import the modules; the trainer's optimizers import torch._dynamo the first time one is
    built (about 2 s), so one throwaway optimizer is built here. No computation that would
    start a thread pool: a forked child of a process with threads can deadlock."""
    try:
        for name in modules:
            importlib.import_module(name)
        torch = sys.modules.get("torch")
        if torch is not None:
            weight = torch.nn.Parameter(torch.zeros(1))
            torch.optim.SGD([weight], lr=0.1)
            importlib.import_module("torch._dynamo")
            if torch.cuda.is_initialized():   # pragma: no cover - a preload touched CUDA
                return "a preloaded module initialised CUDA, which a forked child cannot use"
    except BaseException as e:   # noqa: BLE001 - any failure means: no warm starts
        return f"{type(e).__name__}: {e}"
    return None


def drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def send(sock: socket.socket, message: dict) -> None:
    sock.sendall(json.dumps(message).encode() + b"\n")


def reap(sock: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        send(sock, {"exit": pid, "code": os.waitstatus_to_exitcode(status)})


def serve(sock: socket.socket, request: dict, inherited: tuple[int, ...]) -> None:
    try:
        pid = os.fork()
    except OSError as e:
        send(sock, {"id": request["id"], "error": f"fork failed: {e.strerror or e}"})
        return
    if pid == 0:   # the child: never returns
        os._exit(become_run(request, [sock.fileno(), *inherited]))
    send(sock, {"id": request["id"], "pid": pid})


# ----------------------------------------------------------------------------------------------
# In the forked child

def become_run(request: dict, close: list[int]) -> int:
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for fd in close:
            os.close(fd)
        os.setsid()
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(null)
        os.close(log)
        os.chdir(request["cwd"])
        os.environ.clear()              # putenv/unsetenv too: C libraries read the new values
        os.environ.update(request["env"])
        fresh_stdio()
        reseed()
        code = run_program(tuple(request["target"]), request["args"])
    except BaseException:   # noqa: BLE001 - reported in the run's log as a cold run would
        traceback.print_exc()
        code = 1
    return finish(code)


def fresh_stdio() -> None:
    """New sys.stdout/stderr on fds 1 and 2, unbuffered under PYTHONUNBUFFERED as `python -u`
    makes them (the daemon always sets it: a crash loses no line)."""
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    for fd, name in ((1, "stdout"), (2, "stderr")):
        raw = io.FileIO(fd, "w", closefd=False)
        binary = raw if unbuffered else io.BufferedWriter(raw)
        stream = io.TextIOWrapper(binary, encoding="utf-8", errors="backslashreplace",
                                  line_buffering=not unbuffered and name == "stderr",
                                  write_through=unbuffered)
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)
    sys.stdin = sys.__stdin__ = open(0, closefd=False)  # noqa: SIM115 - lives as long as the run


def reseed() -> None:
    """A cold process starts from fresh entropy; a forked one would repeat the zygote's state.
    And torch's thread count, read from the zygote's environment, becomes the run's."""
    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.seed()
        # torch read the thread count when the zygote imported it: give it the run's share
        threads = os.environ.get("OMP_NUM_THREADS", "")
        if threads.isdigit() and int(threads) > 0:
            torch.set_num_threads(int(threads))


def run_program(target: tuple[str, str], args: list[str]) -> int:
    import runpy
    kind, name = target
    try:
        if kind in ("module", "cwd-module"):
            if kind == "cwd-module":          # `python -m name` (no -P) looks in the cwd first
                sys.path.insert(0, os.getcwd())
            sys.argv = [name, *args]          # run_module puts the module's file in argv[0]
            # preloaded, it would run a second time as __main__ (runpy warns of that): its own
            # copy goes, what it imports stays
            sys.modules.pop(name, None)
            runpy.run_module(name, run_name="__main__", alter_sys=True)
        else:
            sys.argv = [name, *args]
            sys.path.insert(0, os.path.dirname(name))   # as `python script.py` does
            runpy.run_path(name, run_name="__main__")
    except SystemExit as e:
        return exit_code(e.code)
    except KeyboardInterrupt:
        # as the interpreter does: die of SIGINT, so the status says so
        finish(0)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        return 130
    return 0


def exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def finish(code: int) -> int:
    """What the interpreter does at exit: wait for non-daemon threads, run atexit handlers,
    flush the streams. The caller then leaves with os._exit (never through the zygote's code)."""
    import atexit
    import threading
    try:
        threading._shutdown()   # noqa: SLF001 - the interpreter's own step at exit
    except BaseException:   # noqa: BLE001
        pass
    try:
        atexit._run_exitfuncs()   # noqa: SLF001
    except BaseException:   # noqa: BLE001
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:   # noqa: BLE001
            pass
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
