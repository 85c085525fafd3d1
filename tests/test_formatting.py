"""The one formatting rule for numbers in tables, and the runs table's sparklines: unit and
property tests on the pure functions, and the feed's shared scale on a store filled by real
runs."""
from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from gridrun.engine.feed import Feed
from gridrun.engine.results import ResultTable, Row, Stat
from gridrun.engine.store import Store
from gridrun.engine.table_format import Column, cells, epoch_text
from gridrun.tui.widgets.cells import BLOCKS, downsample, history_line
from gridrun.tui.widgets.runs_table import scale_moved

means = st.floats(min_value=1e-4, max_value=1e4, allow_nan=False)


def table_of(name: str, stats: list[Stat], epochs: list[tuple[float | None, bool]] = ()
             ) -> ResultTable:
    epochs = list(epochs) or [(1.0, True)] * len(stats)
    rows = [Row({"i": i}, stat, best, {}, None, {"done": stat.n}, [], [i], epochs_agree=agree)
            for i, (stat, (best, agree)) in enumerate(zip(stats, epochs))]
    return ResultTable("s", name, "min", ["i"], [], rows)


def decimals(text: str) -> int:
    return len(text.partition(".")[2])


@given(st.lists(st.tuples(means, st.floats(0, 10)), min_size=1, max_size=8))
def test_a_column_has_one_number_of_decimals_and_the_spread_has_its_means(pairs):
    stats = [Stat(m, s, 3) for m, s in pairs]
    _, body = cells(table_of("val_loss", stats))
    texts = [line[1] for line in body]
    shown = [part for text in texts for part in text.split(" ± ")]
    assert len({decimals(p) for p in shown}) == 1, texts
    for (mean, _), text in zip(pairs, texts):
        shown_mean = text.split(" ± ")[0]
        # the mean is the value rounded to the column's decimals
        assert abs(float(shown_mean) - mean) <= 10 ** -decimals(shown_mean) / 2 + 1e-9
    # the largest value keeps four significant digits
    largest = max(float(t.split(" ± ")[0]) for t in texts)
    assert len(re.sub(r"^0\.0*|\.", "", f"{largest:.{decimals(texts[0])}f}")) >= 4


def test_the_issues_examples():
    table = table_of("val_loss", [Stat(1.936, 0.00396, 3), Stat(2.4112, 0.0123, 3)])
    assert [line[1] for line in cells(table)[1]] == ["1.936 ± 0.004", "2.411 ± 0.012"]
    acc = table_of("val_acc", [Stat(0.8969, 0.1317, 2), Stat(0.5, 0.0, 1)])
    header, body = cells(acc)
    assert header[1] == "val_acc (%)" and [line[1] for line in body] == ["89.69 ± 13.17",
                                                                        "50.00"]
    assert Column(acc, "val_acc").number(-0.00001) == "0.00"   # never "-0.00"


def test_best_epoch_has_a_decimal_only_when_seeds_disagree():
    rows = table_of("loss", [Stat(1.0, 0.0, 2)] * 3,
                    [(4.0, True), (3.75, False), (None, True)]).rows
    assert [epoch_text(r) for r in rows] == ["4", "3.8", "-"]


def test_downsample_covers_the_whole_history():
    values = list(range(100))
    points = downsample(values, 10)
    assert len(points) == 10 and points[0] == 4.5 and points[-1] == 94.5
    assert downsample([1.0, 2.0], 10) == [1.0, 2.0]
    assert downsample([], 5) == []


@given(st.lists(st.floats(0, 1), min_size=1, max_size=300), st.integers(1, 16))
def test_history_line_is_within_width_and_on_the_shared_scale(values, width):
    line = history_line(values, width, (0.0, 1.0))
    assert 1 <= len(line) <= width and set(line) <= set(BLOCKS)
    # on a shared scale a value at the top of the sweep's range is the full block
    assert history_line([1.0] * len(values), width, (0.0, 1.0)) == BLOCKS[-1] * len(line)


def test_steady_runs_draw_flat_lines_at_their_level():
    # the issue's case: a run steady at 98.5-99% beside one that climbs from 10% to 99%
    steady = [0.985, 0.99, 0.986, 0.99, 0.988, 0.987, 0.99, 0.989]
    climbing = [0.1, 0.4, 0.7, 0.9, 0.95, 0.97, 0.98, 0.99]
    scale = (min(steady + climbing), max(steady + climbing))
    assert history_line(steady, 8, scale) == "████████"
    assert history_line(climbing, 8, scale) == "▁▃▆▇████"
    assert history_line([0.5] * 8, 8, None) == BLOCKS[3] * 8   # alone, flat: the middle


def test_the_feed_gives_each_sweep_one_scale_over_all_its_runs(cli, sweep_file, tmp_path):
    # lr 0.9 reaches 99% at epoch 3 and fails at 4; lr 0.1 and 0.2 are done
    path = sweep_file("sc", "seeds = [0]\nmetric = \"accuracy\"\n[grid]\nlr = [0.1, 0.9, 0.2]\n",
                      script_args="--epochs 4 --when 0.9,*,fail,4")
    cli("queue", "run", path, "--cpu-slots", "2", check=1)
    snap = Feed(Store(cli.home), cli.home).poll()
    (sweep,) = snap.sweeps
    values = [v for view in snap.runs for v in view.series]
    # fake_train: accuracy = min(99, 50 + 10 e (1 + lr)): 61 at epoch 1 of lr 0.1, capped at 99
    assert sweep.scale == (min(values), max(values)) == (61.0, 99.0)
    # the sweep's best is a done run's (lr 0.2: 98 at epoch 4), not the failed run's 99
    assert sweep.best == 98.0


def test_the_page_is_redrawn_only_when_the_scale_moves_by_half_a_block():
    assert scale_moved(None, (0.0, 1.0)) and not scale_moved(None, None)
    assert not scale_moved((0.0, 1.0), (0.0, 1.0))
    assert not scale_moved((0.0, 1.0), (0.0, 1.05))       # under half of 1/7 of the range
    assert scale_moved((0.0, 1.0), (0.0, 1.2))
    assert scale_moved((0.5, 1.0), (0.1, 1.0))
