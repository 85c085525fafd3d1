"""checkpoint.pt in the run folder: written atomically after an epoch (see `Due`), read back on
resume.

Everything in it loads with `torch.load(..., weights_only=True)`: tensors, numbers, strings,
lists, tuples and dicts only. Plain data with many small items is stored packed: the run's
`config` and `history` as JSON text, the 625 words of Python's and NumPy's generator states as
int64 tensors. torch.save runs a Python hook for every object it pickles, and item by item
these were most of a small run's checkpoint time, growing with every epoch of history.
`load` unpacks them; checkpoints of the older, unpacked layout load too.
"""
from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

FILE = "checkpoint.pt"
PACKED = ("config", "history")      # stored as JSON text (finite numbers, text, lists, dicts)


class Due:
    """When the trainer writes the next checkpoint: after an epoch once `every` seconds have
    passed since the last one (or since the run started), after every epoch when `every` is 0,
    and always after the run's last epoch. A small run's epoch can take milliseconds, and a
    checkpoint after each one was then most of its time; a crash costs at most `every` seconds
    of training."""

    def __init__(self, every: float):
        self.every = every
        self.last = time.monotonic()

    def __call__(self, last_epoch: bool) -> bool:
        now = time.monotonic()
        if last_epoch or now - self.last >= self.every:
            self.last = now
            return True
        return False


def save(run_dir: Path, state: dict[str, Any]) -> None:
    """Write to a temporary file, then rename over the old one: a kill at any moment leaves
    either the previous checkpoint or the new one, never a torn file."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / FILE
    tmp = path.with_name(f"{FILE}.tmp")
    packed = {key: json.dumps(value, allow_nan=False) if key in PACKED else value
              for key, value in state.items()}
    torch.save(packed, tmp)
    os.replace(tmp, path)


def load(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / FILE
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in PACKED:
        if isinstance(state.get(key), str):
            state[key] = json.loads(state[key])
    return state


def rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, words, gauss = random.getstate()
    return {
        "python": (version, torch.tensor(words, dtype=torch.int64), gauss),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    version, words, gauss = state["python"]
    random.setstate((version, tuple(_ints(words)), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(_ints(keys), dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


def _ints(words: Any) -> list[int]:
    return words.tolist() if isinstance(words, torch.Tensor) else list(words)
