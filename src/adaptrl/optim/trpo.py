"""Trust-region policy optimisation step (Schulman et al. 2015), for any differentiable surrogate.

Solves ``F x = g`` with conjugate gradient, where ``F`` is the Hessian of the mean KL
(Fisher information) applied through Hessian-vector products, scales the step to the KL
bound (``sqrt(2 delta / x^T F x)``, eq. in App. C) and backtracks until the surrogate
improves and the KL bound holds. The surrogate may itself contain an inner adaptation
step (MAML-TRPO): the Hessian-vector products then differentiate through it.
"""

from __future__ import annotations

from typing import Callable

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch.nn.utils import parameters_to_vector, vector_to_parameters


class TRPOConfig(BaseModel):
    """TRPO settings (defaults: MAML paper / its reference code)."""

    model_config = ConfigDict(extra="forbid")
    max_kl: float = Field(0.01, gt=0, description="KL trust-region bound delta")
    cg_iters: int = Field(10, ge=1, description="conjugate-gradient iterations")
    cg_damping: float = Field(1e-5, ge=0, description="damping added to the Fisher product")
    ls_steps: int = Field(15, ge=1, description="backtracking line-search steps")
    ls_ratio: float = Field(0.8, gt=0, lt=1, description="step shrink factor per backtrack")
    fisher_fraction: float = Field(
        1.0, gt=0, le=1,
        description="fraction of each task's episodes used for Fisher-vector products "
                    "(Schulman 2016, §3.6: 10%% of the data suffices; 1.0 = exact)")


def conjugate_gradient(mvp: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor,
                       iters: int, tol: float = 1e-10) -> torch.Tensor:
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A`` given ``v -> A v``."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    for _ in range(iters):
        if rr < tol:
            break
        Ap = mvp(p)
        alpha = rr / (p @ Ap)
        x += alpha * p
        r -= alpha * Ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


Surrogate = Callable[[bool], tuple[torch.Tensor, torch.Tensor]]
"""``surrogate(differentiable) -> (loss, kl)`` at the parameters' current values."""


def trpo_step(params: list[torch.nn.Parameter], surrogate: Surrogate, config: TRPOConfig,
              fisher_kl: Callable[[], torch.Tensor] | None = None) -> dict[str, float]:
    """One TRPO update of ``params`` in place; returns diagnostics.

    ``surrogate(True)`` must build a graph (with ``create_graph`` through any inner
    update, for second-order meta-gradients); ``surrogate(False)`` is used by the line
    search and need not. ``fisher_kl()``, if given, is the KL whose Hessian is the metric
    (e.g. on a subsample of the data); it must be minimal (zero) at the current parameters.
    """
    loss, kl = surrogate(True)
    grads = torch.autograd.grad(loss, params, retain_graph=fisher_kl is None)
    g = parameters_to_vector(grads)
    metric_kl = kl if fisher_kl is None else fisher_kl()
    grad_kl = parameters_to_vector(torch.autograd.grad(metric_kl, params, create_graph=True))

    def fisher_product(v: torch.Tensor) -> torch.Tensor:
        hv = torch.autograd.grad(grad_kl @ v, params, retain_graph=True)
        return parameters_to_vector(hv) + config.cg_damping * v

    step_dir = conjugate_gradient(fisher_product, g.detach(), config.cg_iters)
    shs = 0.5 * step_dir @ fisher_product(step_dir)
    lagrange = torch.sqrt(shs.clamp_min(1e-12) / config.max_kl)
    full_step = (step_dir / lagrange).detach()
    del grad_kl

    old = parameters_to_vector(params).detach().clone()
    old_loss = float(loss.detach())
    info = {"loss_before": old_loss, "grad_norm": float(g.norm()), "accepted": 0.0}
    scale = 1.0
    for i in range(config.ls_steps):
        vector_to_parameters(old - scale * full_step, params)
        new_loss, new_kl = surrogate(False)
        if float(new_loss) < old_loss and float(new_kl) <= config.max_kl:
            info.update(loss_after=float(new_loss), kl=float(new_kl), accepted=1.0,
                        ls_backtracks=float(i), step_fraction=scale)
            return info
        scale *= config.ls_ratio
    vector_to_parameters(old, params)
    info.update(loss_after=old_loss, kl=0.0, ls_backtracks=float(config.ls_steps),
                step_fraction=0.0)
    return info
