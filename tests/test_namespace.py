"""One `gridrun` namespace: installed, gridrun is one top-level package, and nothing in a sweep
file's folder (a user's own `experiments/`, `engine/` or `tui/`) stands in for one of its modules."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT


def test_the_wheel_holds_one_top_level_package(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(tmp_path), str(ROOT)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    wheel = next(tmp_path.glob("gridrun-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"gridrun", next(t for t in tops if t.endswith(".dist-info"))}, tops
    # the three folders are there, with their data files, and the console script names gridrun
    for path in ("gridrun/engine/daemon.py", "gridrun/tui/cli.py", "gridrun/tui/styles/app.tcss",
                 "gridrun/experiments/train.py", "gridrun/experiments/r0_mnist_mlp.toml"):
        assert path in names
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt")))
    assert b"gridrun = gridrun.tui.cli:main" in entry


def _poison(folder: Path, package: str) -> None:
    """A user's package of the same name as one of ours; importing any of it fails loudly."""
    pkg = folder / package
    pkg.mkdir()
    boom = f"raise ImportError('the user\\'s own {package}/ was imported')\n"
    for module in ("__init__", "train", "models", "report", "cli", "schema"):
        (pkg / f"{module}.py").write_text(boom)


def test_a_users_folders_do_not_shadow_the_builtin_trainer_or_report(cli, tmp_path):
    for package in ("experiments", "engine", "tui"):
        _poison(tmp_path, package)
    # the built-in trainer, started in this folder
    (tmp_path / "builtin.toml").write_text(
        'name = "builtin"\n[params]\ndataset = "digits"\nmodel = "mlp"\nepochs = 1\n'
        'batch_size = 256\n[resources]\ngpus = 0\n')
    # a user script next to the poisoned folders reports through `from gridrun import report`
    (tmp_path / "mine.py").write_text(
        "from gridrun import report\nreport(epoch=1, val_acc=0.5)\n")
    (tmp_path / "mine.toml").write_text(
        f'name = "mine"\ncommand = [{json.dumps(sys.executable)}, "mine.py"]\n'
        '[resources]\ngpus = 0\n')
    res = cli("queue", "run", "builtin.toml", "mine.toml", timeout=240)
    assert res.returncode == 0, (res.stdout, res.stderr)
    runs = {r["sweep"]: r for r in cli.runs()}
    assert runs["builtin"]["status"] == "done"
    assert runs["mine"]["status"] == "done"
    assert cli.json("queue", "show", str(runs["mine"]["id"]))["metrics"]["val_acc"] == 0.5
    # the replay command keeps the protection: the folder stays off sys.path by hand too
    replay = cli.json("queue", "show", str(runs["builtin"]["id"]))["replay"]
    assert " -P -m gridrun.experiments.train" in replay or sys.version_info < (3, 11)
