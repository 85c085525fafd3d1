"""Augmentations as batched tensor ops on the device, with per-sample randomness.

Each augmentation is a class whose keyword arguments are the matching torchvision transform's
(aug.crop.padding = 4 is RandomCrop's padding); `create_pipeline` checks `aug.<name>.*` against
that signature, so an unknown argument is an error, never ignored. Inputs are float batches
N x C x H x W with pixels in [0, 1]; random_erasing alone works on the normalised batch, where
torchvision pipelines put it (after Normalize, so its default value 0 is the mean colour).
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from gridrun.experiments import schema
from gridrun.experiments.config import TrainerError, check_kwargs

Tensor = torch.Tensor


# ---------------------------------------------------------------------------------------------
# Argument helpers: each raises ValueError("<arg>: expected ..."), named in full by the caller

def _number(value: Any, arg: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise ValueError(f"{arg}: expected a number in [{lo}, {hi}], got {value!r}")
    return float(value)


def _pair(value: Any, arg: str, *, around: float | None = None, lo: float = -math.inf,
          hi: float = math.inf) -> tuple[float, float]:
    """[a, b] as given; a number v means [around - v, around + v] (`around` None: not allowed)."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        a, b = (_number(v, arg, lo, hi) for v in value)
        if a > b:
            raise ValueError(f"{arg}: expected [low, high], got {list(value)}")
        return a, b
    if around is not None and not isinstance(value, (list, tuple)):
        v = _number(value, arg, 0)
        return max(around - v, lo), min(around + v, hi)
    raise ValueError(f"{arg}: expected {'a number or ' if around is not None else ''}"
                     f"a list [low, high], got {value!r}")


def _interpolation(value: Any) -> str:
    if value not in ("nearest", "bilinear"):
        raise ValueError(f'interpolation: expected "nearest" or "bilinear", got {value!r}')
    return value


def _uniform(lo: float, hi: float, n: int, device: torch.device) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, device=device)


def _per_sample(mask: Tensor) -> Tensor:
    return mask[:, None, None, None]


# ---------------------------------------------------------------------------------------------
# The augmentations

class HFlip:
    """RandomHorizontalFlip: each image flipped left-right with probability p."""

    def __init__(self, p: float = 0.5):
        self.p = _number(p, "p", 0, 1)

    def __call__(self, x: Tensor) -> Tensor:
        flip = torch.rand(len(x), device=x.device) < self.p
        return torch.where(_per_sample(flip), x.flip(3), x)


class Crop:
    """RandomCrop: pad (4 pixels by default), then cut `size` (default: the image's own) at a
    random place."""

    _MODES = {"constant": "constant", "edge": "replicate", "reflect": "reflect"}

    def __init__(self, size: int | list[int] | None = None, padding: int | list[int] = 4,
                 fill: float = 0, padding_mode: str = "constant"):
        if size is None or isinstance(size, (list, tuple)) and len(size) == 2:
            self.size = None if size is None else tuple(int(_number(s, "size", 1)) for s in size)
        else:
            side = int(_number(size, "size", 1))
            self.size = (side, side)
        pads = list(padding) if isinstance(padding, (list, tuple)) else [padding]
        pads = [int(_number(p, "padding", 0)) for p in pads]
        if len(pads) not in (1, 2, 4):
            raise ValueError(f"padding: expected a number or a list of 2 or 4, got {padding!r}")
        left, top, right, bottom = (pads * 4)[:4] if len(pads) == 1 else (
            pads * 2 if len(pads) == 2 else pads)
        self.pad = (left, right, top, bottom)          # F.pad's order
        self.fill = _number(fill, "fill")
        if padding_mode not in self._MODES:
            raise ValueError(f"padding_mode: expected one of {', '.join(self._MODES)}, "
                             f"got {padding_mode!r}")
        self.mode = self._MODES[padding_mode]

    def __call__(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        if any(self.pad):
            x = F.pad(x, self.pad, mode=self.mode,
                      **({"value": self.fill} if self.mode == "constant" else {}))
        ch, cw = self.size or (h, w)
        if ch > x.shape[2] or cw > x.shape[3]:
            raise TrainerError(f"aug.crop.size {[ch, cw]} is larger than the padded image "
                               f"{list(x.shape[2:])}")
        dev = x.device
        top = torch.randint(0, x.shape[2] - ch + 1, (n,), device=dev)
        left = torch.randint(0, x.shape[3] - cw + 1, (n,), device=dev)
        rows = (top[:, None] + torch.arange(ch, device=dev))[:, :, None]
        cols = (left[:, None] + torch.arange(cw, device=dev))[:, None, :]
        # advanced indices around a slice: the result is N x ch x cw x C
        return x[torch.arange(n, device=dev)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)


def _warp(x: Tensor, m: Tensor, shift: Tensor, fill: float, mode: str) -> Tensor:
    """Each image moved by out = m @ in + shift (pixels, about the centre); m: N x 2 x 2,
    shift: N x 2. grid_sample wants the inverse map in [-1, 1] coordinates: with D = the half
    sizes, theta = [D^-1 M^-1 D | -D^-1 M^-1 shift]. Python scalars only, never a host tensor:
    copying one to the GPU would wait for the queued work."""
    h, w = x.shape[2:]
    a, b, c, d = m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1]
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det      # M^-1
    sx, sy = shift[:, 0], shift[:, 1]
    theta = torch.stack([
        torch.stack([ia, ib * h / w, -(ia * sx + ib * sy) / (w / 2)], 1),
        torch.stack([ic * w / h, id_, -(ic * sx + id_ * sy) / (h / 2)], 1),
    ], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)
    if fill:
        inside = F.grid_sample(torch.ones_like(x[:, :1]), grid, mode=mode, align_corners=False)
        out = out + fill * (1 - inside)
    return out


def _rotation(angles_deg: Tensor) -> Tensor:
    """Counter-clockwise on screen (y points down), as torchvision's positive angles."""
    t = torch.deg2rad(angles_deg)
    cos, sin = torch.cos(t), torch.sin(t)
    return torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1)


class Rotation:
    """RandomRotation: by an angle drawn from [-degrees, degrees] or from [low, high]."""

    def __init__(self, degrees: float | list[float] = 10, fill: float = 0,
                 interpolation: str = "nearest"):
        self.degrees = _pair(degrees, "degrees", around=0)
        self.fill = _number(fill, "fill")
        self.mode = _interpolation(interpolation)

    def __call__(self, x: Tensor) -> Tensor:
        angles = _uniform(*self.degrees, len(x), x.device)
        return _warp(x, _rotation(angles), torch.zeros(len(x), 2, device=x.device),
                     self.fill, self.mode)


class Affine:
    """RandomAffine. Defaults: shift up to 10% and scale 0.9-1.1, no rotation (rotation is its
    own augmentation); shear is in degrees, a number or [low, high] along x, or 4 numbers for
    x then y."""

    def __init__(self, degrees: float | list[float] = 0, translate: list[float] | None = (0.1, 0.1),
                 scale: list[float] | None = (0.9, 1.1), shear: float | list[float] | None = None,
                 fill: float = 0, interpolation: str = "nearest"):
        self.degrees = _pair(degrees, "degrees", around=0)
        if translate is None:
            self.translate = (0.0, 0.0)
        else:
            if not isinstance(translate, (list, tuple)) or len(translate) != 2:
                raise ValueError(f"translate: expected [fraction_x, fraction_y], got {translate!r}")
            self.translate = tuple(_number(t, "translate", 0, 1) for t in translate)
        self.scale = (1.0, 1.0) if scale is None else _pair(scale, "scale", lo=1e-3)
        if shear is None:
            self.shear = ((0.0, 0.0), (0.0, 0.0))
        elif isinstance(shear, (list, tuple)) and len(shear) == 4:
            self.shear = (_pair(shear[:2], "shear"), _pair(shear[2:], "shear"))
        else:
            self.shear = (_pair(shear, "shear", around=0), (0.0, 0.0))
        self.fill = _number(fill, "fill")
        self.mode = _interpolation(interpolation)

    def __call__(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        dev = x.device
        m = _rotation(_uniform(*self.degrees, n, dev))
        sx = torch.tan(torch.deg2rad(_uniform(*self.shear[0], n, dev)))
        sy = torch.tan(torch.deg2rad(_uniform(*self.shear[1], n, dev)))
        one = torch.ones(n, device=dev)
        shear = torch.stack([torch.stack([one, sx], 1), torch.stack([sy, one], 1)], 1)
        m = m @ shear * _uniform(*self.scale, n, dev)[:, None, None]
        tx, ty = self.translate
        shift = torch.stack([_uniform(-tx * w, tx * w, n, dev),
                             _uniform(-ty * h, ty * h, n, dev)], 1)
        return _warp(x, m, shift, self.fill, self.mode)


class ColorJitter:
    """ColorJitter: brightness, contrast and saturation factors drawn from [1 - v, 1 + v] (or
    [low, high]) and a hue shift from [-hue, hue] turns of the colour wheel, per image. Applied
    in that fixed order (torchvision shuffles it); hue as a rotation in YIQ space, a close and
    cheap stand-in for torchvision's HSV round trip. Saturation and hue leave grey images alone."""

    def __init__(self, brightness: float | list[float] = 0.2, contrast: float | list[float] = 0.2,
                 saturation: float | list[float] = 0.2, hue: float | list[float] = 0.0):
        self.brightness = _pair(brightness, "brightness", around=1, lo=0)
        self.contrast = _pair(contrast, "contrast", around=1, lo=0)
        self.saturation = _pair(saturation, "saturation", around=1, lo=0)
        self.hue = _pair(hue, "hue", around=0, lo=-0.5, hi=0.5)

    def __call__(self, x: Tensor) -> Tensor:
        n, c = x.shape[:2]
        dev = x.device

        def factor(span: tuple[float, float]) -> Tensor:
            return _uniform(*span, n, dev)[:, None, None, None]

        x = (x * factor(self.brightness)).clamp_(0, 1)
        mean = _grey(x).mean((1, 2, 3), keepdim=True)
        x = torch.lerp(mean, x, factor(self.contrast)).clamp_(0, 1)
        if c == 3:
            x = torch.lerp(_grey(x), x, factor(self.saturation)).clamp_(0, 1)
            if self.hue != (0.0, 0.0):
                x = _hue_shift(x, _uniform(*self.hue, n, dev))
        return x


def _grey(x: Tensor) -> Tensor:
    if x.shape[1] == 1:
        return x
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


# RGB <-> YIQ as Python numbers: a matrix tensor moved to the GPU per batch would cost a sync
_TO_YIQ = [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]]
_FROM_YIQ = torch.linalg.inv(torch.tensor(_TO_YIQ, dtype=torch.float64)).tolist()


def _mix(matrix: list[list[float]], channels: list[Tensor]) -> list[Tensor]:
    return [sum(k * c for k, c in zip(row, channels)) for row in matrix]


def _hue_shift(x: Tensor, turns: Tensor) -> Tensor:
    y, i, q = _mix(_TO_YIQ, list(x.unbind(1)))
    t = turns * 2 * math.pi
    cos, sin = torch.cos(t)[:, None, None], torch.sin(t)[:, None, None]
    yiq = [y, cos * i - sin * q, sin * i + cos * q]
    return torch.stack(_mix(_FROM_YIQ, yiq), 1).clamp_(0, 1)


class RandomErasing:
    """RandomErasing: with probability p, a rectangle of `scale` of the area and aspect `ratio`
    is set to `value` (a number, or "random" for normal noise). On the normalised batch."""

    normalized = True

    def __init__(self, p: float = 0.5, scale: list[float] = (0.02, 0.33),
                 ratio: list[float] = (0.3, 3.3), value: float | str = 0):
        self.p = _number(p, "p", 0, 1)
        self.scale = _pair(scale, "scale", lo=0, hi=1)
        self.ratio = _pair(ratio, "ratio", lo=1e-3)
        if value != "random":
            value = _number(value, "value")
        self.value = value

    def __call__(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        dev = x.device
        area = _uniform(*self.scale, n, dev) * h * w
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        ratio = torch.exp(_uniform(log_lo, log_hi, n, dev))
        eh = torch.sqrt(area * ratio).round().clamp(1, h)
        ew = torch.sqrt(area / ratio).round().clamp(1, w)
        top = (torch.rand(n, device=dev) * (h - eh + 1)).floor()
        left = (torch.rand(n, device=dev) * (w - ew + 1)).floor()
        rows = torch.arange(h, device=dev)[None, :]
        cols = torch.arange(w, device=dev)[None, :]
        inside = (((rows >= top[:, None]) & (rows < (top + eh)[:, None]))[:, :, None]
                  & ((cols >= left[:, None]) & (cols < (left + ew)[:, None]))[:, None, :])
        erase = inside & (torch.rand(n, device=dev) < self.p)[:, None, None]
        fill = torch.randn_like(x) if self.value == "random" else torch.full_like(x, self.value)
        return torch.where(erase[:, None], fill, x)


# name -> class; the names are the schema's (experiments.schema.AUGMENTATIONS)
AUGMENTATIONS: dict[str, type] = {
    "hflip": HFlip,
    "crop": Crop,
    "rotation": Rotation,
    "affine": Affine,
    "color_jitter": ColorJitter,
    "random_erasing": RandomErasing,
}
assert set(AUGMENTATIONS) == set(schema.AUGMENTATIONS)


def list_augmentations() -> list[str]:
    return list(AUGMENTATIONS)


def accepted_args(name: str) -> dict[str, Any]:
    """An augmentation's arguments and their defaults."""
    params = inspect.signature(AUGMENTATIONS[name]).parameters
    return {k: p.default for k, p in params.items()}


class Pipeline:
    """The run's augmentations: `pixels` before normalisation, `normalized` after it."""

    def __init__(self, steps: list):
        self.before = [s for s in steps if not getattr(s, "normalized", False)]
        self.after = [s for s in steps if getattr(s, "normalized", False)]

    def pixels(self, x: Tensor) -> Tensor:
        for step in self.before:
            x = step(x)
        return x

    def normalized(self, x: Tensor) -> Tensor:
        for step in self.after:
            x = step(x)
        return x


def create_pipeline(names: list[str], args: Mapping[str, Any]) -> Pipeline:
    """`args` is the aug.* group ({"crop.padding": 4, ...}). Arguments of every augmentation are
    checked, also those of one this run does not use: a sweep may vary `augment` while it fixes
    their arguments, and a typo there is still a typo."""
    by_name: dict[str, dict[str, Any]] = {}
    for key, value in args.items():
        name, _, arg = key.partition(".")
        if name not in AUGMENTATIONS or "." in arg:
            raise TrainerError(f"aug.{key}: expected aug.<augmentation>.<argument> with an "
                               f"augmentation among {', '.join(AUGMENTATIONS)}")
        by_name.setdefault(name, {})[arg] = value
    steps = {}
    for name in set(by_name) | set(names):
        cls = AUGMENTATIONS[name]
        given = by_name.get(name, {})
        check_kwargs(f"{name} ({schema.AUGMENTATIONS[name]})", given, accepted_args(name),
                     f"aug.{name}.")
        try:
            steps[name] = cls(**given)
        except ValueError as e:
            raise TrainerError(f"aug.{name}.{e}") from None
    return Pipeline([steps[name] for name in names])


def mixup(x: Tensor, y: Tensor, alpha: float) -> tuple[Tensor, Tensor, Tensor]:
    """Mixup (Zhang et al. 2018): one Beta(alpha, alpha) weight per batch, each sample mixed
    with a random partner. Returns the mixed batch, the partners' labels and the weight (a
    device tensor: no host sync)."""
    # made on the device, unchecked: a host tensor or a validity check would wait for the GPU
    concentration = torch.full((), alpha, device=x.device)
    lam = torch.distributions.Beta(concentration, concentration, validate_args=False).sample()
    partner = torch.randperm(len(x), device=x.device)
    return torch.lerp(x[partner], x, lam), y[partner], lam
