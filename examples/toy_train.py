"""A tiny stand-in for a training script, in pure Python (no torch, no NumPy).

Logistic regression on a synthetic two-class problem, printing one line per epoch in the
format hand-written PyTorch scripts use, so gridrun parses it with no configuration:

    Epoch [3/5], Loss: 0.3206, LR: 0.100000, Accuracy: 90.91%

Run it by hand (`python examples/toy_train.py --lr 0.1`) or through gridrun
(examples/quickstart.toml). Under gridrun it checkpoints to $GRIDRUN_RUN_DIR after each epoch
and resumes from there when started again.
"""
import argparse
import json
import math
import os
import random
import time


def make_data(seed: int, n: int = 2000, dim: int = 8):
    rng = random.Random(1234)  # the data set is the same for every run; the seed is the init
    teacher = [rng.gauss(0, 1) for _ in range(dim)]
    xs, ys = [], []
    for _ in range(n):
        x = [rng.gauss(0, 1) for _ in range(dim)]
        margin = sum(a * b for a, b in zip(x, teacher)) + rng.gauss(0, 0.5)
        xs.append(x)
        ys.append(1 if margin > 0 else 0)
    return xs, ys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds per epoch, for demos")
    args = parser.parse_args()

    xs, ys = make_data(args.seed)
    rng = random.Random(args.seed)
    w = [rng.gauss(0, 0.01) for _ in range(len(xs[0]))]
    start_epoch = 1
    run_dir = os.environ.get("GRIDRUN_RUN_DIR")
    ckpt = os.path.join(run_dir, "toy_checkpoint.json") if run_dir else None
    if ckpt and os.path.exists(ckpt):
        with open(ckpt) as f:
            state = json.load(f)
        w, start_epoch = state["w"], state["epoch"] + 1
        print(f"resuming from epoch {state['epoch']}")

    for epoch in range(start_epoch, args.epochs + 1):
        order = list(range(len(xs)))
        rng.shuffle(order)
        total, correct = 0.0, 0
        for i in order:
            z = sum(a * b for a, b in zip(w, xs[i]))
            p = 1 / (1 + math.exp(-max(min(z, 30), -30)))
            total -= math.log(p if ys[i] else 1 - p + 1e-12) if p > 0 else 30
            correct += (p > 0.5) == bool(ys[i])
            g = p - ys[i]
            w = [wj - args.lr * g * xj for wj, xj in zip(w, xs[i])]
        time.sleep(args.sleep)
        print(f"Epoch [{epoch}/{args.epochs}], Loss: {total / len(xs):.4f}, LR: {args.lr:.6f}, "
              f"Accuracy: {100 * correct / len(xs):.2f}%", flush=True)
        if ckpt:
            tmp = ckpt + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"w": w, "epoch": epoch}, f)
            os.replace(tmp, ckpt)


if __name__ == "__main__":
    main()
