"""Datasets as uint8 tensors living on the device: loaded (or downloaded) once, decoded once and
cached, split into train/validation by `split_seed`, limited for quick runs.

Images stay uint8 on the device (a quarter of float32's memory); the trainer turns each batch to
float, augments it and normalises it with `Data.mean` / `Data.std` (see experiments.train).
"""
from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from gridrun.experiments import schema
from gridrun.experiments.config import TrainerError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DIGITS_TEST = 360          # scikit-learn's digits have no test split: a fixed 20% is held out


@dataclass(frozen=True)
class Split:
    x: torch.Tensor        # uint8, N x C x H x W
    y: torch.Tensor        # int64, N

    def __len__(self) -> int:
        return len(self.y)

    def first(self, n: int) -> Split:
        return Split(self.x[:n], self.y[:n]) if n else self


@dataclass(frozen=True)
class Data:
    train: Split
    val: Split | None
    test: Split
    classes: int
    mean: torch.Tensor     # float32, 1 x C x 1 x 1, on the device (pixels scaled to [0, 1])
    std: torch.Tensor

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])


# ---------------------------------------------------------------------------------------------
# Sources: name -> (train, test) as uint8 N x C x H x W and int64 labels, on the CPU

def _digits() -> tuple[Split, Split]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images).mul(255 / 16).round().to(torch.uint8).unsqueeze(1)
    y = torch.from_numpy(bunch.target).long()
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    test, train = order[:DIGITS_TEST], order[DIGITS_TEST:]
    return Split(x[train], y[train]), Split(x[test], y[test])


def _synthetic(cfg: dict) -> tuple[Split, Split]:
    """One random prototype image per class plus noise: real shapes, and learnable, so a run on it
    shows whether the trainer learns. The same data for every run (a fixed generator)."""
    shape, classes = tuple(cfg["synthetic.shape"]), cfg["synthetic.classes"]
    g = torch.Generator().manual_seed(0)
    prototypes = torch.randint(0, 256, (classes, *shape), generator=g).float()

    def draw(n: int) -> Split:
        y = torch.randint(0, classes, (n,), generator=g)
        x = prototypes[y] + 64 * torch.randn(n, *shape, generator=g)
        return Split(x.clamp_(0, 255).to(torch.uint8), y)

    return draw(cfg["synthetic.train_size"]), draw(cfg["synthetic.test_size"])


# torchvision class, and what to put where when it cannot be downloaded
_TORCHVISION = {
    "mnist": ("MNIST", "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                       "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz "
                       "into {root}/MNIST/raw/"),
    "fashion_mnist": ("FashionMNIST", "Fashion-MNIST's four idx .gz files (named as MNIST's) "
                                      "into {root}/FashionMNIST/raw/"),
    "cifar10": ("CIFAR10", "cifar-10-python.tar.gz (or its unpacked cifar-10-batches-py/) "
                           "into {root}/"),
    "cifar100": ("CIFAR100", "cifar-100-python.tar.gz (or its unpacked cifar-100-python/) "
                             "into {root}/"),
}


def _torchvision(name: str, root: Path) -> tuple[Split, Split]:
    """Decoded once into `root/gridrun/<name>-{train,test}.pt`; later runs read only that.

    A sweep starts many runs at once on a fresh machine: a lock makes one of them download and
    decode while the others wait, then read its cache."""
    cache = root / "gridrun"
    paths = [cache / f"{name}-{part}.pt" for part in ("train", "test")]
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TrainerError(f"data_dir {root}: cannot create {cache}: {e.strerror}") from None
    with open(cache / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all(p.exists() for p in paths):
            return tuple(Split(**torch.load(p, weights_only=True)) for p in paths)
        splits = tuple(_decode(name, root, train) for train in (True, False))
        for split, path in zip(splits, paths):
            tmp = path.with_name(f"{path.name}.tmp")
            torch.save({"x": split.x, "y": split.y}, tmp)
            os.replace(tmp, path)
        return splits


def _decode(name: str, root: Path, train: bool) -> Split:
    import torchvision

    cls_name, where = _TORCHVISION[name]
    cls = getattr(torchvision.datasets, cls_name)
    try:
        ds = cls(str(root), train=train, download=False)
    except RuntimeError:                # not there yet: download (an archive already there is used)
        try:
            ds = cls(str(root), train=train, download=True)
        except (OSError, RuntimeError) as e:
            # the last line: MNIST's message lists each mirror tried, then the cause
            reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise TrainerError(
                f"dataset {name} is not in {root} and could not be downloaded ({reason}); "
                f"offline, put {where.format(root=root)} (data_dir sets the folder)"
            ) from None
    x = torch.as_tensor(ds.data)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)    # MNIST: N x H x W; CIFAR: NHWC
    return Split(x.contiguous(), torch.as_tensor(ds.targets, dtype=torch.long))


def _source(cfg: dict, root: Path) -> tuple[Split, Split]:
    name = cfg["dataset"]
    if name == "digits":
        return _digits()
    if name == "synthetic":
        return _synthetic(cfg)
    return _torchvision(name, root)


assert set(_TORCHVISION) | {"digits", "synthetic"} == set(schema.DATASETS)


# ---------------------------------------------------------------------------------------------

def load(cfg: dict, device: torch.device) -> Data:
    """The run's data on `device`: train (after the split and limit_train), val, test."""
    root = Path(os.path.expanduser(cfg["data_dir"]))
    train, test = _source(cfg, root)
    classes = (cfg["synthetic.classes"] if cfg["dataset"] == "synthetic"
               else int(train.y.max()) + 1)
    expected = schema.DATASET_SHAPES.get(cfg["dataset"])
    if expected is not None and (tuple(train.x.shape[1:]), classes) != expected:
        # `gridrun queue add` checked the sweep against that table: it must hold what is loaded
        raise TrainerError(f"dataset {cfg['dataset']} holds {tuple(train.x.shape[1:])} samples "
                           f"of {classes} classes, but schema.DATASET_SHAPES says {expected}")
    train, val = _split(train, cfg["val_split"], cfg["split_seed"])
    train = train.first(cfg["limit_train"])
    if len(train) < 2:
        raise TrainerError(f"only {len(train)} training sample left after val_split and "
                           "limit_train; at least 2 are needed")
    val = val.first(cfg["limit_eval"]) if val is not None else None
    test = test.first(cfg["limit_eval"])

    def move(s: Split | None) -> Split | None:
        return None if s is None else Split(s.x.to(device), s.y.to(device))

    train = move(train)
    mean, std = _normalization(cfg, train.x)
    return Data(train, move(val), move(test), classes, mean, std)


def _split(data: Split, val_split: float | int, seed: int) -> tuple[Split, Split | None]:
    n = len(data)
    n_val = round(val_split * n) if isinstance(val_split, float) else val_split
    if n_val >= n:
        raise TrainerError(f"val_split = {val_split} leaves no training data ({n} samples)")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    train = Split(data.x[order[n_val:]], data.y[order[n_val:]])
    if n_val == 0:
        return train, None
    return train, Split(data.x[order[:n_val]], data.y[order[:n_val]])


def _normalization(cfg: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of pixels in [0, 1], shaped 1 x C x 1 x 1."""
    channels, how = x.shape[1], cfg["normalize"]
    if how == "split":
        # in float64 chunks: exact, and no float copy of the whole set at once
        total = torch.zeros(channels, dtype=torch.float64, device=x.device)
        squares = torch.zeros_like(total)
        for chunk in x.split(4096):
            c = chunk.to(torch.float64).div_(255)
            total += c.sum((0, 2, 3))
            squares += c.square().sum((0, 2, 3))
        count = x.numel() / channels
        mean = total / count
        std = (squares / count - mean.square()).clamp_min(1e-12).sqrt()
    elif how == "imagenet":
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        if channels == 1:               # grey images: the mean of ImageNet's channels
            mean, std = mean.mean(0, keepdim=True), std.mean(0, keepdim=True)
    elif how == "given":
        mean, std = torch.tensor(cfg["norm_mean"]), torch.tensor(cfg["norm_std"])
        if len(mean) != channels or len(std) != channels:
            raise TrainerError(f'normalize = "given" needs norm_mean and norm_std with one '
                               f"number per channel ({channels}); got {len(mean)} and {len(std)}")
    else:
        mean, std = torch.zeros(channels), torch.ones(channels)
    shape = (1, channels, 1, 1)
    return (mean.to(x.device, torch.float32).view(shape),
            std.to(x.device, torch.float32).view(shape))
