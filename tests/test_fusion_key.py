"""Which runs fuse (experiments.fusion_key, torch-free for the daemon) and report_to()."""
from __future__ import annotations

import json
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from gridrun.engine.report import read_metrics, report_to
from gridrun.experiments import schema
from gridrun.experiments.fusion_key import CARRIED, FUSABLE_OPTIMIZERS, fusion_key, why_alone
from tests.conftest import ROOT, cli_env

SWEEP = {"dataset": "digits", "model": "mlp", "epochs": 5, "optimizer": "sgd"}

# what a member may set to its own value, with values of the right kinds
carried_values = st.fixed_dictionaries({}, optional={
    "lr": st.floats(1e-6, 10), "weight_decay": st.floats(0, 1), "momentum": st.floats(0, 1),
    "seed": st.integers(0, 2**32 - 1), "scheduler": st.sampled_from(list(schema.SCHEDULERS)),
    "sched_interval": st.sampled_from(["auto", "epoch", "step"]),
    "sched.gamma": st.floats(0.1, 1), "grad_clip": st.floats(0, 5),
    "mixup_alpha": st.floats(0, 1), "early_stop.patience": st.integers(0, 5),
    "optim.nesterov": st.booleans(), "optim.dampening": st.floats(0, 1),
})
# what shapes the computation, with a value other than SWEEP's or the default
shaping = st.sampled_from([
    ("batch_size", 32), ("epochs", 6), ("iterations", 100), ("model", "cnn"),
    ("mlp.hidden", [64, 32]), ("mlp.dropout", 0.1), ("dataset", "mnist"), ("val_split", 0.2),
    ("split_seed", 3), ("augment", ["hflip"]), ("aug.hflip.p", 0.3), ("amp", True),
    ("label_smoothing", 0.1), ("optimizer", "adam"), ("optim.maximize", True),
    ("device", "cpu"), ("limit_train", 100),
])


@settings(max_examples=60, deadline=None)
@given(a=carried_values, b=carried_values)
def test_runs_that_differ_only_in_what_a_group_carries_share_a_key(a, b):
    assert fusion_key({**SWEEP, **a}) == fusion_key({**SWEEP, **b}) is not None


@settings(max_examples=60, deadline=None)
@given(carried=carried_values, change=shaping)
def test_a_run_that_differs_in_what_shapes_the_computation_has_another_key(carried, change):
    name, value = change
    assert fusion_key({**SWEEP, **carried, name: value}) != fusion_key({**SWEEP, **carried})


def test_a_default_spelled_out_fuses_with_one_left_out():
    assert fusion_key({**SWEEP, "batch_size": 64, "mlp.hidden": [128]}) == fusion_key(SWEEP)
    assert fusion_key({**SWEEP, "mlp.hidden": (128,)}) == fusion_key(SWEEP)


def test_optimizers_without_a_fused_rule_and_compiled_runs_run_alone():
    for name in set(schema.OPTIMIZERS) - set(FUSABLE_OPTIMIZERS):
        assert fusion_key({**SWEEP, "optimizer": name}) is None
        assert "no fused update rule" in why_alone({**SWEEP, "optimizer": name})
    assert why_alone({**SWEEP, "compile": True}) == "compile = true"
    assert fusion_key({**SWEEP, "channels_last": True}) is None
    assert CARRIED <= set(schema.PARAMS)


def test_the_key_imports_without_torch():
    code = ("import sys; from gridrun.experiments.fusion_key import fusion_key; "
            "fusion_key({'lr': 0.1}); print('torch' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=cli_env(ROOT),
                         capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "False", res.stderr


def test_report_to_writes_into_the_folder_given_whatever_the_environment(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("GRIDRUN_RUN_DIR", str(tmp_path / "elsewhere"))
    report_to(tmp_path / "a", epoch=1, val_loss=float("nan"), lr=0.1)
    report_to(tmp_path / "b", epoch=1, val_acc=0.5)
    a, = read_metrics(tmp_path / "a" / "metrics.jsonl")
    assert a["val_loss"] is None and a["nonfinite"] == ["val_loss"] and a["lr"] == 0.1
    assert read_metrics(tmp_path / "b" / "metrics.jsonl")[0]["val_acc"] == 0.5
    assert not (tmp_path / "elsewhere").exists()
    json.dumps(a, allow_nan=False)
