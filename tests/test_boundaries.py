"""The light paths stay light: the engine and the CLI's everyday commands never load torch or
textual (`import torchvision` alone costs seconds), checked in fresh interpreters."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, cli_env

HEAVY = ("torch", "torchvision", "textual", "numpy", "ray")


def loaded_modules(code: str, env=None) -> set[str]:
    probe = code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_engine_imports_nothing_heavy():
    code = ("import gridrun.engine.matrix, gridrun.engine.store, gridrun.engine.daemon, gridrun.engine.gpus, gridrun.engine.report, "
            "gridrun.engine.results, gridrun.engine.control, gridrun.engine.tail, "
            "gridrun.engine.ray_backend, gridrun.engine.ray_node, gridrun.engine.ray_keeper")
    assert not loaded_modules(code) & set(HEAVY)


@pytest.mark.parametrize("argv", [["--help"], ["queue", "ls"], ["queue", "status"],
                                  ["queue", "add", "--help"], ["gpus"],
                                  ["queue", "run", "--help"], ["gpus", "--help"]])
def test_light_cli_commands_import_nothing_heavy(argv, tmp_path):
    env = cli_env(tmp_path / "home")
    code = (f"import sys; sys.argv = ['gridrun'] + {argv!r}\n"
            "from gridrun.tui.cli import app\nfrom gridrun.tui.errors import run_app\nrun_app(app, sys.argv[1:])")
    assert not loaded_modules(code, env) & set(HEAVY)


def test_report_module_depends_on_the_standard_library_only():
    mods = loaded_modules("from gridrun import report")
    project = {m for m in mods if m.split(".")[0] in ("gridrun", "engine", "tui", "experiments")}
    assert project == {"gridrun", "gridrun.engine", "gridrun.engine.report"}
