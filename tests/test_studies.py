"""The studies under experiments/: each *.toml reruns one of the five course reports cited in
experiments/README.md with the built-in trainer. Every file must load, expand to the run count its
report calls for, and keep the settings the report states. No torch: loading a study only needs
the engine and the trainer's schema."""
from __future__ import annotations

import functools
import itertools
import json
import math
import re
from pathlib import Path

import pytest

from gridrun.engine.matrix import SweepSpec, flatten, load
from gridrun.experiments import schema

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
STUDIES = sorted(EXPERIMENTS.glob("*.toml"))

# file -> runs it expands to (for a staged study: stage 1, the file's own grid), and why.
EXPECTED_RUNS = {
    # report 000, MNIST: one factor at a time: 3 optimizers (5 epochs, no schedule)
    # + 3 schedulers (SGD lr 0.01, 15 epochs) + 3 augmentations, each alone (Adam) = 9
    "r0_mnist_mlp.toml": 9,
    # report 000, CIFAR-10: 3 optimizers + 4 scheduler runs (CyclicLR, the report's 20-epoch
    # CyclicLR retry, CosineAnnealingLR, OneCycleLR) + 4 augmentation runs (colour jitter, flip,
    # crop, all three) = 11
    "r0_cifar10_cnn.toml": 11,
    # report 001: 3 learning rates (15 epochs) + constant vs cosine (300 epochs) + 2 weight
    # decays + 1 mixup run = 3 + 2 + 2 + 1 = 8
    "r1_mobilenet_cifar100.toml": 8,
    # report 002: 3 optimizers x 5 learning rates [1e-5 ... 1e-1] = 15 (lr 1e-3 is the
    # optimizer comparison)
    "r2_resnet18_optimizers.toml": 15,
    # report 002, Adam: 6 weight decays + 6 betas, Adam's default (wd 0, betas (0.9, 0.999))
    # in both lists once = 6 + 6 - 1 = 11
    "r2_resnet18_adam.toml": 11,
    # report 002, Adagrad: 5 lr_decay values (none is the default 0) + 5 eps values (1e-10 is
    # the default run) = 10
    "r2_resnet18_adagrad.toml": 10,
    # report 002, RMSprop: 5 momenta + 5 alphas (0.99 = default) + centered false/true (false =
    # default) = 5 + 5 + 2 - 1 = 11
    "r2_resnet18_rmsprop.toml": 11,
    # report 003, stage 1: the optimizers Adam, SGD, Adagrad, ASGD = 4 (later stages below)
    "r3_resnet_cifar10_staged.toml": 4,
    # report 004 exp I: 2 MLPs (S, L) x 3 seeds = 6
    "r4_mlp_cifar10.toml": 6,
    # report 004 exp II: batch (64, 128) x lr (1e-2, 1e-3, 1e-4) x l2 (0, 0.01) x dropout
    # (0, 0.5) x augmentation (none, basic, basic + erasing) = 72 configurations x 3 seeds = 216
    "r4_cnn_cifar10.toml": 216,
    # report 004 exp III: batch (64, 128) x lr (1e-2, 1e-3) x 3 seeds = 12
    "r4_vit_cifar10.toml": 12,
    # report 004 exp IV: 3 pretrained models (MobileNetV3-S, EfficientNetV2-S, ResNet-18)
    # x 3 seeds = 9
    "r4_finetune_cifar10.toml": 9,
}

# staged studies: the size of each later stage's grid, in order.
STAGE_SIZES = {
    # report 003: lr (0.1, 0.3, 0.5) = 3, batch size (32, 64, 128, 256) = 4,
    # decay step (4000, 5000, 8000, 10000) = 4
    "r3_resnet_cifar10_staged.toml": [3, 4, 4],
}


@functools.lru_cache(maxsize=None)
def study(file_name: str) -> SweepSpec:
    return load(EXPERIMENTS / file_name)


def stage_grid(stage: dict) -> dict[str, list]:
    return flatten(stage.get("grid", {}))


# --- every study file ---------------------------------------------------------------------------


def test_studies_exist():
    assert STUDIES, "no experiments/*.toml"
    missing = sorted(set(EXPECTED_RUNS) - {p.name for p in STUDIES})
    assert not missing, f"EXPECTED_RUNS names files that are gone: {missing}"


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_study_loads_for_the_builtin_trainer(path):
    spec = study(path.name)
    assert spec.command is None, "a study reruns its report with the built-in trainer"
    assert spec.name == path.stem, "the sweep is named after its file, so users find its results"
    assert spec.description
    assert spec.metric and spec.mode in ("max", "min")
    assert spec.resources.gpus == 1
    assert spec.resources.gpu_mem_gb and spec.resources.timeout_min
    assert spec.runs
    # load() checks the runs against the schema; later stages are checked here
    for i, stage in enumerate(spec.stages, start=2):
        grid = stage_grid(stage)
        assert grid, f"stage {i} sweeps nothing"
        for key, options in grid.items():
            assert schema.lookup(key) or schema.is_free(key), f"stage {i}: unknown {key}"
            for value in options:
                assert schema.check(key, value) is None, (i, key, value, schema.check(key, value))


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_study_expands_to_its_reports_run_count(path):
    assert path.name in EXPECTED_RUNS, (
        f"{path.name}: add its expected run count to EXPECTED_RUNS, with how it follows from "
        "the report")
    spec = study(path.name)
    assert len(spec.runs) == EXPECTED_RUNS[path.name]
    sizes = [math.prod(len(v) for v in stage_grid(s).values()) for s in spec.stages]
    assert sizes == STAGE_SIZES.get(path.name, [])


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_study_has_no_twin_runs(path):
    keys = [r.key for r in study(path.name).runs]
    assert len(keys) == len(set(keys))


def test_readme_lists_every_study():
    readme = (EXPERIMENTS / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in STUDIES if p.name not in readme]
    assert not missing, f"experiments/README.md does not list {missing}"


def test_no_study_cites_a_file_of_a_development_machine():
    for path in [*STUDIES, EXPERIMENTS / "README.md"]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(?<![\w.])/(work|home|Users|mnt|tmp)/", text), path.name


# --- every study starts -------------------------------------------------------------------------


def first_run_on_synthetic(spec: SweepSpec) -> dict:
    """The study's first run with its dataset swapped for synthetic data of the same shape and
    classes, a handful of samples, one optimizer step, CIFAR-size inputs and no download."""
    params = dict(spec.runs[0].params)
    dataset = params.get("dataset", schema.PARAMS["dataset"].default)
    shape, classes = schema.DATASET_SHAPES[dataset]
    val_split = params.get("val_split", schema.PARAMS["val_split"].default)
    params.update({
        "dataset": "synthetic", "synthetic.shape": list(shape), "synthetic.classes": classes,
        "synthetic.train_size": 10, "synthetic.test_size": 4, "limit_eval": 4,
        "val_split": val_split if isinstance(val_split, float) else min(val_split, 2),
        "iterations": 1, "pretrained": False, "input_size": 0, "device": "cpu",
    })
    return params


def toml_value(value) -> str:
    return json.dumps(value)        # numbers, true/false, strings and lists read as TOML too


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_study_starts_its_first_run(path, tmp_path, monkeypatch, capsys):
    """Every study is known to start: its first run, on synthetic data of the dataset's shape,
    takes one optimizer step through the trainer's command line and exits 0."""
    torch = pytest.importorskip("torch")
    from gridrun.experiments.train import main

    monkeypatch.delenv("GRIDRUN_RUN_DIR", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                    # two cores are shared with other work
    try:
        params = first_run_on_synthetic(study(path.name))
        sets = [arg for k, v in params.items() for arg in ("--set", f"{k}={toml_value(v)}")]
        code = main([*sets, "--run-dir", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("epoch=1 epochs=1 ") and lines[-1].startswith("test_loss="), out


@pytest.mark.parametrize("path", [p for p in STUDIES if study(p.name).stages],
                         ids=lambda p: p.name)
def test_every_later_stage_keeps_the_rules_with_every_first_stage_run(path):
    """A later stage's values join the best run of the stage before: whichever run that is, the
    rules between parameters hold."""
    spec = study(path.name)
    defaults = schema.defaults()
    for i, stage in enumerate(spec.stages, start=2):
        points = [dict(zip(grid, combo)) for grid in [stage_grid(stage)]
                  for combo in itertools.product(*grid.values())]
        for run in spec.runs:
            for point in points:
                merged = {**defaults, **run.params, **flatten(stage.get("params", {})), **point}
                assert schema.check_run(merged) is None, (i, point, schema.check_run(merged))
