"""torch.optim's update rules applied to the stacked parameters of a fused group (M runs at once).

Each member keeps a real torch optimizer over its own (unstacked) model, its *proxy*: the run's
scheduler sets the proxy's lr (and momentum or betas, for cyclic schedules), and the proxy's
state is what the member's checkpoint holds, in torch's own format, so that a member resumes
alone or in a group. Every step reads each member's hyperparameters from its proxy's param group:
one value shared by all members is used as a Python number (the very kernel torch runs), values
that differ become an M-vector broadcast over each stacked tensor.

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


def _shaped(h: Hyper, like: Tensor) -> Hyper:
    """An M-vector viewed to broadcast over a stacked M x ... tensor; a number as it is."""
    return h if isinstance(h, float) else h.view(-1, *([1] * (like.dim() - 1)))


def _add(t: Tensor, x: Tensor, alpha: Hyper) -> Tensor:
    """t += alpha * x, in place."""
    return t.add_(x, alpha=alpha) if isinstance(alpha, float) else t.add_(x * _shaped(alpha, t))


class StackedOptimizer:
    """The update rule of optimizer `name` over stacked parameters (each M x ...).

    `steps_done` is the number of optimizer steps the members have taken (equal for all: a group
    starts its members at one epoch)."""

    def __init__(self, name: str, params: list[Tensor], proxies: Sequence[Optimizer],
                 steps_done: int):
        if name not in _STATE:
            raise ValueError(f"no fused update rule for optimizer {name!r}")
        self.name, self.params, self.proxies, self.steps = name, params, list(proxies), steps_done
        self._vectors: dict[str, tuple[tuple, Tensor]] = {}
        owned = [list(p.param_groups[0]["params"]) for p in self.proxies]
        self.state: dict[str, list[Tensor]] = {}
        for key in _STATE[name]:
            self.state[key] = [
                torch.stack([_member_tensor(proxy, own[j], key, params[j][m])
                             for m, (proxy, own) in enumerate(zip(self.proxies, owned))])
                for j in range(len(params))]

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
        """One number when all members agree, else an M-vector on the parameters' device
        (rebuilt only when the values change: a step schedule changes lr every step)."""
        first = values[0]
        if all(v == first for v in values):
            return float(first)
        cached = self._vectors.get(key)
        values_t = tuple(values)
        if cached is None or cached[0] != values_t:
            vector = torch.tensor(values_t, dtype=self.params[0].dtype,
                                  device=self.params[0].device)
            cached = self._vectors[key] = (values_t, vector)
        return cached[1]

    def _group(self, key: str, index: int | None = None) -> Hyper:
        return self._hyper(key if index is None else f"{key}[{index}]", self._values(key, index))

    # -- the step ---------------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, grads: Sequence[Tensor]) -> None:
        self.steps += 1
        if self._flag("maximize"):
            grads = [-g for g in grads]
        getattr(self, f"_{'adam' if self.name == 'adamw' else self.name}")(list(grads))
        for proxy in self.proxies:      # what torch's schedulers check before they step
            proxy._opt_called = True

    def _decay(self, p: Tensor, g: Tensor) -> Tensor:
        """L2 weight decay folded into the gradient (every rule here but decoupled Adam)."""
        wd = self._group("weight_decay")
        if isinstance(wd, float) and wd == 0:
            return g
        return g.add(p, alpha=wd) if isinstance(wd, float) else g + p * _shaped(wd, p)

    def _sgd(self, grads: list[Tensor]) -> None:
        lr, mom = self._group("lr"), self._group("momentum")
        damp, nesterov = self._group("dampening"), self._group("nesterov")
        bufs = self.state["momentum_buffer"]
        no_momentum = isinstance(mom, float) and mom == 0
        for j, (p, g) in enumerate(zip(self.params, grads)):
            g = self._decay(p, g)
            if not no_momentum:
                buf = bufs[j]
                if self.steps == 1:     # torch: the first buffer is the gradient itself
                    buf.copy_(g)
                else:
                    buf.mul_(_shaped(mom, buf))
                    _add(buf, g, 1 - damp if isinstance(damp, float) else 1 - damp)
                if isinstance(nesterov, float):
                    d = g.add(buf, alpha=mom) if (nesterov and isinstance(mom, float)) else (
                        g + buf * _shaped(mom, buf) if nesterov else buf)
                else:
                    d = torch.where(_shaped(nesterov, buf).bool(), g + buf * _shaped(mom, buf),
                                    buf)
                if not isinstance(mom, float):      # members without momentum step on g
                    d = torch.where(_shaped(mom, buf) != 0, d, g)
                g = d
            _add(p, g, -lr)

    def _adam(self, grads: list[Tensor]) -> None:
        t = self.steps
        b1s, b2s = self._values("betas", 0), self._values("betas", 1)
        lrs = self._values("lr")
        lr, eps = self._group("lr"), self._group("eps")
        b1, b2 = self._group("betas", 0), self._group("betas", 1)
        step_size = self._hyper("step_size", [lr_ / (1 - b1_ ** t) for lr_, b1_ in zip(lrs, b1s)])
        bc2_sqrt = self._hyper("bc2_sqrt", [(1 - b2_ ** t) ** 0.5 for b2_ in b2s])
        amsgrad = self._flag("amsgrad")
        decoupled = self._flag("decoupled_weight_decay")
        if decoupled:
            shrink = self._hyper("shrink", [1 - lr_ * wd for lr_, wd in
                                            zip(lrs, self._values("weight_decay"))])
        for j, (p, g) in enumerate(zip(self.params, grads)):
            if decoupled:
                if not (isinstance(shrink, float) and shrink == 1):
                    p.mul_(_shaped(shrink, p))
            else:
                g = self._decay(p, g)
            exp_avg, exp_avg_sq = self.state["exp_avg"][j], self.state["exp_avg_sq"][j]
            exp_avg.lerp_(g, _shaped(1 - b1, g))
            exp_avg_sq.mul_(_shaped(b2, g))
            if isinstance(b2, float):
                exp_avg_sq.addcmul_(g, g, value=1 - b2)
            else:
                exp_avg_sq.addcmul_(g, g * _shaped(1 - b2, g))
            if amsgrad:
                top = self.state["max_exp_avg_sq"][j]
                torch.maximum(top, exp_avg_sq, out=top)
                exp_avg_sq = top
            denom = (exp_avg_sq.sqrt() / _shaped(bc2_sqrt, g)).add_(_shaped(eps, g))
            if isinstance(step_size, float):
                p.addcdiv_(exp_avg, denom, value=-step_size)
            else:
                p.sub_(exp_avg * _shaped(step_size, p) / denom)

    def _adamax(self, grads: list[Tensor]) -> None:
        t = self.steps
        b1s, lrs = self._values("betas", 0), self._values("lr")
        b1, b2, eps = self._group("betas", 0), self._group("betas", 1), self._group("eps")
        clr = self._hyper("clr", [lr_ / (1 - b1_ ** t) for lr_, b1_ in zip(lrs, b1s)])
        for j, (p, g) in enumerate(zip(self.params, grads)):
            g = self._decay(p, g)
            exp_avg, exp_inf = self.state["exp_avg"][j], self.state["exp_inf"][j]
            exp_avg.lerp_(g, _shaped(1 - b1, g))
            torch.maximum(exp_inf.mul_(_shaped(b2, g)), g.abs().add_(_shaped(eps, g)),
                          out=exp_inf)
            if isinstance(clr, float):
                p.addcdiv_(exp_avg, exp_inf, value=-clr)
            else:
                p.sub_(exp_avg * _shaped(clr, p) / exp_inf)

    def _rmsprop(self, grads: list[Tensor]) -> None:
        lr, alpha, eps = self._group("lr"), self._group("alpha"), self._group("eps")
        mom = self._group("momentum")
        centered = self._flag("centered")
        no_momentum = isinstance(mom, float) and mom == 0
        for j, (p, g) in enumerate(zip(self.params, grads)):
            g = self._decay(p, g)
            square_avg = self.state["square_avg"][j]
            square_avg.mul_(_shaped(alpha, g))
            if isinstance(alpha, float):
                square_avg.addcmul_(g, g, value=1 - alpha)
            else:
                square_avg.addcmul_(g, g * _shaped(1 - alpha, g))
            if centered:
                grad_avg = self.state["grad_avg"][j]
                grad_avg.lerp_(g, _shaped(1 - alpha, g))
                avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
            else:
                avg = square_avg.sqrt()
            avg = avg.add_(_shaped(eps, g))
            if no_momentum:
                if isinstance(lr, float):
                    p.addcdiv_(g, avg, value=-lr)
                else:
                    p.sub_(g * _shaped(lr, p) / avg)
            else:   # momentum 0 makes the buffer g / avg: the plain step, for those members
                buf = self.state["momentum_buffer"][j]
                buf.mul_(_shaped(mom, buf)).addcdiv_(g, avg)
                _add(p, buf, -lr)

    def _adagrad(self, grads: list[Tensor]) -> None:
        t = self.steps
        clr = self._hyper("clr", [lr_ / (1 + (t - 1) * decay) for lr_, decay in
                                  zip(self._values("lr"), self._values("lr_decay"))])
        eps = self._group("eps")
        for j, (p, g) in enumerate(zip(self.params, grads)):
            g = self._decay(p, g)
            state_sum = self.state["sum"][j]
            state_sum.addcmul_(g, g, value=1)
            std = state_sum.sqrt().add_(_shaped(eps, g))
            if isinstance(clr, float):
                p.addcdiv_(g, std, value=-clr)
            else:
                p.sub_(g * _shaped(clr, p) / std)

    # -- members in and out -----------------------------------------------------------------------

    def keep(self, params: list[Tensor], rows: Tensor, proxies: Sequence[Optimizer]) -> None:
        """Only the members at `rows` go on (the others ended); `params` are the new stacks."""
        self.params, self.proxies = params, list(proxies)
        self.state = {key: [t[rows] for t in tensors] for key, tensors in self.state.items()}
        self._vectors.clear()

    def export(self, m: int) -> None:
        """Write member m's state into its proxy, in the layout torch's optimizer has after
        `self.steps` steps, so that proxy.state_dict() is what a lone run checkpoints."""
        proxy = self.proxies[m]
        group = proxy.param_groups[0]
        for j, p in enumerate(group["params"]):
            state = _torch_layout(self.name, group, self.steps,
                                  {key: tensors[j][m] for key, tensors in self.state.items()})
            proxy.state[p] = {k: v.detach().clone().to(p.device) if isinstance(v, Tensor) else v
                              for k, v in state.items()}


def _member_tensor(proxy: Optimizer, param: Tensor, key: str, like: Tensor) -> Tensor:
    """One member's state tensor `key` for a parameter from its proxy (resumed, or Adagrad's
    initial sum), else zeros: torch's initial value of every other state tensor."""
    value = proxy.state.get(param, {}).get(key)
    return value.to(like) if isinstance(value, Tensor) else torch.zeros_like(like)


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
