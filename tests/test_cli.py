"""The CLI as a user meets it: real `gridrun` processes, what they print and their exit codes."""
from __future__ import annotations

import csv
import io
import json

import pytest

from tests.conftest import ROOT


def test_version_and_help(cli):
    assert cli("--version", check=0).stdout.startswith("gridrun 0.")
    out = cli("--help", check=0).stdout
    for command in ("queue", "results", "gpus"):
        assert command in out
    queue_help = cli("queue", "--help", check=0).stdout
    for command in ("add", "run", "ls", "show", "status", "cancel", "retry", "stop", "rm", "slots"):
        assert command in queue_help


def test_usage_errors_exit_2_without_traceback(cli):
    res = cli("queue", "ls", "--bogus", check=2)
    assert "No such option: --bogus" in res.stderr and "Traceback" not in res.stderr
    res = cli("queue", "run", "--cpu-slots", "0", check=2)
    assert "--cpu-slots" in res.stderr


def test_dry_run_shows_count_and_varying_table_and_stores_nothing(cli, sweep_file):
    path = sweep_file("dry", "seeds = [0, 1]\n[params]\nepochs = 2\n[grid]\nlr = [0.1, 0.01]\n")
    out = cli("queue", "add", path, "--dry-run", check=0).stdout
    lines = out.splitlines()
    assert lines[0] == "dry: 4 runs"
    assert lines[1].split() == ["#", "lr", "seed"]
    assert [ln.split() for ln in lines[2:6]] == [["1", "0.1", "0"], ["2", "0.1", "1"],
                                                 ["3", "0.01", "0"], ["4", "0.01", "1"]]
    runs = json.loads(cli("queue", "add", path, "--dry-run", "--json", check=0).stdout)
    assert runs == [{"epochs": 2, "lr": lr, "seed": s} for lr in (0.1, 0.01) for s in (0, 1)]
    assert not (cli.home / "gridrun.db").exists()


def test_add_is_idempotent_and_queues_only_new_points(cli, sweep_file):
    path = sweep_file("idem", "[grid]\nlr = [0.1, 0.2]\nseed = [0]\n")
    assert cli("queue", "add", path, check=0).stdout.strip() == "queued 2 runs in sweep idem"
    assert cli("queue", "add", path, check=0).stdout.strip() == \
        "queued 0 runs in sweep idem (2 already queued)"
    path.write_text(path.read_text().replace("[0.1, 0.2]", "[0.1, 0.2, 0.3]"))
    assert cli("queue", "add", path, check=0).stdout.strip() == \
        "queued 1 runs in sweep idem (2 already queued)"
    runs = cli.runs()
    assert [(r["index"], r["params"]["lr"], r["status"]) for r in runs] == [
        (1, 0.1, "queued"), (2, 0.2, "queued"), (3, 0.3, "queued")]


@pytest.mark.parametrize("body, message", [
    ('[grid]\nlr = 0.1\n', ':4:1: grid value "lr" must be a list, got a number'),
    ('[zip]\na = [1, 2]\nb = [1]\n', ':5:1: zip lists have unequal lengths'),
    ('seed = [1]\n', ':3:1: unknown key "seed"'),
    ('[grid]\nlr = [1, 2\nx = 1\n', ":4:6: invalid TOML: unclosed array"),
])
def test_bad_file_is_one_line_exit_2_and_changes_nothing(cli, sweep_file, body, message):
    good = sweep_file("good", "[grid]\nlr = [0.1]\nseed = [0]\n")
    bad = sweep_file("bad", body)
    res = cli("queue", "add", good, bad, check=2)
    first, *rest = res.stderr.splitlines()
    assert first.startswith(f"gridrun: {bad}") and message in first
    assert len(rest) <= 1 and all(line.startswith("hint: ") for line in rest)
    assert "Traceback" not in res.stderr
    assert not (cli.home / "gridrun.db").exists()  # the good file was not queued either
    if "seed" in body:
        assert rest == ['hint: did you mean "seeds"?']


def test_directory_empty_and_binary_files_are_errors(cli, tmp_path):
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00name")
    for path, text in ((tmp_path, "is a directory"), (empty, "empty file"),
                       (binary, "not UTF-8"), (tmp_path / "missing.toml", "no such file")):
        res = cli("queue", "add", path, check=2)
        assert res.stderr.startswith(f"gridrun: {path}: ") and text in res.stderr


def test_ls_filters_and_validates(cli, sweep_file):
    cli("queue", "add", sweep_file("a", "[grid]\nlr = [0.1, 0.2]\nseed = [0]\n"), check=0)
    cli("queue", "add", sweep_file("b", "[grid]\nlr = [0.3]\nseed = [0]\n"), check=0)
    assert [r["sweep"] for r in cli.runs("--sweep", "b")] == ["b"]
    assert cli.runs("--status", "done") == []
    res = cli("queue", "ls", "--status", "runing", check=2)
    assert 'unknown status "runing"' in res.stderr and 'did you mean "running"?' in res.stderr
    res = cli("queue", "ls", "--sweep", "c", check=2)
    assert 'no sweep named "c"' in res.stderr
    table = cli("queue", "ls", check=0).stdout
    assert table.splitlines()[0].split()[:4] == ["id", "sweep", "#", "status"]
    assert "lr=0.2" in table and "queued" in table


def test_show_cancel_retry_on_unknown_ids(cli, sweep_file):
    cli("queue", "add", sweep_file("x", "[grid]\nlr = [0.1]\nseed = [0]\n"), check=0)
    assert "no run with id 99" in cli("queue", "show", "99", check=2).stderr
    assert "no run with id 42" in cli("queue", "cancel", "42", check=2).stderr
    assert "name the runs" in cli("queue", "cancel", check=2).stderr
    assert cli("queue", "cancel", "1", check=0).stdout.strip() == "cancelled 1 run(s)"
    assert cli("queue", "cancel", "1", check=0).stdout.strip() == \
        "nothing to cancel: those runs have already finished"
    out = cli("queue", "retry", "1", check=0).stdout
    assert out.startswith("queued 1 run(s) again")
    assert cli.runs()[0]["attempt"] == 2


def test_results_in_every_format(cli, sweep_file):
    path = sweep_file("res", "seeds = [0, 1]\nmetric = \"accuracy\"\n[grid]\nlr = [0.1, 0.5]\n")
    cli("queue", "run", path, "--cpu-slots", "2", check=0)
    md = cli("results", "res", check=0).stdout.splitlines()  # piped: markdown
    assert md[0] == "| lr | accuracy | n | best epoch | loss | time/run |"
    assert len(md) == 4  # header, rule, two configurations
    # fake_train, 3 epochs: accuracy = min(99, 50 + 10 * epoch * (1 + lr)) - 0.1 * seed,
    # loss = 1 / (epoch * (1 + 10 lr)) + 0.001 * seed; the best row is bold
    # one precision per column (4 digits of its largest value): 0.0561 beside 0.1672
    assert md[2].startswith("| **0.5** | **94.95 ± 0.07** | **2** | **3** | **0.0561** |")
    assert md[3].startswith("| 0.1 | 82.95 ± 0.07 | 2 | 3 | 0.1672 |")
    rows = list(csv.DictReader(io.StringIO(cli("results", "res", "-f", "csv", check=0).stdout)))
    assert [(r["lr"], float(r["mean"]), float(r["std"])) for r in rows] == [
        ("0.5", 94.95, pytest.approx(0.0707107)), ("0.1", 82.95, pytest.approx(0.0707107))]
    data = json.loads(cli("results", "res", "--format", "json", check=0).stdout)
    assert data["metric"] == "accuracy" and [r["n"] for r in data["rows"]] == [2, 2]
    latex = cli("results", "res", "--format", "latex", check=0).stdout
    assert latex.count(r"\\") == 3 and r"\toprule" in latex and r"$\pm$" in latex
    assert r"\textbf{0.5}" in latex
    by_loss = cli("results", "res", "--metric", "loss", "--last", check=0).stdout.splitlines()
    assert by_loss[0].startswith("| lr | loss (last) | n | epoch |")
    assert by_loss[2].startswith("| **0.5** | **0.0561 ± 0.0007** | **2** | **3** | **94.95** |")
    assert 'unknown format "xml"' in cli("results", "res", "-f", "xml", check=2).stderr
    missing = cli("results", "rez", check=2).stderr
    assert 'no sweep named "rez"' in missing and 'did you mean "res"?' in missing
    out = cli("results", "res", "-o", str(cli.cwd / "table.md"), check=0)
    assert (cli.cwd / "table.md").read_text().splitlines() == md
    assert "wrote" in out.stderr


def test_gpus_without_a_gpu(cli):
    out = cli("gpus", check=0).stdout
    assert out.startswith("no GPU: runs go to CPU slots (")
    data = cli.json("gpus")
    assert data["gpus"] == [] and data["nvml"]


def test_gpus_with_fake_devices(cli):
    from tests.conftest import cli_env

    res = cli("gpus", env=cli_env(cli.home, GRIDRUN_FAKE_GPUS="2x16"), check=0)
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["gpu", "name", "memory", "used", "util"]
    assert lines[1].split()[:5] == ["0", "Fake", "GPU", "16.0", "GiB"]
    assert len(lines) == 3


def test_corrupt_store_is_named_and_left_untouched(cli):
    cli.home.mkdir(parents=True)
    db = cli.home / "gridrun.db"
    db.write_bytes(b"this is not sqlite" * 100)
    res = cli("queue", "ls", check=2)
    assert res.stderr.startswith(f"gridrun: {db}: not a gridrun store")
    assert db.read_bytes() == b"this is not sqlite" * 100


def test_internal_errors_show_traceback_only_in_debug(cli, tmp_path):
    from tests.conftest import cli_env

    # a home that is a file: not a user mistake we phrase, so it surfaces as a short error
    bad_home = tmp_path / "file-home"
    bad_home.write_text("")
    res = cli("queue", "ls", env=cli_env(bad_home), check=2)
    assert "cannot create the home folder" in res.stderr and "Traceback" not in res.stderr
    res = cli("queue", "ls", env=cli_env(bad_home, GRIDRUN_DEBUG="1"), check=2)
    assert "Traceback" in res.stderr


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first_block = text.split("```")[1]
    assert "make run" in first_block and "make test" in first_block
