"""The runs table's sort (tui/widgets/runs_table.sort_views) on any values: mixed types in
one parameter, NaN and missing values, both directions."""
from __future__ import annotations

import math

from hypothesis import given, strategies as st

from gridrun.engine.feed import RunView
from gridrun.engine.store import Run
from gridrun.tui.widgets.runs_table import _order, sort_value, sort_views

VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=4))


def view(index: int, param, latest) -> RunView:
    params = {} if param is None else {"x": param}
    run = Run(id=index + 100, sweep="s", sweep_id=1, index=index, params=params, stage=0,
              run_dir="", status="done", attempt=1, retries_left=0, priority=0,
              exclusive=False, device=None, pid=None, pid_start=None, exit_code=None,
              error=None, flags=[], metric_names=[], last_metrics={}, peak_mem_mb=None,
              created=0.0, started=None, ended=None)
    return RunView(run, (), latest, latest, None, None, None, None)


@given(st.lists(st.tuples(VALUES, st.one_of(st.none(), st.floats())), max_size=30),
       st.sampled_from(["p:x", "latest", "index", "status", "warn"]), st.booleans())
def test_sorted_is_a_permutation_ordered_with_the_missing_last(pairs, column, reverse):
    views = [view(i, p, latest) for i, (p, latest) in enumerate(pairs)]
    out = sort_views(views, column, reverse)
    assert sorted(v.run.id for v in out) == [v.run.id for v in views]
    values = [sort_value(v, column) for v in out]
    present = [v for v in values if v is not None]
    assert values[:len(present)] == present                # the missing ones come last
    keys = [_order(v) for v in present]
    assert keys == sorted(keys, reverse=reverse)
    assert not any(isinstance(v, float) and math.isnan(v) for v in present)
