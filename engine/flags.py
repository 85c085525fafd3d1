"""The `not_learning` flag: a run whose training loss has sat at chance level, ln(k), from its
first epoch on for longer than a learning run ever does.

A loss near ln(k) for the first few epochs is ordinary (CIFAR-10 at a low lr prints 2.30 for
two or three epochs, then learns), so the flag is never about a window of recent epochs: it
is raised only while *every* epoch so far has been at chance level, and cleared for good as
soon as one epoch leaves it. `ChanceWatch` is fed one metric row at a time (the tail may keep
only a bounded window of history), so it holds its own small state.
"""
from __future__ import annotations

import math

# k in ln(k): two classes, ten (CIFAR-10, MNIST), a hundred, a thousand (ImageNet)
CLASS_COUNTS = (2, 10, 100, 1000)
# how close to ln(k) counts as chance level: 2%, i.e. 2.30 +- 0.046 for ten classes. A run
# that learns anything moves its loss further than that within an epoch or two.
TOLERANCE = 0.02
# While a run is going, the flag waits for 5 epochs at chance: the slow starters the flag must
# not accuse sit there for up to 3 (the CIFAR runs at a low lr, which end at 82%), so
# 5 leaves a margin of two epochs and still warns early in a run of 20 or more.
RAISE_AFTER = 5
# A run that has ended without ever leaving chance level keeps the flag once it had 3 epochs
# there: with nothing after them, those epochs are the whole run.
KEEP_AT_END = 3
NAME = "not_learning"


def training_loss(row: dict) -> float | None:
    """The row's first training loss (a key with "loss" in it, not a validation or test one)."""
    for key, value in row.items():
        if ("loss" in key and "val" not in key and "test" not in key and isinstance(value, (int, float))
                and not isinstance(value, bool) and math.isfinite(value)):
            return float(value)
    return None


def chance_levels(loss: float) -> set[int]:
    """The class counts k whose ln(k) this loss is within TOLERANCE of."""
    return {k for k in CLASS_COUNTS if abs(loss - math.log(k)) < TOLERANCE * math.log(k)}


class ChanceWatch:
    """Fed a run's metric rows in order; says whether the run is stuck at chance level."""

    def __init__(self) -> None:
        self.epochs = 0                  # epochs seen, every one of them at chance level
        self.levels = set(CLASS_COUNTS)  # the ln(k) every loss so far has been near
        self.left = False                # one epoch was away from chance: never flagged again
        self.last_epoch: float | None = None

    def feed(self, row: dict) -> bool | None:
        """Take one row; the verdict so far (None while no loss has been seen)."""
        loss = training_loss(row)
        if loss is None:
            return self.verdict()
        epoch = row.get("epoch")
        epoch = epoch if isinstance(epoch, (int, float)) and not isinstance(epoch, bool) else None
        if epoch is not None and self.last_epoch is not None and epoch < self.last_epoch:
            self.__init__()  # a new attempt starts over from an earlier epoch
        # several rows of one epoch (step logs) count as one epoch
        new_epoch = epoch is None or epoch != self.last_epoch
        self.last_epoch = epoch
        if self.left:
            return False
        levels = self.levels & chance_levels(loss)
        if not levels:
            self.left = True
            return False
        self.levels = levels
        self.epochs += new_epoch
        return self.verdict()

    def verdict(self, ended: bool = False) -> bool | None:
        if self.left:
            return False
        if self.epochs == 0:
            return None
        return self.epochs >= (KEEP_AT_END if ended else RAISE_AFTER)
