"""engine.matrix: a user's run-matrix TOML -> runs, and every way such a file can be wrong.

Each test writes a study file the way a user would (in tmp_path) and checks the exact runs, or
the exact error: a GridrunError whose one line starts with `file:line[:col]`, says what was
expected, and carries a "did you mean" hint where one helps (DESIGN.md, "Run matrix TOML" and
"Edges"; issue 2). Tests marked xfail(strict=True) document bugs found in engine/matrix.py or
engine/tomlpos.py; they start passing (and so fail as XPASS) once the bug is fixed.
"""
from __future__ import annotations

import json
import math
import re
import sys
import textwrap
from pathlib import Path

import pytest

from gridrun.engine import matrix
from gridrun.engine.errors import GridrunError
from gridrun.engine.matrix import (MAX_RUNS, RunSpec, draw_samples, flatten, render_command, slug,
                           unflatten, varying_keys)

PY = sys.executable


def toml_str(s: str) -> str:
    """A TOML basic string for any text (JSON's escapes are valid TOML)."""
    return json.dumps(s)


def command_line(*args: str) -> str:
    """`command = [...]` running this interpreter (an absolute path, so it always resolves)."""
    return "command = [" + ", ".join(toml_str(a) for a in (PY, *args)) + "]\n"


def write(folder: Path, text: str, name: str = "study.toml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(path: Path, **kw) -> matrix.SweepSpec:
    return matrix.load(str(path), **kw)


def params(spec: matrix.SweepSpec) -> list[dict]:
    return [r.params for r in spec.runs]


def pos(path: Path, needle: str, nth: int = 0) -> tuple[int, int]:
    """1-based (line, column) of the nth occurrence of `needle` in the file, as written."""
    seen = 0
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        col = line.find(needle)
        if col >= 0:
            if seen == nth:
                return i + 1, col + 1
            seen += 1
    raise AssertionError(f"{needle!r} not in {path}")


def fails(path: Path, *, line: int | None, col: int | None = None, has: tuple[str, ...] = (),
          hint: str | None = None, **kw) -> GridrunError:
    """load() must raise one GridrunError: `path:line[:col]: ...` with `has` in it."""
    with pytest.raises(GridrunError) as info:
        load(path, **kw)
    err = info.value
    text = str(err)
    assert err.exit_code == 2
    assert "\n" not in text, text
    assert err.path == str(path)
    if line is None:
        assert err.line is None, text
        assert text.startswith(f"{path}: "), text
    else:
        assert err.line == line, text
        prefix = f"{path}:{line}:" if col is None else f"{path}:{line}:{col}: "
        assert text.startswith(prefix), text
        if col is not None:
            assert err.col == col, text
    for part in has:
        assert part in text, (part, text)
    if hint is not None:
        assert err.hint is not None and hint in err.hint, (hint, err.hint)
    return err


# ----------------------------------------------------------------------------------------------
# Expansion


def test_params_merged_into_every_grid_point_in_product_order(tmp_path):
    path = write(tmp_path, f"""\
        name = "prod"
        {command_line("train.py", "--opt", "{optimizer}", "--lr", "{lr}")}
        [params]
        dataset = "mnist"
        epochs = 5

        [grid]
        optimizer = ["sgd", "adam"]
        lr = [0.1, 0.01, 0.001]
        """)
    spec = load(path)
    assert params(spec) == [
        {"dataset": "mnist", "epochs": 5, "optimizer": o, "lr": lr}
        for o in ("sgd", "adam") for lr in (0.1, 0.01, 0.001)
    ]
    assert spec.varying == ("optimizer", "lr")
    assert spec.name == "prod"
    assert spec.command == (PY, "train.py", "--opt", "{optimizer}", "--lr", "{lr}")
    assert all(isinstance(r, RunSpec) and r.stage == 1 for r in spec.runs)
    # a run's key is canonical: same params in another order -> same key
    assert spec.runs[0].key == matrix.canonical(dict(reversed(list(spec.runs[0].params.items()))))


def test_three_key_grid_first_key_is_outermost(tmp_path):
    path = write(tmp_path, f"""\
        {command_line("{a}{b}{c}")}
        [grid]
        a = [1, 2]
        b = ["x", "y"]
        c = [true, false]
        """)
    runs = params(load(path, check_program=False))
    assert [(r["a"], r["b"], r["c"]) for r in runs] == [
        (1, "x", True), (1, "x", False), (1, "y", True), (1, "y", False),
        (2, "x", True), (2, "x", False), (2, "y", True), (2, "y", False)]


def test_zip_lists_vary_together(tmp_path):
    path = write(tmp_path, f"""\
        {command_line("t.py", "{optimizer}", "{lr}")}
        [params]
        epochs = 3
        [zip]
        optimizer = ["adam", "sgd", "rmsprop"]
        lr = [1e-3, 1e-1, 1e-2]
        """)
    assert params(load(path)) == [
        {"epochs": 3, "optimizer": "adam", "lr": 1e-3},
        {"epochs": 3, "optimizer": "sgd", "lr": 1e-1},
        {"epochs": 3, "optimizer": "rmsprop", "lr": 1e-2},
    ]


def test_grid_times_zip_grid_outer_zip_inner(tmp_path):
    path = write(tmp_path, f"""\
        {command_line("t.py")}
        [grid]
        wd = [0.0, 0.0005]
        [zip]
        optimizer = ["adam", "sgd"]
        lr = [0.001, 0.1]
        """)
    assert params(load(path)) == [
        {"wd": 0.0, "optimizer": "adam", "lr": 0.001},
        {"wd": 0.0, "optimizer": "sgd", "lr": 0.1},
        {"wd": 0.0005, "optimizer": "adam", "lr": 0.001},
        {"wd": 0.0005, "optimizer": "sgd", "lr": 0.1},
    ]


SAMPLE_STUDY = """\
    name = "{name}"
    {command}
    [sample]
    count = 40
    lr = {{ log_uniform = [1e-5, 1e-1] }}
    dropout = {{ uniform = [0.0, 0.5] }}
    layers = {{ int_uniform = [2, 6] }}
    batch_size = {{ choice = [64, 128, 256] }}
    """


def sample_spec(tmp_path: Path, name: str, file: str = "s.toml") -> matrix.SweepSpec:
    return load(write(tmp_path, SAMPLE_STUDY.format(name=name, command=command_line("t.py")),
                      file))


def test_sample_draws_within_bounds_with_the_right_types(tmp_path):
    spec = sample_spec(tmp_path, "search")
    runs = params(spec)
    assert len(runs) == 40
    assert spec.varying == ("lr", "dropout", "layers", "batch_size")
    for r in runs:
        assert set(r) == {"lr", "dropout", "layers", "batch_size"}
        assert isinstance(r["lr"], float) and 1e-5 <= r["lr"] <= 1e-1
        assert isinstance(r["dropout"], float) and 0.0 <= r["dropout"] <= 0.5
        assert type(r["layers"]) is int and 2 <= r["layers"] <= 6
        assert r["batch_size"] in (64, 128, 256)
        # rounded to 6 significant digits, so tables and folder names stay readable
        assert float(f"{r['lr']:.6g}") == r["lr"]
    # 40 draws hit every choice and more than two integers
    assert {r["batch_size"] for r in runs} == {64, 128, 256}
    assert len({r["layers"] for r in runs}) >= 4
    assert len({r["dropout"] for r in runs}) == 40


def test_log_uniform_spreads_over_the_decades(tmp_path):
    lrs = sorted(r["lr"] for r in params(sample_spec(tmp_path, "search")))
    decades = {math.floor(math.log10(x)) for x in lrs}
    # uniform in log space: 40 draws over 4 decades land in at least 3 of them, and the
    # median is near 1e-3 (a plain uniform draw would put almost all of them above 1e-2)
    assert len(decades) >= 3
    assert sum(x < 1e-2 for x in lrs) >= 15
    assert 1e-4 < lrs[len(lrs) // 2] < 1e-2


def test_sample_is_deterministic_for_a_name_and_differs_for_another(tmp_path):
    first = params(sample_spec(tmp_path / "a", "search"))
    again = params(sample_spec(tmp_path / "b", "search", "other_file.toml"))
    other = params(sample_spec(tmp_path / "c", "search2"))
    assert first == again
    assert first != other
    assert [r["lr"] for r in first] != [r["lr"] for r in other]


def test_draw_samples_directly():
    dists = {"x": {"uniform": [1.0, 2.0]}, "k": {"int_uniform": [0, 3]},
             "c": {"choice": ["a", [1, 2]]}}
    a = draw_samples("n", 25, dists)
    assert a == draw_samples("n", 25, dists)
    assert a != draw_samples("m", 25, dists)
    assert len(a) == 25 and all(set(p) == {"x", "k", "c"} for p in a)
    assert all(1.0 <= p["x"] <= 2.0 and 0 <= p["k"] <= 3 and p["c"] in ("a", [1, 2]) for p in a)
    assert {p["k"] for p in a} == {0, 1, 2, 3}
    assert draw_samples("n", 0, dists) == []
    # a degenerate range is allowed and always gives its one value
    assert {p["v"] for p in draw_samples("n", 5, {"v": {"uniform": [0.25, 0.25]}})} == {0.25}


def test_sample_times_grid_pairs_every_grid_point_with_the_same_draws(tmp_path):
    path = write(tmp_path, f"""\
        name = "mix"
        {command_line("t.py")}
        [grid]
        model = ["mlp", "cnn"]
        [sample]
        count = 5
        lr = {{ log_uniform = [1e-4, 1e-1] }}
        """)
    runs = params(load(path))
    assert len(runs) == 10
    assert [r["model"] for r in runs] == ["mlp"] * 5 + ["cnn"] * 5
    assert [r["lr"] for r in runs[:5]] == [r["lr"] for r in runs[5:]]
    assert [r["lr"] for r in runs[:5]] == [p["lr"] for p in draw_samples(
        "mix", 5, {"lr": {"log_uniform": [1e-4, 1e-1]}})]


def test_nested_sample_table_becomes_a_dotted_name(tmp_path):
    path = write(tmp_path, f"""\
        {command_line("t.py")}
        [sample]
        count = 3
        [sample.optim]
        eps = {{ log_uniform = [1e-8, 1e-6] }}
        """)
    runs = params(load(path))
    assert len(runs) == 3
    assert all(set(r) == {"optim.eps"} and 1e-8 <= r["optim.eps"] <= 1e-6 for r in runs)


def test_include_is_merged_over_params_and_appended(tmp_path):
    path = write(tmp_path, f"""\
        {command_line("t.py")}
        [params]
        dataset = "mnist"
        lr = 0.1
        [grid]
        optimizer = ["sgd", "adam"]
        [[include]]
        optimizer = "asgd"
        lr = 0.01
        [[include]]
        optimizer = "rmsprop"
        momentum = 0.9
        """)
    spec = load(path)
    assert params(spec) == [
        {"dataset": "mnist", "lr": 0.1, "optimizer": "sgd"},
        {"dataset": "mnist", "lr": 0.1, "optimizer": "adam"},
        {"dataset": "mnist", "lr": 0.01, "optimizer": "asgd"},
        {"dataset": "mnist", "lr": 0.1, "optimizer": "rmsprop", "momentum": 0.9},
    ]
    assert spec.varying == ("optimizer", "lr", "momentum")


def test_exclude_drops_runs_matching_all_its_keys(tmp_path):
    path = write(tmp_path, f"""\
        {command_line("t.py")}
        [grid]
        optimizer = ["sgd", "adam", "rmsprop"]
        scheduler = ["step", "exponential", "plateau"]
        [[exclude]]
        optimizer = "sgd"
        scheduler = "plateau"
        [[exclude]]
        optimizer = "rmsprop"
        """)
    runs = params(load(path))
    pairs = [(r["optimizer"], r["scheduler"]) for r in runs]
    assert pairs == [("sgd", "step"), ("sgd", "exponential"),
                     ("adam", "step"), ("adam", "exponential"), ("adam", "plateau")]


def test_exclude_matches_lists_nested_keys_and_seeds(tmp_path):
    path = write(tmp_path, f"""\
        seeds = [0, 1]
        {command_line("t.py")}
        [grid.optim]
        betas = [[0.9, 0.999], [0.5, 0.999]]
        [[exclude]]
        optim.betas = [0.5, 0.999]
        seed = 1
        """)
    assert params(load(path)) == [
        {"optim.betas": [0.9, 0.999], "seed": 0},
        {"optim.betas": [0.9, 0.999], "seed": 1},
        {"optim.betas": [0.5, 0.999], "seed": 0},
    ]


def test_seeds_multiply_every_run_including_includes(tmp_path):
    path = write(tmp_path, f"""\
        seeds = [7, 0, 3]
        {command_line("t.py", "--seed", "{seed}")}
        [grid]
        lr = [0.1, 0.2]
        [[include]]
        lr = 0.5
        """)
    spec = load(path)
    assert params(spec) == [{"lr": lr, "seed": s} for lr in (0.1, 0.2, 0.5) for s in (7, 0, 3)]
    assert spec.seeds == (7, 0, 3)
    assert spec.varying == ("lr", "seed")


def test_nested_tables_become_dotted_names(tmp_path):
    path = write(tmp_path, f"""\
        {command_line("t.py", "{optim.betas}", "{mlp.hidden}")}
        [params.mlp]
        hidden = [128, 64]
        [grid.optim]
        betas = [[0.9, 0.999], [0.5, 0.999]]
        """)
    spec = load(path)
    assert params(spec) == [
        {"mlp.hidden": [128, 64], "optim.betas": [0.9, 0.999]},
        {"mlp.hidden": [128, 64], "optim.betas": [0.5, 0.999]},
    ]
    assert spec.varying == ("optim.betas",)
    assert render_command(spec.command, spec.runs[1].params) == [
        PY, "t.py", "[0.5,0.999]", "[128,64]"]


def test_dotted_keys_and_nested_tables_are_the_same_parameter(tmp_path):
    dotted = write(tmp_path, f"""\
        {command_line("t.py")}
        [grid]
        mlp.dropout = [0.0, 0.5]
        """, "dotted.toml")
    nested = write(tmp_path, f"""\
        {command_line("t.py")}
        [grid.mlp]
        dropout = [0.0, 0.5]
        """, "nested.toml")
    inline = write(tmp_path, f"""\
        {command_line("t.py")}
        grid = {{ mlp = {{ dropout = [0.0, 0.5] }} }}
        """, "inline.toml")
    expected = [{"mlp.dropout": 0.0}, {"mlp.dropout": 0.5}]
    assert params(load(dotted)) == params(load(nested)) == params(load(inline)) == expected


def test_duplicates_are_removed_keeping_the_first(tmp_path):
    path = write(tmp_path, f"""\
        {command_line("t.py")}
        [params]
        epochs = 2
        [grid]
        lr = [0.1, 0.2, 0.1]
        [[include]]
        lr = 0.2
        [[include]]
        epochs = 2
        lr = 0.3
        [[include]]
        lr = 0.3
        """)
    assert params(load(path)) == [{"epochs": 2, "lr": 0.1}, {"epochs": 2, "lr": 0.2},
                                  {"epochs": 2, "lr": 0.3}]


def test_varying_lists_only_keys_that_differ_in_file_order(tmp_path):
    path = write(tmp_path, f"""\
        seeds = [0, 1]
        {command_line("t.py")}
        [params]
        dataset = "cifar10"
        [grid]
        scheduler = ["step", "cosine"]
        model = ["resnet"]
        optimizer = ["sgd", "adam"]
        """)
    spec = load(path)
    assert len(spec.runs) == 8
    assert spec.varying == ("scheduler", "optimizer", "seed")


def test_varying_keys_helper():
    runs = (RunSpec({"a": 1, "b": [1, 2], "c": "x"}), RunSpec({"a": 1, "b": [1, 3], "c": "x"}),
            RunSpec({"a": 1, "b": [1, 2], "d": True}))
    assert varying_keys(["d", "a", "b", "c"], runs) == ("d", "b", "c")
    assert varying_keys(["a"], runs) == ()
    assert varying_keys(["a", "b"], runs[:1]) == ()
    # 1 and 1.0 and true are different values
    assert varying_keys(["v"], (RunSpec({"v": 1}), RunSpec({"v": True}))) == ("v",)


def test_varying_is_ordered_grid_then_zip_whatever_the_file_order(tmp_path):
    path = write(tmp_path, f"""\
        {command_line("t.py")}
        [zip]
        lr = [0.1, 0.2]
        [grid]
        model = ["a", "b"]
        """)
    assert load(path).varying == ("model", "lr")


@pytest.mark.parametrize("file_name, expected", [
    ("study.toml", "study"),
    ("My Study_v2.TOML", "my-study_v2"),
    ("Résumé (final).toml", "r-sum-final"),
    ("cifar10.lr-sweep.toml", "cifar10-lr-sweep"),
    ("--ABC--.toml", "abc"),
])
def test_name_defaults_to_the_reduced_file_stem(tmp_path, file_name, expected):
    path = write(tmp_path, command_line("t.py") + "[grid]\nx = [1, 2]\n", file_name)
    assert load(path).name == expected


def test_name_that_cannot_be_derived_is_an_error(tmp_path):
    path = write(tmp_path, command_line("t.py") + "[grid]\nx = [1]\n", "%%%.toml")
    fails(path, line=None, has=("cannot derive a sweep name",), hint='name = "my-sweep"')


def test_workdir_is_relative_to_the_file_and_defaults_to_its_folder(tmp_path, monkeypatch):
    (tmp_path / "proj" / "code").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)  # not the file's folder
    path = write(tmp_path / "proj", 'workdir = "code"\n' + command_line("t.py")
                 + "[grid]\nx = [1]\n")
    spec = load(path)
    assert spec.workdir == str((tmp_path / "proj" / "code").resolve())
    assert spec.source == str(path.resolve())
    plain = write(tmp_path / "proj", command_line("t.py") + "[grid]\nx = [1]\n", "plain.toml")
    assert load(Path("proj/plain.toml")).workdir == str((tmp_path / "proj").resolve())
    assert load(plain).source == str(plain.resolve())


def test_missing_workdir_is_an_error_at_its_line(tmp_path):
    path = write(tmp_path, 'name = "w"\nworkdir = "nope"\n' + command_line("t.py")
                 + "[grid]\nx = [1]\n")
    fails(path, line=2, col=1, has=('workdir "nope" is not a directory',))


def test_sweep_level_settings_are_kept(tmp_path):
    path = write(tmp_path, f"""\
        name = "s1"
        description = "MLP on MNIST"
        metric = "val_acc"
        mode = "min"
        {command_line("t.py")}
        [grid]
        x = [1, 2]
        [resources]
        gpus = 0
        gpu_mem_gb = 1.5
        timeout_min = 0.5
        retries = 2
        priority = -3
        [parse]
        patterns = ['top1 (?P<val_acc>[0-9.]+)']
        """)
    spec = load(path)
    assert (spec.description, spec.metric, spec.mode) == ("MLP on MNIST", "val_acc", "min")
    assert spec.resources == matrix.Resources(gpus=0, gpu_mem_gb=1.5, timeout_min=0.5,
                                              retries=2, priority=-3)
    assert spec.parse_patterns == ("top1 (?P<val_acc>[0-9.]+)",)
    assert spec.to_json()["resources"]["timeout_min"] == 0.5
    assert json.loads(json.dumps(spec.to_json()))["command"] == [PY, "t.py"]
    default = load(write(tmp_path, command_line("t.py") + "[grid]\nx=[1]\n", "d.toml"))
    assert default.resources == matrix.Resources(gpus=None, gpu_mem_gb=None, timeout_min=None,
                                                 retries=0, priority=0)
    assert (default.mode, default.metric, default.description) == ("max", None, "")


# ----------------------------------------------------------------------------------------------
# The built-in trainer and realistic studies

DESIGN_EXAMPLE = """\
    name = "mnist-optimizers"        # sweep name: [a-z0-9_-]+, unique in the home
    description = "MLP-128 on MNIST: optimizers x schedulers"
    metric = "val_acc"               # the headline metric for tables and 'best'
    mode = "max"                     # or "min"
    seeds = [0, 1, 2]                # each configuration once per seed (parameter `seed`)

    [params]                         # fixed for every run; nested tables become dotted names
    dataset = "mnist"
    model = "mlp"
    epochs = 5
    batch_size = 128

    [grid]                           # Cartesian product; every value is a list
    optimizer = ["sgd", "adam", "rmsprop"]
    scheduler = ["step", "exponential", "plateau"]

    [zip]                            # lists of equal length that vary together
    # optimizer = ["adam", "sgd"]
    # lr = [1e-3, 1e-1]

    [sample]                         # random search: `count` draws, seeded by the sweep name
    # count = 20

    [[include]]                      # extra runs, merged over [params]
    optimizer = "asgd"

    [[exclude]]                      # drop every run that matches all the keys given
    optimizer = "sgd"
    scheduler = "plateau"

    [resources]
    gpus = 1
    gpu_mem_gb = 2
    timeout_min = 120
    retries = 0
    priority = 0

    [parse]                          # optional: a user script's own print format
    # patterns = ['top1 (?P<val_acc>[0-9.]+)']

    [[stages]]
    grid.lr = [0.1, 0.3, 0.5]
    """


def test_design_example_loads_with_the_builtin_trainer(tmp_path):
    spec = load(write(tmp_path, DESIGN_EXAMPLE))
    runs = params(spec)
    # (9 grid points + 1 include) x 3 seeds - (sgd, plateau) x 3 seeds
    assert len(runs) == 27
    assert spec.command is None
    assert spec.name == "mnist-optimizers"
    assert spec.varying == ("optimizer", "scheduler", "seed")
    assert not any(r.get("optimizer") == "sgd" and r.get("scheduler") == "plateau" for r in runs)
    assert [r for r in runs if r["optimizer"] == "asgd"] == [
        {"dataset": "mnist", "model": "mlp", "epochs": 5, "batch_size": 128,
         "optimizer": "asgd", "seed": s} for s in (0, 1, 2)]
    assert spec.stages == ({"grid": {"lr": [0.1, 0.3, 0.5]}},)
    assert spec.resources == matrix.Resources(gpus=1, gpu_mem_gb=2, timeout_min=120)


def test_three_optimizers_three_schedulers_three_seeds_is_27(tmp_path):
    path = write(tmp_path, """\
        seeds = [0, 1, 2]
        [params]
        dataset = "digits"
        epochs = 2
        [grid]
        optimizer = ["sgd", "adam", "rmsprop"]
        scheduler = ["step", "cosine", "plateau"]
        """)
    runs = params(load(path))
    assert len(runs) == 27
    assert len({json.dumps(r, sort_keys=True) for r in runs}) == 27
    assert runs[0] == {"dataset": "digits", "epochs": 2, "optimizer": "sgd",
                       "scheduler": "step", "seed": 0}
    assert runs[-1] == {"dataset": "digits", "epochs": 2, "optimizer": "rmsprop",
                        "scheduler": "plateau", "seed": 2}


def test_realistic_study_with_zip_include_exclude_and_seeds(tmp_path):
    path = write(tmp_path, """\
        name = "cifar-lr"
        seeds = [0, 1]
        [params]
        dataset = "cifar10"
        epochs = 30
        augment = ["hflip", "crop"]
        [params.aug.crop]
        padding = 4
        [grid]
        optimizer = ["sgd", "adam"]
        lr = [0.1, 0.01, 0.001]
        [zip]
        model = ["cnn", "resnet"]
        batch_size = [128, 256]
        [[include]]
        optimizer = "adamw"
        lr = 0.001
        model = "vit"
        [[include]]
        optimizer = "sgd"
        lr = 0.05
        momentum = 0.9
        model = "resnet18"
        [[exclude]]
        optimizer = "adam"
        lr = 0.1
        """)
    spec = load(path)
    runs = params(spec)
    # (2 x 3 grid x 2 zip + 2 includes) x 2 seeds = 28, minus adam@0.1 (2 zip x 2 seeds) = 24
    assert len(runs) == 24
    assert sum(r["model"] == "vit" for r in runs) == 2
    assert all(r["aug.crop.padding"] == 4 and r["augment"] == ["hflip", "crop"] for r in runs)
    assert {(r["model"], r.get("batch_size")) for r in runs} == {
        ("cnn", 128), ("resnet", 256), ("vit", None), ("resnet18", None)}
    assert spec.varying == ("optimizer", "lr", "model", "batch_size", "momentum", "seed")


def test_random_search_with_seeds_counts(tmp_path):
    path = write(tmp_path, """\
        name = "rs"
        seeds = [0, 1, 2]
        [params]
        dataset = "digits"
        [sample]
        count = 10
        lr = { log_uniform = [1e-4, 1e-1] }
        mlp.dropout = { uniform = [0.0, 0.5] }
        batch_size = { choice = [32, 64, 128] }
        """)
    runs = params(load(path))
    assert len(runs) == 30
    assert len({(r["lr"], r["mlp.dropout"]) for r in runs}) == 10


def test_params_only_study_is_one_run(tmp_path):
    path = write(tmp_path, """\
        [params]
        dataset = "digits"
        """)
    assert params(load(path)) == [{"dataset": "digits"}]


def test_include_only_study_runs_exactly_its_includes(tmp_path):
    path = write(tmp_path, """\
        [params]
        dataset = "digits"
        [[include]]
        optimizer = "sgd"
        [[include]]
        optimizer = "adam"
        """)
    assert params(load(path)) == [{"dataset": "digits", "optimizer": "sgd"},
                                  {"dataset": "digits", "optimizer": "adam"}]


def test_builtin_accepts_free_groups_and_nested_names(tmp_path):
    path = write(tmp_path, """\
        [params]
        model = "mlp"
        mlp.hidden = [256, 128]
        scheduler = "step"
        [params.sched]
        step_size = 5
        [grid.optim]
        betas = [[0.9, 0.999], [0.5, 0.999]]
        [grid.aug.rotation]
        degrees = [10, [60, 90]]
        """)
    spec = load(path)
    assert len(spec.runs) == 4
    assert spec.varying == ("optim.betas", "aug.rotation.degrees")


def test_unknown_builtin_parameter_suggests_the_right_name(tmp_path):
    path = write(tmp_path, """\
        [params]
        dataset = "mnist"
        [grid]
        lr = [0.1, 0.01]
          optimiser = ["sgd", "adam"]
        """)
    err = fails(path, line=5, col=3, has=('unknown parameter "optimiser"', "built-in trainer"),
                hint='did you mean "optimizer"?')
    assert err.message.startswith('unknown parameter "optimiser"')


def test_unknown_builtin_parameter_in_an_include_points_at_that_include(tmp_path):
    path = write(tmp_path, """\
        [grid]
        lr = [0.1]
        [[include]]
        lr = 0.2
        [[include]]
        lr = 0.3
        batchsize = 64
        """)
    fails(path, line=7, col=1, has=('unknown parameter "batchsize"',),
          hint='did you mean "batch_size"?')


def test_unknown_builtin_parameter_with_nothing_close_says_use_a_command(tmp_path):
    path = write(tmp_path, "[grid]\nzzzzqqq = [1]\n")
    fails(path, line=2, col=1, has=('unknown parameter "zzzzqqq"',), hint="command = [...]")


def test_bad_builtin_value_says_what_is_expected(tmp_path):
    path = write(tmp_path, """\
        [params]
        dataset = "mnist"
        [grid]
        optimizer = ["adam", "sgdd"]
        """)
    err = fails(path, line=4, col=1, has=('"optimizer"', "expected one of", '"sgd"', '"sgdd"'))
    assert 'did you mean "sgd"?' in str(err) + (err.hint or "")


@pytest.mark.parametrize("line, fragment", [
    ('lr = -0.1', 'expected a number >= 0'),
    ('epochs = 2.5', 'expected an integer >= 1'),
    ('amp = "yes"', "expected true or false"),
    ('augment = ["hflip", "hflip"]', "listed twice"),
    ('dataset = "CIFAR10"', 'did you mean "cifar10"?'),
])
def test_bad_builtin_param_values(tmp_path, line, fragment):
    path = write(tmp_path, f"[grid]\noptim.eps = [1e-8]\n[params]\n{line}\n")
    fails(path, line=4, col=1, has=(fragment,))


def test_builtin_seeds_out_of_range_are_an_error(tmp_path):
    path = write(tmp_path, "seeds = [-1, 0]\n[grid]\nlr = [0.1]\n")
    fails(path, line=1, col=1, has=("seed",))


def test_builtin_sample_values_are_checked(tmp_path):
    path = write(tmp_path, "[sample]\ncount = 3\nlr = { uniform = [-1.0, -0.5] }\n")
    fails(path, line=3, col=1, has=('"lr"', ">= 0"))


# Rules between parameters: refused at `queue add`, at the value that breaks them, in any run
# of grid x zip x sample x include, with nothing stored.
CROSS = [
    ("vit-heads", """\
        [params]
        model = "vit"
        vit.width = 64
        [grid]
        vit.heads = [4, 3]
        """, "vit.heads = [", "vit.width = 64 is not a multiple of vit.heads = 3"),
    ("resnet-stages", """\
        [params]
        model = "resnet"
        resnet.blocks = [2, 2, 2]
        [zip]
        resnet.channels = [[16, 32, 64], [16, 32, 64, 128]]
        epochs = [1, 2]
        """, "resnet.channels = [", "resnet.blocks has 3 stages but resnet.channels has 4"),
    ("given-norm", """\
        [params]
        dataset = "cifar10"
        normalize = "given"
        norm_mean = [0.5, 0.5, 0.5]
        [grid]
        lr = [0.1]
        """, "norm_mean", 'normalize = "given" needs norm_mean and norm_std with one number per '
                          "channel (3 for dataset cifar10); got 3 and 0"),
    ("optim-arg", """\
        [grid]
        lr = [0.1, 0.01]
        [params]
        optimizer = "sgd"
        optim.nesterv = true
        """, "optim.nesterv", 'optim.nesterv: sgd (torch.optim.SGD) takes no argument "nesterv" '
                              '(did you mean "nesterov"?)'),
    ("optim-arg-of-one-optimizer", """\
        [params]
        optim.betas = [0.9, 0.99]
        [grid]
        optimizer = ["adam", "sgd"]
        """, "optimizer = [", 'optim.betas: sgd (torch.optim.SGD) takes no argument "betas"'),
    ("sched-arg-in-include", """\
        [grid]
        lr = [0.1]
        [[include]]
        scheduler = "cosine"
        [[include]]
        scheduler = "step"
        sched.T_max = 10
        """, "sched.T_max", 'sched.T_max: step (torch.optim.lr_scheduler.StepLR) takes no '
                            'argument "T_max"'),
    ("sched-without-scheduler", """\
        [params]
        sched.gamma = 0.5
        """, "sched.gamma", 'sched.gamma: scheduler = "none" takes no arguments'),
    ("sparse-adam", """\
        [grid]
        optimizer = ["adam", "sparse_adam"]
        """, "optimizer", "optimizer sparse_adam (torch.optim.SparseAdam) needs sparse gradients"),
    ("sampled-heads", """\
        [params]
        model = "vit"
        vit.width = 60
        [sample]
        count = 8
        vit.heads = { choice = [4, 7] }
        """, "vit.heads", "vit.width = 60 is not a multiple of vit.heads = 7"),
    ("pretrained-own-model", """\
        [params]
        model = "cnn"
        pretrained = true
        """, "pretrained = true", "pretrained = true needs a torchvision model"),
    ("optim-lr", """\
        [params]
        optim.lr = 0.1
        """, "optim.lr", "optim.lr: set `lr` itself, not optim.lr"),
]


@pytest.mark.parametrize("name, body, at, message", CROSS, ids=[c[0] for c in CROSS])
def test_a_rule_between_parameters_is_refused_at_queue_add(cli, tmp_path, name, body, at,
                                                           message):
    path = write(tmp_path, f'name = "{name}"\n' + textwrap.dedent(body))
    line, col = pos(path, at)
    res = cli("queue", "add", path)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert f"{path.name}:{line}:{col}: {message}" in res.stderr, res.stderr
    assert cli.runs() == []


def test_what_torch_accepts_is_queued(cli, tmp_path):
    """lr = 0 (a control run), momentum above 1, optimizer arguments of each optimizer chosen,
    and a sweep whose every run keeps the rules."""
    path = write(tmp_path, """\
        name = "loose"
        [params]
        model = "vit"
        vit.width = 60
        scheduler = "cyclic"
        sched.step_size_up = 4
        [grid]
        lr = [0.0, 0.1]
        momentum = [0.9, 1.5]
        [[include]]
        optimizer = "adam"
        optim.betas = [0.9, 0.99]
        vit.heads = 6
        [[include]]
        optimizer = "muon"
        optim.adjust_lr_fn = "match_rms_adamw"
        """)
    cli("queue", "add", path, check=0)
    runs = cli.runs()
    assert len(runs) == 6


# ----------------------------------------------------------------------------------------------
# Errors: reading the file


def test_malformed_toml_keeps_tomllib_position(tmp_path):
    path = write(tmp_path, 'name = "x"\n[grid]\nlr = = [1]\n')
    err = fails(path, line=3, col=6, has=("invalid TOML", "invalid value"))
    assert "(at line" not in str(err)


@pytest.mark.parametrize("text, line, col, fragment", [
    ('[grid]\nlr = [0.1, 0.2\nwd = [1]\n', 2, 6, "unclosed array"),   # where it opened
    ('[grid]\nlr = [1]\nlr = [2]\n', 3, 9, "cannot overwrite a value"),
    ('name = "unterminated\n', 1, 21, "illegal character"),
])
def test_malformed_toml_variants(tmp_path, text, line, col, fragment):
    fails(write(tmp_path, text), line=line, col=col, has=("invalid TOML: " + fragment,))


def test_directory_is_an_error(tmp_path):
    folder = tmp_path / "study.toml"
    folder.mkdir()
    fails(folder, line=None, has=("is a directory", "expected a TOML file"))


def test_missing_file_is_an_error(tmp_path):
    fails(tmp_path / "nope.toml", line=None, has=("no such file",))


@pytest.mark.parametrize("content", [b"", b"   \n\n\t\n"])
def test_empty_file_is_an_error(tmp_path, content):
    path = tmp_path / "empty.toml"
    path.write_bytes(content)
    fails(path, line=None, has=("empty file", "expected a TOML run matrix"), hint="[grid]")


def test_non_utf8_file_is_an_error(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "caf\u00e9"\n'.encode("latin-1"))
    fails(path, line=None, has=("not UTF-8", "byte 11", "expected a TOML file"))
    binary = tmp_path / "model.toml"
    binary.write_bytes(b"\x80\x03PK\x00\xff\xfe")
    fails(binary, line=None, has=("not UTF-8", "byte 0"))


def test_path_is_shown_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "[grid]\nlr = 1\n", "rel.toml")
    with pytest.raises(GridrunError) as info:
        matrix.load("rel.toml")
    assert str(info.value).startswith("rel.toml:2:1: ")


# ----------------------------------------------------------------------------------------------
# Errors: the matrix


def test_grid_value_not_a_list(tmp_path):
    path = write(tmp_path, command_line("t.py") + '[grid]\nopt = ["sgd"]\n  lr = 0.1\n')
    fails(path, line=4, col=3, has=('grid value "lr" must be a list, got a number',),
          hint="write lr = [0.1], or move it to [params]")


def test_grid_string_value_not_a_list(tmp_path):
    path = write(tmp_path, command_line("t.py") + '[grid]\noptimizer = "adam"\n')
    fails(path, line=3, col=1, has=("must be a list, got a string",),
          hint='write optimizer = ["adam"]')


def test_empty_grid_list(tmp_path):
    path = write(tmp_path, command_line("t.py") + '[grid]\na = [1]\nb = []\n')
    fails(path, line=4, col=1, has=('grid value "b" is an empty list',))


def test_grid_value_of_tables_is_refused(tmp_path):
    path = write(tmp_path, command_line("t.py") + '[grid]\na = [1]\nb = [{ x = 1 }]\n')
    fails(path, line=4, col=1, has=('value of "b" is a table', "expected a string, number"))


def test_zip_lists_of_unequal_length(tmp_path):
    path = write(tmp_path, command_line("t.py") + """\
[zip]
optimizer = ["adam", "sgd", "rmsprop"]
lr = [1e-3, 1e-1, 1e-2]
momentum = [0.0, 0.9]
""")
    fails(path, line=5, col=1,
          has=('zip lists have unequal lengths', '"optimizer" has 3', '"momentum" has 2'))


def test_zip_value_not_a_list(tmp_path):
    path = write(tmp_path, command_line("t.py") + '[zip]\na = [1, 2]\nb = 3\n')
    fails(path, line=4, col=1, has=('zip value "b" must be a non-empty list',))


def test_unknown_top_level_key_suggests_seeds(tmp_path):
    path = write(tmp_path, 'name = "x"\nseed = [0, 1]\n' + command_line("t.py")
                 + "[grid]\nlr = [1]\n")
    err = fails(path, line=2, col=1, has=('unknown key "seed"', "expected one of", "seeds"),
                hint='did you mean "seeds"?')
    assert err.hint == 'did you mean "seeds"?'


def test_unknown_section_suggests_the_right_one(tmp_path):
    path = write(tmp_path, command_line("t.py") + "[gird]\nlr = [1]\n")
    with pytest.raises(GridrunError) as info:
        load(path)
    assert 'unknown key "gird"' in str(info.value)
    assert info.value.hint == 'did you mean "grid"?'


@pytest.mark.parametrize("section", ["[gird]\nlr = 1", "[include]\nlr = 1", "gird.lr = [1]"])
def test_unknown_section_error_has_its_line(tmp_path, section):
    path = write(tmp_path, 'name = "u"\n' + command_line("t.py") + f"{section}\n[grid]\nlr = [1]\n")
    fails(path, line=3, col=1)


def test_unknown_resources_key(tmp_path):
    path = write(tmp_path, command_line("t.py") + "[grid]\nx = [1]\n[resources]\ngpus = 1\n"
                 "gpu = 2\n")
    fails(path, line=6, col=1, has=('unknown key "gpu" in [resources]', "gpus, gpu_mem_gb"),
          hint='did you mean "gpus"?')


@pytest.mark.parametrize("entry, fragment", [
    ("gpus = -1", "gpus must be an integer >= 0, got -1"),
    ("gpus = 1.5", "gpus must be an integer >= 0, got 1.5"),
    ("gpus = true", "gpus must be an integer >= 0, got true"),
    ("timeout_min = 0", "timeout_min must be > 0"),
    ('timeout_min = "2h"', 'timeout_min must be a number >= 0, got "2h"'),
    ("timeout_min = nan", "timeout_min must be a number >= 0"),
    ("gpu_mem_gb = 0", "gpu_mem_gb must be > 0"),
    ("gpu_mem_gb = -2.5", "gpu_mem_gb must be a number >= 0"),
    ("retries = -1", "retries must be an integer >= 0, got -1"),
    ("retries = 1.0", "retries must be an integer >= 0"),
    ('priority = "high"', "priority must be an integer"),
])
def test_bad_resource_values(tmp_path, entry, fragment):
    path = write(tmp_path, command_line("t.py") + f"[grid]\nx = [1]\n[resources]\n\n{entry}\n")
    fails(path, line=6, col=1, has=(fragment,))


def test_resources_must_be_a_table(tmp_path):
    path = write(tmp_path, 'name = "r"\nresources = 3\n' + command_line("t.py"))
    fails(path, line=2, col=1, has=("[resources] must be a table",))


def test_command_placeholder_no_parameter_provides(tmp_path):
    path = write(tmp_path, 'name = "c"\n' + command_line("train.py", "--lr", "{lrr}")
                 + "[grid]\nlr = [0.1]\n")
    fails(path, line=2, col=1, has=('command uses "{lrr}", which no parameter provides',),
          hint='did you mean "lr"?')


def test_command_placeholders_that_are_fine(tmp_path):
    path = write(tmp_path, 'seeds = [1]\n' + command_line(
        "train.py", "--out={run_dir}", "{run_id}", "{sweep}", "{index}", "{attempt}",
        "--seed", "{seed}", "--json={{\"lr\": {lr}}}", "{{not_a_param}}", "{optim.eps}")
        + "[grid]\nlr = [0.1]\n[params.optim]\neps = 1e-8\n")
    spec = load(path)
    values = {**spec.runs[0].params, "run_dir": "/r/0-lr=0.1", "run_id": 5, "sweep": "study",
              "index": 0, "attempt": 1}
    assert render_command(spec.command, values) == [
        PY, "train.py", "--out=/r/0-lr=0.1", "5", "study", "0", "1", "--seed", "1",
        '--json={"lr": 0.1}', "{not_a_param}", "1e-08"]


def test_seed_placeholder_needs_seeds(tmp_path):
    path = write(tmp_path, command_line("train.py", "{seed}") + "[grid]\nlr = [0.1]\n")
    fails(path, line=1, col=1, has=('"{seed}"',))


def test_placeholder_must_be_provided_for_every_run(tmp_path):
    path = write(tmp_path, command_line("t.py", "{momentum}") + """\
[grid]
lr = [0.1, 0.2]
[[include]]
lr = 0.3
momentum = 0.9
""")
    try:
        spec = load(path)
    except GridrunError:
        return
    for run in spec.runs:
        render_command(spec.command, run.params)


def test_command_must_be_a_list_of_strings(tmp_path):
    path = write(tmp_path, 'name = "c"\ncommand = "python train.py"\n[grid]\nx = [1]\n')
    fails(path, line=2, col=1, has=("command must be a non-empty list of strings",),
          hint='command = ["python"')
    path = write(tmp_path, 'command = []\n[grid]\nx = [1]\n', "empty_cmd.toml")
    fails(path, line=1, col=1, has=("non-empty list of strings",))


def test_command_program_must_resolve(tmp_path):
    path = write(tmp_path, 'name = "c"\n\ncommand = ["no-such-program-gridrun-xyz", "{x}"]\n'
                 "[grid]\nx = [1]\n")
    fails(path, line=3, col=1,
          has=('command program "no-such-program-gridrun-xyz" not found on PATH or as a file',))
    assert params(load(path, check_program=False)) == [{"x": 1}]
    missing_abs = write(tmp_path, f'command = [{toml_str(str(tmp_path / "nope.sh"))}]\n',
                        "abs.toml")
    fails(missing_abs, line=1, col=1, has=("not found on PATH or as a file",))


def test_command_program_relative_to_the_workdir_resolves(tmp_path):
    (tmp_path / "proj" / "code" / "bin").mkdir(parents=True)
    (tmp_path / "proj" / "code" / "bin" / "train.sh").write_text("#!/bin/sh\n")
    good = write(tmp_path / "proj", 'workdir = "code"\ncommand = ["./bin/train.sh", "{x}"]\n'
                 "[grid]\nx = [1]\n")
    spec = load(good)
    assert spec.command == ("./bin/train.sh", "{x}")
    # relative to the workdir, not to the file's folder or the current directory
    bad = write(tmp_path / "proj", 'command = ["./bin/train.sh", "{x}"]\n[grid]\nx = [1]\n',
                "bad.toml")
    fails(bad, line=1, col=1, has=('"./bin/train.sh" not found',))
    on_path = write(tmp_path, 'command = ["sh", "-c", "echo {x}"]\n[grid]\nx = [1]\n', "p.toml")
    assert load(on_path).command[0] == "sh"


def test_exclude_naming_an_unknown_key(tmp_path):
    path = write(tmp_path, command_line("t.py") + """\
[grid]
optimizer = ["sgd", "adam"]
scheduler = ["step", "cosine"]
[[exclude]]
optimizer = "sgd"
[[exclude]]
optimizer = "adam"
sheduler = "step"
""")
    fails(path, line=9, col=1, has=('[[exclude]] names "sheduler", which no run has',),
          hint='did you mean "scheduler"?')


def test_exclude_removing_every_run(tmp_path):
    path = write(tmp_path, command_line("t.py") + """\
[params]
dataset = "mnist"
[grid]
optimizer = ["sgd"]
[[exclude]]
dataset = "mnist"
""")
    fails(path, line=6, col=1, has=("[[exclude]] removes every run",), hint="match all of its keys")


@pytest.mark.parametrize("name", ["My Sweep", "a/b", "../x", "UPPER", "caf\u00e9", "a.b", "", " "])
def test_bad_sweep_name(tmp_path, name):
    path = write(tmp_path, command_line("t.py") + f"name = {toml_str(name)}\n[grid]\nx = [1]\n")
    fails(path, line=2, col=1, has=(f'invalid sweep name "{name}"', "expected lowercase letters"))


def test_sweep_name_with_a_trailing_newline_is_refused(tmp_path):
    path = write(tmp_path, 'name = "abc\\n"\n' + command_line("t.py") + "[grid]\nx = [1]\n")
    fails(path, line=1, col=1, has=("invalid sweep name",))


def test_sweep_name_must_be_a_string(tmp_path):
    path = write(tmp_path, "name = 3\n" + command_line("t.py"))
    fails(path, line=1, col=1, has=("name must be a string, got an integer",))


def test_key_in_both_params_and_grid(tmp_path):
    path = write(tmp_path, command_line("t.py") + """\
[params]
lr = 0.1
[grid]
wd = [0, 1]
lr = [0.1, 0.2]
""")
    fails(path, line=6, col=1, has=('"lr" is given in both [params] and [grid]',))


def test_key_in_both_grid_and_zip(tmp_path):
    path = write(tmp_path, command_line("t.py") + '[grid]\nlr = [1]\n[zip]\nlr = [2]\n')
    fails(path, line=5, col=1, has=('"lr" is given in both [grid] and [zip]',))


@pytest.mark.parametrize("table", ["grid", "params"])
def test_seed_in_a_table_plus_seeds(tmp_path, table):
    value = "[0, 1]" if table == "grid" else "0"
    path = write(tmp_path, f'name = "s"\nseeds = [0, 1, 2]\n' + command_line("t.py")
                 + f"[{table}]\nseed = {value}\n")
    fails(path, line=2, col=1, has=(f'"seed" is in [{table}] and seeds = [...] is set too',),
          hint="keep one of them")


@pytest.mark.parametrize("value, fragment", [
    ("[0, 0]", "seeds has a duplicate"),
    ("[0, 1.5]", "seeds must be a list of integers"),
    ("3", "seeds must be a list of integers"),
    ("[true]", "seeds must be a list of integers"),
])
def test_bad_seeds(tmp_path, value, fragment):
    path = write(tmp_path, command_line("t.py") + f"\nseeds = {value}\n")
    fails(path, line=3, col=1, has=(fragment,))


@pytest.fixture
def no_expanding(monkeypatch):
    """The run count must be known from the sizes alone: expanding a 10^9-run file would never
    end, so here expanding at all fails the test."""
    def expand(*args, **kwargs):
        raise AssertionError("expanded the runs before checking their count")
    monkeypatch.setattr(matrix._Builder, "expand", expand)


def test_over_max_runs_fails_before_expanding(tmp_path, no_expanding):
    values = "[" + ", ".join(str(i) for i in range(1000)) + "]"
    path = write(tmp_path, command_line("t.py") + f"[grid]\na = {values}\nb = {values}\n"
                 f"c = {values}\n")
    fails(path, line=2, col=1, has=("expands to 1,000,000,000 runs, over the limit of 100,000",),
          hint="--max-runs")
    fails(path, line=2, col=1, has=("over the limit of 999,999,999",), max_runs=999_999_999)


def test_max_runs_counts_includes_and_seeds(tmp_path):
    path = write(tmp_path, "seeds = [0, 1]\n" + command_line("t.py")
                 + "[grid]\nx = [1, 2]\n[[include]]\nx = 3\n")
    assert len(load(path, max_runs=6).runs) == 6
    fails(path, line=3, col=1, has=("expands to 6 runs, over the limit of 5",), max_runs=5)
    assert MAX_RUNS == 100_000


def test_default_limit_is_100000(tmp_path, no_expanding):
    a = "[" + ", ".join(map(str, range(400))) + "]"
    b = "[" + ", ".join(map(str, range(251))) + "]"
    path = write(tmp_path, command_line("t.py") + f"[grid]\na = {a}\nb = {b}\n")
    fails(path, line=2, col=1, has=("expands to 100,400 runs",))


def test_huge_sample_count_fails_before_drawing(tmp_path, no_expanding):
    path = write(tmp_path, command_line("t.py") + "[sample]\ncount = 1000000000\n"
                 "lr = { uniform = [0, 1] }\n")
    with pytest.raises(GridrunError) as info:
        load(path)
    assert "expands to 1,000,000,000 runs" in str(info.value)


@pytest.mark.parametrize("pattern, fragment, hint", [
    ("top1 (?P<val_acc>[0-9.]+", "invalid regular expression", None),
    ("top1 ([0-9.]+)", "has no named group", "(?P<val_acc>"),
])
def test_bad_parse_pattern(tmp_path, pattern, fragment, hint):
    path = write(tmp_path, command_line("t.py") + "[grid]\nx = [1]\n[parse]\n"
                 f"patterns = ['loss (?P<loss>[0-9.]+)', {toml_str(pattern)}]\n")
    fails(path, line=5, col=1, has=(fragment,), hint=hint)


def test_unknown_parse_key(tmp_path):
    path = write(tmp_path, command_line("t.py") + "[parse]\npattern = ['(?P<a>1)']\n")
    fails(path, line=3, col=1, has=('unknown key "pattern" in [parse]',),
          hint='did you mean "patterns"?')


def test_nul_in_a_grid_value(tmp_path):
    path = write(tmp_path, command_line("t.py") + '[grid]\nx = [1]\ntag = ["ok", "a\\u0000b"]\n')
    fails(path, line=4, col=1, has=('value of "tag" holds a NUL character',))


def test_nul_in_a_params_value(tmp_path):
    path = write(tmp_path, command_line("t.py") + '[grid]\nx = [1]\n[params]\n'
                 'data_dir = "data/\\u0000"\n')
    fails(path, line=5, col=1, has=('value of "data_dir" holds a NUL character',))


def test_nul_in_an_include_points_at_the_include(tmp_path):
    path = write(tmp_path, command_line("t.py") + '[grid]\nx = [1]\n[[include]]\n'
                 'x = "a\\u0000"\n')
    fails(path, line=5, col=1, has=("NUL",))


def test_nul_in_a_command_argument(tmp_path):
    path = write(tmp_path, command_line("t.py", "a\x00b") + "[grid]\nx = [1]\n")
    fails(path, line=1, col=1, has=("NUL",))


@pytest.mark.parametrize("body, line, col, fragment", [
    ("[sample]\nlr = { uniform = [0, 1] }\n", 2, 1, "[sample] needs count = N (an integer >= 1)"),
    ("[sample]\ncount = 0\nlr = { uniform = [0, 1] }\n", 3, 1, "[sample] needs count = N"),
    ("[sample]\ncount = true\n", 3, 1, "[sample] needs count = N"),
    ("[sample]\ncount = 2\nlr = { normal = [0, 1] }\n", 4, 1,
     'sample "lr" must be one of'),
    ("[sample]\ncount = 2\nlr = { uniform = [1, 0] }\n", 4, 1,
     'sample "lr": uniform needs [low, high] numbers with low <= high'),
    ("[sample]\ncount = 2\nlr = { uniform = [0, \"1\"] }\n", 4, 1, "needs [low, high] numbers"),
    ("[sample]\ncount = 2\nlr = { log_uniform = [0, 1] }\n", 4, 1,
     'sample "lr": log_uniform needs low > 0'),
    ("[sample]\ncount = 2\nlr = { choice = [] }\n", 4, 1,
     'sample "lr": choice needs a non-empty list'),
    ("[sample]\ncount = 2\nlr = 0.1\n", 4, 1, 'sample "lr" must be one of { uniform = [a, b] }'),
    ('mode = "maximize"\n', 2, 1, 'mode must be "max" or "min", got "maximize"'),
    ("metric = 3\n", 2, 1, "metric must be a string, got an integer"),
    ('description = ["a"]\n', 2, 1, "description must be a string, got a list"),
    ("[params]\nx = 1979-05-27\n", 3, 1, 'value of "x" is date, expected a string, number'),
    ("[params]\nx = [{ a = 1 }]\n", 3, 1, 'value of "x" is a list, expected a string, number'),
    ("include = 3\n", 2, 1, "include must be written as [[include]] tables"),
    ("grid = [1, 2]\n", 2, 1, "[grid] must be a table"),
])
def test_other_bad_values(tmp_path, body, line, col, fragment):
    path = write(tmp_path, command_line("t.py") + body)
    fails(path, line=line, col=col, has=(fragment,))


def test_stages_need_a_metric(tmp_path):
    path = write(tmp_path, command_line("t.py") + "[grid]\nlr = [1]\n[[stages]]\n"
                 "grid.lr = [0.1]\n")
    with pytest.raises(GridrunError) as info:
        load(path)
    assert "[[stages]] keep the best of each stage, which needs metric" in str(info.value)
    ok = write(tmp_path, 'metric = "val_acc"\n' + command_line("t.py")
               + "[grid]\nlr = [1]\n[[stages]]\ngrid.lr = [0.1]\n[[stages]]\ngrid.wd = [0]\n",
               "ok.toml")
    assert load(ok).stages == ({"grid": {"lr": [0.1]}}, {"grid": {"wd": [0]}})


def test_unknown_stage_key(tmp_path):
    path = write(tmp_path, 'metric = "m"\n' + command_line("t.py")
                 + "[grid]\nlr = [1]\n[[stages]]\ngird = { lr = [0.1] }\n")
    fails(path, line=6, col=1, has=('unknown key "gird" in [[stages]]',),
          hint='did you mean "grid"?')


@pytest.mark.parametrize("body", ["[zip]\nd = [1979-05-27, 1980-01-01]\n",
                                  "[grid]\nx = [1]\n[[include]]\nd = 1979-05-27\n",
                                  "[grid]\nx = [[1979-05-27]]\n"])
def test_dates_outside_params_are_a_clear_error(tmp_path, body):
    path = write(tmp_path, command_line("t.py") + body)
    with pytest.raises(GridrunError):
        load(path)


def test_zip_of_tables_is_refused_like_grid(tmp_path):
    path = write(tmp_path, command_line("t.py") + "[zip]\nx = [{ a = 1 }, { a = 2 }]\n")
    fails(path, line=3, col=1, has=("is a table",))


def test_int_uniform_with_fractional_bounds_stays_in_bounds(tmp_path):
    path = write(tmp_path, command_line("t.py") + "[sample]\ncount = 50\n"
                 "k = { int_uniform = [0.5, 2.5] }\n")
    try:
        runs = params(load(path))
    except GridrunError:
        return  # refusing non-integer bounds is fine too
    assert all(0.5 <= r["k"] <= 2.5 for r in runs)


# ----------------------------------------------------------------------------------------------
# Positions of keys in sub-tables and around multi-line arrays (tomlpos)


def test_error_in_a_subtable_without_parent_header_points_at_the_key(tmp_path):
    path = write(tmp_path, command_line("t.py") + "[grid.optim]\nalpha = [1]\nbetas = 0.9\n")
    fails(path, line=4, col=1, has=('grid value "optim.betas" must be a list',))


def test_error_in_a_subtable_after_its_parent_points_at_the_key(tmp_path):
    path = write(tmp_path, command_line("t.py") + "[grid]\nx = [1]\n[grid.optim]\nbetas = 0.9\n")
    fails(path, line=5, col=1, has=('grid value "optim.betas" must be a list',))


def test_error_after_a_multiline_array_points_at_the_key(tmp_path):
    path = write(tmp_path, command_line("t.py") + """\
[grid]
betas = [
  [0.9, 0.999],
  [0.5, 0.999]
]
lr = 5
""")
    fails(path, line=7, col=1, has=('grid value "lr" must be a list',))


# ----------------------------------------------------------------------------------------------
# slug, render_command, flatten / unflatten

SAFE = re.compile(r"^[A-Za-z0-9._=-]+$")


@pytest.mark.parametrize("value", [
    "../../etc/passwd", "a/b", "/abs/path", "..", ".", "...", "caf\u00e9 \u2603 \u4e2d\u6587",
    "x;rm -rf /", "$(reboot)", "a\\b", "a\x00b", "\n", "-rf", "a" * 500, "." * 100, "é" * 100,
    "../" * 40, [0.9, 0.999], {"k": "../v"}, True, 1e-5, "",
])
def test_slug_is_safe_for_any_value(value):
    s = slug({"p": value, "lr": 0.1}, ["p", "lr"])
    assert SAFE.match(s), s
    assert len(s) <= 80
    assert ".." not in s
    assert "/" not in s and "\\" not in s
    assert s not in (".", "..")
    assert not s.startswith(("-", "."))


def test_slug_examples():
    assert slug({"optimizer": "adam", "lr": 0.001, "seed": 1}, ("optimizer", "lr", "seed")) \
        == "optimizer=adam_lr=0.001_seed=1"
    assert slug({"lr": 0.1, "x": 1}, ["x"]) == "x=1"
    assert slug({"lr": 0.1}, []) == "run"
    assert slug({"lr": 0.1}, ["missing"]) == "run"
    assert slug({"flag": True, "betas": [0.9, 0.999]}, ["flag", "betas"]) \
        == "flag=true_betas=-0.9-0.999"
    assert slug({"p": "../../etc/passwd"}, ["p"]) == "p=.-.-etc-passwd"
    assert slug({"p": "a/b"}, ["p"]) == "p=a-b"
    assert slug({"p": "\u00e9t\u00e9"}, ["p"]) == "p=-t"
    assert slug({"p": "..."}, ["p"]) == "p="
    assert slug({"p": "/"}, ["p"]) == "p="
    assert slug({"p": "x" * 200}, ["p"]) == "p=" + "x" * 78


def test_render_command_keeps_each_value_one_argument():
    cmd = ("python", "train.py", "--name", "{name}", "--x={x}", "{betas}", "{flag}", "{off}",
           "{lr}", "{{literal}}", "{{{lr}}}", "{n}")
    values = {"name": "my run; rm -rf / && echo 'hi' \"there\"", "x": "$(whoami) `id`",
              "betas": [0.9, 0.999], "flag": True, "off": False, "lr": 1e-05,
              "n": {"a": [1, "b"]}}
    argv = render_command(cmd, values)
    assert argv == ["python", "train.py", "--name", "my run; rm -rf / && echo 'hi' \"there\"",
                    "--x=$(whoami) `id`", "[0.9,0.999]", "true", "false", "1e-05",
                    "{literal}", "{1e-05}", '{"a":[1,"b"]}']
    assert len(argv) == len(cmd)


def test_render_command_does_not_expand_twice_or_interpret_backslashes():
    argv = render_command(("{a}", "{b}"), {"a": "{b}", "b": r"\1 \g<0> \n"})
    assert argv == ["{b}", r"\1 \g<0> \n"]
    assert render_command(("{a}{a}",), {"a": "x y"}) == ["x yx y"]
    assert render_command(("plain",), {}) == ["plain"]


def test_render_command_for_every_run_of_a_study(tmp_path):
    path = write(tmp_path, "seeds = [0, 1]\n" + command_line(
        "train.py", "--tag", "{tag}", "--betas", "{optim.betas}", "--flag", "{flag}",
        "--seed", "{seed}", "--out", "{run_dir}") + """\
[grid]
tag = ["a b", "c;d", "../../x"]
flag = [true]
[grid.optim]
betas = [[0.9, 0.999]]
""")
    spec = load(path)
    assert len(spec.runs) == 6
    assert spec.varying == ("tag", "seed")
    argvs = [render_command(spec.command, {**r.params, "run_dir": "R"}) for r in spec.runs]
    assert argvs[2] == [PY, "train.py", "--tag", "c;d", "--betas", "[0.9,0.999]", "--flag",
                        "true", "--seed", "0", "--out", "R"]
    assert [a[3] for a in argvs] == ["a b", "a b", "c;d", "c;d", "../../x", "../../x"]
    slugs = [slug(r.params, spec.varying) for r in spec.runs]
    assert slugs == ["tag=a-b_seed=0", "tag=a-b_seed=1", "tag=c-d_seed=0", "tag=c-d_seed=1",
                     "tag=.-.-x_seed=0", "tag=.-.-x_seed=1"]


def test_flatten_and_unflatten():
    nested = {"a": 1, "optim": {"betas": [0.9, 0.999], "eps": 1e-8},
              "aug": {"crop": {"padding": 4}, "hflip": {"p": 0.5}}}
    flat = flatten(nested)
    assert flat == {"a": 1, "optim.betas": [0.9, 0.999], "optim.eps": 1e-8,
                    "aug.crop.padding": 4, "aug.hflip.p": 0.5}
    assert list(flat) == ["a", "optim.betas", "optim.eps", "aug.crop.padding", "aug.hflip.p"]
    assert unflatten(flat) == nested
    assert flatten({"x": {"y": 1}}, "grid.") == {"grid.x.y": 1}
    assert flatten({"d": {"uniform": [0, 1]}}, keep=lambda v: "uniform" in v) == \
        {"d": {"uniform": [0, 1]}}
    assert flatten({}) == {} and unflatten({}) == {}
    # a name that is also another's prefix keeps its flat name rather than losing a value
    assert unflatten({"a": 1, "a.b": 2}) == {"a": 1, "a.b": 2}


def test_unflatten_never_drops_a_value():
    for params in ({"a.b": 2, "a": 1}, {"a.b.c": 2, "a.b": 1}):
        assert sorted(flatten(unflatten(params)).values()) == sorted(params.values())
