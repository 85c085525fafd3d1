"""M stacked MLPs at once: the forward as batched matrix products, the backward written out.

experiments.fused trains a group of `mlp` runs with this instead of `vmap(functional_call)` and
autograd. A fused digits MLP step is a dozen small batched ops, and on the CPU autograd's graph,
its engine and the generic cross-entropy backward cost about a third of it (bench/README.md).
The backward here is short: the mean cross-entropy's gradient with respect to the logits has a
closed form (softmax minus the target distribution, over the batch size), a Linear layer's is
two batched products and a sum, a ReLU's or a Dropout's a mask. tests/test_fused.py checks every
gradient against autograd's.

Tensors are M x B x features: member m's batch is row m. Parameters come as a list of M x shape
tensors in the model's `named_parameters()` order (`names`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# one entry per layer: ("flatten",), ("relu",), ("dropout", p),
# ("linear", index of the weight in the parameter list, index of the bias or None)
Layer = tuple


def plan(model: nn.Module, names: list[str]) -> list[Layer] | None:
    """The layers of an `mlp` built by experiments.models (an InputAdapter that does nothing,
    then Flatten, Linear, ReLU, Dropout), or None for any other network."""
    adapter, net = model
    if adapter.size or adapter.rgb or adapter.channels_last or not isinstance(net, nn.Sequential):
        return None
    index = {name: k for k, name in enumerate(names)}
    layers: list[Layer] = []
    for i, layer in enumerate(net):
        if isinstance(layer, nn.Linear):
            layers.append(("linear", index[f"1.{i}.weight"], index.get(f"1.{i}.bias")))
        elif isinstance(layer, nn.ReLU):
            layers.append(("relu",))
        elif isinstance(layer, nn.Dropout):
            layers.append(("dropout", layer.p))
        elif isinstance(layer, nn.Flatten) and i == 0 and layer.start_dim == 1 and \
                layer.end_dim == -1:
            layers.append(("flatten",))
        else:
            return None
    if not any(layer[0] == "linear" for layer in layers):
        return None
    return layers


class StackedMLP:
    def __init__(self, layers: list[Layer]):
        self.layers = layers

    def forward(self, params: list[Tensor], x: Tensor, training: bool) -> Tensor:
        """M x B x ... in, M x B x classes out; differentiable (autograd takes it under AMP)."""
        for layer in self.layers:
            kind = layer[0]
            if kind == "linear":
                x = _linear(params, layer, x)
            elif kind == "relu":
                x = F.relu(x)
            elif kind == "dropout":
                x = F.dropout(x, layer[1], training)
            else:
                x = x.flatten(2)
        return x

    @torch.no_grad()
    def loss_and_grads(self, params: list[Tensor], x: Tensor, y: Tensor, partner: Tensor,
                       lam: Tensor | None, smoothing: float
                       ) -> tuple[Tensor, Tensor, list[Tensor | None]]:
        """One training step's numbers for every member: its mean cross-entropy (M; with mixup
        weight `lam`, lam of the loss on `y` and 1 - lam on `partner`, as the lone trainer), the
        logits (M x B x C) and the gradient of each parameter (M x its shape)."""
        saved: list[Tensor | None] = []
        for layer in self.layers:
            kind = layer[0]
            if kind == "linear":
                saved.append(x)
                x = _linear(params, layer, x)
            elif kind == "relu":
                x = torch.relu(x)
                saved.append(x)
            elif kind == "dropout":
                x, mask = torch.ops.aten.native_dropout(x, layer[1], True)
                saved.append(mask)
            else:
                x = x.flatten(2)
                saved.append(None)
        logits = x
        log_probs = torch.log_softmax(logits, 2)
        losses = _cross_entropy(log_probs, y, smoothing)
        if lam is not None:
            losses = torch.lerp(_cross_entropy(log_probs, partner, smoothing), losses, lam)

        # d loss / d logits: (softmax - target distribution) / B, the target being
        # (1 - smoothing) on the label (split lam : 1 - lam with the partner's) + smoothing / C
        grad = log_probs.exp()
        count, batch, classes = grad.shape
        on_label = torch.full((count, 1, 1), smoothing - 1.0, dtype=grad.dtype,
                              device=grad.device)
        if lam is None:
            grad.scatter_add_(2, y.unsqueeze(2), on_label.expand(count, batch, 1))
        else:
            weight = lam.to(grad.dtype).view(count, 1, 1)
            grad.scatter_add_(2, y.unsqueeze(2), (on_label * weight).expand(count, batch, 1))
            grad.scatter_add_(2, partner.unsqueeze(2),
                              (on_label * (1 - weight)).expand(count, batch, 1))
        if smoothing:
            grad.sub_(smoothing / classes)
        grad.div_(batch)
        return losses, logits, self._backward(params, grad, saved)

    def _backward(self, params: list[Tensor], grad: Tensor, saved: list[Tensor | None]
                  ) -> list[Tensor | None]:
        grads: list[Tensor | None] = [None] * len(params)
        first = next(k for k, layer in enumerate(self.layers) if layer[0] == "linear")
        for k in range(len(self.layers) - 1, first - 1, -1):
            layer, kept = self.layers[k], saved[k]
            kind = layer[0]
            if kind == "linear":
                grads[layer[1]] = torch.bmm(grad.transpose(1, 2), kept)
                if layer[2] is not None:
                    grads[layer[2]] = grad.sum(1)
                if k > first:       # the input's gradient: not needed below the first layer
                    grad = torch.bmm(grad, params[layer[1]])
            elif kind == "relu":
                grad = torch.ops.aten.threshold_backward(grad, kept, 0)
            elif kind == "dropout":
                p = layer[1]
                grad = torch.ops.aten.native_dropout_backward(
                    grad, kept, 1.0 / (1.0 - p) if p < 1 else 0.0)
        return grads


def _linear(params: list[Tensor], layer: Layer, x: Tensor) -> Tensor:
    weight = params[layer[1]].transpose(1, 2)
    if layer[2] is None:
        return torch.bmm(x, weight)
    return torch.baddbmm(params[layer[2]].unsqueeze(1), x, weight)


def _cross_entropy(log_probs: Tensor, y: Tensor, smoothing: float) -> Tensor:
    """F.cross_entropy(..., label_smoothing=smoothing) per member, averaged over its batch."""
    nll = -log_probs.gather(2, y.unsqueeze(2)).squeeze(2)
    if smoothing:
        nll = (1 - smoothing) * nll - smoothing * log_probs.mean(2)
    return nll.mean(1)
