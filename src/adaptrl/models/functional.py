"""Functional building blocks shared by every model.

Models in adaptrl are ``nn.Module``s that are *called with an explicit parameter dict*
rather than by mutating their weights, so that inner-loop adaptation can produce new
parameters that stay differentiable functions of the meta-parameters.

A parameter tensor may carry one extra leading *task* dimension (adapted parameters,
one set per task); inputs are then shaped ``[tasks, ...]`` and one batched call serves
every task (``torch.baddbmm`` instead of a Python loop or ``vmap``).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

Params = dict[str, torch.Tensor]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "elu": F.elu,
    "gelu": F.gelu,
    "silu": F.silu,
}


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; allowed: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
           task_dim: int = 0) -> torch.Tensor:
    """``x @ weight.T + bias``; with a leading task dim on ``weight`` it is batched per task.

    Shapes: shared ``weight [out, in]`` with ``x [..., in]``; per-task
    ``weight [n, out, in]``, ``bias [n, out]`` with ``x`` holding the task dimension at
    ``task_dim`` (0 for ``[n, ...]`` inputs, 1 for time-major ``[T, n, ...]`` ones).
    """
    if weight.dim() == 2:
        return F.linear(x, weight, bias)
    if task_dim != 0:
        return linear(x.movedim(task_dim, 0), weight, bias).movedim(0, task_dim)
    shape = x.shape
    flat = x.reshape(shape[0], -1, shape[-1])
    out = torch.baddbmm(bias.unsqueeze(1), flat, weight.transpose(1, 2))
    return out.reshape(*shape[:-1], weight.shape[1])


def named_params(module: nn.Module) -> Params:
    """The module's own parameters as a dict (the meta-parameters, still trainable)."""
    return dict(module.named_parameters())


def detach_params(params: Params) -> Params:
    return {k: v.detach() for k, v in params.items()}


def expand_params(params: Params, num_tasks: int) -> Params:
    """Give shared parameters a leading task dimension (a view; gradients flow back)."""
    return {k: v.expand(num_tasks, *v.shape) for k, v in params.items()}


def is_batched(params: Params, module: nn.Module) -> bool:
    """Whether ``params`` carry a leading task dimension relative to ``module``'s own."""
    name, ref = next(iter(module.named_parameters()))
    return params[name].dim() == ref.dim() + 1


class MLP(nn.Module):
    """A plain MLP whose forward takes a parameter dict (possibly per-task)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: tuple[int, ...] = (100, 100),
                 act: str = "relu", out_gain: float = 1.0) -> None:
        super().__init__()
        sizes = (in_dim, *hidden, out_dim)
        self.act_name = act
        self._act = activation(act)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        for layer in self.layers:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.layers[-1].weight.data.mul_(out_gain)

    def forward(self, x: torch.Tensor, params: Params | None = None,
                prefix: str = "", task_dim: int = 0) -> torch.Tensor:
        p = named_params(self) if params is None else params
        n = len(self.layers)
        for i in range(n):
            x = linear(x, p[f"{prefix}layers.{i}.weight"], p[f"{prefix}layers.{i}.bias"],
                       task_dim)
            if i < n - 1:
                x = self._act(x)
        return x
