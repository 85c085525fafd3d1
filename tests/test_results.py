"""Results tables, exports, figures and staged studies, on a real store filled two ways: by
synthetic metric histories written through the store's own API, and by real short runs."""
from __future__ import annotations

import csv
import io
import json
import struct
import sys
from pathlib import Path

import pytest

from gridrun.engine import results, table_format
from gridrun.engine.matrix import load
from gridrun.engine.store import Progress, Store
from tests.conftest import FAKE_TRAIN

PY = json.dumps(sys.executable)
TRAIN = json.dumps(str(FAKE_TRAIN))


def filled_store(tmp_path: Path, histories: dict[tuple, list[dict]], status=None) -> Store:
    """A sweep over optimizer x lr x seed whose runs have the given metric histories."""
    path = tmp_path / "study.toml"
    path.write_text('name = "study"\nmetric = "val_acc"\nseeds = [0, 1, 2]\n'
                    'command = ["python3", "t.py"]\n[grid]\noptimizer = ["sgd", "adam"]\n'
                    "lr = [0.1, 0.01]\n")
    store = Store(tmp_path / "home")
    store.add_sweep(load(path))
    for run in store.runs(sweep="study"):
        key = (run.params["optimizer"], run.params["lr"], run.params["seed"])
        rows = histories.get(key, [])
        store.save_progress([Progress(run.id, "report", rows, rows[-1] if rows else {},
                                      {k for r in rows for k in r}, set())])
        store.mark_running(run.id, "cpu", 1, None)
        store.finish(run.id, (status or {}).get(key, "done"), 0, None)
    return store


def history(*val_accs: float, loss: float = 0.5) -> list[dict]:
    return [{"epoch": i + 1, "val_acc": v, "train_loss": loss / (i + 1)}
            for i, v in enumerate(val_accs)]


@pytest.fixture
def store(tmp_path):
    # best val_acc per run: sgd/0.1 -> 0.90, 0.80, 0.85 (mean 0.85, std 0.05); adam/0.01 -> 0.95 x3
    h = {("sgd", 0.1, 0): history(0.5, 0.9, 0.7), ("sgd", 0.1, 1): history(0.8, 0.6),
         ("sgd", 0.1, 2): history(0.85), ("adam", 0.01, 0): history(0.95),
         ("adam", 0.01, 1): history(0.95), ("adam", 0.01, 2): history(0.90, 0.95),
         ("sgd", 0.01, 0): history(0.2), ("adam", 0.1, 0): history(0.1)}
    return filled_store(tmp_path, h, status={("adam", 0.1, 1): "failed"})


def row_for(table, **config):
    return next(r for r in table.rows if r.config == config)


def test_mean_and_std_over_seeds_match_a_hand_computation(store):
    table = results.build(store, "study")
    assert table.metric == "val_acc" and table.mode == "max" and table.keys == ["optimizer", "lr"]
    sgd = row_for(table, optimizer="sgd", lr=0.1)
    assert sgd.headline.mean == pytest.approx(0.85) and sgd.headline.std == pytest.approx(0.05)
    assert sgd.headline.n == 3
    assert sgd.best_epoch == pytest.approx((2 + 1 + 1) / 3)
    # final train_loss: 0.5/3, 0.5/2, 0.5/1
    assert sgd.columns["train_loss"].mean == pytest.approx((0.5 / 3 + 0.25 + 0.5) / 3)
    assert [r.config for r in table.rows][:2] == [{"optimizer": "adam", "lr": 0.01},
                                                  {"optimizer": "sgd", "lr": 0.1}]
    # the failed run is shown, not dropped; runs with no metric sort last
    adam01 = row_for(table, optimizer="adam", lr=0.1)
    assert adam01.statuses == {"done": 2, "failed": 1} and adam01.headline.n == 1


def test_last_instead_of_best_and_min_mode(store):
    last = results.build(store, "study", pick="last")
    assert row_for(last, optimizer="sgd", lr=0.1).headline.mean == pytest.approx(
        (0.7 + 0.6 + 0.85) / 3)
    by_loss = results.build(store, "study", metric="train_loss")
    assert by_loss.mode == "min"
    means = [r.headline.mean for r in by_loss.rows]
    assert means == sorted(means)


def test_group_by_gives_a_marginal_table_and_where_filters(store):
    table = results.build(store, "study", group_by=["optimizer"])
    assert table.keys == ["optimizer"]
    adam = row_for(table, optimizer="adam")
    assert adam.headline.n == 4  # three at lr=0.01, one at lr=0.1 (two have no metric)
    assert adam.headline.mean == pytest.approx((0.95 + 0.95 + 0.95 + 0.1) / 4)
    only_sgd = results.build(store, "study", where={"optimizer": "sgd"})
    assert only_sgd.keys == ["lr"] and len(only_sgd.rows) == 2
    with pytest.raises(Exception, match='--group-by "optimiser"') as info:
        results.build(store, "study", group_by=["optimiser"])
    assert info.value.hint == 'did you mean "optimizer"?'


def test_every_format_parses_back(store):
    table = results.build(store, "study")
    md = table_format.render([table], "md").splitlines()
    assert len(md) == 2 + len(table.rows) == 6
    assert md[0].startswith("| optimizer | lr | val_acc (%) | n | best epoch | train_loss |")
    assert md[2].startswith("| **adam** | **0.01** | **95.00 ± 0.00** | **3** |")
    assert md[3].startswith("| sgd | 0.1 | 85.00 ± 5.00 | 3 | 1.3 | 0.3056 |")
    rows = list(csv.DictReader(io.StringIO(table_format.render([table], "csv"))))
    assert len(rows) == 4 and rows[1]["optimizer"] == "sgd"
    assert float(rows[1]["mean"]) == pytest.approx(0.85) and rows[1]["n"] == "3"
    data = json.loads(table_format.render([table], "json"))
    assert [r["mean"] for r in data["rows"]][:2] == [pytest.approx(0.95), pytest.approx(0.85)]
    tex = table_format.render([table], "latex")
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 1
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    body = tex.replace(r"\{", "").replace(r"\}", "")
    assert body.count("{") == body.count("}")
    assert all(line.count(" & ") == md[0].count(" | ") for line in tex.splitlines()
               if line.endswith(r"\\"))


def test_twin_configurations_are_flagged(tmp_path):
    same = history(0.5, 0.75)
    store = filled_store(tmp_path, {("sgd", 0.1, 0): same, ("adam", 0.1, 0): same,
                                    ("sgd", 0.01, 0): history(0.5, 0.7)})
    table = results.build(store, "study")
    flagged = {results.config_text(r.config): r.flags for r in table.rows if r.flags}
    assert flagged == {"optimizer=sgd lr=0.1": ["same_metrics_as:optimizer=adam lr=0.1"],
                       "optimizer=adam lr=0.1": ["same_metrics_as:optimizer=sgd lr=0.1"]}


def test_twins_compare_done_runs_only(tmp_path):
    # two configurations whose runs both crashed after the same first epoch are not twins
    crashed = history(0.5)
    store = filled_store(tmp_path, {("sgd", 0.1, 0): crashed, ("adam", 0.1, 0): crashed},
                         status={("sgd", 0.1, 0): "failed", ("adam", 0.1, 0): "failed"})
    table = results.build(store, "study")
    assert not any(r.flags for r in table.rows)
    assert results.twin_runs(store.runs(sweep="study")) == {}
    # the same histories, done: flagged
    (tmp_path / "b").mkdir()
    store = filled_store(tmp_path / "b", {("sgd", 0.1, 0): crashed, ("adam", 0.1, 0): crashed})
    assert any(r.flags for r in results.build(store, "study").rows)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plot_writes_a_png_of_the_expected_size(cli, store, tmp_path):
    out = tmp_path / "curves.png"
    res = cli("plot", "study", "-o", out, check=0)
    assert res.stdout.strip() == f"wrote {out}"
    assert png_size(out) == (768, 504)  # 6.4 x 4.2 inches at 120 dpi
    grid = tmp_path / "grid.png"
    cli("plot", "study", "--metric", "val_acc", "--metric", "train_loss", "-o", grid, check=0)
    assert png_size(grid) == (1536, 504)
    svg = tmp_path / "curves.svg"
    cli("plot", "study", "--group-by", "optimizer", "-o", svg, check=0)
    assert svg.read_text().lstrip().startswith("<?xml")
    bad = cli("plot", "study", "--metric", "val_ac", "-o", out, check=2).stderr
    assert 'no run of study reports "val_ac"' in bad and 'did you mean "val_acc"?' in bad
    assert "cannot write" in cli("plot", "study", "-o", tmp_path / "x.gif", check=2).stderr


@pytest.fixture
def cli(tmp_path):
    from tests.conftest import Cli

    return Cli(tmp_path / "home", tmp_path)


# ---------------------------------------------------------------------------------------------
# staged studies, run for real by the daemon


def staged_file(tmp_path: Path, body: str, metric: str = "accuracy", mode: str = "max") -> Path:
    path = tmp_path / "staged.toml"
    path.write_text(f'name = "staged"\nmetric = "{metric}"\nmode = "{mode}"\n'
                    f'command = [{PY}, {TRAIN}, "--lr", "{{lr}}", "--epochs", "{{epochs}}", '
                    f'"--fail-at", "{{fail_at}}"]\n' + body)
    return path


def test_stages_carry_the_best_forward_ignoring_failed_runs(cli, tmp_path):
    # stage 1: lr=0.5 would be best (accuracy 95 at epoch 3) but fails; 0.3 (89) beats 0.1 (83)
    path = staged_file(tmp_path, "[params]\nepochs = 3\n[zip]\nlr = [0.1, 0.5, 0.3]\n"
                       "fail_at = [0, 2, 0]\n[[stages]]\ngrid.epochs = [2, 5]\n")
    res = cli("queue", "run", path, check=1)  # one run failed
    assert "stage 2: epochs over the best of stage 1" in res.stdout
    runs = cli.runs()
    assert [(r["stage"], r["params"]["lr"], r["params"]["epochs"], r["status"]) for r in runs] == [
        (1, 0.1, 3, "done"), (1, 0.5, 3, "failed"), (1, 0.3, 3, "done"),
        (2, 0.3, 2, "done"), (2, 0.3, 5, "done")]
    stage1 = cli("results", "staged", "--stage", "1", check=0).stdout.splitlines()
    assert stage1[0].startswith("| chosen | lr | fail_at | accuracy |")
    assert stage1[2].startswith("| **✓** | **0.3** | **0** | **89.00** |")
    both = cli("results", "staged", check=0).stdout
    assert "### staged, stage 1: lr, fail_at" in both and "### staged, stage 2: epochs" in both
    stage2 = json.loads(cli("results", "staged", "--stage", "2", "-f", "json", check=0).stdout)
    assert [(r["epochs"], r["mean"]) for r in stage2["rows"]] == [(5, 99.0), (2, 76.0)]
    # adding the file again does not expand the stages again
    again = cli("queue", "run", path, check=1)
    assert "queued 0 runs in sweep staged (3 already queued)" in again.stdout
    assert len(cli.runs()) == 5
    assert "has stages 1 to 2" in cli("results", "staged", "--stage", "3", check=2).stderr


def test_stage_ties_go_to_the_first_configuration_and_min_mode(cli, tmp_path):
    # 10 epochs: lr 0.9 and 0.5 both reach the 99 cap -> a tie, the first in the file wins
    path = staged_file(tmp_path, "[params]\nepochs = 10\nfail_at = 0\n[grid]\n"
                       "lr = [0.9, 0.5, 0.05]\n[[stages]]\ngrid.epochs = [1]\n")
    cli("queue", "run", path, check=0)
    assert {r["params"]["lr"] for r in cli.runs() if r["stage"] == 2} == {0.9}
    # by loss, lower is better: 1 / (epochs * (1 + 10 lr)) is lowest for the largest lr
    other = tmp_path / "min"
    other.mkdir()
    path = staged_file(other, "[params]\nepochs = 2\nfail_at = 0\n[grid]\nlr = [0.1, 0.4, 0.2]\n"
                       "[[stages]]\ngrid.epochs = [3]\n", metric="loss", mode="min")
    path.write_text(path.read_text().replace('name = "staged"', 'name = "staged-min"'))
    cli("queue", "run", path, check=0)
    assert {r["params"]["lr"] for r in cli.runs("--sweep", "staged-min") if r["stage"] == 2} \
        == {0.4}


def test_stage_errors_are_found_at_add_time(cli, tmp_path):
    path = staged_file(tmp_path, "[params]\nepochs = 2\nfail_at = 0\n[grid]\nlr = [0.1]\n"
                       "[[stages]]\ngrid.epochs = 3\n")
    res = cli("queue", "add", path, check=2)
    assert ':11:1: stage 2: grid value "epochs" must be a non-empty list' in res.stderr
    path.write_text(path.read_text().replace("grid.epochs = 3", "gird.epochs = [3]"))
    res = cli("queue", "add", path, check=2)
    assert 'unknown key "gird" in [[stages]]' in res.stderr and 'did you mean "grid"?' in res.stderr


def test_queue_ls_flags_runs_with_identical_metrics(cli, tmp_path):
    # `tag` never reaches the script, so tag=a and tag=b (same seed) print the same numbers:
    # two configurations whose every metric is equal, the sign of runs that were not independent
    path = tmp_path / "twins.toml"
    path.write_text(f'name = "twins"\ncommand = [{PY}, {TRAIN}, "--epochs", "2", "--lr", "0.1", '
                    '"--seed", "{tag_seed}"]\n[zip]\ntag = ["a", "b", "c"]\ntag_seed = [0, 0, 1]\n')
    cli("queue", "run", path, check=0)
    runs = cli.runs()
    assert [r["same_metrics_as"] for r in runs] == [2, 1, None]
    assert "same metrics as #2" in cli("queue", "ls", check=0).stdout
