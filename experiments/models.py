"""Networks by name: mlp, cnn, resnet and vit built here, and four torchvision models with their
last layer replaced for the dataset's classes (optionally from ImageNet weights).

`create_model` returns the network behind an `InputAdapter` that resizes inputs on the device
(`input_size`), gives grey images the three channels torchvision's models expect and applies
`channels_last`, so training and evaluation feed it the same way.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gridrun.experiments import schema
from gridrun.experiments.config import TrainerError, check_kwargs, group

Shape = tuple[int, int, int]   # channels, height, width


def mlp(shape: Shape, classes: int, *, hidden: list[int], dropout: float) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = shape[0] * shape[1] * shape[2]
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    return nn.Sequential(*layers, nn.Linear(width, classes))


def cnn(shape: Shape, classes: int, *, channels: list[int], fc: list[int], dropout: float
        ) -> nn.Module:
    layers: list[nn.Module] = []
    c, h, w = shape
    for out in channels:
        # ceil_mode: a small image (8x8 digits) keeps at least one pixel through every pool
        layers += [nn.Conv2d(c, out, 3, padding=1), nn.ReLU(inplace=True),
                   nn.MaxPool2d(2, ceil_mode=True)]
        c, h, w = out, -(-h // 2), -(-w // 2)
    layers.append(nn.Flatten())
    width = c * h * w
    for size in fc:
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers += [nn.Linear(width, size), nn.ReLU(inplace=True)]
        width = size
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers, nn.Linear(width, classes))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x), inplace=True)


def resnet(shape: Shape, classes: int, *, blocks: list[int], channels: list[int]) -> nn.Module:
    """CIFAR-style: a 3x3 stem, then stages of basic blocks, each after the first halving the
    resolution; global average pooling and one linear layer. (schema.check_run has made sure
    of one channel count per stage, and of the ViT's width and patch below.)"""
    layers: list[nn.Module] = [nn.Conv2d(shape[0], channels[0], 3, 1, 1, bias=False),
                               nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True)]
    cin = channels[0]
    for stage, (count, cout) in enumerate(zip(blocks, channels)):
        for i in range(count):
            layers.append(BasicBlock(cin, cout, 2 if stage and i == 0 else 1))
            cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes))


class ViT(nn.Module):
    """Patch embedding, a class token, learned positions, pre-norm transformer layers."""

    def __init__(self, shape: Shape, classes: int, *, depth: int, width: int, patch: int,
                 heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        c, h, w = shape
        self.embed = nn.Conv2d(c, width, patch, stride=patch)
        tokens = (h // patch) * (w // patch) + 1
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.pos = nn.Parameter(torch.randn(1, tokens, width) * 0.02)
        # separate layers, not nn.TransformerEncoder: it deep-copies one layer, so every layer
        # would start from the same weights
        self.blocks = nn.Sequential(*(nn.TransformerEncoderLayer(
            width, heads, round(width * mlp_ratio), dropout, activation="gelu",
            batch_first=True, norm_first=True) for _ in range(depth)))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(len(x), -1, -1), x], 1) + self.pos
        return self.head(self.norm(self.blocks(x)[:, 0]))


# torchvision models: which entry of `classifier` is the class layer (None: the layer `fc`)
_TORCHVISION_HEADS = {
    "resnet18": None,
    "mobilenet_v2": 1,
    "mobilenet_v3_small": 3,
    "efficientnet_v2_s": 1,
}


def _torchvision_model(name: str) -> Callable[..., nn.Module]:
    def build(shape: Shape, classes: int, *, pretrained: bool) -> nn.Module:
        import torchvision

        weights = torchvision.models.get_model_weights(name).DEFAULT if pretrained else None
        try:
            net = torchvision.models.get_model(name, weights=weights)
        except OSError as e:            # urllib's URLError included: offline
            file = weights.url.rsplit("/", 1)[-1]
            raise TrainerError(
                f"pretrained = true: the ImageNet weights of {name} could not be downloaded "
                f"({getattr(e, 'reason', e)}); offline, put {file} (from {weights.url}) into "
                f"{torch.hub.get_dir()}/checkpoints/ (TORCH_HOME moves that folder)") from None
        index = _TORCHVISION_HEADS[name]
        if index is None:
            net.fc = nn.Linear(net.fc.in_features, classes)
        else:
            net.classifier[index] = nn.Linear(net.classifier[index].in_features, classes)
        return net
    return build


@dataclass(frozen=True)
class ModelInfo:
    name: str
    build: Callable[..., nn.Module]   # (shape, classes, **args) -> module
    torchvision: bool = False          # three channels in; `pretrained` allowed


MODELS: dict[str, ModelInfo] = {
    "mlp": ModelInfo("mlp", mlp),
    "cnn": ModelInfo("cnn", cnn),
    "resnet": ModelInfo("resnet", resnet),
    "vit": ModelInfo("vit", ViT),
    **{name: ModelInfo(name, _torchvision_model(name), torchvision=True)
       for name in _TORCHVISION_HEADS},
}
assert set(MODELS) == set(schema.MODELS)



class InputAdapter(nn.Module):
    """What every model gets before its first layer: the size it asks for, three channels for
    torchvision's models, the memory format chosen. No parameters."""

    def __init__(self, size: int, rgb: bool, channels_last: bool):
        super().__init__()
        self.size, self.rgb, self.channels_last = size, rgb, channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rgb and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.size and x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def create_model(cfg: dict, shape: Shape, classes: int) -> nn.Module:
    """A freshly initialised network for the run (torch's global RNG draws the weights)."""
    name = cfg["model"]
    info = MODELS[name]
    size = cfg["input_size"]
    c, h, w = shape
    if info.torchvision:
        c, args = 3, {"pretrained": cfg["pretrained"]}
    else:
        args = group(cfg, name)
        accepted = list(inspect.signature(info.build).parameters)[2:]
        check_kwargs(f"model {name}", args, accepted, f"{name}.")
    if size:
        h = w = size
    net = info.build((c, h, w), classes, **args)
    adapter = InputAdapter(size, info.torchvision, cfg["channels_last"])
    model = nn.Sequential(adapter, net)
    if cfg["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    return model


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
