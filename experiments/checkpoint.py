"""checkpoint.pt in the run folder: written atomically after every epoch, read back on resume.

Everything in it loads with `torch.load(..., weights_only=True)`: tensors, numbers, strings,
lists, tuples and dicts only (NumPy's RNG state is stored as a list for that reason).
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

FILE = "checkpoint.pt"


def save(run_dir: Path, state: dict[str, Any]) -> None:
    """Write to a temporary file, then rename over the old one: a kill at any moment leaves
    either the previous checkpoint or the new one, never a torn file."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / FILE
    tmp = path.with_name(f"{FILE}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / FILE
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "python": random.getstate(),
        "numpy": [name, keys.tolist(), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
