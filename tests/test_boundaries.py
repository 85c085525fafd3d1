"""The light paths stay light: the engine and the CLI's everyday commands never load torch or
textual (`import torchvision` alone costs seconds), checked in fresh interpreters. Each command
runs as a user runs it, and its exit code and output are checked with the modules it loaded."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli_env

HEAVY = ("torch", "torchvision", "textual", "numpy", "ray")


def loaded_modules(code: str) -> set[str]:
    probe = code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def run_cli(argv: list[str], tmp_path: Path) -> tuple[subprocess.CompletedProcess, set[str]]:
    """`gridrun ARGV` through the CLI's own entry point (which exits with the command's code);
    the modules loaded are written at exit, whatever the code."""
    modules_file = tmp_path / "modules.json"
    probe = (
        "import atexit, json, sys\n"
        f"atexit.register(lambda: open({str(modules_file)!r}, 'w').write("
        "json.dumps(sorted(sys.modules))))\n"
        f"sys.argv = ['gridrun'] + {argv!r}\n"
        "from gridrun.tui.cli import main\n"
        "main()\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path,
                          env=cli_env(tmp_path / "home"), capture_output=True, text=True,
                          timeout=60)
    return done, set(json.loads(modules_file.read_text()))


def test_engine_imports_nothing_heavy():
    code = ("import gridrun.engine.matrix, gridrun.engine.store, gridrun.engine.daemon, "
            "gridrun.engine.gpus, gridrun.engine.report, gridrun.engine.results, "
            "gridrun.engine.control, gridrun.engine.tail, gridrun.engine.ray_backend, "
            "gridrun.engine.ray_node, gridrun.engine.ray_keeper")
    modules = loaded_modules(code)
    assert "gridrun.engine.daemon" in modules
    assert not modules & set(HEAVY)


@pytest.mark.parametrize("argv, shown", [
    (["--help"], "Usage: gridrun"),
    (["queue", "ls"], "no runs"),
    (["queue", "status"], "daemon: stopped"),
    (["queue", "add", "--help"], "Usage: gridrun queue add"),
    (["gpus"], ""),
    (["queue", "run", "--help"], "--backend"),
    (["gpus", "--help"], "--address"),
])
def test_light_cli_commands_import_nothing_heavy(argv, shown, tmp_path):
    done, modules = run_cli(argv, tmp_path)
    assert done.returncode == 0, done.stderr
    assert shown in done.stdout and done.stdout.strip(), done.stdout
    assert "gridrun.tui.cli" in modules
    assert not modules & set(HEAVY), modules & set(HEAVY)


def test_adding_a_builtin_trainer_sweep_checks_it_without_torch(tmp_path):
    """The trainer's parameters and the rules between them are checked from the schema's
    tables: a refused file and an accepted one, neither loads torch."""
    (tmp_path / "bad.toml").write_text('name = "bad"\n[params]\noptimizer = "adam"\n'
                                       "optim.momentum_decay = 0.01\n")
    done, modules = run_cli(["queue", "add", "bad.toml"], tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "bad.toml:4:1: optim.momentum_decay: adam (torch.optim.Adam) takes no argument" \
        in done.stderr
    assert not modules & set(HEAVY)
    (tmp_path / "good.toml").write_text('name = "good"\n[params]\noptimizer = "nadam"\n'
                                        "optim.momentum_decay = 0.01\n[grid]\nlr = [0, 0.1]\n")
    done, modules = run_cli(["queue", "add", "good.toml"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "queued 2 runs in sweep good" in done.stdout
    assert "gridrun.experiments.schema" in modules
    assert not modules & set(HEAVY)


def test_report_module_depends_on_the_standard_library_only():
    mods = loaded_modules("from gridrun import report")
    project = {m for m in mods if m.split(".")[0] in ("gridrun", "engine", "tui", "experiments")}
    assert project == {"gridrun", "gridrun.engine", "gridrun.engine.report"}
