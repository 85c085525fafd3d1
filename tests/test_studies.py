"""The studies under experiments/: each *.toml reruns one of the five course reports of
/work/shared/reports with the built-in trainer. Every file must load, expand to the run count its
report calls for, and keep the settings the report states. No torch: loading a study only needs
the engine and the trainer's schema."""
from __future__ import annotations

import functools
import math
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


def runs(file_name: str) -> list[dict]:
    return [r.params for r in study(file_name).runs]


def values(file_name: str, key: str) -> set:
    """Every value `key` takes in the study's runs (lists as tuples, so they can be a set)."""
    return {tuple(v) if isinstance(v, list) else v
            for v in (r.get(key) for r in runs(file_name))}


def fixed(file_name: str, key: str):
    """The one value `key` has in every run of the study."""
    found = values(file_name, key)
    assert len(found) == 1, f"{file_name}: {key} takes {found}, expected one value"
    return next(iter(found))


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


# --- report 000: MLP on MNIST, CNN on CIFAR-10 -----------------------------------------------


def test_r0_mnist_mlp():
    f = "r0_mnist_mlp.toml"
    assert fixed(f, "dataset") == "mnist"
    assert fixed(f, "mlp.hidden") == (128,)
    assert fixed(f, "batch_size") == 128
    assert values(f, "optimizer") == {"sgd", "adam", "rmsprop"}
    scheduled = [r for r in runs(f) if r["scheduler"] != "none"]
    assert {r["scheduler"] for r in scheduled} == {"step", "exponential", "plateau"}
    assert all(r["epochs"] == 15 and r["optimizer"] == "sgd" and r["lr"] == 0.01
               for r in scheduled)
    step = next(r for r in scheduled if r["scheduler"] == "step")
    assert (step["sched.step_size"], step["sched.gamma"]) == (5, 0.1)
    assert next(r for r in scheduled if r["scheduler"] == "exponential")["sched.gamma"] == 0.9
    assert values(f, "augment") == {(), ("hflip",), ("rotation",), ("affine",)}
    assert fixed(f, "aug.rotation.degrees") == (60, 90)


def test_r0_cifar10_cnn():
    f = "r0_cifar10_cnn.toml"
    assert fixed(f, "dataset") == "cifar10"
    assert fixed(f, "cnn.channels") == (32, 64, 128)
    assert fixed(f, "cnn.fc") == (256, 128)
    assert fixed(f, "batch_size") == 128
    assert values(f, "epochs") == {5, 20}               # 20: the report's CyclicLR retry
    assert values(f, "optimizer") == {"adamw", "adagrad", "adamax"}
    assert values(f, "scheduler") == {"none", "cyclic", "cosine", "onecycle"}
    assert fixed(f, "sched_interval") == "epoch"        # the report's logs step per epoch
    cyclic = sorted((r["sched.base_lr"], r["sched.max_lr"]) for r in runs(f)
                    if r.get("scheduler") == "cyclic")
    assert cyclic == [(0.001, 0.01), (0.015, 0.02)]
    assert ("color_jitter", "hflip", "crop") in values(f, "augment")


# --- report 001: MobileNet on CIFAR-100 -------------------------------------------------------


def test_r1_mobilenet_cifar100():
    f = "r1_mobilenet_cifar100.toml"
    assert fixed(f, "dataset") == "cifar100"
    assert fixed(f, "val_split") == 10000               # 40,000 / 10,000 of the 50,000
    assert fixed(f, "split_seed") == 0
    assert fixed(f, "normalize") == "split"             # the split's own mean and std
    assert fixed(f, "augment") == ("hflip", "crop")
    assert fixed(f, "aug.crop.padding") == 4
    assert fixed(f, "batch_size") == 128
    assert (fixed(f, "optimizer"), fixed(f, "momentum")) == ("sgd", 0.9)
    short = [r for r in runs(f) if r["epochs"] == 15]
    assert sorted(r["lr"] for r in short) == [0.01, 0.05, 0.5]
    assert all(r["scheduler"] == "none" and r["weight_decay"] == 0 for r in short)
    long = [r for r in runs(f) if r["epochs"] == 300]
    assert {r["lr"] for r in long} == {0.05}
    assert {r["scheduler"] for r in long} == {"none", "cosine"}
    assert {r["weight_decay"] for r in long} == {0, 5e-4, 1e-4}
    mixup = [r for r in runs(f) if r["mixup_alpha"]]
    assert [(r["mixup_alpha"], r["scheduler"], r["weight_decay"]) for r in mixup] == [
        (0.2, "cosine", 5e-4)]


# --- report 002: ResNet-18 fine-tuned on CIFAR-100 --------------------------------------------

R2 = ["r2_resnet18_optimizers.toml", "r2_resnet18_adam.toml", "r2_resnet18_adagrad.toml",
      "r2_resnet18_rmsprop.toml"]


@pytest.mark.parametrize("f", R2)
def test_r2_fine_tunes_pretrained_resnet18(f):
    assert study(f).metric == "test_top5"
    assert fixed(f, "dataset") == "cifar100"
    assert (fixed(f, "model"), fixed(f, "pretrained")) == ("resnet18", True)
    assert fixed(f, "batch_size") == 128
    assert fixed(f, "epochs") == 10


def test_r2_optimizers_and_learning_rates():
    f = "r2_resnet18_optimizers.toml"
    assert values(f, "optimizer") == {"adam", "adagrad", "rmsprop"}
    assert values(f, "lr") == {1e-5, 1e-4, 1e-3, 1e-2, 1e-1}


def test_r2_attribute_sweeps_run_at_lr_1e_3():
    assert fixed("r2_resnet18_adam.toml", "lr") == 1e-3
    assert values("r2_resnet18_adam.toml", "weight_decay") == {0, 1e-4, 1e-3, 1e-2, 0.1, 1}
    assert values("r2_resnet18_adam.toml", "optim.betas") == {
        (0.9, 0.999), (0.7, 0.999), (0.5, 0.999), (0.9, 0.8), (0.9, 0.6), (0.9, 0.4)}
    assert values("r2_resnet18_adagrad.toml", "optim.lr_decay") == {
        0, 0.1, 0.01, 0.001, 0.0001, 0.00001}
    assert values("r2_resnet18_adagrad.toml", "optim.eps") == {1e-10, 1e-8, 1e-6, 1e-4, 1e-2}
    assert values("r2_resnet18_rmsprop.toml", "momentum") == {0, 0.1, 0.3, 0.5, 0.7, 0.9}
    assert values("r2_resnet18_rmsprop.toml", "optim.centered") == {False, True}


# --- report 003: ResNet [3, 6, 4, 3] on CIFAR-10, staged ----------------------------------------


def test_r3_resnet_staged():
    f = "r3_resnet_cifar10_staged.toml"
    assert fixed(f, "dataset") == "cifar10"
    assert fixed(f, "model") == "resnet"
    assert fixed(f, "resnet.blocks") == (3, 6, 4, 3)
    assert fixed(f, "resnet.channels") == (32, 64, 128, 256)
    assert fixed(f, "iterations") == 32000
    assert (fixed(f, "momentum"), fixed(f, "weight_decay")) == (0.9, 1e-4)
    assert (fixed(f, "scheduler"), fixed(f, "sched_interval")) == ("step", "step")
    assert fixed(f, "sched.gamma") == 0.2               # lr x 0.2 every decay step
    # stage 1 at the settings the report held: lr 0.1, batch 64, decay step 5000
    assert (fixed(f, "lr"), fixed(f, "batch_size"), fixed(f, "sched.step_size")) == (0.1, 64, 5000)
    assert values(f, "optimizer") == {"adam", "sgd", "adagrad", "asgd"}
    assert [stage_grid(s) for s in study(f).stages] == [
        {"lr": [0.1, 0.3, 0.5]},
        {"batch_size": [32, 64, 128, 256]},
        {"sched.step_size": [4000, 5000, 8000, 10000]},
    ]


# --- report 004: MLP / CNN / ViT / fine-tuning on CIFAR-10, 3 seeds ---------------------------

R4 = ["r4_mlp_cifar10.toml", "r4_cnn_cifar10.toml", "r4_vit_cifar10.toml",
      "r4_finetune_cifar10.toml"]


@pytest.mark.parametrize("f", R4)
def test_r4_shared_procedure(f):
    spec = study(f)
    assert spec.seeds == (0, 1, 2)
    assert spec.metric == "val_acc"
    assert fixed(f, "dataset") == "cifar10"
    assert fixed(f, "val_split") == 0.2                 # 4:1
    assert fixed(f, "optimizer") == "adam"
    assert fixed(f, "early_stop.patience") == 4
    assert fixed(f, "early_stop.min_epochs") == 30
    assert fixed(f, "early_stop.metric") == "val_acc"
    assert len(runs(f)) == 3 * len({r.key for r in spec.runs
                                    if r.params["seed"] == 0})  # every configuration x 3 seeds


def test_r4_mlps():
    f = "r4_mlp_cifar10.toml"
    assert values(f, "mlp.hidden") == {(1500, 500, 100), (2048, 1024, 512, 256, 128, 64, 32, 16)}
    assert (fixed(f, "batch_size"), fixed(f, "lr"), fixed(f, "weight_decay")) == (128, 1e-3, 0.01)
    assert fixed(f, "normalize") == "none"              # "scaled to [0, 1] range"


def test_r4_cnn_grid():
    f = "r4_cnn_cifar10.toml"
    assert fixed(f, "cnn.channels") == (32, 64, 128)
    assert fixed(f, "cnn.fc") == (512, 40)
    assert values(f, "batch_size") == {64, 128}
    assert values(f, "lr") == {1e-2, 1e-3, 1e-4}
    assert values(f, "weight_decay") == {0, 0.01}
    assert values(f, "cnn.dropout") == {0, 0.5}
    assert values(f, "augment") == {
        (), ("hflip", "color_jitter", "rotation"),
        ("hflip", "color_jitter", "rotation", "random_erasing")}
    assert fixed(f, "aug.rotation.degrees") == 10


def test_r4_vit():
    f = "r4_vit_cifar10.toml"
    assert fixed(f, "model") == "vit"
    assert (fixed(f, "vit.depth"), fixed(f, "vit.width"), fixed(f, "vit.patch")) == (6, 30, 4)
    assert fixed(f, "vit.width") % fixed(f, "vit.heads") == 0


def test_r4_finetune_models_at_their_own_input_sizes():
    f = "r4_finetune_cifar10.toml"
    assert fixed(f, "pretrained") is True
    assert fixed(f, "normalize") == "imagenet"
    assert {(r["model"], r["input_size"]) for r in runs(f)} == {
        ("mobilenet_v3_small", 224), ("efficientnet_v2_s", 384), ("resnet18", 224)}
