"""experiments/schema.py: the built-in trainer's parameter table, checked without torch."""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gridrun.experiments import schema
from gridrun.experiments.schema import PARAMS, check, is_free, lookup

ROOT = Path(__file__).resolve().parents[1]


# --- importing ----------------------------------------------------------------------------------

def test_import_in_a_fresh_interpreter_loads_no_torch_and_nothing_outside_the_stdlib():
    code = (
        "import json, sys\n"
        "import gridrun.experiments.schema as s\n"
        "s.check('lr', 0.1); s.describe(); s.defaults()\n"
        "mods = sorted({m.split('.')[0] for m in sys.modules})\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'mods': mods,\n"
        "                  'std': sorted(sys.stdlib_module_names)}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["torch"] is False
    std = set(found["std"]) | {"gridrun", "__main__", "_distutils_hack", "sitecustomize",
                               "usercustomize"}
    foreign = [m for m in found["mods"] if m not in std and not m.startswith("_")]
    assert foreign == [], f"schema pulls in non-stdlib modules: {foreign}"


# --- the table itself ---------------------------------------------------------------------------

def test_every_param_is_well_formed():
    for name, p in PARAMS.items():
        assert p.name == name
        assert p.kind in schema.KINDS, name
        assert p.help.strip() and "\n" not in p.help, name
        assert re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*", name), name
        if p.choices is not None:
            assert p.kind in ("str", "str_list"), name
            assert len(set(p.choices)) == len(p.choices) > 0, name
        if p.min is not None and p.max is not None:
            assert p.min <= p.max, name


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_every_default_passes_its_own_check(name):
    assert check(name, PARAMS[name].default) is None
    assert check(name, schema.defaults()[name]) is None


def test_no_name_is_a_prefix_of_another_or_inside_a_free_group():
    # TOML cannot hold both `a = 1` and `a.b = 2`; a name under optim./sched./aug. would be shadowed.
    names = set(PARAMS)
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts)):
            assert ".".join(parts[:i]) not in names, name
            assert ".".join(parts[:i]) not in schema.FREE_GROUPS, name
        assert not is_free(name), name
    assert not names & set(schema.FREE_GROUPS)


def test_defaults_cover_every_param_and_are_fresh_copies():
    d = schema.defaults()
    assert list(d) == list(PARAMS) == schema.known_names()
    d["mlp.hidden"].append(999)
    assert schema.defaults()["mlp.hidden"] == [128]
    assert all(not isinstance(v, tuple) for v in d.values())   # TOML-ready lists


def test_the_default_run_is_small_and_cpu_friendly():
    d = schema.defaults()
    assert d["dataset"] == "digits" and d["model"] == "mlp"
    assert d["device"] == "auto" and d["pretrained"] is False and d["amp"] is False
    assert d["epochs"] <= 20 and d["iterations"] == 0 and d["early_stop.patience"] == 0


ISSUE_NAMES = """
dataset synthetic.shape synthetic.classes data_dir val_split split_seed normalize limit_train
limit_eval augment mixup_alpha model mlp.hidden mlp.dropout cnn.channels cnn.fc cnn.dropout
resnet.blocks resnet.channels vit.depth vit.width vit.patch vit.heads pretrained input_size
optimizer lr weight_decay momentum scheduler sched_interval epochs iterations batch_size
label_smoothing grad_clip amp compile channels_last seed early_stop.patience
early_stop.min_epochs early_stop.metric stop_on_stuck device
""".split()


def test_every_parameter_issue_3_asks_for_exists():
    missing = [n for n in ISSUE_NAMES if lookup(n) is None]
    assert missing == []
    assert set(schema.FREE_GROUPS) == {"optim", "sched", "aug"}


@pytest.mark.parametrize("name, expected", [
    ("dataset", {"mnist", "fashion_mnist", "cifar10", "cifar100", "digits", "synthetic"}),
    ("augment", {"hflip", "crop", "rotation", "affine", "color_jitter", "random_erasing"}),
    ("model", {"mlp", "cnn", "resnet", "vit", "resnet18", "mobilenet_v2", "mobilenet_v3_small",
               "efficientnet_v2_s"}),
    ("sched_interval", {"auto", "epoch", "step"}),
])
def test_choices_are_the_issues(name, expected):
    assert set(PARAMS[name].choices) == expected


def test_every_choice_list_is_its_table():
    assert set(schema.OPTIMIZERS) == set(PARAMS["optimizer"].choices) == set(
        schema.OPTIMIZER_ARGS)
    assert set(schema.SCHEDULERS) == set(PARAMS["scheduler"].choices) == set(
        schema.SCHEDULER_ARGS) | {"none"}
    assert set(schema.AUGMENTATIONS) == set(PARAMS["augment"].choices)
    assert set(schema.MODELS) == set(PARAMS["model"].choices)
    assert set(schema.DATASETS) == set(PARAMS["dataset"].choices) == set(
        schema.DATASET_SHAPES) | {"synthetic"}


def _torch_classes(module, base) -> dict[str, type]:
    """The public classes of a torch module that are `base` or below it, base itself left out."""
    return {name: obj for name, obj in vars(module).items()
            if isinstance(obj, type) and issubclass(obj, base) and obj is not base
            and not name.startswith("_")}


def _torch_args(cls, skip: str) -> dict[str, object]:
    """cls's keyword arguments and defaults as inspect.signature gives them, in the schema's
    spelling (REQUIRED where torch has no default)."""
    import inspect
    return {name: schema.REQUIRED if p.default is inspect.Parameter.empty else p.default
            for name, p in inspect.signature(cls.__init__).parameters.items()
            if name not in ("self", skip)}


def test_every_torch_optimizer_is_offered_with_torchs_own_arguments_and_defaults():
    torch = pytest.importorskip("torch")
    found = _torch_classes(torch.optim, torch.optim.Optimizer)
    assert set(found) == set(schema.OPTIMIZERS.values()), "torch.optim and the schema differ"
    for name, cls_name in schema.OPTIMIZERS.items():
        assert name == re.sub(r"(?<=[a-z])(?=[A-Z])", "_", cls_name).lower() or (
            _squash(name) == _squash(cls_name)), name
        assert schema.OPTIMIZER_ARGS[name] == _torch_args(found[cls_name], "params"), name
        assert list(schema.OPTIMIZER_ARGS[name]) == list(_torch_args(found[cls_name], "params"))


def test_every_torch_scheduler_is_offered_with_torchs_arguments_or_said_why_not():
    torch = pytest.importorskip("torch")
    lr_scheduler = torch.optim.lr_scheduler
    found = _torch_classes(lr_scheduler, lr_scheduler.LRScheduler)
    offered = {cls for cls in schema.SCHEDULERS.values() if cls is not None}
    assert not offered & set(schema.NOT_OFFERED_SCHEDULERS)
    assert set(found) == offered | set(schema.NOT_OFFERED_SCHEDULERS)
    for name, cls_name in schema.SCHEDULERS.items():
        if cls_name is not None:
            assert schema.SCHEDULER_ARGS[name] == _torch_args(found[cls_name], "optimizer"), name


def test_the_parameters_ranges_are_torchs():
    """lr = 0 (a control run) and momentum above 1 are accepted, as torch accepts them; what
    torch refuses (negative values) is refused here too."""
    torch = pytest.importorskip("torch")
    weight = [torch.nn.Parameter(torch.zeros(2, 2))]
    for value in (0, 0.0, 1.5, 10):
        torch.optim.SGD(weight, lr=value, momentum=value)       # torch takes them ...
        torch.optim.RMSprop(weight, lr=value, momentum=value)
        assert check("lr", value) is None and check("momentum", value) is None   # ... so do we
    for value in (-1e-9, -1):
        for name in ("lr", "momentum", "weight_decay"):
            with pytest.raises(ValueError):
                torch.optim.SGD(weight, **{"lr": 0.1, name: value})
            assert check(name, value) is not None, name


def _squash(s):
    return re.sub(r"[^a-z0-9]", "", s.lower())


# --- values: good ones pass ---------------------------------------------------------------------

GOOD = [
    ("batch_size", 1), ("batch_size", 128), ("epochs", 300), ("iterations", 32000),
    ("seed", 0), ("seed", 2**32 - 1), ("limit_train", 0),
    ("lr", 1e-5), ("lr", 0.5), ("lr", 1), ("lr", 0), ("weight_decay", 0),
    ("weight_decay", 5e-4), ("momentum", 0.9), ("momentum", 1), ("momentum", 1.5), ("mlp.dropout", 0.5), ("label_smoothing", 0.1),
    ("mixup_alpha", 0.2), ("vit.mlp_ratio", 4),
    ("amp", True), ("compile", False),
    ("optimizer", "asgd"), ("optimizer", "muon"), ("scheduler", "onecycle"),
    ("data_dir", "/data/torchvision"), ("data_dir", "data"),
    ("mlp.hidden", [1500, 500, 100]), ("mlp.hidden", []), ("mlp.hidden", (2048, 16)),
    ("resnet.blocks", [3, 6, 4, 3]), ("synthetic.shape", [1, 28, 28]),
    ("norm_mean", [0.5071, 0.4865, 0.4409]), ("norm_std", [0.2673, 0.2564, 0.2762]),
    ("norm_mean", [0, 1]),
    ("augment", []), ("augment", ["hflip", "crop"]),
    ("augment", ["hflip", "color_jitter", "rotation", "random_erasing"]),
    ("val_split", 0.2), ("val_split", 0.0), ("val_split", 0), ("val_split", 10000),
    ("early_stop.metric", "val_acc"),
    # free groups take anything here; the trainer checks them against a signature
    ("optim.betas", [0.9, 0.999]), ("optim.centered", True), ("sched.step_size", 4000),
    ("aug.rotation.degrees", [60, 90]), ("aug.crop.padding", 4),
]


@pytest.mark.parametrize("name, value", GOOD)
def test_good_values_pass(name, value):
    assert check(name, value) is None


# --- values: bad ones say what was expected -----------------------------------------------------

BAD = [
    # int: bools and floats are not integers; ranges are inclusive
    ("batch_size", 0, "expected an integer >= 1, got 0"),
    ("batch_size", True, "expected an integer >= 1, got true"),
    ("batch_size", 128.0, "expected an integer >= 1, got 128.0"),
    ("batch_size", "128", 'expected an integer >= 1, got "128"'),
    ("limit_train", -1, "expected an integer >= 0, got -1"),
    ("seed", 2**32, "expected an integer between 0 and 4294967295, got 4294967296"),
    ("seed", None, "expected an integer between 0 and 4294967295, got nothing"),
    # float: ints are numbers, bools, text, nan and inf are not
    ("lr", "fast", 'expected a number >= 0, got "fast"'),
    ("lr", -0.1, "expected a number >= 0, got -0.1"),
    ("lr", False, "expected a number >= 0, got false"),
    ("lr", float("nan"), "expected a number >= 0, got nan"),
    ("lr", float("inf"), "expected a number >= 0, got inf"),
    ("vit.mlp_ratio", 0, "expected a number > 0, got 0"),
    ("weight_decay", -1e-4, "expected a number >= 0, got -0.0001"),
    ("mlp.dropout", 1.5, "expected a number between 0 and 1, got 1.5"),
    ("momentum", [0.9], "expected a number >= 0, got [0.9]"),
    # bool
    ("amp", 1, "expected true or false, got 1"),
    ("amp", "yes", 'expected true or false, got "yes"'),
    # free text
    ("data_dir", "", 'expected a non-empty string, got ""'),
    ("data_dir", 3, "expected a non-empty string, got 3"),
    # int_list
    ("mlp.hidden", 128, "expected a list of integers >= 1, got 128 (write [128])"),
    ("mlp.hidden", [128, 0], "item 2 of 2: expected an integer >= 1, got 0"),
    ("mlp.hidden", [128, 64.0], "item 2 of 2: expected an integer >= 1, got 64.0"),
    ("mlp.hidden", [True], "item 1 of 1: expected an integer >= 1, got true"),
    ("mlp.hidden", "128", 'expected a list of integers >= 1, got "128"'),
    ("synthetic.shape", [3, 32], "expected a list of 3 integers >= 1, got [3, 32] (2 items)"),
    ("resnet.blocks", [], "expected a list of at least 1 integer >= 1, got [] (0 items)"),
    # float_list
    ("norm_std", [0.5, 0], "item 2 of 2: expected a number > 0, got 0"),
    ("norm_mean", 0.5, "expected a list of numbers, got 0.5 (write [0.5])"),
    ("norm_mean", ["a"], 'item 1 of 1: expected a number, got "a"'),
    # fraction_or_count
    ("val_split", 1.0, "expected a fraction in [0, 1) or a count >= 0, got 1.0"),
    ("val_split", -5, "expected a fraction in [0, 1) or a count >= 0, got -5"),
    ("val_split", True, "expected a fraction in [0, 1) or a count >= 0, got true"),
    ("val_split", "20%", 'expected a fraction in [0, 1) or a count >= 0, got "20%"'),
]


@pytest.mark.parametrize("name, value, message", BAD)
def test_bad_values_say_what_was_expected(name, value, message):
    assert check(name, value) == message


OPTIMIZERS = ", ".join(f'"{o}"' for o in PARAMS["optimizer"].choices)
AUGMENTS = ", ".join(f'"{a}"' for a in PARAMS["augment"].choices)


@pytest.mark.parametrize("name, value, suggestion", [
    ("optimizer", "sgdd", "sgd"),
    ("optimizer", "Adam", "adam"),            # case matters; the right case is suggested
    ("optimizer", "SparseAdam", "sparse_adam"),
    ("optimizer", "RMSProp", "rmsprop"),
    ("optimizer", "adamm", "adam"),
    ("scheduler", "CosineAnnealingLR", "cosine"),
    ("scheduler", "StepLR", "step"),
    ("scheduler", "ReduceLROnPlateau", "plateau"),
    ("scheduler", "OneCycleLR", "onecycle"),
    ("scheduler", "CyclicLR", "cyclic"),
    ("scheduler", "ConstantLR", "constant"),
    ("scheduler", "CosineAnnealingWarmRestarts", "cosine_restarts"),
    ("scheduler", "off", "none"),
    ("dataset", "cifar-10", "cifar10"),
    ("dataset", "CIFAR100", "cifar100"),
    ("dataset", "FashionMNIST", "fashion_mnist"),
    ("model", "resnet-18", "resnet18"),
    ("model", "MobileNetV3", "mobilenet_v3_small"),
    ("model", "efficientnet", "efficientnet_v2_s"),
    ("sched_interval", "batch", "step"),
    ("sched_interval", "epochs", "epoch"),
    ("device", "gpu", "cuda"),
    ("device", "cuda:0", "cuda"),
    ("normalize", True, "split"),
    ("early_stop.metric", "val_accuracy", "val_acc"),
])
def test_choices_suggest_what_was_meant(name, value, suggestion):
    message = check(name, value)
    assert message is not None
    assert message.startswith("expected one of ")
    for choice in PARAMS[name].choices:
        assert f'"{choice}"' in message
    shown = f'"{value}"' if isinstance(value, str) else json.dumps(value)
    assert f"; got {shown}" in message
    assert message.endswith(f'(did you mean "{suggestion}"?)')


def test_choice_message_in_full():
    assert check("optimizer", "sgdd") == (
        f'expected one of {OPTIMIZERS}; got "sgdd" (did you mean "sgd"?)')


def test_no_suggestion_when_nothing_is_close():
    message = check("optimizer", "banana")
    assert message == f'expected one of {OPTIMIZERS}; got "banana"'
    assert "did you mean" not in check("optimizer", 3)


def test_each_item_of_a_name_list_is_checked_with_did_you_mean():
    assert check("augment", ["hflip", "flipp"]) == (
        f'item 2 of 2: expected one of {AUGMENTS}; got "flipp" (did you mean "hflip"?)')
    assert check("augment", ["RandomCrop"]).endswith('(did you mean "crop"?)')
    assert check("augment", ["ColorJitter"]).endswith('(did you mean "color_jitter"?)')
    assert check("augment", ["hflip", "crop", "hflip"]) == 'item 3 of 3: "hflip" is listed twice'
    assert check("augment", "hflip") == (
        f'expected a list of names from {AUGMENTS}; got "hflip" (write ["hflip"])')
    assert check("augment", [1]) == f"item 1 of 1: expected one of {AUGMENTS}; got 1"


def test_long_values_are_shortened_in_messages():
    message = check("batch_size", "x" * 500)
    assert message.startswith('expected an integer >= 1, got "xxx')
    assert message.endswith("...") and len(message) < 120


# --- names: free groups and unknown ones --------------------------------------------------------

@pytest.mark.parametrize("name", [
    "optim.betas", "optim.eps", "optim.nesterov", "sched.T_max", "sched.milestones",
    "aug.crop.padding", "aug.rotation.degrees", "aug.color_jitter.brightness",
])
def test_free_names(name):
    assert is_free(name)
    assert lookup(name) is None
    assert check(name, object()) is None


@pytest.mark.parametrize("name", [
    "optim", "sched", "aug", "optim.", "aug..p", "optimizer.betas", "optimm.betas", "lr.x",
    "early_stop", "early_stop.foo", "xoptim.betas", "", "momentum",
])
def test_not_free_names(name):
    assert not is_free(name)


@pytest.mark.parametrize("name", [
    "learning_rate", "batchsize", "optimiser", "early_stop", "early_stop.patiance", "mlp",
    "mlp.hiden", "Optimizer", "", "synthetic", "aug",
])
def test_unknown_names(name):
    assert lookup(name) is None
    assert not is_free(name)
    assert name not in schema.known_names()
    assert check(name, 1) == f'unknown parameter "{name}"'


def test_lookup_finds_known_names():
    p = lookup("early_stop.patience")
    assert p is PARAMS["early_stop.patience"] and p.kind == "int" and p.default == 0
    assert lookup("optimizer").choices[:2] == ("sgd", "adam")


def test_known_names_support_did_you_mean_for_typos():
    import difflib
    names = schema.known_names()
    for typo, meant in [("learning_rate", None), ("batchsize", "batch_size"),
                        ("early_stop.patiance", "early_stop.patience"),
                        ("mlp.hiden", "mlp.hidden"), ("optimiser", "optimizer")]:
        close = difflib.get_close_matches(typo, names, n=1, cutoff=0.6)
        if meant:
            assert close == [meant]


# --- the studies of issue 3 fit the schema ------------------------------------------------------

STUDIES = [
    {"dataset": "mnist", "model": "mlp", "mlp.hidden": [128], "optimizer": "rmsprop",
     "scheduler": "plateau", "epochs": 15, "augment": ["hflip", "rotation", "affine"],
     "aug.rotation.degrees": [60, 90]},
    {"dataset": "cifar10", "model": "cnn", "cnn.channels": [32, 64, 128], "cnn.fc": [256, 128],
     "optimizer": "adamw", "scheduler": "onecycle", "augment": ["color_jitter", "hflip", "crop"],
     "epochs": 5, "batch_size": 128},
    {"dataset": "cifar100", "model": "mobilenet_v2", "val_split": 10000, "split_seed": 0,
     "normalize": "split", "augment": ["hflip", "crop"], "aug.crop.padding": 4, "lr": 0.05,
     "scheduler": "cosine", "epochs": 300, "weight_decay": 5e-4, "mixup_alpha": 0.2},
    {"dataset": "cifar100", "model": "resnet18", "pretrained": True, "optimizer": "adagrad",
     "lr": 1e-3, "optim.lr_decay": 1e-3, "optim.eps": 1e-10, "epochs": 10, "input_size": 224,
     "normalize": "imagenet"},
    {"dataset": "cifar10", "model": "resnet", "resnet.blocks": [3, 6, 4, 3],
     "resnet.channels": [32, 64, 128, 256], "iterations": 32000, "momentum": 0.9,
     "weight_decay": 1e-4, "optimizer": "sgd", "scheduler": "step", "sched_interval": "step",
     "sched.step_size": 4000, "sched.gamma": 0.2, "batch_size": 256},
    {"dataset": "cifar10", "val_split": 0.2, "seed": 2, "epochs": 100, "early_stop.patience": 4,
     "early_stop.min_epochs": 30, "model": "vit", "vit.depth": 6, "vit.width": 30,
     "vit.patch": 4, "vit.heads": 5, "augment": ["hflip", "color_jitter", "rotation",
                                                 "random_erasing"]},
]


@pytest.mark.parametrize("study", range(len(STUDIES)))
def test_the_issues_studies_are_expressible(study):
    problems = {k: check(k, v) for k, v in STUDIES[study].items() if check(k, v) is not None}
    assert problems == {}


# --- describe -----------------------------------------------------------------------------------

def test_describe_lists_every_param_with_kind_default_and_allowed_values():
    text = schema.describe()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert all(line == line.rstrip() for line in lines)
    for name, p in PARAMS.items():
        row = _row(lines, name)
        assert row is not None, name
        assert p.kind in row.split()
    for group in schema.FREE_GROUPS:
        assert f"{group}.*" in text
    for title, _ in schema.SECTIONS:
        assert title in lines
    row = _row(lines, "batch_size")
    assert row.split()[:4] == ["batch_size", "int", "64", ">="]
    row = _row(lines, "dataset")
    assert '"digits"' in row and "mnist" in row
    assert "sparse_adam" in text and "efficientnet_v2_s" in text


def _row(lines, name):
    """A parameter's row: indented under its section title (titles such as "model" are not)."""
    return next((line for line in lines if line.startswith(f"  {name} ")), None)


def test_message_numbers_read_like_toml():
    assert schema._show(1e-4) == "0.0001" and schema._show(True) == "true"
    assert schema._show("a\"b") == '"a\\"b"' and schema._show([1, "x"]) == '[1, "x"]'
    assert schema._show(-math.inf) == "-inf"


# --- rules between parameters agree with torch --------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _run(**values) -> dict:
    return {**schema.defaults(), **values}


@settings(max_examples=60, deadline=None)
@given(width=st.integers(1, 96), heads=st.integers(1, 12))
def test_vit_width_and_heads_are_refused_exactly_when_torch_refuses(width, heads):
    torch = pytest.importorskip("torch")
    violation = schema.check_run(_run(model="vit", **{"vit.width": width, "vit.heads": heads}))
    try:
        torch.nn.MultiheadAttention(width, heads)
        torch_refuses = False
    except AssertionError:
        torch_refuses = True
    assert (violation is not None) == torch_refuses, violation


@settings(max_examples=40, deadline=None)
@given(momentum=st.sampled_from([0, 0.5, 1.5]), dampening=st.sampled_from([0, 0.1]),
       nesterov=st.booleans())
def test_sgd_nesterov_is_refused_exactly_when_torch_refuses(momentum, dampening, nesterov):
    torch = pytest.importorskip("torch")
    run = _run(optimizer="sgd", momentum=momentum,
               **{"optim.dampening": dampening, "optim.nesterov": nesterov})
    try:
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=momentum,
                        dampening=dampening, nesterov=nesterov)
        torch_refuses = False
    except ValueError:
        torch_refuses = True
    assert (schema.check_run(run) is not None) == torch_refuses


@pytest.mark.parametrize("optimizer", sorted(schema.OPTIMIZERS))
def test_every_argument_an_optimizer_takes_is_accepted_and_no_other(optimizer):
    taken = [a for a in schema.OPTIMIZER_ARGS[optimizer] if a not in schema.OWN_OPTIMIZER_ARGS]
    for arg in taken:
        violation = schema.check_run(_run(optimizer=optimizer, **{f"optim.{arg}": None}))
        assert violation is None or "takes no argument" not in violation.message, violation
    violation = schema.check_run(_run(optimizer=optimizer, **{"optim.not_an_argument": 1}))
    if optimizer not in schema.UNTRAINABLE_OPTIMIZERS:
        assert violation.message.startswith(f"optim.not_an_argument: {optimizer} (torch.optim.")
        assert violation.names[0] == "optim.not_an_argument"


@pytest.mark.parametrize("dataset", sorted(schema.DATASET_SHAPES))
def test_given_normalisation_needs_one_number_per_channel_of_the_dataset(dataset):
    channels = schema.DATASET_SHAPES[dataset][0][0]
    per_channel = {"norm_mean": [0.5] * channels, "norm_std": [0.25] * channels}
    assert schema.check_run(_run(dataset=dataset, normalize="given", **per_channel)) is None
    for wrong in ({"norm_mean": [0.5] * (channels + 1)}, {"norm_std": []}):
        violation = schema.check_run(_run(dataset=dataset, normalize="given",
                                          **{**per_channel, **wrong}))
        assert violation is not None and f"({channels} for dataset {dataset})" in violation.message
    # the mean and std are only read for "given"
    assert schema.check_run(_run(dataset=dataset, normalize="split")) is None
