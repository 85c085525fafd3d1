"""Typed messages the interface's workers post to its widgets (the only way data from a
worker thread reaches the screen)."""
from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from engine.feed import Snapshot


@dataclass
class FeedUpdated(Message):
    """A poll of the store: what changed since the last one."""
    snapshot: Snapshot


@dataclass
class ActionDone(Message):
    """A cancel, retry or export finished in a worker: say how it went."""
    text: str
    error: bool = False
