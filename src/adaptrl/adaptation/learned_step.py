"""Learned inner step sizes: Meta-SGD's per-parameter ``alpha`` (Li et al. 2017, eq. 2).

Meta-SGD adapts with ``phi = theta - alpha (.) grad L(theta)``, where ``alpha`` has the
shape of ``theta`` and is meta-learned together with it by the outer loop, so that both
the *direction* and the *size* of every parameter's inner step are learned (entries may
become negative or zero). :class:`PerParameterStepSize` holds ``alpha`` as ``nn.Parameter``s
and hands it to :func:`adaptrl.adaptation.sgd.sgd_step` as the dict of tensors that
function accepts for ``lr``; the step stays differentiable in ``alpha``.
"""

from __future__ import annotations

import torch
from torch import nn

from adaptrl.models.functional import Params


class PerParameterStepSize(nn.Module):
    """One learned step size per policy-parameter element, initialised to ``init``."""

    def __init__(self, params: Params, init: float) -> None:
        super().__init__()
        if not init > 0:
            raise ValueError(f"init (the initial step size) must be > 0, got {init}")
        self.names = list(params)
        self.alphas = nn.ParameterList(
            nn.Parameter(torch.full_like(p.detach(), float(init))) for p in params.values())

    def forward(self) -> dict[str, torch.Tensor]:
        """``{parameter name: alpha}``, the ``lr`` argument of the inner SGD step."""
        return dict(zip(self.names, self.alphas))

    def summary(self) -> dict[str, float]:
        """Mean and spread of ``alpha`` over all entries (for the metrics log)."""
        flat = torch.cat([a.detach().flatten() for a in self.alphas])
        return {"alpha_mean": float(flat.mean()), "alpha_std": float(flat.std()),
                "alpha_min": float(flat.min()), "alpha_max": float(flat.max())}
