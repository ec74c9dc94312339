"""Meta-Curvature's learned gradient transform (Park & Oliva 2019, §3), Kronecker-factored.

A diagonal step size (Meta-SGD's ``alpha``, Li et al. 2017, eq. 2) cannot mix the
gradients of different weights. Meta-Curvature learns a linear map ``T`` of the inner
gradient instead, ``phi = theta - alpha (.) T(g)``, which can (a meta-learned
preconditioner, in effect a curvature estimate shared by all tasks). A dense ``T`` over
all ~10^4 policy parameters would hold ~10^8 entries, so :class:`KroneckerGradientTransform`
factors it per layer as Park & Oliva do for fully connected layers: ``T(G) = L G R`` for a
weight gradient ``G [out, in]``, i.e. the Kronecker product ``R^T (x) L`` acting on
``vec(G)``, with ``out^2 + in^2`` entries. It starts at the identity, so training starts
exactly as Meta-SGD. The inner optimizer that uses it is
:class:`adaptrl.adaptation.inner_optimizers.KroneckerSGD`.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

from adaptrl.models.functional import Params, named_params

GradientTransformName = Literal["none", "kronecker"]
"""Allowed values of Meta-SGD's ``gradient_transform``: none (plain Meta-SGD) or kronecker."""
GRADIENT_TRANSFORMS: tuple[str, ...] = get_args(GradientTransformName)


class KroneckerGradientTransform(nn.Module):
    """A learned per-layer linear map of parameter gradients, initialised to the identity.

    For a weight ``W [out, in]`` named ``<layer>.weight``: ``T(G) = L G R`` with learned
    ``L [out, out]``, ``R [in, in]`` (Park & Oliva 2019, §3, fully connected layers); the
    bias ``<layer>.bias [out]`` of the same layer uses the same ``L``: ``T(g) = L g``. Any
    other parameter (e.g. a Gaussian policy's ``log_std [d]``) gets its own full matrix
    ``M [d, d]`` on its flattened gradient. Gradients may carry leading (task) dimensions:
    the matrices broadcast over them (one batched ``matmul``, no loop over tasks).
    """

    def __init__(self, params: Params) -> None:
        super().__init__()
        self.layers: list[tuple[str, str | None]] = []   # (weight name, bias name or None)
        self.others: list[tuple[str, torch.Size]] = []   # (name, shape) of full-matrix params
        left, right, full = [], [], []
        for name, p in params.items():
            if p.dim() == 2 and name.endswith("weight"):
                bias = name[: -len("weight")] + "bias"
                has_bias = bias in params and params[bias].shape == p.shape[:1]
                self.layers.append((name, bias if has_bias else None))
                left.append(_identity(p.shape[0], p))
                right.append(_identity(p.shape[1], p))
        covered = {n for layer in self.layers for n in layer if n is not None}
        for name, p in params.items():
            if name not in covered:
                self.others.append((name, p.shape))
                full.append(_identity(p.numel(), p))
        self.left = nn.ParameterList(left)
        self.right = nn.ParameterList(right)
        self.full = nn.ParameterList(full)

    def forward(self, grads: Params) -> Params:
        """``T(grads)`` with the module's own (trainable) matrices."""
        return self.functional(named_params(self), grads)

    def functional(self, weights: Params, grads: Params) -> Params:
        """``T(grads)`` with explicit matrices ``weights`` (keys as in ``named_params(self)``).

        ``grads`` holds one gradient per policy parameter, shaped like it, optionally
        with leading dimensions (``[tasks, ...]``); the result has the same keys and shapes.
        """
        out: Params = {}
        for i, (w, b) in enumerate(self.layers):
            left, right = weights[f"left.{i}"], weights[f"right.{i}"]
            out[w] = left @ grads[w] @ right
            if b is not None:
                out[b] = grads[b] @ left.mT          # L g, for every leading index
        for i, (name, shape) in enumerate(self.others):
            g = grads[name]
            lead = g.shape[: g.dim() - len(shape)]
            flat = g.reshape(*lead, -1) @ weights[f"full.{i}"].mT
            out[name] = flat.reshape(g.shape)
        return {k: out[k] for k in grads}

    def summary(self) -> dict[str, float]:
        """How far the learned matrices are from the identity (for the metrics log):
        mean and max over matrices of ``||M - I||_F / ||I||_F``."""
        dist = torch.stack([
            (m.detach() - torch.eye(m.shape[0], dtype=m.dtype, device=m.device)).norm()
            / m.shape[0] ** 0.5 for m in self.parameters()])
        return {"transform_dist_mean": float(dist.mean()), "transform_dist_max": float(dist.max())}


def _identity(n: int, like: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(torch.eye(n, dtype=like.dtype, device=like.device))
