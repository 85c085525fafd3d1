"""torch.optim's update rules applied to the stacked parameters of a fused group (M runs at once).

Each member keeps a real torch optimizer over its own (unstacked) model, its *proxy*: the run's
scheduler sets the proxy's lr (and momentum or betas, for cyclic schedules), and the proxy's
state is what the member's checkpoint holds, in torch's own format, so that a member resumes
alone or in a group. Every step reads each member's hyperparameters from its proxy's param group:
one value shared by all members is used as a Python number (the very kernel torch runs), values
that differ become an M x 1 vector broadcast over the members' flat M x P parameters.

The formulas are torch's single-tensor ones (torch/optim/{sgd,adam,adamax,rmsprop,adagrad}.py),
which torch uses on the CPU; on a GPU torch's default foreach kernels compute the same.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.optim import Optimizer

Hyper = float | Tensor      # one value for every member, or one per member (an M-vector)

# name -> the state tensors torch keeps per parameter, each zero-initialised (Adagrad's `sum`
# starts at initial_accumulator_value and is in the proxy's state from the start)
_STATE: dict[str, tuple[str, ...]] = {
    "sgd": ("momentum_buffer",),
    "adam": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
    "adamw": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
    "adamax": ("exp_avg", "exp_inf"),
    "rmsprop": ("square_avg", "momentum_buffer", "grad_avg"),
    "adagrad": ("sum",),
}
FUSED_RULES = tuple(_STATE)


def _add(t: Tensor, x: Tensor, alpha: Hyper) -> Tensor:
    """t += alpha * x, in place."""
    return t.add_(x, alpha=alpha) if isinstance(alpha, float) else t.addcmul_(x, alpha)


class StackedOptimizer:
    """The update rule of optimizer `name` over the members' parameters laid out flat: `flat`
    is M x P, member m's parameters one after another in row m (`shapes` gives each one's shape,
    in the proxies' order). One update is then a few elementwise ops, however many layers.

    `steps_done` is the number of optimizer steps the members have taken (equal for all: a group
    starts its members at one epoch)."""

    def __init__(self, name: str, flat: Tensor, shapes: Sequence[torch.Size],
                 proxies: Sequence[Optimizer], steps_done: int):
        if name not in _STATE:
            raise ValueError(f"no fused update rule for optimizer {name!r}")
        self.name, self.flat, self.proxies, self.steps = name, flat, list(proxies), steps_done
        self.shapes = list(shapes)
        self._vectors: dict[str, tuple[tuple, Tensor]] = {}
        self._this_step: dict[str, Hyper] = {}
        self._stepped = False
        self.state: dict[str, Tensor] = {
            key: torch.stack([torch.cat([
                _member_tensor(proxy, p, key, shape, flat).flatten()
                for p, shape in zip(proxy.param_groups[0]["params"], self.shapes)])
                for proxy in self.proxies])
            for key in _STATE[name]}

    # -- hyperparameters ------------------------------------------------------------------------

    def _values(self, key: str, index: int | None = None) -> list:
        values = [p.param_groups[0][key] for p in self.proxies]
        return values if index is None else [v[index] for v in values]

    def _flag(self, key: str) -> bool:
        values = set(self._values(key))
        if len(values) != 1:
            raise ValueError(f"members disagree on {key} ({sorted(values)}); they cannot fuse")
        return bool(values.pop())

    def _hyper(self, key: str, values: list[float]) -> Hyper:
        """One number when all members agree, else an M x 1 vector on the parameters' device
        (rebuilt only when the values change: a step schedule changes lr every step)."""
        first = values[0]
        if all(v == first for v in values):
            return float(first)
        cached = self._vectors.get(key)
        values_t = tuple(values)
        if cached is None or cached[0] != values_t:
            vector = torch.tensor(values_t, dtype=self.flat.dtype, device=self.flat.device)
            cached = self._vectors[key] = (values_t, vector.view(-1, 1))
        return cached[1]

    def _group(self, key: str, index: int | None = None) -> Hyper:
        """A param-group entry of every member, read once per step."""
        name = key if index is None else f"{key}[{index}]"
        if name not in self._this_step:
            self._this_step[name] = self._hyper(name, self._values(key, index))
        return self._this_step[name]

    # -- the step ---------------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, grad: Tensor) -> None:
        """One step of every member; `grad` is M x P, as `flat`."""
        self.steps += 1
        self._this_step.clear()
        if self._flag("maximize"):
            grad = -grad
        getattr(self, f"_{'adam' if self.name == 'adamw' else self.name}")(self.flat, grad)
        if not self._stepped:
            self._stepped = True
            for proxy in self.proxies:  # what torch's schedulers check before they step
                proxy._opt_called = True

    def _decay(self, p: Tensor, g: Tensor) -> Tensor:
        """L2 weight decay folded into the gradient (every rule here but decoupled Adam)."""
        wd = self._group("weight_decay")
        if isinstance(wd, float) and wd == 0:
            return g
        return g.add(p, alpha=wd) if isinstance(wd, float) else g + p * wd

    def _sgd(self, p: Tensor, g: Tensor) -> None:
        lr, mom = self._group("lr"), self._group("momentum")
        damp, nesterov = self._group("dampening"), self._group("nesterov")
        g = self._decay(p, g)
        if not (isinstance(mom, float) and mom == 0):
            buf = self.state["momentum_buffer"]
            if self.steps == 1:         # torch: the first buffer is the gradient itself
                buf.copy_(g)
            else:
                _add(buf.mul_(mom), g, 1 - damp)
            if isinstance(nesterov, float):
                d = (g.add(buf, alpha=mom) if isinstance(mom, float) else g + buf * mom) \
                    if nesterov else buf
            else:
                d = torch.where(nesterov.bool(), g + buf * mom, buf)
            if not isinstance(mom, float):          # members without momentum step on g
                d = torch.where(mom != 0, d, g)
            g = d
        _add(p, g, -lr)

    def _adam(self, p: Tensor, g: Tensor) -> None:
        t = self.steps
        b1s, b2s = self._values("betas", 0), self._values("betas", 1)
        lrs = self._values("lr")
        eps = self._group("eps")
        b1, b2 = self._group("betas", 0), self._group("betas", 1)
        step_size = self._hyper("step_size", [lr_ / (1 - b1_ ** t) for lr_, b1_ in zip(lrs, b1s)])
        bc2_sqrt = self._hyper("bc2_sqrt", [(1 - b2_ ** t) ** 0.5 for b2_ in b2s])
        if self._flag("decoupled_weight_decay"):
            shrink = self._hyper("shrink", [1 - lr_ * wd for lr_, wd in
                                            zip(lrs, self._values("weight_decay"))])
            if not (isinstance(shrink, float) and shrink == 1):
                p.mul_(shrink)
        else:
            g = self._decay(p, g)
        exp_avg, exp_avg_sq = self.state["exp_avg"], self.state["exp_avg_sq"]
        exp_avg.lerp_(g, 1 - b1)
        _average_square(exp_avg_sq, g, b2)
        if self._flag("amsgrad"):
            top = self.state["max_exp_avg_sq"]
            torch.maximum(top, exp_avg_sq, out=top)
            exp_avg_sq = top
        denom = (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps)
        _addcdiv(p, exp_avg, denom, -step_size)

    def _adamax(self, p: Tensor, g: Tensor) -> None:
        t = self.steps
        b1s, lrs = self._values("betas", 0), self._values("lr")
        b1, b2, eps = self._group("betas", 0), self._group("betas", 1), self._group("eps")
        clr = self._hyper("clr", [lr_ / (1 - b1_ ** t) for lr_, b1_ in zip(lrs, b1s)])
        g = self._decay(p, g)
        exp_avg, exp_inf = self.state["exp_avg"], self.state["exp_inf"]
        exp_avg.lerp_(g, 1 - b1)
        torch.maximum(exp_inf.mul_(b2), g.abs().add_(eps), out=exp_inf)
        _addcdiv(p, exp_avg, exp_inf, -clr)

    def _rmsprop(self, p: Tensor, g: Tensor) -> None:
        lr, alpha, eps = self._group("lr"), self._group("alpha"), self._group("eps")
        mom = self._group("momentum")
        g = self._decay(p, g)
        square_avg = self.state["square_avg"]
        _average_square(square_avg, g, alpha)
        if self._flag("centered"):
            grad_avg = self.state["grad_avg"]
            grad_avg.lerp_(g, 1 - alpha)
            avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
        else:
            avg = square_avg.sqrt()
        avg = avg.add_(eps)
        if isinstance(mom, float) and mom == 0:
            _addcdiv(p, g, avg, -lr)
        else:   # momentum 0 makes the buffer g / avg: the plain step, for those members
            buf = self.state["momentum_buffer"]
            buf.mul_(mom).addcdiv_(g, avg)
            _add(p, buf, -lr)

    def _adagrad(self, p: Tensor, g: Tensor) -> None:
        t = self.steps
        clr = self._hyper("clr", [lr_ / (1 + (t - 1) * decay) for lr_, decay in
                                  zip(self._values("lr"), self._values("lr_decay"))])
        g = self._decay(p, g)
        state_sum = self.state["sum"]
        state_sum.addcmul_(g, g, value=1)
        _addcdiv(p, g, state_sum.sqrt().add_(self._group("eps")), -clr)

    # -- members in and out -----------------------------------------------------------------------

    def keep(self, flat: Tensor, rows: Tensor, proxies: Sequence[Optimizer]) -> None:
        """Only the members at `rows` go on (the others ended); `flat` holds their parameters."""
        self.flat, self.proxies = flat, list(proxies)
        self.state = {key: t[rows] for key, t in self.state.items()}
        self._vectors.clear()

    def export(self, m: int) -> None:
        """Write member m's state into its proxy, in the layout torch's optimizer has after
        `self.steps` steps, so that proxy.state_dict() is what a lone run checkpoints."""
        proxy = self.proxies[m]
        group = proxy.param_groups[0]
        offset = 0
        for p, shape in zip(group["params"], self.shapes):
            n = shape.numel()
            tensors = {key: t[m, offset:offset + n].view(shape) for key, t in self.state.items()}
            offset += n
            state = _torch_layout(self.name, group, self.steps, tensors)
            proxy.state[p] = {k: v.detach().clone().to(p.device) if isinstance(v, Tensor) else v
                              for k, v in state.items()}


def _average_square(avg: Tensor, g: Tensor, beta: Hyper) -> None:
    """avg = beta * avg + (1 - beta) * g * g, in place, as torch computes it."""
    avg.mul_(beta)
    if isinstance(beta, float):
        avg.addcmul_(g, g, value=1 - beta)
    else:
        avg.addcmul_(g, g * (1 - beta))


def _addcdiv(p: Tensor, a: Tensor, b: Tensor, value: Hyper) -> None:
    """p += value * a / b, in place."""
    if isinstance(value, float):
        p.addcdiv_(a, b, value=value)
    else:
        p.add_(a * value / b)


def _member_tensor(proxy: Optimizer, param: Tensor, key: str, shape: torch.Size,
                   like: Tensor) -> Tensor:
    """One member's state tensor `key` for a parameter from its proxy (resumed, or Adagrad's
    initial sum), else zeros: torch's initial value of every other state tensor."""
    value = proxy.state.get(param, {}).get(key)
    if isinstance(value, Tensor):
        return value.to(like)
    return torch.zeros(shape, dtype=like.dtype, device=like.device)


def _torch_layout(name: str, group: dict, steps: int, tensors: dict[str, Tensor]) -> dict:
    """The state dict torch's optimizer `name` keeps for one parameter after `steps` steps."""
    step = torch.tensor(float(steps), dtype=torch.float32)
    if name == "sgd":
        return {"momentum_buffer": tensors["momentum_buffer"]} if steps and group["momentum"] \
            else {}
    if name == "adagrad":
        return {"step": step, "sum": tensors["sum"]}
    if not steps:
        return {}
    if name in ("adam", "adamw"):
        keys = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())
    elif name == "adamax":
        keys = ("exp_avg", "exp_inf")
    else:   # rmsprop
        keys = ("square_avg",) + (("momentum_buffer",) if group["momentum"] > 0 else ()) + (
            ("grad_avg",) if group["centered"] else ())
    return {"step": step, **{key: tensors[key] for key in keys}}
