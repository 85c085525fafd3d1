"""The built-in trainer against the classic PyTorch loop, on the two workloads of study 1.

    .venv/bin/python bench/trainer_vs_classic.py            # full size: run it on a GPU
    .venv/bin/python bench/trainer_vs_classic.py --small    # a CPU-sized check that it works

Workloads (issue 3, study 1), batch 128, the same network and optimizer on both sides:

- MNIST MLP: one hidden layer of 128, Adam 1e-3; horizontal flip, rotation by 60-90 degrees,
  affine (shift 10%, scale 0.9-1.1).
- CIFAR-10 CNN: 32-64-128 conv blocks, fully connected 256-128, AdamW 1e-3; colour jitter,
  horizontal flip, random crop with 4-pixel padding.

Data: synthetic uint8 images of the real shapes (60,000 x 1 x 28 x 28; 50,000 x 3 x 32 x 32),
no download. The built-in side is `experiments.train.train`; the classic side is what course
reports write: a Dataset that hands out PIL images (as torchvision's MNIST/CIFAR10 do), PIL
transforms, DataLoader(shuffle, num_workers=4, pin_memory), and `loss.item()` every batch.
Each side trains three epochs; the faster of the second and third is kept (start-up and warm-up
excluded, and less noise from other load; the classic loader starts its workers every epoch,
as it does by default). Then both train the MLP on
scikit-learn's digits for the same epochs, to show the speed costs no accuracy.

Prints markdown tables: images/s of each side and their ratio, then the digits accuracies.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.pop("GRIDRUN_RUN_DIR", None)     # report() prints (and is silenced) instead of writing

import torch  # noqa: E402
import torchvision.transforms as T  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from gridrun.experiments import data as datasets  # noqa: E402
from gridrun.experiments.config import resolve  # noqa: E402
from gridrun.experiments.models import create_model  # noqa: E402
from gridrun.experiments.train import train  # noqa: E402

WORKLOADS = {
    "MNIST MLP": {
        "synthetic.shape": [1, 28, 28], "synthetic.train_size": 60000, "model": "mlp",
        "mlp.hidden": [128], "optimizer": "adam", "augment": ["hflip", "rotation", "affine"],
        "aug.rotation.degrees": [60, 90],
    },
    "CIFAR-10 CNN": {
        "synthetic.shape": [3, 32, 32], "synthetic.train_size": 50000, "model": "cnn",
        "cnn.channels": [32, 64, 128], "cnn.fc": [256, 128], "optimizer": "adamw",
        "augment": ["color_jitter", "hflip", "crop"],
    },
}
COMMON = {"dataset": "synthetic", "synthetic.test_size": 256, "val_split": 0, "batch_size": 128,
          "lr": 1e-3, "epochs": 3, "seed": 0}


def classic_transforms(cfg: dict, mean: list[float], std: list[float]) -> T.Compose:
    """The torchvision transforms the built-in augmentations stand for, with the same arguments."""
    steps = []
    for name in cfg["augment"]:
        if name == "hflip":
            steps.append(T.RandomHorizontalFlip())
        elif name == "rotation":
            steps.append(T.RandomRotation(cfg["aug.rotation.degrees"]))
        elif name == "affine":
            steps.append(T.RandomAffine(degrees=0, translate=(0.1, 0.1), scale=(0.9, 1.1)))
        elif name == "color_jitter":
            steps.append(T.ColorJitter(0.2, 0.2, 0.2))
        elif name == "crop":
            steps.append(T.RandomCrop(cfg["synthetic.shape"][1:], padding=4))
    return T.Compose([*steps, T.ToTensor(), T.Normalize(mean, std)])


class PILImages(Dataset):
    """What torchvision's MNIST and CIFAR10 do per item: uint8 array -> PIL image -> transform."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform):
        self.images = x.permute(0, 2, 3, 1).squeeze(3).contiguous().numpy()  # N x H x W (x C)
        self.labels = y.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def classic_train(cfg: dict, data: datasets.Data, device: torch.device, workers: int
                  ) -> tuple[nn.Module, float]:
    """The classic loop; returns the model and the best images/s of the epochs after the first."""
    torch.manual_seed(cfg["seed"])
    model = create_model(cfg, data.shape, data.classes).to(device)
    opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[cfg["optimizer"]]
    optimizer = opt_cls(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    criterion = nn.CrossEntropyLoss()
    mean, std = data.mean.flatten().tolist(), data.std.flatten().tolist()
    loader = DataLoader(PILImages(data.train.x, data.train.y, classic_transforms(cfg, mean, std)),
                        batch_size=cfg["batch_size"], shuffle=True, num_workers=workers,
                        pin_memory=device.type == "cuda")
    rates = []
    for _ in range(cfg["epochs"]):
        start, seen, running_loss = time.perf_counter(), 0, 0.0
        model.train()
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
            seen += len(y)
        rates.append(seen / (time.perf_counter() - start))
    return model, max(rates[1:], default=rates[0])


def builtin_train(cfg: dict) -> tuple[list[dict], dict]:
    with contextlib.redirect_stdout(io.StringIO()), tempfile.TemporaryDirectory() as run_dir:
        return train(cfg, Path(run_dir))


@torch.no_grad()
def accuracy(model: nn.Module, data: datasets.Data, split: datasets.Split,
             device: torch.device) -> float:
    model.eval()
    x = (split.x.to(device).float() / 255 - data.mean.to(device)) / data.std.to(device)
    return (model(x).argmax(1) == split.y.to(device)).float().mean().item()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--small", action="store_true",
                   help="4,096 / 2,048 training images instead of 60,000 / 50,000 (for a CPU)")
    p.add_argument("--workers", type=int, default=4, help="the classic DataLoader's workers")
    p.add_argument("--digits-epochs", type=int, default=20)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = p.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"device: {device.type} ({name or platform.machine()}), {os.cpu_count()} CPU cores, "
          f"torch {torch.__version__}, classic DataLoader workers: {args.workers}\n")

    print("| workload | train images | built-in (img/s) | classic (img/s) | ratio |")
    print("|---|---:|---:|---:|---:|")
    for label, workload in WORKLOADS.items():
        small = {"synthetic.train_size": 4096 if label.startswith("MNIST") else 2048}
        cfg = resolve({**COMMON, **workload, **(small if args.small else {}),
                       "device": device.type})
        history, _ = builtin_train(cfg)
        builtin_rate = max(r["samples_per_s"] for r in history[1:])
        data = datasets.load(cfg, torch.device("cpu"))
        _, classic_rate = classic_train(cfg, data, device, args.workers)
        print(f"| {label} | {len(data.train):,} | {builtin_rate:,.0f} | {classic_rate:,.0f} | "
              f"{builtin_rate / classic_rate:.1f}x |", flush=True)

    # accuracy: the same MLP, optimizer, split and epochs on real data (digits), no augmentation
    cfg = resolve({"dataset": "digits", "model": "mlp", "mlp.hidden": [128], "optimizer": "adam",
                   "batch_size": 128, "lr": 1e-3, "epochs": args.digits_epochs,
                   "device": device.type})
    history, final = builtin_train(cfg)
    data = datasets.load(cfg, torch.device("cpu"))
    model, _ = classic_train(cfg, data, device, workers=0)
    print(f"\ndigits, MLP-128, Adam 1e-3, batch 128, {cfg['epochs']} epochs "
          f"({len(data.train)} train / {len(data.val)} val / {len(data.test)} test):\n")
    print("| loop | val acc | test acc |")
    print("|---|---:|---:|")
    print(f"| built-in | {history[-1]['val_acc']:.3f} | {final['test_acc']:.3f} |")
    print(f"| classic | {accuracy(model, data, data.val, device):.3f} | "
          f"{accuracy(model, data, data.test, device):.3f} |")


if __name__ == "__main__":
    main()
