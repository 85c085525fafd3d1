"""Writes what a run got: torch's intra-op thread count and the thread variables it saw."""
import json
import os
import sys

import torch

from gridrun.experiments.train import use_thread_share

if "--trainer" in sys.argv:   # as the built-in trainer does at its start
    use_thread_share()
seen = {"torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS")}
with open(os.path.join(os.environ["GRIDRUN_RUN_DIR"], "threads.json"), "w") as f:
    json.dump(seen, f)
print(f"threads: {seen['torch_threads']}")
