"""The runs filter (`/`): words separated by spaces, every one must hold (AND).

- `lr=0.1`, `lr!=0.1`: a field equals (or not) the value; numbers compare as numbers
  (`lr=0.10` matches 0.1), anything else as text, case-insensitive.
- `lr>0.05`, `lr>=0.05`, `epochs<3`, `epochs<=3`: numeric comparisons (a field that is not a
  number, or a value that is not one, matches nothing).
- `status:fail`, `device:cuda`: the field's text contains the value.
- any other word: it appears in the run's text (its status, device, flags and `key=value`s).

A term whose value is not typed yet (`lr>`) asks only that the field exist, so the table does not
blink empty while the user types. Pure: no Textual, no store; any text parses, never raises.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping

# longest operators first, so `<=` is not read as `<` followed by `=0.1`
_TERM = re.compile(r"^([A-Za-z_][\w.\-]*?)(<=|>=|!=|==|=|<|>|:)(.*)$", re.DOTALL)


@dataclass(frozen=True)
class Term:
    key: str | None      # None: a plain word
    op: str              # "" for a plain word
    value: str


def parse(text: str) -> tuple[Term, ...]:
    terms = []
    for word in text.split():
        match = _TERM.match(word)
        if match:
            key, op, value = match.groups()
            terms.append(Term(key.lower(), "=" if op == "==" else op, value.lower()))
        else:
            terms.append(Term(None, "", word.lower()))
    return tuple(terms)


def _number(value: object) -> float | None:
    """A float for int/float values and numeric text; None for bools, text, NaN."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return None if math.isnan(number) else number


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


def _holds(term: Term, fields: Mapping[str, object], text: str) -> bool:
    if term.key is None:
        return term.value in text
    if term.key not in fields:
        return False
    field = fields[term.key]
    if field is None:
        return False
    if not term.value:
        return True
    if term.op == ":":
        return term.value in _text(field)
    have, want = _number(field), _number(term.value)
    if term.op in ("=", "!="):
        same = (have == want) if have is not None and want is not None else \
            _text(field) == term.value
        return same if term.op == "=" else not same
    if have is None or want is None:
        return False
    return {"<": have < want, "<=": have <= want, ">": have > want, ">=": have >= want}[term.op]


def matches(terms: tuple[Term, ...], fields: Mapping[str, object], text: str) -> bool:
    """Whether a run passes: `fields` by lower-case name (its parameters, status, device and
    values), `text` the lower-case words plain terms are looked for in."""
    return all(_holds(term, fields, text) for term in terms)
