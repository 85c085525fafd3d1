"""The built-in trainer (python -m gridrun.experiments.train) on CPU, with scikit-learn's digits and
synthetic data: every registered name trains, the metrics a user reads are right, and a run
survives a kill. Small widths and limit_train keep each run to a fraction of a second."""
from __future__ import annotations

import json
import math
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from gridrun.engine.report import read_metrics  # noqa: E402
from gridrun.experiments import augment, checkpoint, schema  # noqa: E402
from gridrun.experiments import data as datasets  # noqa: E402
from gridrun.experiments.config import TrainerError, resolve  # noqa: E402
from gridrun.experiments.models import count_params, create_model  # noqa: E402
from gridrun.experiments.optim import create_optimizer  # noqa: E402
from gridrun.experiments.train import Diverged, Plan, main, train  # noqa: E402
from tests.conftest import ROOT, cli_env  # noqa: E402

# Tiny versions of every model, a quick slice of digits: one epoch is two optimizer steps.
TINY = {
    "dataset": "digits", "limit_train": 64, "limit_eval": 32, "batch_size": 32, "epochs": 1,
    "mlp.hidden": [16], "cnn.channels": [4, 8], "cnn.fc": [16], "resnet.blocks": [1, 1],
    "resnet.channels": [4, 8], "vit.depth": 1, "vit.width": 8, "vit.heads": 2,
}
TIMING = ("time", "epoch_seconds", "samples_per_s")


@pytest.fixture(autouse=True)
def one_thread(monkeypatch, tmp_path):
    """Two cores are shared with other work. Metrics go to tmp_path/metrics.jsonl, as under
    gridrun."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("GRIDRUN_RUN_DIR", str(tmp_path))
    yield
    torch.set_num_threads(threads)


def run(tmp_path: Path, **params) -> tuple[list[dict], dict]:
    return train(resolve({**TINY, **params}), tmp_path)


def finite(row: dict) -> bool:
    return all(math.isfinite(v) for v in row.values() if isinstance(v, float))


def without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


# --- every registered name trains -----------------------------------------------------------

@pytest.mark.parametrize("model", schema.MODELS)   # every name a sweep may use
def test_every_model_trains_an_epoch_and_reports_finite_metrics(tmp_path, model):
    history, final = run(tmp_path, model=model)
    (row,) = read_metrics(tmp_path / "metrics.jsonl")[:1]
    assert {"epoch", "epochs", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
            "epoch_seconds", "samples_per_s"} <= set(row)
    assert row["epoch"] == row["epochs"] == 1 and finite(history[0])
    assert final["params"] > 0 and math.isfinite(final["test_loss"])
    assert 0 <= final["test_acc"] <= 1


@pytest.mark.parametrize("optimizer", [o for o in schema.OPTIMIZERS
                                       if o not in schema.UNTRAINABLE_OPTIMIZERS])
def test_every_optimizer_trains(tmp_path, optimizer):
    history, final = run(tmp_path, optimizer=optimizer)
    assert finite(history[0]) and math.isfinite(final["test_loss"])


def test_sparse_adam_says_why_it_cannot_train_a_dense_model(tmp_path):
    with pytest.raises(TrainerError, match="sparse_adam .*sparse gradients.*use adam"):
        run(tmp_path, optimizer="sparse_adam")


def test_muon_steps_the_hidden_weight_matrices_and_adamw_the_rest(tmp_path):
    cfg = resolve({**TINY, "model": "vit", "optimizer": "muon", "momentum": 0.95})
    model = create_model(cfg, (1, 8, 8), 10)
    opt = create_optimizer("muon", model, lr=0.01, weight_decay=0.0, momentum=0.95, extra={})
    muon, adamw = opt.parts
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    in_muon = {id(p) for g in muon.param_groups for p in g["params"]}
    in_adamw = {id(p) for g in adamw.param_groups for p in g["params"]}
    head = model[1].head.weight
    assert not in_muon & in_adamw and len(in_muon | in_adamw) == len(list(model.parameters()))
    assert id(head) in in_adamw                               # the class layer: AdamW
    assert {p.ndim for p in model.parameters() if id(p) in in_muon} == {2}
    assert model[1].embed.weight.ndim == 4 and id(model[1].embed.weight) in in_adamw
    # one scheduler moves both parts' learning rate; a step changes both kinds of weight
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    before = {id(p): p.detach().clone() for p in model.parameters()}
    loss = model(torch.randn(4, 1, 8, 8)).logsumexp(1).mean()
    loss.backward()
    opt.step()
    sched.step()
    assert [g["lr"] for g in muon.param_groups + adamw.param_groups] == [0.005, 0.005]
    moved = {id(p) for p in model.parameters() if not torch.equal(p, before[id(p)])}
    assert moved & in_muon and head is not None and id(head) in moved
    # and its state survives a checkpoint's round trip
    again = create_optimizer("muon", model, lr=0.01, weight_decay=0.0, momentum=0.95, extra={})
    again.load_state_dict(opt.state_dict())
    assert again.state_dict()["parts"][0]["state"].keys() == opt.state_dict()["parts"][0][
        "state"].keys() != set()


@pytest.mark.parametrize("scheduler", schema.SCHEDULERS)
def test_every_scheduler_trains(tmp_path, scheduler):
    history, _ = run(tmp_path, scheduler=scheduler, epochs=2)
    assert len(history) == 2 and all(finite(r) for r in history)


@pytest.mark.parametrize("augmentation", schema.AUGMENTATIONS)
def test_every_augmentation_trains(tmp_path, augmentation):
    history, _ = run(tmp_path, augment=[augmentation])
    assert finite(history[0])


def test_every_augmentation_at_once_with_mixup_on_colour_images(tmp_path):
    history, _ = run(tmp_path, dataset="synthetic", model="cnn", mixup_alpha=0.2,
                     augment=augment.list_augmentations(), **{"synthetic.shape": [3, 12, 12],
                     "synthetic.train_size": 96, "aug.color_jitter.hue": 0.1})
    assert finite(history[0])


# --- augmentations are per-sample tensor ops that do what torchvision's do -------------------

def test_augmentations_draw_per_sample():
    x = torch.rand(64, 3, 8, 8)
    flipped = augment.HFlip()(x)
    same = (flipped == x).flatten(1).all(1)
    mirrored = (flipped == x.flip(3)).flatten(1).all(1)
    assert (same | mirrored).all() and 10 < same.sum() < 54     # some flipped, not all
    cropped = augment.Crop(padding=2)(x)
    assert cropped.shape == x.shape
    assert 1 < len({tuple(c.flatten()[:5].tolist()) for c in cropped}) # different offsets


def test_geometry_matches_torch():
    x = torch.rand(4, 3, 6, 6)
    assert torch.allclose(augment.Rotation(degrees=[90, 90])(x), torch.rot90(x, 1, (2, 3)),
                          atol=1e-5)                             # counter-clockwise
    assert torch.allclose(augment.Affine(translate=None, scale=None)(x), x, atol=1e-5)
    assert torch.equal(augment.Crop(padding=0)(x), x)
    assert augment.Crop(size=4, padding=0)(x).shape == (4, 3, 4, 4)
    erased = augment.RandomErasing(p=1.0, value=7)(x)
    assert ((erased == 7).flatten(1).any(1)).all()
    unchanged = augment.ColorJitter(brightness=0, contrast=0, saturation=0, hue=[0, 0])(x)
    assert torch.allclose(unchanged, x, atol=1e-5)
    shifted = augment.ColorJitter(brightness=0, contrast=0, saturation=0, hue=[0.5, 0.5])(x)
    assert not torch.allclose(shifted, x, atol=1e-2)


def test_unknown_augmentation_arguments_are_errors(tmp_path):
    with pytest.raises(TrainerError, match=r'aug\.crop\.pading: crop \(RandomCrop\) takes no '
                                           r'argument .pading. \(did you mean "padding"\?\)'):
        run(tmp_path, augment=["crop"], **{"aug.crop.pading": 4})
    with pytest.raises(TrainerError, match=r"aug\.rotation\.degrees: expected"):
        run(tmp_path, augment=["rotation"], **{"aug.rotation.degrees": "a lot"})
    # arguments of an augmentation not in this run are still checked (a sweep varies `augment`)
    with pytest.raises(TrainerError, match="aug.hflip.q"):
        run(tmp_path, **{"aug.hflip.q": 0.5})


# --- optimizer and scheduler arguments ------------------------------------------------------

def test_optimizer_arguments_reach_torch_and_unknown_ones_are_errors(tmp_path):
    history, _ = run(tmp_path, optimizer="adam", **{"optim.betas": [0.5, 0.999],
                                                   "optim.amsgrad": True})
    assert finite(history[0])
    with pytest.raises(TrainerError) as e:
        run(tmp_path, optimizer="adam", **{"optim.beta": [0.9, 0.99]})
    assert str(e.value).startswith('optim.beta: adam (torch.optim.Adam) takes no argument '
                                   '"beta" (did you mean "betas"?); it takes: betas, eps')
    with pytest.raises(TrainerError, match="optim.nesterov: rmsprop"):
        run(tmp_path, optimizer="rmsprop", **{"optim.nesterov": True})
    with pytest.raises(TrainerError, match="sched.step: step .*StepLR.* takes no argument"):
        run(tmp_path, scheduler="step", **{"sched.step": 3})


def test_iterations_and_a_per_step_schedule(tmp_path):
    # study 4: lr decay by gamma every N iterations; 64 samples / batch 32 = 2 steps an epoch
    history, _ = run(tmp_path, optimizer="sgd", lr=0.1, momentum=0.9, iterations=5,
                     scheduler="step", sched_interval="step",
                     **{"sched.step_size": 2, "sched.gamma": 0.2})
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert {r["epochs"] for r in history} == {3}                # the last pass is one step
    assert [r["lr"] for r in history] == pytest.approx([0.1, 0.02, 0.004])


def test_study_4s_resnet_has_about_4_9_million_parameters():
    cfg = resolve({"model": "resnet", "resnet.blocks": [3, 6, 4, 3],
                   "resnet.channels": [32, 64, 128, 256]})
    assert 4.85e6 < count_params(create_model(cfg, (3, 32, 32), 10)) < 4.95e6


def test_plan_turns_epochs_and_iterations_into_steps():
    cfg = resolve({"batch_size": 32, "epochs": 3})
    assert Plan.of(cfg, 100) == Plan(32, 4, 12, 3)
    assert Plan.of(cfg, 97) == Plan(32, 3, 9, 3)                 # a lone last sample is dropped
    assert Plan.of(resolve({"batch_size": 32, "iterations": 10}), 64) == Plan(32, 2, 10, 5)
    assert Plan.of(cfg, 10) == Plan(10, 1, 3, 3)                 # batch larger than the data


# --- learning, determinism, resume ----------------------------------------------------------

def test_mlp_on_digits_reaches_90_percent_in_8_epochs(tmp_path):
    history, final = train(resolve({"dataset": "digits", "model": "mlp", "epochs": 8,
                                    "lr": 3e-3, "batch_size": 64}), tmp_path)
    assert history[-1]["val_acc"] >= 0.9 and final["test_acc"] >= 0.9


def test_same_seed_same_metrics_other_seed_other_metrics(tmp_path):
    params = {"model": "cnn", "augment": ["crop", "rotation"], "mixup_alpha": 0.4, "epochs": 2}
    first = run(tmp_path / "a", **params)
    again = run(tmp_path / "b", **params)
    other = run(tmp_path / "c", seed=1, **params)
    assert without_timing(first[0]) == without_timing(again[0]) and first[1] == again[1]
    assert without_timing(first[0]) != without_timing(other[0])


def _write_config(run_dir: Path, params: dict) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(
        "".join(f'"{k}" = {json.dumps(v)}\n' for k, v in params.items()))


def _trainer(run_dir: Path) -> subprocess.Popen:
    env = {**cli_env(run_dir), "GRIDRUN_RUN_DIR": str(run_dir), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "gridrun.experiments.train"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def test_a_killed_run_resumes_at_the_next_epoch_with_the_same_history(tmp_path):
    params = {"dataset": "digits", "mlp.hidden": [64], "batch_size": 8, "epochs": 6,
              "scheduler": "cosine", "augment": ["affine"], "checkpoint_every": 0}
    reference, reference_final = train(resolve(params), tmp_path / "reference")

    run_dir = tmp_path / "run"
    _write_config(run_dir, params)
    proc = _trainer(run_dir)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 60
    while len(read_metrics(metrics)) < 2:                        # epoch 2 reported ...
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)                          # ... then killed mid-way
    proc.wait()
    saved = checkpoint.load(run_dir)["epoch"]
    assert 1 <= saved < 6
    before = len(read_metrics(metrics))

    proc = _trainer(run_dir)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"at epoch {saved + 1}" in err
    resumed = [r for r in read_metrics(metrics)[before:] if "epoch" in r]
    assert resumed[0]["epoch"] == saved + 1
    by_epoch = {r["epoch"]: r for r in read_metrics(metrics) if "epoch" in r}  # later rows win
    assert without_timing([by_epoch[e] for e in sorted(by_epoch)]) == without_timing(reference)
    final = read_metrics(metrics)[-1]
    assert {k: final[k] for k in reference_final} == reference_final


def test_checkpoints_wait_checkpoint_every_seconds_but_the_last_epoch_always_writes(tmp_path):
    """Epochs of a few milliseconds: with an hour between checkpoints, a run killed after two
    epochs has none and starts over; a run that ends writes its last epoch's."""
    params = {"dataset": "digits", "mlp.hidden": [16], "batch_size": 8, "epochs": 40,
              "checkpoint_every": 3600}
    run_dir = tmp_path / "run"
    _write_config(run_dir, params)
    proc = _trainer(run_dir)
    deadline = time.time() + 60
    while len(read_metrics(run_dir / "metrics.jsonl")) < 2:
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run_dir / checkpoint.FILE).exists()

    _write_config(run_dir, {**params, "epochs": 3})
    proc = _trainer(run_dir)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "resuming" not in err, err
    assert checkpoint.load(run_dir)["epoch"] == 3


def test_the_checkpoint_loads_with_weights_only_and_holds_the_whole_state(tmp_path):
    history, _ = run(tmp_path, scheduler="plateau", epochs=2)
    torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    state = checkpoint.load(tmp_path)
    assert {"model", "optimizer", "scheduler", "rng", "epoch", "config", "history"} <= set(state)
    assert state["epoch"] == 2 and state["history"] == history
    assert state["config"] == resolve({**TINY, "scheduler": "plateau", "epochs": 2})


def test_a_checkpoint_of_other_parameters_is_not_resumed(tmp_path, capsys):
    run(tmp_path, epochs=2)
    fresh, _ = run(tmp_path / "fresh", epochs=2, lr=0.01)
    again, _ = run(tmp_path, epochs=2, lr=0.01)                   # same folder, new parameters
    assert "written for other parameters" in capsys.readouterr().err
    assert without_timing(again) == without_timing(fresh)


def test_early_stopping_ends_a_run_that_stopped_improving(tmp_path, capsys):
    history, final = run(tmp_path, optimizer="sgd", lr=1e-9, epochs=20,
                         **{"early_stop.patience": 2, "early_stop.min_delta": 0.01})
    assert len(history) == 3 and "test_acc" in final
    assert "stopped early after epoch 3" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_one_host_sync_per_epoch_however_many_batches(tmp_path):
    """CUDA's sync debug mode warns at each synchronising call: four times the batches must not
    mean more of them (syncs of set-up, evaluation and checkpoint are the same in both runs)."""
    import warnings

    def syncs(limit: int, folder: str) -> int:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                run(tmp_path / folder, device="cuda", limit_train=limit, model="cnn",
                    augment=augment.list_augmentations(), mixup_alpha=0.2,
                    **{"aug.color_jitter.hue": 0.1})
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    syncs(64, "warm-up")                         # CUDA's one-time set-up out of the count
    assert syncs(256, "long") == syncs(64, "short")


# --- failures a user must see ---------------------------------------------------------------

def test_divergence_exits_non_zero_with_the_epoch(tmp_path, capsys):
    code = main(["--run-dir", str(tmp_path), "--set", "dataset=digits", "--set",
                 "optimizer=sgd", "--set", "lr=1e10", "--set", "epochs=3"])
    assert code == 1
    assert "diverged at epoch 1" in capsys.readouterr().err
    (row,) = read_metrics(tmp_path / "metrics.jsonl")
    assert row["train_loss"] is None and "train_loss" in row["nonfinite"]
    with pytest.raises(Diverged):
        run(tmp_path / "again", optimizer="sgd", lr=1e10)


STUCK = {"dataset": "digits", "mlp.hidden": [32], "batch_size": 64, "optimizer": "sgd",
         "lr": 5.0, "epochs": 5}   # a huge lr: dead ReLUs, loss parked at ln(10)


def test_a_run_stuck_at_chance_reports_not_learning(tmp_path):
    history, _ = train(resolve(STUCK), tmp_path)
    rows = read_metrics(tmp_path / "metrics.jsonl")
    flagged = [r for r in rows if r.get("warning") == "not_learning"]
    assert len(flagged) == 1 and len(history) == 5
    assert abs(flagged[0]["train_loss"] - math.log(10)) < 0.05


def test_stop_on_stuck_stops_the_run(tmp_path, capsys):
    argv = ["--run-dir", str(tmp_path)] + [
        a for k, v in {**STUCK, "stop_on_stuck": True}.items()
        for a in ("--set", f"{k}={json.dumps(v)}")]
    assert main(argv) == 1
    assert "chance level (ln 10 = 2.303)" in capsys.readouterr().err
    assert len(read_metrics(tmp_path / "metrics.jsonl")) < 5


def test_pretrained_offline_says_where_to_put_the_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))   # no cached weights
    with pytest.raises(TrainerError) as e:
        run(tmp_path, model="resnet18", pretrained=True, input_size=32)
    message = str(e.value)
    assert "could not be downloaded" in message
    assert "put resnet18-f37072fd.pth" in message and str(tmp_path / "torch") in message
    with pytest.raises(TrainerError, match="needs a torchvision model"):
        run(tmp_path, model="mlp", pretrained=True)


def test_a_missing_dataset_offline_says_where_to_put_the_files(tmp_path):
    with pytest.raises(TrainerError) as e:
        run(tmp_path, dataset="cifar10", data_dir=str(tmp_path / "data"))
    assert "put cifar-10-python.tar.gz" in str(e.value)
    assert str(tmp_path / "data") in str(e.value)


def test_bad_parameters_are_one_line_errors(tmp_path, capsys):
    assert main(["--run-dir", str(tmp_path), "--set", "batchsize=64"]) == 2
    err = capsys.readouterr().err
    assert err == 'error: unknown parameter "batchsize" (did you mean "batch_size"?)\n'
    assert main(["--run-dir", str(tmp_path), "--set", "lr=-1"]) == 2
    assert capsys.readouterr().err == "error: lr: expected a number >= 0, got -1\n"
    assert main(["--run-dir", str(tmp_path), "--set", "scheduler=plateau",
                 "--set", "sched_interval=step"]) == 2
    assert "plateau" in capsys.readouterr().err


def test_by_hand_from_a_sweep_file_with_overrides(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("GRIDRUN_RUN_DIR")                       # report() prints instead
    study = tmp_path / "study.toml"
    study.write_text('name = "s"\n[params]\ndataset = "digits"\nepochs = 5\n'
                     '[params.mlp]\nhidden = [8]\n[grid]\nlr = [0.1, 0.2]\n')
    assert main([str(study), "--set", "epochs=2", "--set", "optimizer=sgd",
                 "--run-dir", str(tmp_path / "run")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[:2]] == [["epoch=1", "epochs=2"],
                                                        ["epoch=2", "epochs=2"]]
    assert lines[2].startswith("test_loss=") and "params=" in lines[2]
    assert checkpoint.load(tmp_path / "run")["config"]["mlp.hidden"] == [8]
    assert main(["--params"]) == 0
    assert "early_stop.patience" in capsys.readouterr().out


# --- data -----------------------------------------------------------------------------------

def test_split_limits_and_normalisation():
    cfg = resolve({"dataset": "digits", "val_split": 300, "split_seed": 3})
    data = datasets.load(cfg, torch.device("cpu"))
    assert (len(data.train), len(data.val), len(data.test)) == (1137, 300, 360)
    assert data.train.x.dtype == torch.uint8 and data.classes == 10
    x = (data.train.x.float() / 255 - data.mean) / data.std
    assert abs(x.mean().item()) < 1e-4 and abs(x.std().item() - 1) < 1e-3
    other_seed = datasets.load({**cfg, "seed": 7}, torch.device("cpu"))
    assert torch.equal(other_seed.val.x, data.val.x)            # the split follows split_seed only
    small = datasets.load({**cfg, "limit_train": 50, "limit_eval": 20, "val_split": 0.2},
                          torch.device("cpu"))
    assert (len(small.train), len(small.val), len(small.test)) == (50, 20, 20)


def _idx(path: Path, array: torch.Tensor) -> None:
    """The MNIST idx format: magic (unsigned bytes, rank), big-endian sizes, the bytes."""
    path.write_bytes(struct.pack(">I", 0x800 + array.ndim)
                     + struct.pack(f">{array.ndim}I", *array.shape) + array.numpy().tobytes())


def test_torchvision_datasets_are_decoded_once_into_a_cache(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for part, n in (("train", 40), ("t10k", 20)):
        images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8)
        _idx(raw / f"{part}-images-idx3-ubyte", images)
        _idx(raw / f"{part}-labels-idx1-ubyte", torch.arange(n, dtype=torch.uint8) % 10)
    cfg = resolve({"dataset": "mnist", "data_dir": str(tmp_path), "val_split": 0})
    data = datasets.load(cfg, torch.device("cpu"))
    assert data.train.x.shape == (40, 1, 28, 28) and len(data.test) == 20
    assert (tmp_path / "gridrun" / "mnist-train.pt").exists()
    for f in raw.iterdir():
        f.unlink()                                                # later runs read the cache only
    assert torch.equal(datasets.load(cfg, torch.device("cpu")).train.x, data.train.x)


# --- through the real engine ----------------------------------------------------------------

def test_a_sweep_without_command_runs_the_builtin_trainer(cli, tmp_path):
    path = tmp_path / "builtin.toml"
    path.write_text('name = "builtin"\nmetric = "val_acc"\n'
                    '[params]\ndataset = "digits"\nepochs = 2\nbatch_size = 32\n'
                    '[params.mlp]\nhidden = [32]\n'
                    '[grid]\nlr = [0.01, 0.003]\n'
                    '[resources]\ngpus = 0\n')
    res = cli("queue", "run", path, "--cpu-slots", "2", timeout=120, check=0)
    assert "2 runs: 2 done" in res.stdout
    runs = cli.runs()
    assert [r["status"] for r in runs] == ["done", "done"]
    for r in runs:
        assert r["metrics"]["val_acc"] > 0.8 and r["metrics"]["epoch"] == 2
        assert {"train_loss", "val_acc", "test_acc", "params"} <= set(r["metric_names"])
        assert (Path(r["run_dir"]) / "checkpoint.pt").exists()
