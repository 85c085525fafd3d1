"""Property-based tests of engine.report: whatever a run prints or reports, no exception, and
strict JSON out (issue 9, "Metrics in: only metrics").

The parser may give NaN/inf as floats (a `Loss: nan` line must get the run flagged diverged);
the one cleaning rule downstream (engine.tail) turns them into null. Everything else it gives
must already be strict: ASCII names, int/float values, no lone surrogate anywhere.
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridrun.engine.report import METRICS_FILE, OutputParser, parse_line, report

NAME = re.compile(r"[a-z][a-z0-9_]{0,99}")

# Pieces of what training scripts print, of what breaks parsers, and of garbage.
FRAGMENTS = [
    "Epoch", "epoch ", "[3/15]", "Step", "loss", "Loss: ", "acc=", "val_", "test ", ": ", "=",
    " - ", " | ", ", ", "%", "/", "(", ")", "[", "]", "{", "}", "'", '"', "'loss': ", "'0.5'",
    '"acc": ', "nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e-999", "0.5", "3", "1,000",
    "9" * 5000, "1" * 400 + "/3", "1" * 400 + "ms", "\r", "\n", "\b", "\t", "\x00", "\x1b[31m",
    "\x1b[0m", "\u2501\u2501", "\u2588", "\ud800", "\udfff", "\ufffd", "\u0663", "\u00b2",
    "Traceback (most recent call last):", "ValueError: ", "error: ", "  File \"x.py\", line 3",
    "1875/1875 [====] - 3s - ", "313/313 ", "tensor(", "np.float64(", "Acc@1", "ETA: 1s",
    "2024-05-01 12:00:03,123 - INFO - ", "INFO:root:", "train.py:42:", "it/s", "MiB",
]
pieces = st.one_of(
    st.sampled_from(FRAGMENTS),
    st.text(max_size=6),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),   # lone surrogates
    st.from_regex(r"[-+]?\d{1,20}(\.\d{0,20})?([eE][-+]?\d{1,4})?", fullmatch=True),
)
numbers = st.one_of(
    st.from_regex(r"[-+]?\d{1,6}(\.\d{1,6})?([eE][-+]?\d{1,4})?", fullmatch=True),
    st.integers(min_value=300, max_value=6000).map(lambda n: "9" * n),     # past float, past int()
    st.sampled_from(["nan", "-inf", "Infinity", "1e999", "0", "1,000,000"]),
)
# `name sep number suffix`: shaped like metric lines, so the number paths are taken
metricish = st.builds(
    "{}{}{}{}".format,
    st.sampled_from(["loss", "Epoch", "step", "Accuracy", "time", "[", "['acc': ", "{'loss': '",
                     "Test set: loss", "lr", ""]),
    st.sampled_from([" ", ": ", "=", " [", "\t"]),
    numbers,
    st.sampled_from(["", "/3", "/" + "7" * 5000, "ms", "s", "%", "/0", "']", "'}", "]", "/15]",
                     " loss: 0.5", ", acc 0.1", " (50%)", "it/s"]),
)
outputs = st.one_of(
    st.lists(st.one_of(pieces, metricish), max_size=30).map("".join),
    st.binary(max_size=300).map(lambda b: b.decode("utf-8", errors="replace")),
    st.binary(max_size=300).map(lambda b: b.decode("utf-8", errors="surrogateescape")),
)


def cleaned(value: Any) -> Any:
    """The downstream rule (engine.tail): a non-finite float is stored as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: cleaned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [cleaned(v) for v in value]
    return value


def assert_strict_metrics(metrics: dict) -> None:
    assert isinstance(metrics, dict)
    for name, value in metrics.items():
        assert isinstance(name, str) and NAME.fullmatch(name), name
        assert type(value) in (int, float), (name, value)
    # strict JSON, valid UTF-8, once NaN/inf are null
    json.dumps(cleaned(metrics), allow_nan=False, ensure_ascii=False).encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(outputs)
def test_parse_line_never_raises_and_gives_strict_metrics(line):
    assert_strict_metrics(parse_line(line))


@settings(max_examples=200, deadline=None)
@given(outputs, st.lists(st.integers(min_value=0, max_value=400), max_size=6))
def test_output_parser_never_raises_and_gives_strict_records(text, cuts):
    p = OutputParser()
    records: list[dict] = []
    start = 0
    for cut in sorted(cuts) + [len(text)]:
        records += p.feed(text[start:cut])
        assert_strict_metrics(p.current())
        start = max(start, cut)
    records += p.close()
    for record in records:
        assert_strict_metrics(record)
    assert all(isinstance(n, str) and NAME.fullmatch(n) for n in p.names)
    assert p.current() == {} and p.close() == []


@pytest.mark.parametrize("line", ["Epoch 3, Loss: nan", "loss=NaN", "{'loss': 'nan'}",
                                  "grad_norm: inf"])
def test_a_nonfinite_value_comes_out_as_a_float_to_flag(line):
    # tail turns it into null and flags the run `diverged`: it must not be dropped here
    (value,) = [v for k, v in parse_line(line).items() if k in ("loss", "grad_norm")]
    assert isinstance(value, float) and not math.isfinite(value)


# ---------------------------------------------------------------------------------------------
# report(): whatever a script passes, one strict JSON line

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=8)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), any_text)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner),
    st.dictionaries(st.text("abcxyz_", min_size=1, max_size=4), inner, max_size=4)),
    max_leaves=12)
metric_names = st.text(st.characters(codec=None, exclude_categories=()), min_size=1, max_size=8
                       ).filter(lambda n: n not in ("time", "nonfinite"))


def valid(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def has_nonfinite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return any(map(has_nonfinite, value))
    if isinstance(value, dict):
        return any(map(has_nonfinite, value.values()))
    return False


def assert_written_as(given: Any, written: Any) -> None:
    if isinstance(given, float) and not math.isfinite(given):
        assert written is None
    elif isinstance(given, str):
        assert written == given if valid(given) else "\ufffd" in written
    elif isinstance(given, (list, tuple)):
        assert isinstance(written, list) and len(written) == len(given)
        for g, w in zip(given, written):
            assert_written_as(g, w)
    elif isinstance(given, dict):
        assert list(written) == list(given)
        for key in given:
            assert_written_as(given[key], written[key])
    else:
        assert written == given and type(written) is type(given)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(metric_names, values, min_size=1, max_size=4))
def test_report_writes_strict_json_whatever_it_is_given(metrics):
    with tempfile.TemporaryDirectory() as run_dir, pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRIDRUN_RUN_DIR", run_dir)
        report(**metrics)
        with open(os.path.join(run_dir, METRICS_FILE), "rb") as fh:
            raw = fh.read()
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1
    record = json.loads(raw.decode("utf-8"),        # strict UTF-8, and no NaN/Infinity tokens
                        parse_constant=lambda c: pytest.fail(f"{c} written"))
    json.dumps(record, ensure_ascii=False).encode("utf-8")   # no lone surrogate inside
    assert isinstance(record.pop("time"), float)
    expected_nonfinite = [n for n, v in metrics.items() if has_nonfinite(v)]
    if expected_nonfinite:
        assert len(record.pop("nonfinite")) == len(expected_nonfinite)
    for name, value in metrics.items():
        if valid(name):
            assert_written_as(value, record[name])
    assert all(valid(n) for n in record)


@pytest.mark.parametrize("text", [
    "Epoch   loss   time\n1  0.5  " + "9" * 5000 + ":00\n",         # a table row's duration
    "[" + "9" * 5000 + "/3] loss: 0.3\n", "step 3/" + "9" * 5000 + " loss 1\n",
    "loss " + "1" * 400 + "/3\n", "time " + "1" * 400 + "ms\n",          # past a float's range
])
def test_numbers_python_refuses_are_skipped_not_raised(text):
    p = OutputParser()
    records = p.feed(text) + p.close()
    for record in records:
        assert_strict_metrics(record)
