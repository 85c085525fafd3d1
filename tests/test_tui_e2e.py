"""The interface as a person uses it: `gridrun` in a real terminal (tmux), driven by key
presses, read off the screen with capture-pane; the daemon it starts must outlive it."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

from gridrun.engine.home import daemon_pid
from gridrun.engine.store import Store
from tests.conftest import FAKE_TRAIN, ROOT, cli_env

class Terminal:
    def __init__(self, name: str):
        self.name = name

    @classmethod
    def start(cls, folder, env: dict, argv: list[str], width: int, height: int) -> "Terminal":
        """A tmux session of that size running argv in folder, with the test home's env."""
        name = f"gridrun-e2e-{uuid.uuid4().hex[:8]}"
        command = " ".join(["cd", str(folder), "&&", "env",
                            *(f"{k}={v}" for k, v in env.items()
                              if k.startswith(("GRIDRUN_", "PYTHONPATH"))), *argv])
        subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", str(width), "-y",
                        str(height), command], check=True, env=env)
        return cls(name)

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def screen(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name],
                              capture_output=True, text=True, check=True).stdout

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; the screen:\n{self.screen()}")


def test_queue_watch_export_quit_and_the_runs_go_on(tmp_path):
    home = tmp_path / "home"
    sweep = tmp_path / "e2e.toml"
    sweep.write_text(
        'name = "e2e"\nmetric = "accuracy"\ndescription = "end to end"\n'
        f'command = [{json.dumps(sys.executable)}, {json.dumps(str(FAKE_TRAIN))}, "--lr", '
        '"{lr}", "--epochs", "4", "--sleep", "0.4"]\n[grid]\nlr = [0.1, 0.2, 0.3, 0.4]\n'
        "[resources]\ngpus = 0\n")
    env = cli_env(home)
    name = f"gridrun-e2e-{uuid.uuid4().hex[:8]}"
    command = " ".join(["cd", str(tmp_path), "&&", "env",
                        *(f"{k}={v}" for k, v in env.items() if k.startswith(("GRIDRUN_", "PYTHONPATH"))),
                        sys.executable, "-m", "gridrun.tui.cli"])
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "120", "-y", "40", command],
                   check=True, env=env)
    term = Terminal(name)
    try:
        term.wait_for("daemon running", 30)          # the interface started a daemon
        # new sweep: pick the file from this folder in the picker, queue it with ctrl+s
        term.keys("n")
        term.wait_for("e2e.toml", 15)
        term.keys("e2e")
        time.sleep(0.5)
        term.keys("Enter")
        term.wait_for("4 runs in sweep e2e", 20)
        term.keys("C-s")
        # back on the dashboard, the sweep's runs start and finish one by one
        screen = term.wait_for("✓ done", 40)
        assert "e2e" in screen and "lr" in screen
        # the results screen, and an export to the sweep folder
        term.keys("r")
        term.wait_for("Results", 15)
        term.wait_for("± ", 15)
        term.wait_for("mean over seeds", 15)   # the curves under the table
        term.keys("e")
        export = home / "e2e" / "results.md"
        deadline = time.monotonic() + 15
        while not export.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert export.read_text().startswith("| lr | accuracy |")
        term.keys("Escape")
        term.wait_for("runs 1–4 of 4", 10)
        term.keys("q")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "gridrun" in term.screen():
            time.sleep(0.2)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
    # the interface is gone; the daemon it started finishes the runs
    assert daemon_pid(home) is not None
    store = Store(home)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(r.status != "done" for r in store.runs()):
        time.sleep(0.3)
    assert [r.status for r in store.runs()] == ["done"] * 4
    subprocess.run([sys.executable, "-m", "gridrun.tui.cli", "queue", "stop", "--now"], env=env,
                   cwd=ROOT, capture_output=True, timeout=30)


def test_delete_a_sweep_at_80x24(tmp_path):
    """D on the sweeps list, answered y: the sweep's runs and folders go, the dashboard says
    how to start again, and the same file queues its runs anew."""
    home = tmp_path / "home"
    sweep = tmp_path / "gone.toml"
    sweep.write_text(
        'name = "gone"\n'
        f'command = [{json.dumps(sys.executable)}, {json.dumps(str(FAKE_TRAIN))}, "--lr", '
        '"{lr}", "--epochs", "2"]\n[grid]\nlr = [0.1, 0.2, 0.3]\n[resources]\ngpus = 0\n')
    env = cli_env(home)
    cli = [sys.executable, "-m", "gridrun.tui.cli"]
    subprocess.run([*cli, "queue", "run", str(sweep)], env=env, cwd=tmp_path, check=True,
                   capture_output=True, timeout=60)
    term = Terminal.start(tmp_path, env, [*cli, "tui", "--no-daemon"], 80, 24)
    name = term.name
    try:
        term.wait_for("✓ done", 30)
        term.keys("Tab")          # to the sweeps list
        time.sleep(0.5)
        term.keys("D")
        term.wait_for("Delete every run of gone: 3 runs (3 done)", 10)
        term.keys("y")
        term.wait_for("No sweeps in this home yet", 20)
        term.keys("q")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
    assert Store(home).runs() == [] and Store(home).sweep("gone") is None
    assert not (home / "gone").exists()
    again = subprocess.run([*cli, "queue", "add", str(sweep)], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert again.stdout.strip() == "queued 3 runs in sweep gone"


def test_sort_mark_two_running_runs_and_cancel_them_at_80x24(tmp_path):
    """Sorted by status (running first), two runs marked with space, one question for both,
    y: both are cancelled and the others go on."""
    home = tmp_path / "home"
    sweep = tmp_path / "marks.toml"
    sweep.write_text(
        'name = "marks"\n'
        f'command = [{json.dumps(sys.executable)}, {json.dumps(str(FAKE_TRAIN))}, "--lr", '
        '"{lr}", "--epochs", "200", "--sleep", "0.2"]\n[grid]\nlr = [0.1, 0.2, 0.3, 0.4]\n'
        "[resources]\ngpus = 0\n")
    env = cli_env(home)
    cli = [sys.executable, "-m", "gridrun.tui.cli"]
    subprocess.run([*cli, "queue", "add", str(sweep)], env=env, cwd=tmp_path, check=True,
                   capture_output=True, timeout=60)
    daemon = subprocess.Popen([*cli, "queue", "run", "--cpu-slots", "2"], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    term = Terminal.start(tmp_path, env, [*cli, "tui", "--no-daemon"], 80, 24)
    name = term.name
    store = Store(home)
    try:
        term.wait_for("running", 30)
        term.keys(">")            # by status, queued first
        term.wait_for("status▲", 10)
        term.keys("I")            # reversed: the running runs on top
        term.wait_for("status▼", 10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum(
                r.status == "running" for r in store.runs()) < 2:
            time.sleep(0.2)
        time.sleep(1)             # a poll or two: the table has both running runs on top
        term.keys("Space")
        time.sleep(0.3)
        term.keys("Space")
        term.wait_for("●", 10)
        term.keys("c")
        term.wait_for("Cancel the marked 2 runs (2 running)", 10)
        term.keys("y")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum(
                r.status == "cancelled" for r in store.runs()) < 2:
            time.sleep(0.2)
        term.wait_for("cancelled", 10)
        statuses = sorted(r.status for r in store.runs())
        term.keys("q")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
        subprocess.run([*cli, "queue", "stop", "--now"], env=env, cwd=tmp_path,
                       capture_output=True, timeout=30)
        daemon.wait(timeout=30)
    # the two marked ones, and only them; the queued two go on (queued or started)
    assert statuses[:2] == ["cancelled", "cancelled"]
    assert set(statuses[2:]) <= {"queued", "running"}
