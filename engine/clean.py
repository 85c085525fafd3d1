"""Making whatever a run reported storable as strict JSON.

A run's metrics come from its own output: NaN and infinities (a diverging run, the most
ordinary event of a sweep), strings that are not valid Unicode (lone surrogates from a
`surrogateescape` decode), tuples, objects of any type, nesting of any depth. The store writes
strict JSON (`allow_nan=False`) in UTF-8, so everything passes through `clean_metrics` first:
one function at the boundary, so no path into the store can skip it.
"""
from __future__ import annotations

import math
from typing import Any

MAX_DEPTH = 32       # deeper nesting is not a metric: it is stored as null
MAX_TEXT = 10_000    # a metric string longer than this is cut (it is someone's log line)


class Cleaned:
    """The result of one clean: the value, and whether it held a non-finite number."""

    __slots__ = ("value", "nonfinite")

    def __init__(self) -> None:
        self.value: Any = None
        self.nonfinite = False


def clean_text(text: str) -> str:
    """Valid Unicode: lone surrogates (and anything else unencodable) become U+FFFD."""
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT]
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)


def clean_value(value: Any) -> tuple[Any, bool]:
    """(strict-JSON value, held a non-finite number). Never raises."""
    out = Cleaned()
    out.value = _clean(value, 0, out)
    return out.value, out.nonfinite


def clean_metrics(row: dict) -> tuple[dict, bool]:
    """A metric row (or a run's latest values) made storable: non-finite numbers -> None, at any
    depth; text valid Unicode; keys text. Returns (row, whether it held a non-finite number)."""
    value, nonfinite = clean_value(row)
    return (value if isinstance(value, dict) else {}), nonfinite


def _clean(value: Any, depth: int, out: Cleaned) -> Any:
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        out.nonfinite = True
        return None
    if isinstance(value, str):
        return clean_text(value)
    if depth >= MAX_DEPTH:
        return None
    if isinstance(value, dict):
        return {_key(k): _clean(v, depth + 1, out) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, depth + 1, out) for v in value]
    try:  # numpy scalars and the like have a float value; anything else is shown as text
        return _clean(float(value), depth, out)
    except Exception:  # noqa: BLE001 - a hostile __float__ must not stop the daemon
        pass
    try:
        return clean_text(str(value))
    except Exception:  # noqa: BLE001 - nor a hostile __str__
        return None


def _key(key: Any) -> str:
    """Keys are text in JSON; the names json.dumps would give other keys."""
    if isinstance(key, str):
        return clean_text(key)
    if key is None or isinstance(key, bool):
        return {None: "null", True: "true", False: "false"}[key]
    try:
        return clean_text(str(key))
    except Exception:  # noqa: BLE001
        return "?"
