"""Numbers you can trust: a store filled by real runs through the real daemon, with the ordinary
troubles of a sweep in it, and every number checked where it is shown -- `gridrun results` in
md, csv, json and latex, the interface's results screen, the plot's data and `queue ls`.

The sweep (fake_train --report, 4 epochs, seeds 0-3; val_acc = (min(99, 50 + 10 e (1 + lr))
- 0.1 seed) / 100 and train_loss = 1 / (e (1 + 10 lr)) + 0.001 seed at epoch e):
  A  lr 0.1   seed 2 fails at epoch 2 (after reporting epoch 1), seed 3 hangs at epoch 3 and is
              cancelled: two done runs, 94.0 and 93.9 at epoch 4
  B  lr 0.5   seed 1 stops after epoch 3 (done, best 94.9 at 3), seed 2's loss is NaN at epoch
              4 (diverged: its last finite loss is epoch 3's); the others 99.0 - 0.1 seed at 4
  C  lr 0.3   a slow starter: at chance (ln 10, 10%) for 3 epochs, then 99 - 0.1 seed at 4
  D  lr 0.2   never learns: ln 10 and 10% for all 4 epochs
  E  lr 0.9   every seed fails at epoch 4, after 99% at epoch 3: no done run at all
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics
import sys
from pathlib import Path

import pytest

from gridrun.engine import plot, results
from gridrun.engine.store import Store
from gridrun.tui.app import GridrunApp
from tests.conftest import FAKE_TRAIN, Cli, wait_for
from tests.test_tui_results import column, header, open_results, rows

SWEEP = f"""\
name = "trust"
metric = "val_acc"
seeds = [0, 1, 2, 3]
command = [{json.dumps(sys.executable)}, {json.dumps(str(FAKE_TRAIN))}, "--report",
           "--epochs", "4", "--lr", "{{lr}}", "--seed", "{{seed}}", "--chance-for", "{{chance_for}}",
           "--when", "0.1,2,fail,2", "--when", "0.1,3,hang,3", "--when", "0.5,1,stop,4",
           "--when", "0.5,2,nan,4", "--when", "0.9,*,fail,4"]
[zip]
lr = [0.1, 0.5, 0.3, 0.2, 0.9]
chance_for = [0, 0, 3, 99, 0]
[resources]
gpus = 0
"""
LN10 = 2.302585


def acc(lr: float, seed: int, epoch: int) -> float:
    return (min(99.0, 50 + epoch * 10 * (1 + lr)) - 0.1 * seed) / 100


def loss(lr: float, seed: int, epoch: int) -> float:
    return round(1.0 / (epoch * (1 + lr * 10)) + seed * 0.001, 6)


class Filled:
    def __init__(self, cli: Cli, during: dict):
        self.cli = cli
        self.store = Store(cli.home)
        self.during = during      # what was read while A's seed 3 was still running


def config_runs(store: Store, lr: float):
    return [r for r in store.runs(sweep="trust") if r.params["lr"] == lr]


@pytest.fixture(scope="module")
def filled(tmp_path_factory) -> Filled:
    folder = tmp_path_factory.mktemp("trust")
    path = folder / "trust.toml"
    path.write_text(SWEEP)
    cli = Cli(folder / "home", folder)
    daemon = cli.start("queue", "run", path, "--cpu-slots", "2")
    try:
        def only_the_hang_left():
            runs = cli.runs()
            left = [r for r in runs if r["status"] in ("queued", "running")]
            return (len(runs) == 20 and len(left) == 1 and left[0]["params"] == {
                "lr": 0.1, "chance_for": 0, "seed": 3}
                and left[0]["metrics"].get("epoch") == 2 and left[0])
        hanging = wait_for(only_the_hang_left, timeout=120, what="every run but the hang ended")
        store = Store(cli.home)
        during = {"md": cli("results", "trust", check=0).stdout,
                  "lines": plot.series(config_runs(store, 0.1), store.metrics_for(
                      [r.id for r in config_runs(store, 0.1)]), "val_acc", ["lr", "chance_for"])}
        cli("queue", "cancel", str(hanging["id"]), check=0)
        assert daemon.wait(timeout=60) == 1  # runs failed
    finally:
        if daemon.poll() is None:
            daemon.kill()
    return Filled(cli, during)


def md_rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in text.splitlines()]


def test_the_runs_ended_as_planned(filled):
    got = sorted((r["params"]["lr"], r["params"]["seed"], r["status"])
                 for r in filled.cli.runs())
    statuses = {(lr, seed): status for lr, seed, status in got}
    assert statuses[(0.1, 2)] == "failed" and statuses[(0.1, 3)] == "cancelled"
    assert [statuses[(0.9, s)] for s in range(4)] == ["failed"] * 4
    assert sum(s == "done" for s in statuses.values()) == 14


def test_markdown_counts_done_runs_only_and_formats_one_way(filled):
    md = md_rows(filled.cli("results", "trust", check=0).stdout)
    assert md[0] == ["lr", "chance_for", "val_acc (%)", "n", "best epoch", "train_loss",
                     "time/run", "status", "flags"]
    body = [row[:6] + row[7:] for row in md[2:]]   # time/run aside: the clock's
    assert body == [
        # C: 99.0, 98.9, 98.8, 98.7 -> 98.85 ± 0.13; the slow starter is not flagged
        ["**0.3**", "**3**", "**98.85 ± 0.13**", "**4**", "**4**", "**0.064**", "", ""],
        # B: 99.0@4, 94.9@3, 98.8@4, 98.7@4 -> 97.85 ± 1.97, best epoch 3.75 (seeds disagree);
        # train_loss: seed 2's last finite value (epoch 3) counts
        ["0.5", "0", "97.85 ± 1.97", "4", "3.8", "0.050", "", "diverged"],
        # A: the failed (60.8) and cancelled (71.7) runs are not in the mean, n = 2
        ["0.1", "0", "93.95 ± 0.07", "2", "4", "0.126", "1 failed, 1 cancelled", ""],
        ["0.2", "99", "10.00 ± 0.00", "4", "1", "2.303", "", "not_learning"],
        # E: no done run (it would have led at 99%): no numbers, last, not bold
        ["0.9", "0", "-", "0", "-", "-", "4 failed", ""]]
    assert all(re.fullmatch(r"(\*\*)?\d+\.\ds(\*\*)?", row[6]) for row in md[2:6])
    assert md[6][6] == "-"


def test_csv_and_json_carry_the_raw_numbers_of_done_runs(filled):
    c_values = [acc(0.3, s, 4) for s in range(4)]
    b_values = [acc(0.5, 0, 4), acc(0.5, 1, 3), acc(0.5, 2, 4), acc(0.5, 3, 4)]
    a_values = [acc(0.1, 0, 4), acc(0.1, 1, 4)]
    b_losses = [loss(0.5, 0, 4), loss(0.5, 1, 3), loss(0.5, 2, 3), loss(0.5, 3, 4)]
    data = json.loads(filled.cli("results", "trust", "-f", "json", check=0).stdout)
    got = {r["lr"]: r for r in data["rows"]}
    assert [r["lr"] for r in data["rows"]] == [0.3, 0.5, 0.1, 0.2, 0.9]
    for lr, values in ((0.3, c_values), (0.5, b_values), (0.1, a_values)):
        assert got[lr]["mean"] == pytest.approx(statistics.fmean(values))
        assert got[lr]["std"] == pytest.approx(statistics.stdev(values))
        assert got[lr]["n"] == len(values)
    assert got[0.5]["best_epoch"] == pytest.approx(3.75)
    assert got[0.5]["train_loss"] == pytest.approx(statistics.fmean(b_losses))
    assert got[0.1]["status"] == {"done": 2, "failed": 1, "cancelled": 1}
    assert got[0.1]["wall_s"] is not None
    assert (got[0.9]["mean"], got[0.9]["std"], got[0.9]["n"], got[0.9]["best_epoch"],
            got[0.9]["train_loss"], got[0.9]["wall_s"]) == (None, None, 0, None, None, None)
    assert got[0.2]["flags"] == ["not_learning"] and got[0.3]["flags"] == []
    table = list(csv.DictReader(io.StringIO(filled.cli("results", "trust", "-f", "csv",
                                                       check=0).stdout)))
    assert [float(r["lr"]) for r in table] == [0.3, 0.5, 0.1, 0.2, 0.9]
    assert float(table[2]["mean"]) == pytest.approx(statistics.fmean(a_values))
    assert table[2]["n"] == "2" and table[2]["status"] == "2 done, 1 failed, 1 cancelled"
    assert table[4]["mean"] == "" and table[4]["n"] == "0" and table[4]["status"] == "4 failed"


def test_latex_has_the_same_cells_and_the_best_row_in_bold(filled):
    tex = filled.cli("results", "trust", "-f", "latex", check=0).stdout
    lines = [line for line in tex.splitlines() if line.endswith(r"\\")][1:]
    assert lines[0].startswith(r"\textbf{0.3} & \textbf{3} & \textbf{98.85 $\pm$ 0.13} & "
                               r"\textbf{4} & \textbf{4} & \textbf{0.064} & ")
    assert lines[1].startswith(r"0.5 & 0 & 97.85 $\pm$ 1.97 & 4 & 3.8 & 0.050 & ")
    assert lines[2].startswith(r"0.1 & 0 & 93.95 $\pm$ 0.07 & 2 & 4 & 0.126 & ")
    assert lines[4].startswith("0.9 & 0 & - & 0 & - & - & - & 4 failed")
    assert r"\textbf" not in "".join(lines[1:])


def test_while_a_run_is_going_the_row_says_so_and_the_plot_dashes_it(filled):
    md = md_rows(filled.during["md"])
    a_row = next(r for r in md[2:] if r[0].strip("*") == "0.1")
    assert a_row[2:5] == ["93.95 ± 0.07", "2", "4"] and a_row[7] == "1 running, 1 failed"
    lines = {line.status: line for line in filled.during["lines"]}
    assert set(lines) == {"done", "running"}    # the failed run draws nothing
    done, running = lines["done"], lines["running"]
    assert done.label == "lr=0.1 chance_for=0 (n=2)" and not done.dashed
    assert done.x == [1.0, 2.0, 3.0, 4.0]
    assert done.mean == pytest.approx([statistics.fmean([acc(0.1, 0, e), acc(0.1, 1, e)])
                                       for e in range(1, 5)])
    assert done.std == pytest.approx([statistics.stdev([acc(0.1, 0, e), acc(0.1, 1, e)])
                                      for e in range(1, 5)])
    assert running.label == "lr=0.1 chance_for=0 (n=1, running)" and running.dashed
    assert running.x == [1.0, 2.0] and running.std == [0.0, 0.0]
    assert running.mean == pytest.approx([acc(0.1, 3, 1), acc(0.1, 3, 2)])


def test_plot_series_draws_done_runs_only(filled):
    store = filled.store
    runs = store.runs(sweep="trust")
    lines = plot.series(runs, store.metrics_for([r.id for r in runs]), "train_loss",
                        ["lr", "chance_for"])
    by_lr = {line.config["lr"]: line for line in lines}
    assert set(by_lr) == {0.1, 0.5, 0.3, 0.2}            # E has no done run: no line
    assert all(line.status == "done" for line in lines)
    assert [by_lr[lr].n for lr in (0.1, 0.5, 0.3, 0.2)] == [2, 4, 4, 4]
    b = by_lr[0.5]
    # epoch 4: seed 1 stopped at 3, seed 2's loss was NaN; the mean is of the two others
    assert b.x == [1.0, 2.0, 3.0, 4.0]
    assert b.mean[3] == pytest.approx(statistics.fmean([loss(0.5, 0, 4), loss(0.5, 3, 4)]))
    assert b.mean[2] == pytest.approx(statistics.fmean([loss(0.5, s, 3) for s in range(4)]))
    assert all(math.isfinite(v) for line in lines for v in line.mean + line.std)


def test_plot_figure_has_whole_epoch_ticks_labels_and_a_legend_with_n(filled):
    figure = plot.curves(filled.store, "trust")
    ax = figure.axes[0]
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "val_acc"
    ticks = [t for t in ax.get_xticks() if 1 <= t <= 4]
    assert ticks and all(float(t).is_integer() for t in ticks)
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert labels == ["lr=0.1 chance_for=0 (n=2)", "lr=0.5 chance_for=0 (n=4)",
                      "lr=0.3 chance_for=3 (n=4)", "lr=0.2 chance_for=99 (n=4)"]
    plot.save(figure, Path(filled.cli.cwd) / "trust.png")


def test_queue_ls_flags(filled):
    runs = {(r["params"]["lr"], r["params"]["seed"]): r for r in filled.cli.runs()}
    flags = {key: r["flags"] for key, r in runs.items() if r["flags"]}
    # never learnt: flagged; the slow starter (3 epochs at ln 10, then 99%): never flagged
    assert flags == {**{(0.2, s): ["not_learning"] for s in range(4)},
                     (0.5, 2): ["diverged"]}
    assert all(r["same_metrics_as"] is None for r in runs.values())
    # the diverged run's last finite loss is shown, not null
    assert runs[(0.5, 2)]["metrics"]["train_loss"] == loss(0.5, 2, 3)
    assert runs[(0.5, 2)]["metrics"]["val_acc"] == pytest.approx(acc(0.5, 2, 4))
    text = filled.cli("queue", "ls", check=0).stdout
    assert text.count("not_learning") == 4 and text.count("diverged") == 1


def test_table_build_ignores_what_is_not_done_in_twins(filled):
    table = results.build(filled.store, "trust")
    assert not any(f.startswith("same_metrics_as") for r in table.rows for f in r.flags)
    assert table.best is table.rows[0] and table.rows[0].config["lr"] == 0.3


async def test_the_results_screen_shows_the_same_numbers(filled):
    app = GridrunApp(filled.cli.home, start_daemon=False, refresh_s=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        table = await open_results(pilot, app)
        assert header(table)[:6] == ["lr", "chance_for", "val_acc (%)", "n", "best epoch",
                                     "train_loss"]
        assert [row[:6] for row in rows(table)] == [
            ["0.3", "3", "98.85 ± 0.13", "4", "4", "0.064"],
            ["0.5", "0", "97.85 ± 1.97", "4", "3.8", "0.050"],
            ["0.1", "0", "93.95 ± 0.07", "2", "4", "0.126"],
            ["0.2", "99", "10.00 ± 0.00", "4", "1", "2.303"],
            ["0.9", "0", "-", "0", "-", "-"]]
        assert column(table, "status") == ["", "", "1 failed, 1 cancelled", "", "4 failed"]
        assert "bold" in str(table.get_row_at(0)[2].style)
        assert not any("bold" in str(table.get_row_at(i)[2].style) for i in range(1, 5))
