"""The not_learning flag's state machine, fed one row at a time as the tail feeds it."""
from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from gridrun.engine.flags import KEEP_AT_END, RAISE_AFTER, ChanceWatch

LN10 = math.log(10)


def verdicts(losses, key="train_loss"):
    watch = ChanceWatch()
    return watch, [watch.feed({"epoch": i + 1, key: loss}) for i, loss in enumerate(losses)]


def test_a_slow_starter_is_never_flagged_and_a_stuck_run_is():
    # three epochs at ln 10 and then learning: ordinary, the flag is never raised
    watch, seen = verdicts([LN10, LN10 + 0.01, LN10 - 0.01, 1.8, 1.2, 0.9])
    assert seen == [False, False, False, False, False, False]
    assert watch.verdict(ended=True) is False
    # at chance for every epoch: raised at RAISE_AFTER, not before
    watch, seen = verdicts([LN10] * 8)
    assert seen == [False] * (RAISE_AFTER - 1) + [True] * (8 - RAISE_AFTER + 1)


def test_the_flag_is_cleared_as_soon_as_the_loss_leaves_chance_and_stays_cleared():
    watch, seen = verdicts([LN10] * 6 + [2.0] + [LN10] * 4)
    assert seen[5] is True and seen[6:] == [False] * 5
    assert watch.verdict(ended=True) is False


def test_a_run_that_ended_at_chance_keeps_the_flag():
    watch, _ = verdicts([LN10] * KEEP_AT_END)
    assert watch.verdict() is False and watch.verdict(ended=True) is True
    short, _ = verdicts([LN10] * (KEEP_AT_END - 1))
    assert short.verdict(ended=True) is False


def test_rows_without_a_loss_give_no_verdict_and_steps_of_one_epoch_count_once():
    watch = ChanceWatch()
    assert watch.feed({"epoch": 1, "val_acc": 0.1}) is None
    assert watch.feed({"epoch": 1, "val_loss": LN10}) is None     # a validation loss is not it
    assert watch.feed({"epoch": 1, "test_loss": LN10}) is None    # nor a test loss
    for _ in range(10):                                             # ten step rows of epoch 1
        watch.feed({"epoch": 1, "step": 3, "loss": LN10})
    assert watch.epochs == 1


def test_every_loss_must_sit_at_the_same_chance_level():
    # ln 2, then ln 10: each is "a chance level", but not one level the run sits at
    _, seen = verdicts([math.log(2)] * 3 + [LN10] * 5)
    assert seen[-1] is False


def test_a_new_attempt_from_an_earlier_epoch_starts_over():
    watch = ChanceWatch()
    for epoch in (1, 2, 3):
        watch.feed({"epoch": epoch, "loss": 0.5})
    assert watch.left
    for epoch in range(1, RAISE_AFTER + 1):
        verdict = watch.feed({"epoch": epoch, "loss": LN10})
    assert verdict is True


@given(st.lists(st.one_of(st.just(LN10), st.floats(0.01, 10)), min_size=1, max_size=30),
       st.booleans())
def test_raised_exactly_when_every_epoch_so_far_is_at_chance_for_long_enough(losses, ended):
    watch, seen = verdicts(losses)
    for i, verdict in enumerate(seen):
        so_far = losses[:i + 1]
        all_chance = all(abs(x - LN10) < 0.02 * LN10 for x in so_far)
        assert verdict is (all_chance and i + 1 >= RAISE_AFTER)
    all_chance = all(abs(x - LN10) < 0.02 * LN10 for x in losses)
    need = KEEP_AT_END if ended else RAISE_AFTER
    assert watch.verdict(ended=ended) is (all_chance and len(losses) >= need)
