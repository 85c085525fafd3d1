"""engine.tail and engine.follow on real files: a run's output of any size read to its end in
bounded pieces, partial lines, rewritten files, attempt markers, the switch from parsed stdout
to metrics.jsonl; and the metric cleaning at the store's door (engine.clean)."""
from __future__ import annotations

import json
import math
from pathlib import Path

from hypothesis import given, settings, strategies as st

from gridrun.engine import tail as tail_mod
from gridrun.engine.clean import clean_metrics, clean_value
from gridrun.engine.follow import FileFollower
from gridrun.engine.logview import read_from
from gridrun.engine.matrix import loads
from gridrun.engine.store import Progress, Store
from gridrun.engine.tail import ATTEMPT_KEY, RunTail, attempt_marker_line


def drain(tail: RunTail, store: Store | None = None) -> list:
    """What the daemon does once a run has exited: poll(final=True) until drained."""
    progresses = []
    while True:
        p = tail.poll(final=True)
        if p is not None:
            progresses.append(p)
            if store is not None:
                store.save_progress([p])
        if tail.drained:
            return progresses


def rows_of(progresses) -> list[dict]:
    return [row for p in progresses for row in p.rows]


def write_jsonl(path: Path, rows, end: bytes = b"\n") -> None:
    with open(path, "ab") as f:
        for i, row in enumerate(rows):
            f.write(json.dumps(row).encode() + (b"\n" if i < len(rows) - 1 else end))


def test_metrics_over_the_read_budget_after_exit_are_all_read(tmp_path, monkeypatch):
    # 60,000 rows (about 2 MiB) against a 64 KiB budget: dozens of polls, none of them big
    monkeypatch.setattr(tail_mod, "READ_BUDGET", 64 << 10)
    write_jsonl(tmp_path / "metrics.jsonl", [{"epoch": i, "loss": 1 / i} for i in range(1, 60_001)],
                end=b"")  # the last line was never terminated
    tail = RunTail(1, tmp_path)
    progresses = drain(tail)
    assert len(progresses) > 10
    assert max(len(p.rows) for p in progresses) < 5000
    epochs = [r["epoch"] for r in rows_of(progresses)]
    assert epochs == list(range(1, 60_001))
    assert len(tail.history) <= 2 * tail_mod.HISTORY_KEEP


def test_stdout_of_more_than_4_mib_keeps_its_last_epochs(tmp_path):
    lines = []
    size = 0
    step = 0
    for epoch in (1, 2, 3):
        while size < (4 << 20) * epoch / 3 + (1 << 20):
            step += 1
            line = f"step {step}: batch {step % 97} of the epoch\n"
            lines.append(line)
            size += len(line)
        lines.append(f"Epoch [{epoch}/3], Loss: {1 / epoch:.4f}, Accuracy: {50 + epoch}.00%\n")
    text = "".join(lines).rstrip("\n")   # the last line has no newline
    (tmp_path / "stdout.log").write_text(text)
    rows = rows_of(drain(RunTail(1, tmp_path)))
    by_epoch = {r["epoch"]: r for r in rows if "epoch" in r}
    assert sorted(by_epoch) == [1, 2, 3]
    assert by_epoch[3]["loss"] == 0.3333 and by_epoch[3]["accuracy"] == 53


def test_a_partial_line_waits_while_the_run_lives_and_counts_once_it_ended(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"epoch": 1, "loss": 0.5}\n{"epoch": 2, "lo')
    tail = RunTail(1, tmp_path)
    assert [r["epoch"] for r in tail.poll().rows] == [1]
    assert tail.poll() is None                 # the half-written row is not read yet
    with open(path, "ab") as f:
        f.write(b'ss": 0.25}\n{"epoch": 3, "loss": 0.125}')
    assert [r["loss"] for r in tail.poll().rows] == [0.25]
    assert [r["epoch"] for r in rows_of(drain(tail))] == [3]


def test_a_truncated_metrics_file_is_read_again_from_its_start(tmp_path):
    path = tmp_path / "metrics.jsonl"
    write_jsonl(path, [{"epoch": e, "loss": 9.0} for e in (1, 2, 3)])
    store = Store(tmp_path / "home")
    tail = RunTail(1, tmp_path)
    first = tail.poll()
    assert [r["epoch"] for r in first.rows] == [1, 2, 3]
    path.write_bytes(json.dumps({"epoch": 1, "loss": 0.5}).encode() + b"\n")  # rewritten, shorter
    again = tail.poll()
    assert again.replace_source == "report"
    assert again.rows == [{"epoch": 1, "loss": 0.5}]
    assert tail.last == {"epoch": 1, "loss": 0.5}
    store.close()


def test_a_replaced_stdout_is_parsed_afresh(tmp_path):
    log = tmp_path / "stdout.log"
    log.write_text("Epoch [1/3], Loss: 0.9\nEpoch [2/3], Loss: 0.8\n")
    tail = RunTail(1, tmp_path)
    tail.poll()
    replacement = tmp_path / "new.log"
    replacement.write_text("Epoch [1/3], Loss: 0.1\nEpoch [2/3], Loss: 0.05\nEpoch [3/3], Loss: 0.01\n"
                           "Epoch [3/3], Loss: 0.01\n")
    replacement.replace(log)                     # a new file, larger than the old one
    progress = tail.poll(final=True)
    assert progress.replace_source == "stdout"
    assert [r["loss"] for r in progress.rows] == [0.1, 0.05, 0.01]


def test_attempt_markers_keep_the_epochs_before_the_resume(tmp_path):
    log = tmp_path / "stdout.log"
    log.write_text("".join(f"Epoch [{e}/4], Loss: {e}.5\n" for e in (1, 2, 3)))
    tail = RunTail(1, tmp_path)
    tail.poll()
    # the daemon appends the marker; the resumed attempt starts again at epoch 3
    with open(log, "a") as f:
        f.write("\n" + attempt_marker_line(2))
        f.write("Epoch [3/4], Loss: 0.3\nEpoch [4/4], Loss: 0.4\n")
    progresses = drain(tail)
    assert {p.drop_from_epoch for p in progresses if p.drop_from_epoch} == {("stdout", 3)}
    assert [(r["epoch"], r["loss"]) for r in rows_of(progresses)] == [(3, 0.3), (4, 0.4)]
    assert tail.last["loss"] == 0.4


def test_a_marker_split_across_reads_is_still_a_marker(tmp_path, monkeypatch):
    monkeypatch.setattr(tail_mod, "READ_BUDGET", 16)   # every read ends mid-line
    log = tmp_path / "stdout.log"
    log.write_text("Epoch [1/2], Loss: 1.5\nEpoch [2/2], Loss: 2.5\n\n" + attempt_marker_line(2)
                   + "Epoch [1/2], Loss: 0.1\nEpoch [2/2], Loss: 0.2\n")
    progresses = drain(RunTail(1, tmp_path))
    assert any(p.drop_from_epoch == ("stdout", 1) for p in progresses)
    kept = []
    for p in progresses:                          # what the store ends up holding
        if p.drop_from_epoch:
            kept = [r for r in kept if r["epoch"] < p.drop_from_epoch[1]]
        kept += p.rows
    assert [(r["epoch"], r["loss"]) for r in kept] == [(1, 0.1), (2, 0.2)]


def test_metrics_jsonl_replaces_parsed_stdout_and_the_store_follows(tmp_path):
    store = Store(tmp_path / "home")
    (tmp_path / "stdout.log").write_text("Epoch [1/2], Loss: 0.7\nEpoch [2/2], Loss: 0.6\n")
    tail = RunTail(1, tmp_path)
    first = tail.poll()
    assert first.source == "stdout"
    write_jsonl(tmp_path / "metrics.jsonl", [{"epoch": 1, "val_acc": 0.5}])
    switched = tail.poll()
    assert (switched.source, switched.replace_source) == ("report", "stdout")
    assert switched.rows == [{"epoch": 1, "val_acc": 0.5}]
    assert "loss" not in switched.last            # nothing of the stdout history is kept
    # once switched, stdout is not read any more
    with open(tmp_path / "stdout.log", "a") as f:
        f.write("Epoch [3/3], Loss: 0.1\n")
    assert tail.poll() is None
    store.close()


def test_nonfinite_and_broken_text_in_rows_are_cleaned_and_flag_divergence(tmp_path):
    (tmp_path / "metrics.jsonl").write_bytes(
        b'{"epoch": 1, "per_class": [NaN, 0.5], "d": {"x": Infinity}, "note": "\\ud800"}\n'
        + b"[" * 50_000 + b"\n"
        + b'{"epoch": 2, "loss": 0.5}\n')
    (progress,) = drain(RunTail(1, tmp_path))
    first, second = progress.rows
    assert first["per_class"] == [None, 0.5] and first["d"] == {"x": None}
    assert first["note"] == "\ufffd"
    assert second == {"epoch": 2, "loss": 0.5}
    assert "diverged" in progress.flags


def test_one_follower_reads_for_the_log_view_too(tmp_path):
    path = tmp_path / "stdout.log"
    path.write_bytes(b"one\ntwo\nthr")
    follower = FileFollower(path)
    assert follower.read() == b"one\ntwo\n"
    assert read_from(path, 0) == ("one\ntwo\n", 8)
    assert read_from(path, 8, final=True) == ("thr", 11)
    path.write_bytes(b"x\n")
    assert follower.read() == b"x\n" and follower.restarted
    assert read_from(path, 11) == ("", 0)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text()
    | st.sampled_from(["\ud800", "a\udfffb", "\x00"]),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=5) | st.integers() | st.none(), inner, max_size=4),
    max_leaves=30)


def _walk(value):
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _walk(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _walk(v)
    else:
        yield value


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_any_value_cleans_to_strict_utf8_json(value):
    cleaned, nonfinite = clean_value(value)
    text = json.dumps(cleaned, allow_nan=False, ensure_ascii=False)
    text.encode("utf-8")
    assert json.loads(text) == cleaned
    had = any(isinstance(v, float) and not math.isfinite(v) for v in _walk(value))
    assert nonfinite == had


_stores: dict[str, Store] = {}


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_any_row_is_stored_and_read_back(tmp_path_factory, row):
    if "s" not in _stores:
        _stores["s"] = Store(tmp_path_factory.mktemp("store"))
        _stores["s"].add_sweep(loads('name = "p"\ncommand = ["x"]\n[grid]\nlr = [1]\n', "p.toml",
                                     check_program=False))
    store = _stores["s"]
    run_id = store.runs()[0].id
    store.save_progress([Progress(run_id, "report", [row], row, set(row), set())])
    (back,) = store.read("SELECT data FROM metrics ORDER BY seq DESC LIMIT 1")
    assert json.loads(back[0]) == clean_metrics(row)[0]


def test_clean_turns_every_nonfinite_to_null():
    row, nonfinite = clean_metrics({"a": [math.nan, {"b": (math.inf, 1)}], "c": -math.inf})
    assert row == {"a": [None, {"b": [None, 1]}], "c": None} and nonfinite
    assert clean_metrics({"ok": 1.5}) == ({"ok": 1.5}, False)
    assert clean_value({ATTEMPT_KEY: True}) == ({ATTEMPT_KEY: True}, False)
