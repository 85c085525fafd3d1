"""The runs filter's little language: parsing and matching, on examples and on any text."""
from __future__ import annotations

from hypothesis import given, strategies as st

from gridrun.tui.filter_query import Term, matches, parse

RUN = {"lr": 0.1, "epochs": 3, "optim": "Adam", "wd": True, "status": "failed",
       "device": "cuda:0", "best": None}
TEXT = "failed cuda:0 lr=0.1 epochs=3 optim=adam wd=true"


def passes(query: str, fields=RUN, text=TEXT) -> bool:
    return matches(parse(query), fields, text)


def test_terms_are_read_with_the_longest_operator():
    assert parse("lr<=0.1 status:Failed adam x==1") == (
        Term("lr", "<=", "0.1"), Term("status", ":", "failed"), Term(None, "", "adam"),
        Term("x", "=", "1"))


def test_comparisons_are_numeric_and_equality_falls_back_to_text():
    assert passes("lr>0.05") and not passes("lr>0.1") and passes("lr>=0.1")
    assert passes("lr=0.10") and passes("lr!=0.2") and not passes("lr!=0.1")
    assert passes("epochs<=3") and not passes("epochs<3")
    assert passes("optim=adam") and not passes("optim=sgd")
    assert passes("wd=true") and not passes("wd>0")      # a bool is not a number
    assert not passes("optim>1")                           # neither is text


def test_status_contains_words_and_and():
    assert passes("status:fail") and not passes("status:done")
    assert passes("device:cuda lr>0.05 adam")
    assert not passes("device:cuda lr>0.5")
    assert passes("")


def test_missing_fields_and_values_not_typed_yet():
    assert not passes("momentum=0.9")
    assert not passes("best>0")                            # no value yet: None
    assert passes("lr>") and not passes("momentum>")


def test_nan_matches_no_comparison():
    fields = {"loss": float("nan")}
    assert not passes("loss>0", fields) and not passes("loss<0", fields)


@given(st.text(), st.dictionaries(st.text(max_size=5),
                                  st.one_of(st.none(), st.booleans(), st.integers(),
                                            st.floats(), st.text())),
       st.text())
def test_any_text_parses_and_matches_without_raising(query, fields, text):
    result = matches(parse(query), fields, text)
    assert isinstance(result, bool)
    assert matches((), fields, text)


@given(st.floats(allow_nan=False, allow_infinity=False), st.floats(allow_nan=False,
                                                                   allow_infinity=False))
def test_a_number_is_on_exactly_one_side(have, want):
    fields = {"x": have}
    sides = [passes(f"x{op}{want!r}", fields, "") for op in ("<", "=", ">")]
    assert sides.count(True) == 1
