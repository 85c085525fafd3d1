"""Fused runs (python -m gridrun.experiments.fused): each member of a group trains as its lone
run does, for every fusable optimizer and scheduler; members end alone (divergence, early
stopping, cancel) and resume from their own checkpoints, alone or in a group."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w

torch = pytest.importorskip("torch")

from gridrun.engine.matrix import unflatten  # noqa: E402
from gridrun.engine.report import read_metrics  # noqa: E402
from gridrun.experiments import checkpoint, fused, fused_mlp  # noqa: E402
from gridrun.experiments.config import resolve  # noqa: E402
from gridrun.experiments.models import create_model  # noqa: E402
from gridrun.experiments.fusion_key import FUSABLE_OPTIMIZERS, fusion_key  # noqa: E402
from gridrun.experiments.train import train  # noqa: E402
from tests.conftest import ROOT, cli_env  # noqa: E402

# digits with a small MLP: one epoch is 12 optimizer steps, a run a fraction of a second
BASE = {"dataset": "digits", "mlp.hidden": [24], "batch_size": 96, "epochs": 2,
        "limit_eval": 200}
COMPARED = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")

# per optimizer: members that differ in what a group carries (lr, seed, weight decay, the
# optimizer's own hyperparameters and flags a member may set)
MEMBERS = {
    "sgd": [{"lr": 0.1, "momentum": 0.9, "seed": 1},
            {"lr": 0.05, "seed": 2, "weight_decay": 1e-3},
            {"lr": 0.03, "momentum": 0.5, "seed": 3, "optim.nesterov": True,
             "optim.dampening": 0.0},
            {"lr": 0.05, "momentum": 0.8, "seed": 4, "optim.dampening": 0.3}],
    "adam": [{"lr": 3e-3, "seed": 1}, {"lr": 1e-3, "seed": 2, "weight_decay": 1e-2},
             {"lr": 2e-3, "seed": 3, "optim.betas": [0.8, 0.99], "optim.eps": 1e-6}],
    "adamw": [{"lr": 3e-3, "seed": 1}, {"lr": 1e-3, "seed": 2, "weight_decay": 0.1},
              {"lr": 2e-3, "seed": 3, "optim.betas": [0.85, 0.995]}],
    "rmsprop": [{"lr": 1e-3, "seed": 1}, {"lr": 5e-4, "seed": 2, "momentum": 0.5},
                {"lr": 1e-3, "seed": 3, "optim.alpha": 0.9, "weight_decay": 1e-3}],
    "adagrad": [{"lr": 0.05, "seed": 1}, {"lr": 0.02, "seed": 2, "optim.lr_decay": 1e-3},
                {"lr": 0.05, "seed": 3, "optim.initial_accumulator_value": 0.1,
                 "optim.eps": 1e-8}],
    "adamax": [{"lr": 4e-3, "seed": 1}, {"lr": 2e-3, "seed": 2, "weight_decay": 1e-3},
               {"lr": 2e-3, "seed": 3, "optim.betas": [0.8, 0.99]}],
}
assert set(MEMBERS) == set(FUSABLE_OPTIMIZERS)

SCHEDULERS = {
    "step": {"sched.step_size": 1, "sched.gamma": 0.5},
    "multistep": {"sched.milestones": [1]},
    "exponential": {},
    "cosine": {},
    "plateau": {"sched.patience": 0, "sched.factor": 0.5},
    "cyclic": {},
    "onecycle": {},
    "none": {},
}


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """Two cores are shared with other work; lone runs print their metrics (no run folder)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.delenv("GRIDRUN_RUN_DIR", raising=False)
    yield
    torch.set_num_threads(threads)


def write_config(run_dir: Path, params: dict) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(tomli_w.dumps(unflatten(params)))
    return run_dir


def fused_group(tmp_path: Path, runs: list[dict]) -> list[fused.Member]:
    dirs = [write_config(tmp_path / f"member{i}", {**BASE, **p}) for i, p in enumerate(runs)]
    return fused.run(dirs)


def epochs(member: fused.Member) -> list[dict]:
    return [r for r in read_metrics(member.run_dir / "metrics.jsonl") if "epoch" in r]


def final(member: fused.Member) -> dict:
    return [r for r in read_metrics(member.run_dir / "metrics.jsonl") if "test_acc" in r][-1]


def close(a: float, b: float, rel: float) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


def assert_like_alone(member: fused.Member, lone_dir: Path, params: dict) -> None:
    """Epoch 1 equal to 1e-4 relative, the last epoch and the test set at the same level."""
    history, lone_final = train(resolve({**BASE, **params}), lone_dir)
    rows = epochs(member)
    assert len(rows) == len(history)
    for name in COMPARED:
        assert close(rows[0][name], history[0][name], 1e-4), (name, rows[0], history[0])
    for name in ("train_loss", "val_loss"):
        assert close(rows[-1][name], history[-1][name], 1e-3), (name, rows[-1], history[-1])
    assert rows[-1]["lr"] == pytest.approx(history[-1]["lr"], rel=1e-9)
    assert abs(final(member)["test_acc"] - lone_final["test_acc"]) <= 0.02


@pytest.mark.parametrize("optimizer", list(MEMBERS))
def test_each_member_trains_as_its_lone_run_for_every_fusable_optimizer(tmp_path, optimizer):
    runs = [{"optimizer": optimizer, **p} for p in MEMBERS[optimizer]]
    members = fused_group(tmp_path / "fused", runs)
    assert [m.status for m in members] == [
        {"status": "done", "exit_code": 0, "error": None}] * len(runs)
    for i, (member, params) in enumerate(zip(members, runs)):
        assert_like_alone(member, tmp_path / f"lone{i}", params)


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_each_member_follows_its_own_schedule_for_every_scheduler(tmp_path, scheduler):
    """Members on the scheduler under test with other lrs, next to one on another schedule."""
    runs = [{"optimizer": "sgd", "momentum": 0.9, "lr": 0.05, "seed": 1,
             "scheduler": scheduler, **SCHEDULERS[scheduler]},
            {"optimizer": "sgd", "momentum": 0.9, "lr": 0.1, "seed": 2,
             "scheduler": scheduler, **SCHEDULERS[scheduler]},
            {"optimizer": "sgd", "momentum": 0.9, "lr": 0.1, "seed": 2, "scheduler": "cosine",
             "sched_interval": "step"}]
    members = fused_group(tmp_path / "fused", runs)
    assert all(m.status["status"] == "done" for m in members), [m.status for m in members]
    for i, (member, params) in enumerate(zip(members, runs)):
        assert_like_alone(member, tmp_path / f"lone{i}", params)


def test_members_with_batchnorm_keep_their_own_statistics(tmp_path):
    runs = [{"model": "resnet", "resnet.blocks": [1], "resnet.channels": [8],
             "optimizer": "sgd", "momentum": 0.9, "lr": lr, "seed": seed, "epochs": 1}
            for lr, seed in ((0.05, 1), (0.2, 2))]
    members = fused_group(tmp_path / "fused", runs)
    for i, (member, params) in enumerate(zip(members, runs)):
        assert_like_alone(member, tmp_path / f"lone{i}", params)
    stats = [checkpoint.load(m.run_dir)["model"]["1.1.running_mean"] for m in members]
    assert not torch.equal(stats[0], stats[1])


def test_augmentation_and_mixup_draw_from_each_members_own_seed(tmp_path):
    shared = {"optimizer": "adam", "augment": ["affine", "random_erasing"],
              "aug.affine.degrees": 10}
    runs = [{**shared, "lr": 2e-3, "seed": 5, "mixup_alpha": 0.4},
            {**shared, "lr": 1e-3, "seed": 6},
            {**shared, "lr": 1e-3, "seed": 7, "mixup_alpha": 1.0, "grad_clip": 0.5}]
    members = fused_group(tmp_path / "fused", runs)
    for i, (member, params) in enumerate(zip(members, runs)):
        assert_like_alone(member, tmp_path / f"lone{i}", params)


def test_members_with_label_smoothing_train_as_their_lone_runs(tmp_path):
    runs = [{"optimizer": "sgd", "momentum": 0.9, "lr": lr, "seed": seed, "label_smoothing": 0.1}
            for lr, seed in ((0.05, 1), (0.1, 2))]
    members = fused_group(tmp_path / "fused", runs)
    for i, (member, params) in enumerate(zip(members, runs)):
        assert_like_alone(member, tmp_path / f"lone{i}", params)


def test_a_diverging_member_fails_alone_through_the_command_line(tmp_path):
    runs = [{"optimizer": "sgd", "lr": 0.05, "seed": 1},
            {"optimizer": "sgd", "lr": 1e12, "momentum": 0.9, "seed": 2},
            {"optimizer": "sgd", "lr": 0.1, "seed": 3, "epochs": 2}]
    dirs = [write_config(tmp_path / f"m{i}", {**BASE, **p}) for i, p in enumerate(runs)]
    argv = [sys.executable, "-m", "gridrun.experiments.fused"]
    for d in dirs:
        argv += ["--run-dir", str(d)]
    res = subprocess.run(argv, cwd=ROOT, env=cli_env(tmp_path), capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 1, res.stderr
    status = [json.loads((d / fused.STATUS_FILE).read_text()) for d in dirs]
    assert [s["status"] for s in status] == ["done", "failed", "done"]
    assert status[1]["exit_code"] == 1 and "diverged at epoch 1" in status[1]["error"]
    assert "diverged at epoch 1" in (dirs[1] / "stdout.log").read_text()
    rows = read_metrics(dirs[1] / "metrics.jsonl")
    assert len(rows) == 1 and "train_loss" in rows[0]["nonfinite"]
    for d, params in zip((dirs[0], dirs[2]), (runs[0], runs[2])):
        member = fused.Member(d, {})
        assert_like_alone(member, tmp_path / f"lone-{d.name}", params)


def test_early_stopping_ends_one_member_and_the_others_go_on(tmp_path):
    runs = [{"optimizer": "sgd", "lr": 1e-9, "epochs": 5, "seed": 1,
             "early_stop.patience": 1, "early_stop.min_delta": 0.5},
            {"optimizer": "sgd", "lr": 0.1, "epochs": 5, "seed": 2}]
    members = fused_group(tmp_path, runs)
    assert [m.status["status"] for m in members] == ["done", "done"]
    assert [len(epochs(m)) for m in members] == [2, 5]
    assert "stopped early after epoch 2" in (members[0].run_dir / "stdout.log").read_text()
    assert "test_acc" in final(members[0]) and "test_acc" in final(members[1])


def test_a_cancelled_member_leaves_and_the_others_finish(tmp_path, monkeypatch):
    runs = [{"optimizer": "adam", "lr": 1e-3, "seed": s, "epochs": 3} for s in (1, 2)]
    cancel_after(monkeypatch, epoch=1, member="member0")
    members = fused_group(tmp_path / "fused", runs)
    assert members[0].status == {"status": "cancelled", "exit_code": 1,
                                 "error": "cancelled before epoch 2"}
    assert len(epochs(members[0])) == 1
    assert members[1].status["status"] == "done"
    assert_like_alone(members[1], tmp_path / "lone", runs[1])


def cancel_after(monkeypatch, epoch: int, member: str | None = None) -> None:
    """Write the cancel file of `member` (all when None) once it has checkpointed `epoch`:
    what the daemon does when a user cancels it."""
    end_of_epoch = fused._end_of_epoch

    def and_cancel(stack, i, m, at, *args):
        end_of_epoch(stack, i, m, at, *args)
        if at == epoch and member in (None, m.name):
            (m.run_dir / fused.CANCEL_FILE).touch()

    monkeypatch.setattr(fused, "_end_of_epoch", and_cancel)


def test_a_member_resumes_from_its_checkpoint_alone_or_in_a_group(tmp_path, monkeypatch):
    """A group stopped after epoch 2 of 3: one member goes on with the lone trainer, the other
    in a new group; both end as their uninterrupted lone runs do."""
    runs = [{"optimizer": "sgd", "momentum": 0.9, "lr": 0.05, "seed": 1, "epochs": 3,
             "scheduler": "cosine", "checkpoint_every": 0},
            {"optimizer": "adam", "lr": 2e-3, "seed": 2, "epochs": 3, "checkpoint_every": 0},
            {"optimizer": "adam", "lr": 1e-3, "seed": 3, "epochs": 3, "checkpoint_every": 0}]
    end_of_epoch = fused._end_of_epoch
    cancel_after(monkeypatch, epoch=2)
    first = fused_group(tmp_path / "fused", runs)
    assert [m.status["status"] for m in first] == ["cancelled"] * 3
    assert all(checkpoint.load(m.run_dir)["epoch"] == 2 for m in first)
    monkeypatch.setattr(fused, "_end_of_epoch", end_of_epoch)
    for m in first:
        (m.run_dir / fused.CANCEL_FILE).unlink()

    alone_history, _ = train(resolve({**BASE, **runs[0]}), first[0].run_dir)
    again = fused.run([first[1].run_dir, first[2].run_dir])
    assert [m.status["status"] for m in again] == ["done", "done"]
    for i, params in enumerate(runs):
        reference, _ = train(resolve({**BASE, **params}), tmp_path / f"lone{i}")
        resumed = alone_history[-1] if i == 0 else epochs(again[i - 1])[-1]
        assert resumed["epoch"] == 3
        for name in COMPARED:
            assert close(resumed[name], reference[-1][name], 1e-4), (i, name)


def test_a_fused_checkpoint_holds_what_a_lone_run_checkpoints(tmp_path):
    """Same keys, shapes and dtypes everywhere, values equal up to rounding: torch's own
    optimizer state layout, the scheduler's state, the generator state of the run's seed."""
    runs = [{"optimizer": name, "lr": 1e-2, "momentum": 0.5 if name in ("sgd", "rmsprop")
             else 0.0, "seed": 4, "epochs": 1, "scheduler": "step"} for name in MEMBERS]
    for i, params in enumerate(runs):
        member, = fused_group(tmp_path / f"fused{i}", [params])
        train(resolve({**BASE, **params}), tmp_path / f"lone{i}")
        got, want = checkpoint.load(member.run_dir), checkpoint.load(tmp_path / f"lone{i}")
        assert got.keys() == want.keys()
        assert_same_tree(got["model"], want["model"])
        assert_same_tree(got["optimizer"], want["optimizer"])
        assert got["scheduler"] == want["scheduler"]
        assert torch.equal(got["rng"]["torch"], want["rng"]["torch"])


def assert_same_tree(got, want, path="") -> None:
    if isinstance(want, dict):
        assert got.keys() == want.keys(), path
        for k in want:
            assert_same_tree(got[k], want[k], f"{path}/{k}")
    elif isinstance(want, torch.Tensor):
        assert got.shape == want.shape and got.dtype == want.dtype, path
        # rounding, measured against the tensor's scale: RMSprop's g / sqrt(v) magnifies it
        # where v is tiny
        scale = float(want.abs().max()) if want.numel() else 0.0
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * scale + 1e-7), path
    else:
        assert got == want, path


def test_runs_that_cannot_fuse_are_trained_in_turn_and_lbfgs_is_refused(tmp_path):
    runs = [{"optimizer": "sgd", "lr": 0.1, "batch_size": 64, "epochs": 1},
            {"optimizer": "sgd", "lr": 0.1, "batch_size": 128, "epochs": 1},
            {"optimizer": "lbfgs", "epochs": 1}]
    members = fused_group(tmp_path, runs)
    assert [m.status["status"] for m in members] == ["done", "done", "failed"]
    assert members[2].status["exit_code"] == 2
    assert "cannot be fused" in members[2].status["error"]
    assert fusion_key(members[0].cfg) != fusion_key(members[1].cfg)


def test_generator_states_round_trip_as_tensors_and_from_old_lists(tmp_path):
    """checkpoint.rng_state() keeps Python's and NumPy's 625 words as tensors (fast to save);
    a checkpoint of the older layout, with lists, still restores."""
    import random

    import numpy as np

    random.seed(3)
    np.random.seed(4)
    state = checkpoint.rng_state()
    checkpoint.save(tmp_path, {"rng": state})
    expected = (random.random(), float(np.random.rand()))
    old = {**state, "python": (state["python"][0], tuple(state["python"][1].tolist()),
                               state["python"][2]),
           "numpy": [state["numpy"][0], state["numpy"][1].tolist(), *state["numpy"][2:]]}
    for saved in (checkpoint.load(tmp_path)["rng"], old):
        random.seed(99)
        np.random.seed(99)
        checkpoint.set_rng_state(saved)
        assert (random.random(), float(np.random.rand())) == expected


@pytest.mark.parametrize("dropout,smoothing,mixing", [
    (0.0, 0.0, False), (0.3, 0.1, True), (0.5, 0.0, True), (1.0, 0.2, False)])
def test_the_written_out_mlp_backward_equals_autograd_on_each_members_module(
        dropout, smoothing, mixing):
    """experiments.fused_mlp's losses and gradients against torch's modules, F.cross_entropy
    and autograd, member by member, with the same dropout masks."""
    count, batch = 3, 16
    cfg = resolve({"dataset": "digits", "mlp.hidden": [12, 7], "mlp.dropout": dropout})
    models = []
    for seed in range(count):
        torch.manual_seed(seed)
        models.append(create_model(cfg, (1, 8, 8), 10))
    params, _ = torch.func.stack_module_state(models)
    names = list(params)
    mlp = fused_mlp.StackedMLP(fused_mlp.plan(models[0], names))
    x = torch.randn(count, batch, 1, 8, 8)
    y, partner = torch.randint(0, 10, (count, batch)), torch.randint(0, 10, (count, batch))
    lam = torch.rand(count) if mixing else None

    torch.manual_seed(7)
    losses, logits, grads = mlp.loss_and_grads([params[n].detach() for n in names], x, y,
                                               partner, lam, smoothing)
    torch.manual_seed(7)        # the masks native_dropout draws, in the same order and shapes
    masks = [torch.ops.aten.native_dropout(torch.empty(count, batch, width), dropout, True)[1]
             for width in cfg["mlp.hidden"]] if dropout else []

    for m, model in enumerate(models):
        h, layer_masks = x[m], iter(masks)
        for layer in model[1]:
            if isinstance(layer, torch.nn.Dropout):
                keep = next(layer_masks)[m]
                h = h * keep / (1 - dropout) if dropout < 1 else h * 0
            else:
                h = layer(h)
        want = torch.nn.functional.cross_entropy(h, y[m], label_smoothing=smoothing)
        if mixing:
            want = torch.lerp(torch.nn.functional.cross_entropy(
                h, partner[m], label_smoothing=smoothing), want, lam[m])
        want.backward()
        assert torch.allclose(losses[m], want, rtol=1e-5, atol=1e-6), m
        assert torch.allclose(logits[m], h, rtol=1e-5, atol=1e-6), m
        for name, param in model.named_parameters():
            got = grads[names.index(name)][m]
            assert torch.allclose(got, param.grad, rtol=1e-4, atol=1e-6), (m, name)
