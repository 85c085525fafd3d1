"""The built-in trainer's parameters: every name, its kind, default and allowed values, in one place.

Standard library only (no torch): the engine imports this module to check a sweep's parameters at
`gridrun queue add` time when the sweep has no `command`, and the trainer
(`python -m gridrun.experiments.train`) reads its defaults from here. `describe()` prints the whole table.

Names are flat (`lr`, `batch_size`), with dotted groups for one component's arguments
(`mlp.hidden`, `early_stop.patience`). In TOML a dotted name is a dotted key or a nested table:
`mlp.hidden = [128]` and `[params.mlp]` + `hidden = [128]` are the same parameter. No name is
both a parameter and the prefix of another (TOML could not hold both).

Kinds (`Param.kind`), the whole set:

    int                an integer (true/false are not integers); min/max inclusive
    float              a finite number; integers are accepted; min/max (min may be exclusive)
    bool               true or false
    str                text; with `choices`, exactly one of them (case matters)
    int_list           a list of integers; min/max apply to each item; min_len/max_len to the list
    float_list         a list of finite numbers; as int_list
    str_list           a list of names, each one of `choices`, each at most once
    fraction_or_count  a float in [0, 1) (a fraction) or an integer >= 0 (a count)

Free groups (`FREE_GROUPS`): any name under `optim.`, `sched.` or `aug.` passes `check()`;
`check_run()` then checks optim.* and sched.* against the chosen optimizer's and scheduler's
arguments (`OPTIMIZER_ARGS`, `SCHEDULER_ARGS`: torch's signatures, kept equal by a test that
enumerates torch), and the trainer checks aug.* against the torchvision transform:

    optim.<kwarg>          a keyword argument of the chosen torch.optim optimizer
                           (optim.betas = [0.9, 0.999], optim.eps, optim.nesterov, optim.alpha,
                           optim.centered, optim.lr_decay, ...)
    sched.<kwarg>          a keyword argument of the chosen torch.optim.lr_scheduler class
                           (sched.step_size, sched.gamma, sched.milestones, sched.T_max, ...)
    aug.<name>.<kwarg>     a keyword argument of one augmentation, by the matching torchvision
                           transform's argument name (aug.crop.padding = 4,
                           aug.rotation.degrees = [60, 90], aug.color_jitter.brightness = 0.2)

`OPTIMIZERS`, `SCHEDULERS` and `AUGMENTATIONS` map each allowed name to the torch / torchvision
class it stands for, so the trainer needs no second table.

Rules between parameters (`check_run`): a run's resolved values (its values over the defaults)
must also keep the rules torch or the trainer would enforce only when the run starts: vit.width
a multiple of vit.heads, one resnet.channels entry per resnet.blocks entry, norm_mean and
norm_std with one number per channel for normalize = "given", optim.* / sched.* arguments the
chosen class takes, an optimizer that can train the model, and so on. `gridrun queue add`
applies them to every run of a sweep; the trainer to the run it is given.
"""
from __future__ import annotations

import difflib
import json
import math
import re
import textwrap
from dataclasses import dataclass

__all__ = [
    "Param", "PARAMS", "FREE_GROUPS", "KINDS", "SECTIONS", "OPTIMIZERS", "SCHEDULERS",
    "AUGMENTATIONS", "MODELS", "DATASETS",
    "OPTIMIZER_ARGS", "SCHEDULER_ARGS", "OWN_OPTIMIZER_ARGS", "UNTRAINABLE_OPTIMIZERS",
    "NOT_OFFERED_SCHEDULERS", "DATASET_SHAPES", "REQUIRED", "Violation",
    "lookup", "is_free", "check", "check_run", "did_you_mean", "defaults", "known_names",
    "describe",
]


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    default: object
    help: str
    choices: tuple[str, ...] | None = None   # allowed values (str, and each item of str_list)
    min: float | None = None                 # numbers, and each item of a number list
    max: float | None = None
    # Beyond the engine's needs, kept optional so that Param(name, kind, default, help, ...) holds:
    min_exclusive: bool = False              # min itself is not allowed (lr > 0)
    min_len: int | None = None               # lists: fewest items
    max_len: int | None = None               # lists: most items


KINDS: dict[str, str] = {
    "int": "an integer (true/false are not integers); min/max inclusive",
    "float": "a finite number, integers accepted; min/max (min may be exclusive)",
    "bool": "true or false",
    "str": "text; with choices, exactly one of them",
    "int_list": "a list of integers; min/max per item, min_len/max_len for the list",
    "float_list": "a list of finite numbers; min/max per item, min_len/max_len for the list",
    "str_list": "a list of names, each one of choices, each at most once",
    "fraction_or_count": "a float in [0, 1) (a fraction) or an integer >= 0 (a count)",
}

# Allowed names -> what the trainer builds for them.
DATASETS: dict[str, str] = {
    "mnist": "torchvision.datasets.MNIST",
    "fashion_mnist": "torchvision.datasets.FashionMNIST",
    "cifar10": "torchvision.datasets.CIFAR10",
    "cifar100": "torchvision.datasets.CIFAR100",
    "digits": "sklearn.datasets.load_digits (8x8, bundled, no download)",
    "synthetic": "random data of synthetic.shape in synthetic.classes classes",
}
MODELS: dict[str, str] = {
    "mlp": "fully connected net: mlp.hidden, mlp.dropout",
    "cnn": "conv stack + fully connected head: cnn.channels, cnn.fc, cnn.dropout",
    "resnet": "residual net of basic blocks: resnet.blocks, resnet.channels",
    "vit": "vision transformer: vit.depth, vit.width, vit.patch, vit.heads, vit.mlp_ratio, vit.dropout",
    "resnet18": "torchvision.models.resnet18",
    "mobilenet_v2": "torchvision.models.mobilenet_v2",
    "mobilenet_v3_small": "torchvision.models.mobilenet_v3_small",
    "efficientnet_v2_s": "torchvision.models.efficientnet_v2_s",
}
OPTIMIZERS: dict[str, str] = {   # lower-case name -> torch.optim class
    "sgd": "SGD",
    "adam": "Adam",
    "adamw": "AdamW",
    "adamax": "Adamax",
    "adagrad": "Adagrad",
    "adadelta": "Adadelta",
    "asgd": "ASGD",
    "nadam": "NAdam",
    "radam": "RAdam",
    "rmsprop": "RMSprop",
    "rprop": "Rprop",
    "lbfgs": "LBFGS",
    "sparse_adam": "SparseAdam",
    "adafactor": "Adafactor",
    "muon": "Muon",             # 2-D weights only: the trainer gives the rest to AdamW
}
SCHEDULERS: dict[str, str | None] = {   # name -> torch.optim.lr_scheduler class
    "none": None,
    "step": "StepLR",
    "multistep": "MultiStepLR",
    "exponential": "ExponentialLR",
    "cosine": "CosineAnnealingLR",
    "cosine_restarts": "CosineAnnealingWarmRestarts",
    "plateau": "ReduceLROnPlateau",
    "cyclic": "CyclicLR",
    "onecycle": "OneCycleLR",
    "constant": "ConstantLR",
    "linear": "LinearLR",
    "polynomial": "PolynomialLR",
}
# torch.optim.lr_scheduler classes a TOML file cannot drive, and why (tests/test_schema.py
# enumerates torch: every scheduler class is in SCHEDULERS or here)
NOT_OFFERED_SCHEDULERS: dict[str, str] = {
    "LambdaLR": "takes a Python function",
    "MultiplicativeLR": "takes a Python function",
    "SequentialLR": "chains other scheduler objects",
    "ChainedScheduler": "chains other scheduler objects",
}


class _Required:
    """The default of an argument torch requires (the trainer fills it to fit the run)."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()

# Each optimizer's and scheduler's keyword arguments with torch's defaults, as
# inspect.signature gives them for the installed torch (tests/test_schema.py compares), without
# `params` / `optimizer`. They let `gridrun queue add` refuse an optim.* or sched.* argument
# without importing torch.
OPTIMIZER_ARGS: dict[str, dict[str, object]] = {
    "sgd": {"lr": 0.001, "momentum": 0, "dampening": 0, "weight_decay": 0, "nesterov": False,
            "maximize": False, "foreach": None, "differentiable": False, "fused": None},
    "adam": {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-08, "weight_decay": 0,
             "amsgrad": False, "foreach": None, "maximize": False, "capturable": False,
             "differentiable": False, "fused": None, "decoupled_weight_decay": False},
    "adamw": {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-08, "weight_decay": 0.01,
              "amsgrad": False, "maximize": False, "foreach": None, "capturable": False,
              "differentiable": False, "fused": None},
    "adamax": {"lr": 0.002, "betas": (0.9, 0.999), "eps": 1e-08, "weight_decay": 0,
               "foreach": None, "maximize": False, "differentiable": False, "capturable": False},
    "adagrad": {"lr": 0.01, "lr_decay": 0, "weight_decay": 0, "initial_accumulator_value": 0,
                "eps": 1e-10, "foreach": None, "maximize": False, "differentiable": False,
                "fused": None},
    "adadelta": {"lr": 1.0, "rho": 0.9, "eps": 1e-06, "weight_decay": 0, "foreach": None,
                 "capturable": False, "maximize": False, "differentiable": False},
    "asgd": {"lr": 0.01, "lambd": 0.0001, "alpha": 0.75, "t0": 1000000.0, "weight_decay": 0,
             "foreach": None, "maximize": False, "differentiable": False, "capturable": False},
    "nadam": {"lr": 0.002, "betas": (0.9, 0.999), "eps": 1e-08, "weight_decay": 0,
              "momentum_decay": 0.004, "decoupled_weight_decay": False, "foreach": None,
              "maximize": False, "capturable": False, "differentiable": False},
    "radam": {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-08, "weight_decay": 0,
              "decoupled_weight_decay": False, "foreach": None, "maximize": False,
              "capturable": False, "differentiable": False},
    "rmsprop": {"lr": 0.01, "alpha": 0.99, "eps": 1e-08, "weight_decay": 0, "momentum": 0,
                "centered": False, "capturable": False, "foreach": None, "maximize": False,
                "differentiable": False},
    "rprop": {"lr": 0.01, "etas": (0.5, 1.2), "step_sizes": (1e-06, 50), "capturable": False,
              "foreach": None, "maximize": False, "differentiable": False},
    "lbfgs": {"lr": 1, "max_iter": 20, "max_eval": None, "tolerance_grad": 1e-07,
              "tolerance_change": 1e-09, "history_size": 100, "line_search_fn": None,
              "maximize": False},
    "sparse_adam": {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-08, "maximize": False},
    "adafactor": {"lr": 0.01, "beta2_decay": -0.8, "eps": (None, 0.001), "d": 1.0,
                  "weight_decay": 0.0, "foreach": None, "maximize": False},
    "muon": {"lr": 0.001, "weight_decay": 0.1, "momentum": 0.95, "nesterov": True,
             "ns_coefficients": (3.4445, -4.775, 2.0315), "eps": 1e-07, "ns_steps": 5,
             "adjust_lr_fn": None},
}
SCHEDULER_ARGS: dict[str, dict[str, object]] = {
    "step": {"step_size": REQUIRED, "gamma": 0.1, "last_epoch": -1},
    "multistep": {"milestones": REQUIRED, "gamma": 0.1, "last_epoch": -1},
    "exponential": {"gamma": REQUIRED, "last_epoch": -1},
    "cosine": {"T_max": REQUIRED, "eta_min": 0.0, "last_epoch": -1},
    "cosine_restarts": {"T_0": REQUIRED, "T_mult": 1, "eta_min": 0.0, "last_epoch": -1},
    "plateau": {"mode": "min", "factor": 0.1, "patience": 10, "threshold": 0.0001,
                "threshold_mode": "rel", "cooldown": 0, "min_lr": 0, "eps": 1e-08},
    "cyclic": {"base_lr": REQUIRED, "max_lr": REQUIRED, "step_size_up": 2000,
               "step_size_down": None, "mode": "triangular", "gamma": 1.0, "scale_fn": None,
               "scale_mode": "cycle", "cycle_momentum": True, "base_momentum": 0.8,
               "max_momentum": 0.9, "last_epoch": -1},
    "onecycle": {"max_lr": REQUIRED, "total_steps": None, "epochs": None,
                 "steps_per_epoch": None, "pct_start": 0.3, "anneal_strategy": "cos",
                 "cycle_momentum": True, "base_momentum": 0.85, "max_momentum": 0.95,
                 "div_factor": 25.0, "final_div_factor": 10000.0, "three_phase": False,
                 "last_epoch": -1},
    "constant": {"factor": 0.3333333333333333, "total_iters": 5, "last_epoch": -1},
    "linear": {"start_factor": 0.3333333333333333, "end_factor": 1.0, "total_iters": 5,
               "last_epoch": -1},
    "polynomial": {"total_iters": 5, "power": 1.0, "last_epoch": -1},
}
# Set by `lr`, `weight_decay` and `momentum`, never as optim.<name>
OWN_OPTIMIZER_ARGS = ("lr", "weight_decay", "momentum")
# Optimizers torch has that cannot train the built-in models (all dense), and why
UNTRAINABLE_OPTIMIZERS: dict[str, str] = {
    "sparse_adam": "optimizer sparse_adam (torch.optim.SparseAdam) needs sparse gradients, "
                   "which only nn.Embedding(sparse=True) gives; model {model} has dense "
                   "gradients only",
}
# Each dataset's sample shape [channels, height, width] and class count (synthetic: its own
# synthetic.shape and synthetic.classes); experiments/data.py checks each dataset it loads
DATASET_SHAPES: dict[str, tuple[tuple[int, int, int], int]] = {
    "mnist": ((1, 28, 28), 10),
    "fashion_mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
    "digits": ((1, 8, 8), 10),
}
AUGMENTATIONS: dict[str, str] = {   # name -> the torchvision transform whose arguments aug.<name>.* takes
    "hflip": "RandomHorizontalFlip",
    "crop": "RandomCrop",
    "rotation": "RandomRotation",
    "affine": "RandomAffine",
    "color_jitter": "ColorJitter",
    "random_erasing": "RandomErasing",
}

FREE_GROUPS: dict[str, str] = {
    "optim": "other keyword arguments of the chosen optimizer, by torch's names (optim.betas = "
             "[0.9, 0.999], optim.eps, optim.nesterov, optim.alpha, optim.centered, optim.lr_decay, "
             "...); checked against the optimizer's arguments when the sweep is added",
    "sched": "keyword arguments of the chosen scheduler, by torch's names (sched.step_size, "
             "sched.gamma, sched.milestones, sched.T_max, sched.eta_min, sched.factor, "
             "sched.patience, sched.max_lr, sched.base_lr, sched.step_size_up, sched.pct_start, "
             "...); counted in epochs or steps as sched_interval says; checked against the "
             "scheduler's arguments when the sweep is added",
    "aug": "arguments of one augmentation as aug.<name>.<arg>, by the torchvision transform's "
           "names (aug.hflip.p = 0.5, aug.crop.padding = 4, aug.rotation.degrees = 10 or [60, 90], "
           "aug.affine.degrees / .translate / .scale / .shear, aug.color_jitter.brightness / "
           ".contrast / .saturation / .hue, aug.random_erasing.p / .scale)",
}

_UINT32 = 2**32 - 1


def _p(name: str, kind: str, default: object, help: str, **kw) -> Param:
    return Param(name, kind, default, help, **kw)


SECTIONS: tuple[tuple[str, tuple[Param, ...]], ...] = (
    ("data", (
        _p("dataset", "str", "digits",
           "training data. mnist, fashion_mnist, cifar10 and cifar100 come from torchvision "
           "(downloaded into data_dir when missing); digits is scikit-learn's bundled 8x8 digits "
           "(real data, no download); synthetic is random data of synthetic.shape in "
           "synthetic.classes classes",
           choices=tuple(DATASETS)),
        _p("synthetic.shape", "int_list", (3, 32, 32),
           "shape of one synthetic sample: [channels, height, width]",
           min=1, min_len=3, max_len=3),
        _p("synthetic.classes", "int", 10, "number of synthetic classes", min=2),
        _p("synthetic.train_size", "int", 1024,
           "number of synthetic training samples (the validation split is taken from these)",
           min=1),
        _p("synthetic.test_size", "int", 256, "number of synthetic test samples", min=1),
        _p("data_dir", "str", "~/.cache/gridrun/data",
           "where datasets are downloaded and their decoded tensors cached (~ is expanded; a "
           "relative path is relative to the run's working directory)"),
        _p("val_split", "fraction_or_count", 0.1,
           "validation set taken out of the training set: a fraction in [0, 1) (0.2 = a 4:1 "
           "split) or a number of samples (10000); 0 = no validation set"),
        _p("split_seed", "int", 0,
           "seed of the train/validation split, apart from `seed` so that every run of a sweep "
           "sees the same split", min=0, max=_UINT32),
        _p("normalize", "str", "split",
           "per-channel input normalisation: split = the training split's own mean and std; "
           "imagenet = ImageNet's (for pretrained models); given = norm_mean and norm_std; "
           "none = pixels scaled to [0, 1] only",
           choices=("split", "imagenet", "given", "none")),
        _p("norm_mean", "float_list", (),
           "per-channel mean, one number per channel, used when normalize = \"given\""),
        _p("norm_std", "float_list", (),
           "per-channel standard deviation, used when normalize = \"given\"",
           min=0, min_exclusive=True),
        _p("limit_train", "int", 0,
           "use only the first N training samples after the split, for quick runs (0 = all)",
           min=0),
        _p("limit_eval", "int", 0,
           "use only the first N validation samples and N test samples (0 = all)", min=0),
    )),
    ("augmentation", (
        _p("augment", "str_list", (),
           "augmentations applied on the device to each training sample, in this order; their "
           "arguments go under aug.<name>.<arg> (see the free groups). hflip = horizontal flip, "
           "crop = random crop after padding, rotation = random rotation by degrees or a range, "
           "affine, color_jitter, random_erasing",
           choices=tuple(AUGMENTATIONS)),
        _p("mixup_alpha", "float", 0.0,
           "mixup: mix pairs of samples with a Beta(alpha, alpha) weight (0 = no mixup)", min=0),
    )),
    ("model", (
        _p("model", "str", "mlp",
           "the network. mlp, cnn, resnet and vit are built here (arguments below); resnet18, "
           "mobilenet_v2, mobilenet_v3_small and efficientnet_v2_s are torchvision's, with the "
           "last layer replaced for the dataset's classes",
           choices=tuple(MODELS)),
        _p("mlp.hidden", "int_list", (128,),
           "mlp: hidden layer sizes, ReLU after each ([] = a linear classifier; [1500, 500, 100] "
           "= three hidden layers)", min=1),
        _p("mlp.dropout", "float", 0.0, "mlp: dropout after each hidden layer", min=0, max=1),
        _p("cnn.channels", "int_list", (32, 64, 128),
           "cnn: output channels of each conv block (3x3 conv, ReLU, 2x2 max-pool)",
           min=1, min_len=1),
        _p("cnn.fc", "int_list", (256, 128),
           "cnn: hidden sizes of the fully connected layers after the conv blocks (the class "
           "layer is added after them)", min=1),
        _p("cnn.dropout", "float", 0.0,
           "cnn: dropout before each fully connected layer", min=0, max=1),
        _p("resnet.blocks", "int_list", (2, 2, 2, 2),
           "resnet: residual blocks in each stage ([3, 6, 4, 3] with channels [32, 64, 128, 256] "
           "is about 4.9M parameters)", min=1, min_len=1),
        _p("resnet.channels", "int_list", (32, 64, 128, 256),
           "resnet: channels of each stage, one entry per entry of resnet.blocks",
           min=1, min_len=1),
        _p("vit.depth", "int", 6, "vit: transformer layers", min=1),
        _p("vit.width", "int", 64, "vit: embedding width (a multiple of vit.heads)", min=1),
        _p("vit.patch", "int", 4, "vit: side of the square patches in pixels", min=1),
        _p("vit.heads", "int", 4, "vit: attention heads", min=1),
        _p("vit.mlp_ratio", "float", 2.0,
           "vit: hidden width of each MLP block as a multiple of vit.width",
           min=0, min_exclusive=True),
        _p("vit.dropout", "float", 0.0, "vit: dropout in attention and MLP blocks", min=0, max=1),
        _p("pretrained", "bool", False,
           "start a torchvision model from its ImageNet weights (downloaded once; offline, a "
           "clear error); only for resnet18, mobilenet_v2, mobilenet_v3_small, efficientnet_v2_s"),
        _p("input_size", "int", 0,
           "resize inputs to input_size x input_size on the device, e.g. 224 for "
           "ImageNet-pretrained models (0 = the dataset's own size)", min=0),
    )),
    ("optimizer", (
        _p("optimizer", "str", "adam",
           "any torch.optim optimizer by lower-case name; other keyword arguments go under "
           "optim.* and are checked when the sweep is added. muon (torch.optim.Muon) takes "
           "only 2-D weights: it updates the 2-D weights of the hidden layers and AdamW "
           "(same lr and weight_decay, torch's other defaults) everything else, the class "
           "layer included; optim.adjust_lr_fn = \"match_rms_adamw\" lets one lr suit both, "
           "and momentum is gridrun's (0 unless set; Muon's authors use 0.95). "
           "sparse_adam needs sparse gradients, which no built-in model has",
           choices=tuple(OPTIMIZERS)),
        _p("lr", "float", 1e-3,
           "learning rate (the scheduler's starting point); 0 is allowed, as in torch: a "
           "control run whose weights never move", min=0),
        _p("weight_decay", "float", 0.0,
           "the optimizer's weight_decay (L2 penalty; decoupled for adamw); ignored with a "
           "warning by optimizers that take none", min=0),
        _p("momentum", "float", 0.0,
           "the optimizer's momentum (sgd, rmsprop, muon); ignored with a warning by optimizers "
           "that take none. Like torch, any value >= 0 (above 1 it diverges, which a run "
           "reports)", min=0),
    )),
    ("scheduler", (
        _p("scheduler", "str", "none",
           "learning-rate schedule (torch.optim.lr_scheduler); its arguments go under sched.*, "
           "unset ones get defaults that fit the run (cosine's T_max and polynomial's "
           "total_iters = the run's length, cosine_restarts' T_0 = half of it); constant and "
           "linear keep torch's defaults",
           choices=tuple(SCHEDULERS)),
        _p("sched_interval", "str", "auto",
           "when the scheduler steps, and so what its counts (step_size, T_max, milestones) "
           "mean: epoch = after each epoch, step = after each batch; auto = step for cyclic and "
           "onecycle, epoch for the others",
           choices=("auto", "epoch", "step")),
    )),
    ("training", (
        _p("epochs", "int", 10, "passes over the training set", min=1),
        _p("iterations", "int", 0,
           "train for this many optimizer steps instead of `epochs` (0 = use epochs); metrics "
           "are still reported after each pass over the data and at the end", min=0),
        _p("batch_size", "int", 64, "training batch size", min=1),
        _p("label_smoothing", "float", 0.0, "label smoothing of the cross-entropy loss",
           min=0, max=1),
        _p("grad_clip", "float", 0.0,
           "clip the gradients' global L2 norm to this value (0 = no clipping)", min=0),
        _p("amp", "bool", False, "bf16 autocast on CUDA (no effect on CPU)"),
        _p("compile", "bool", False, "torch.compile the model"),
        _p("channels_last", "bool", False, "channels-last memory format (conv models on CUDA)"),
        _p("seed", "int", 0,
           "seeds Python, NumPy and torch (weights, batch order, augmentation); a sweep's "
           "`seeds` list sets it", min=0, max=_UINT32),
        _p("device", "str", "auto",
           "where to train: auto = cuda when a GPU is visible, else cpu",
           choices=("auto", "cpu", "cuda")),
        _p("checkpoint_every", "float", 30.0,
           "seconds: checkpoint.pt is written after an epoch once this long has passed since "
           "the last one, and after the last epoch; a run resumed after a crash loses at most "
           "this much (0 = after every epoch)", min=0),
        _p("stop_on_stuck", "bool", False,
           "stop a run whose loss sits at chance level (ln of the class count) with chance "
           "accuracy for 3 epochs, instead of only reporting a not_learning warning"),
    )),
    ("early stopping", (
        _p("early_stop.patience", "int", 0,
           "stop after this many epochs without improvement of early_stop.metric "
           "(0 = never stop early)", min=0),
        _p("early_stop.min_epochs", "int", 0, "never stop early before this many epochs",
           min=0),
        _p("early_stop.metric", "str", "val_loss",
           "the metric watched; losses are minimised, accuracies maximised",
           choices=("val_loss", "val_acc", "val_top5", "train_loss", "train_acc")),
        _p("early_stop.min_delta", "float", 0.0,
           "smallest change of early_stop.metric that counts as an improvement", min=0),
    )),
)

PARAMS: dict[str, Param] = {p.name: p for _, ps in SECTIONS for p in ps}

# Spellings users bring from torch, papers and reports, squashed (lower case, letters and digits
# only) -> the allowed value to suggest. Only used for "did you mean"; never accepted silently.
_ALIASES: dict[str, dict[str, str]] = {
    "dataset": {"fmnist": "fashion_mnist", "fashion": "fashion_mnist", "cifar": "cifar10",
                "sklearndigits": "digits", "random": "synthetic", "fake": "synthetic",
                "fakedata": "synthetic"},
    "normalize": {"true": "split", "false": "none", "yes": "split", "no": "none",
                  "meanstd": "split", "own": "split", "dataset": "split"},
    "augment": {"flip": "hflip", "horizontalflip": "hflip", "randomhorizontalflip": "hflip",
                "randomcrop": "crop", "randomrotation": "rotation", "rotate": "rotation",
                "randomaffine": "affine", "colorjitter": "color_jitter",
                "colourjitter": "color_jitter", "jitter": "color_jitter",
                "erasing": "random_erasing", "randomerase": "random_erasing",
                "erase": "random_erasing", "cutout": "random_erasing"},
    "model": {"mobilenetv3": "mobilenet_v3_small", "mobilenet": "mobilenet_v2",
              "efficientnet": "efficientnet_v2_s", "efficientnetv2": "efficientnet_v2_s",
              "convnet": "cnn", "conv": "cnn", "transformer": "vit", "resnet20": "resnet",
              "perceptron": "mlp"},
    "optimizer": {"l_bfgs": "lbfgs", "adamweightdecay": "adamw", "sparseadam": "sparse_adam"},
    "scheduler": {"steplr": "step", "multisteplr": "multistep", "exponentiallr": "exponential",
                  "exp": "exponential", "cosineannealinglr": "cosine",
                  "cosineannealing": "cosine", "reducelronplateau": "plateau",
                  "reduceonplateau": "plateau", "cycliclr": "cyclic", "onecyclelr": "onecycle",
                  "cosineannealingwarmrestarts": "cosine_restarts",
                  "warmrestarts": "cosine_restarts", "sgdr": "cosine_restarts",
                  "poly": "polynomial", "warmup": "linear",
                  "off": "none", "false": "none", "no": "none"},
    "sched_interval": {"batch": "step", "iteration": "step", "iterations": "step",
                       "iter": "step", "steps": "step", "epochs": "epoch"},
    "device": {"gpu": "cuda"},
    "early_stop.metric": {"loss": "val_loss", "acc": "val_acc", "accuracy": "val_acc",
                          "valaccuracy": "val_acc", "top5": "val_top5"},
}


# ---------------------------------------------------------------------------------------------
# Public functions

def lookup(name: str) -> Param | None:
    """The parameter called `name`, or None (also for names under FREE_GROUPS: see is_free)."""
    return PARAMS.get(name)


def is_free(name: str) -> bool:
    """True for a name under a free group, such as "optim.betas" or "aug.crop.padding"."""
    if not isinstance(name, str):
        return False
    group, dot, rest = name.partition(".")
    return (group in FREE_GROUPS and bool(dot)
            and all(part for part in rest.split(".")))


def check(name: str, value: object) -> str | None:
    """None when `value` is acceptable for parameter `name`, else a short 'expected ..., got ...'.

    Names under a free group accept anything here (the trainer checks them against a signature).
    """
    param = PARAMS.get(name)
    if param is None:
        if is_free(name):
            return None
        return f"unknown parameter {_show(name)}"
    return _CHECKERS[param.kind](param, value)


def defaults() -> dict[str, object]:
    """Every parameter's default, by name, lists as fresh lists (safe to change)."""
    return {name: _copy(p.default) for name, p in PARAMS.items()}


def known_names() -> list[str]:
    """Every parameter's name, in table order (free groups are not listed: see FREE_GROUPS)."""
    return list(PARAMS)


def describe(width: int = 100) -> str:
    """A readable table of every parameter: name, kind, default and allowed values, then help."""
    name_w = max(len(n) for n in PARAMS) + 2
    kind_w = max(len(p.kind) for p in PARAMS.values()) + 2
    default_w = min(max(len(_show(p.default)) for p in PARAMS.values()), 24) + 2
    lead = name_w + kind_w + default_w
    allowed_w = max(width - lead - 2, 20)
    out = textwrap.wrap("Built-in trainer parameters (python -m gridrun.experiments.train): set them "
                        "under [params], [grid], [zip] or [sample] of a sweep without `command`.",
                        width) + [""]
    header = f"  {'name':<{name_w}}{'kind':<{kind_w}}{'default':<{default_w}}allowed"
    for title, params in SECTIONS:
        out.append(title)
        out.append(header)
        for p in params:
            default = _show(p.default)
            allowed = _wrap_allowed(_allowed(p), allowed_w)
            if len(default) > default_w - 2:
                out.append(f"  {p.name:<{name_w}}{p.kind:<{kind_w}}{default}")
                first = " " * lead
            else:
                first = f"{p.name:<{name_w}}{p.kind:<{kind_w}}{default:<{default_w}}"
            out.append(f"  {first}{allowed[0]}".rstrip())
            out.extend(f"  {' ' * lead}{line}" for line in allowed[1:])
            out.extend(textwrap.wrap(p.help, width, initial_indent=" " * 6,
                                     subsequent_indent=" " * 6))
        out.append("")
    out.extend(textwrap.wrap("free groups (any name below them; optim.* and sched.* checked "
                             "against the chosen class's arguments, aug.* by the trainer)",
                             width))
    for group, text in FREE_GROUPS.items():
        out.append(f"  {group + '.*'}")
        out.extend(textwrap.wrap(text, width, initial_indent=" " * 6, subsequent_indent=" " * 6))
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class Violation:
    """A rule between parameters that one run breaks. `names` are the parameters involved, the
    one to point at first (a sweep file is read at the first of them that it sets)."""
    message: str
    names: tuple[str, ...]


def check_run(params: dict[str, object]) -> Violation | None:
    """The first rule between parameters that a run breaks, or None. `params` are the run's
    values over the defaults, each already accepted by check(). Each rule is one torch (or the
    trainer) would enforce only when the run starts."""
    for rule in _RUN_RULES:
        if violation := rule(params):
            return violation
    return None


def _optimizer_rules(run: dict) -> Violation | None:
    name = run["optimizer"]
    if name in UNTRAINABLE_OPTIMIZERS:
        return Violation(UNTRAINABLE_OPTIMIZERS[name].format(model=run["model"])
                         + "; use adam", ("optimizer",))
    taken = [a for a in OPTIMIZER_ARGS[name] if a not in OWN_OPTIMIZER_ARGS]
    for key in _group(run, "optim"):
        arg = key[len("optim."):]
        if arg in OWN_OPTIMIZER_ARGS:
            return Violation(f"{key}: set `{arg}` itself, not {key}", (key,))
        if arg not in taken:
            return Violation(
                f"{key}: {name} (torch.optim.{OPTIMIZERS[name]}) takes no argument "
                f"{_show(arg)}{did_you_mean(arg, taken)}; it takes: {', '.join(taken)}",
                (key, "optimizer"))
    if name == "sgd" and run.get("optim.nesterov") is True and (
            run["momentum"] <= 0 or run.get("optim.dampening", 0) != 0):
        return Violation("optim.nesterov = true: sgd's Nesterov momentum needs momentum > 0 "
                         "and optim.dampening = 0", ("momentum", "optim.nesterov",
                                                      "optim.dampening"))
    return None


def _scheduler_rules(run: dict) -> Violation | None:
    name = run["scheduler"]
    given = _group(run, "sched")
    if name == "none" and given:
        return Violation(f'{given[0]}: scheduler = "none" takes no arguments',
                         (given[0], "scheduler"))
    if name == "plateau" and run["sched_interval"] == "step":
        return Violation('scheduler = "plateau" watches a metric once per epoch; use '
                         'sched_interval = "epoch" (or "auto")', ("sched_interval", "scheduler"))
    taken = list(SCHEDULER_ARGS.get(name, ()))
    for key in given:
        arg = key[len("sched."):]
        if arg not in taken:
            return Violation(
                f"{key}: {name} (torch.optim.lr_scheduler.{SCHEDULERS[name]}) takes no "
                f"argument {_show(arg)}{did_you_mean(arg, taken)}; it takes: "
                f"{', '.join(taken)}", (key, "scheduler"))
    return None


def _input_shape(run: dict) -> tuple[int, int, int]:
    """[channels, height, width] of the run's samples as the dataset gives them."""
    if run["dataset"] == "synthetic":
        return tuple(run["synthetic.shape"])
    return DATASET_SHAPES[run["dataset"]][0]


def _model_rules(run: dict) -> Violation | None:
    model = run["model"]
    if run["pretrained"] and not MODELS[model].startswith("torchvision."):
        offered = ", ".join(m for m, what in MODELS.items() if what.startswith("torchvision."))
        return Violation(f"pretrained = true needs a torchvision model ({offered}); model = "
                         f"{_show(model)} has no pretrained weights", ("pretrained", "model"))
    if model == "resnet" and len(run["resnet.blocks"]) != len(run["resnet.channels"]):
        blocks, channels = run["resnet.blocks"], run["resnet.channels"]
        return Violation(f"resnet.blocks has {len(blocks)} stages but resnet.channels has "
                         f"{len(channels)} entries; give one channel count per stage",
                         ("resnet.channels", "resnet.blocks", "model"))
    if model == "vit":
        width, heads, patch = run["vit.width"], run["vit.heads"], run["vit.patch"]
        if width % heads:
            return Violation(f"vit.width = {width} is not a multiple of vit.heads = {heads}",
                             ("vit.width", "vit.heads", "model"))
        _, h, w = _input_shape(run)
        side = run["input_size"] or min(h, w)
        if patch > side:
            return Violation(f"vit.patch = {patch} is larger than the {side}x{side} input",
                             ("vit.patch", "input_size", "dataset", "model"))
    return None


def _normalize_rules(run: dict) -> Violation | None:
    if run["normalize"] != "given":
        return None
    channels = _input_shape(run)[0]
    mean, std = run["norm_mean"], run["norm_std"]
    if len(mean) != channels or len(std) != channels:
        return Violation(
            f'normalize = "given" needs norm_mean and norm_std with one number per channel '
            f"({channels} for dataset {run['dataset']}); got {len(mean)} and {len(std)}",
            ("norm_mean", "norm_std", "normalize", "dataset"))
    return None


def _early_stop_rules(run: dict) -> Violation | None:
    if not run["early_stop.patience"]:
        return None
    metric = run["early_stop.metric"]
    if metric.startswith("val_") and run["val_split"] == 0:
        return Violation(f"early_stop.metric = {_show(metric)} needs a validation set; set "
                         "val_split above 0 or watch train_loss",
                         ("early_stop.metric", "val_split", "early_stop.patience"))
    classes = (run["synthetic.classes"] if run["dataset"] == "synthetic"
               else DATASET_SHAPES[run["dataset"]][1])
    if metric.endswith("top5") and classes < 100:
        return Violation(f"early_stop.metric = {_show(metric)} is reported for 100 classes or "
                         f"more only; dataset {run['dataset']} has {classes}",
                         ("early_stop.metric", "dataset"))
    return None


_RUN_RULES = (_optimizer_rules, _scheduler_rules, _model_rules, _normalize_rules,
              _early_stop_rules)


def _group(run: dict, prefix: str) -> list[str]:
    return [key for key in run if key.startswith(prefix + ".")]


def did_you_mean(name: str, names) -> str:
    """' (did you mean "x"?)' for the closest of `names`, or ""."""
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


# ---------------------------------------------------------------------------------------------
# Checking

def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _in_range(p: Param, value: float) -> bool:
    if p.min is not None and (value < p.min or (p.min_exclusive and value == p.min)):
        return False
    return p.max is None or value <= p.max


def _range(p: Param) -> str:
    lo, hi = p.min, p.max
    if lo is not None and hi is not None and not p.min_exclusive:
        return f"between {_num(lo)} and {_num(hi)}"
    parts = []
    if lo is not None:
        parts.append(f"{'>' if p.min_exclusive else '>='} {_num(lo)}")
    if hi is not None:
        parts.append(f"<= {_num(hi)}")
    return " and ".join(parts)


def _noun(p: Param, plural: bool) -> str:
    base = {"int": "integer", "int_list": "integer", "float": "number", "float_list": "number",
            "str_list": "name"}[p.kind]
    word = base + ("s" if plural else "")
    if p.kind == "str_list":
        return word
    rng = _range(p)
    return f"{word} {rng}" if rng else word


def _choices(p: Param) -> str:
    return ", ".join(_show(c) for c in p.choices or ())


def _expected(p: Param) -> str:
    """The 'expected ...' phrase for a parameter, used in messages."""
    k = p.kind
    if k in ("int", "float"):
        return ("an " if k == "int" else "a ") + _noun(p, False)
    if k == "bool":
        return "true or false"
    if k == "str":
        return f"one of {_choices(p)}" if p.choices else "a non-empty string"
    if k == "fraction_or_count":
        return "a fraction in [0, 1) or a count >= 0"
    # lists
    lo, hi = p.min_len, p.max_len
    if lo is not None and lo == hi:
        count = f"{lo} "
        plural = lo != 1
    elif lo:
        count = f"at least {lo} "
        plural = lo != 1
    elif hi is not None:
        count = f"at most {hi} "
        plural = True
    else:
        count, plural = "", True
    phrase = f"a list of {count}{_noun(p, plural)}"
    if k == "str_list" and p.choices:
        phrase += f" from {_choices(p)}"
    return phrase


def _wrap_allowed(text: str, width: int) -> list[str]:
    """Wrap the allowed column between choices ("a | b") or list items, never inside one."""
    tokens = re.split(r"(?<=\|) |(?<=;) ", text)
    lines = [""]
    for token in tokens:
        if lines[-1] and len(lines[-1]) + 1 + len(token) > width:
            lines.append(token)
        else:
            lines[-1] = f"{lines[-1]} {token}" if lines[-1] else token
    return lines


def _allowed(p: Param) -> str:
    """The 'allowed' column of describe()."""
    k = p.kind
    if p.choices:
        text = " | ".join(p.choices)
        return f"list of: {text} (each once)" if k == "str_list" else text
    if k == "bool":
        return "true | false"
    if k == "str":
        return "any text"
    if k == "fraction_or_count":
        return "fraction [0, 1) or count >= 0"
    if k in ("int", "float"):
        return _range(p) or "any"
    parts = []
    if p.min_len is not None and p.min_len == p.max_len:
        parts.append(f"{p.min_len} items")
    else:
        if p.min_len:
            parts.append(f"at least {p.min_len} item{'s' if p.min_len != 1 else ''}")
        if p.max_len is not None:
            parts.append(f"at most {p.max_len} items")
    rng = _range(p)
    if rng:
        parts.append(f"each {rng}")
    return "; ".join(parts) or "any"


def _got(p: Param, value: object) -> str:
    sep = ";" if p.choices else ","     # a list of choices has commas of its own
    return f"expected {_expected(p)}{sep} got {_show(value)}"


def _check_int(p: Param, value: object) -> str | None:
    return None if _is_int(value) and _in_range(p, value) else _got(p, value)


def _check_float(p: Param, value: object) -> str | None:
    return None if _is_number(value) and _in_range(p, value) else _got(p, value)


def _check_bool(p: Param, value: object) -> str | None:
    return None if isinstance(value, bool) else _got(p, value)


def _check_str(p: Param, value: object) -> str | None:
    if p.choices:
        if isinstance(value, str) and value in p.choices:
            return None
        return _choice_message(p, value, f"expected {_expected(p)}")
    return None if isinstance(value, str) and value.strip() else _got(p, value)


def _check_fraction_or_count(p: Param, value: object) -> str | None:
    if _is_int(value) and value >= 0:
        return None
    if isinstance(value, float) and math.isfinite(value) and 0 <= value < 1:
        return None
    return _got(p, value)


def _item_check(p: Param):
    if p.kind == "int_list":
        return lambda v: None if _is_int(v) and _in_range(p, v) else (
            f"expected an {_noun(p, False)}, got {_show(v)}")
    if p.kind == "float_list":
        return lambda v: None if _is_number(v) and _in_range(p, v) else (
            f"expected a {_noun(p, False)}, got {_show(v)}")

    def item(v):
        if p.choices is None:
            return None if isinstance(v, str) and v.strip() else (
                f"expected a non-empty string, got {_show(v)}")
        if isinstance(v, str) and v in p.choices:
            return None
        return _choice_message(p, v, f"expected one of {_choices(p)}")
    return item


def _check_list(p: Param, value: object) -> str | None:
    item_check = _item_check(p)
    if not isinstance(value, (list, tuple)):
        message = _got(p, value)
        if item_check(value) is None:
            message += f" (write [{_show(value)}])"
        return message
    n = len(value)
    if (p.min_len is not None and n < p.min_len) or (p.max_len is not None and n > p.max_len):
        return f"{_got(p, value)} ({n} item{'s' if n != 1 else ''})"
    seen = set()
    for i, item in enumerate(value, 1):
        problem = item_check(item)
        if problem is not None:
            return f"item {i} of {n}: {problem}"
        if p.kind == "str_list":
            if item in seen:
                return f"item {i} of {n}: {_show(item)} is listed twice"
            seen.add(item)
    return None


_CHECKERS = {
    "int": _check_int,
    "float": _check_float,
    "bool": _check_bool,
    "str": _check_str,
    "int_list": _check_list,
    "float_list": _check_list,
    "str_list": _check_list,
    "fraction_or_count": _check_fraction_or_count,
}


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _suggest(p: Param, value: object) -> str | None:
    """The allowed value the user most likely meant, or None."""
    choices = p.choices or ()
    text = value if isinstance(value, str) else _show(value)
    key = _squash(text)
    for choice in choices:              # same letters, other case or separators: "SparseAdam"
        if _squash(choice) == key:
            return choice
    alias = _ALIASES.get(p.name, {}).get(key)
    if alias is None and key.endswith("lr") and len(key) > 2:   # torch class names: "CyclicLR"
        alias = next((c for c in choices if _squash(c) == key[:-2]), None)
    if alias is not None:
        return alias
    if not isinstance(value, str):
        return None
    close = difflib.get_close_matches(text.lower(), choices, n=1, cutoff=0.6)
    return close[0] if close else None


def _choice_message(p: Param, value: object, expected: str) -> str:
    message = f"{expected}; got {_show(value)}"
    suggestion = _suggest(p, value)
    if suggestion is not None:
        message += f' (did you mean "{suggestion}"?)'
    return message


# ---------------------------------------------------------------------------------------------
# Showing values as TOML writes them

_SHOW_MAX = 60


def _num(x: float) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return repr(x)


def _show(value: object) -> str:
    text = _show_full(value)
    return text if len(text) <= _SHOW_MAX else text[:_SHOW_MAX - 3] + "..."


def _show_full(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show_full(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{k} = {_show_full(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if value is None:
        return "nothing"
    return str(value)


def _copy(value: object) -> object:
    return [_copy(v) for v in value] if isinstance(value, (list, tuple)) else value
