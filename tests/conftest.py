"""Shared fixtures: a temp home, the real CLI as a subprocess, sweep files to queue."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FAKE_TRAIN = ROOT / "tests" / "scripts" / "fake_train.py"


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GRIDRUN_") and k != "CUDA_VISIBLE_DEVICES"}
    env.update({"GRIDRUN_HOME": str(home), **extra})
    return env


class Cli:
    """`gridrun ...` as a real process, the way a user runs it."""

    def __init__(self, home: Path, cwd: Path):
        self.home = home
        self.cwd = cwd

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "gridrun.tui.cli", *map(str, args)]

    def __call__(self, *args: str, timeout: float = 60, env: dict | None = None,
                 check: int | None = None) -> subprocess.CompletedProcess:
        res = subprocess.run(self.argv(*args), cwd=self.cwd, env=env or cli_env(self.home),
                             capture_output=True, text=True, timeout=timeout)
        if check is not None:
            assert res.returncode == check, (res.returncode, res.stdout, res.stderr)
        return res

    def start(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*args), cwd=self.cwd, env=env or cli_env(self.home),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)

    def json(self, *args: str):
        res = self(*args, "--json", check=0)
        return json.loads(res.stdout)

    def runs(self, *args: str) -> list[dict]:
        return self.json("queue", "ls", *args)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def cli(home: Path, tmp_path: Path) -> Cli:
    return Cli(home, tmp_path)


def write_sweep(folder: Path, name: str, body: str, *, script_args: str = "",
                file_name: str | None = None) -> Path:
    """A sweep file whose command is the fake trainer with `script_args` appended."""
    extra = ", ".join(json.dumps(a) for a in script_args.split()) if script_args else ""
    command = (f'command = [{json.dumps(sys.executable)}, {json.dumps(str(FAKE_TRAIN))}, '
               f'"--lr", "{{lr}}", "--seed", "{{seed}}"' + (f", {extra}" if extra else "") + "]")
    text = f'name = "{name}"\n{command}\n' + textwrap.dedent(body)
    path = folder / (file_name or f"{name}.toml")
    path.write_text(text)
    return path


@pytest.fixture
def sweep_file(tmp_path: Path):
    def make(name: str = "s", body: str = "[grid]\nlr = [0.1, 0.2]\nseed = [0]\n", **kw) -> Path:
        return write_sweep(tmp_path, name, body, **kw)
    return make


def wait_for(predicate, timeout: float = 30, interval: float = 0.05, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def wait_until(pilot, predicate, timeout: float = 20, what: str = "condition"):
    """Let a Textual app run (pilot pauses) until predicate() holds, or fail saying what."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for {what}")
