"""Trust-region policy optimisation step (Schulman et al. 2015), for any differentiable surrogate.

Solves ``F x = g`` with conjugate gradient, where ``F`` is the Hessian of the mean KL
(Fisher information) applied through Hessian-vector products, scales the step to the KL
bound (``sqrt(2 delta / x^T F x)``, eq. in App. C) and backtracks until the surrogate
improves and the KL bound holds. The surrogate may itself contain an inner adaptation
step (MAML-TRPO): the metric is then the KL Hessian *through* it, best supplied as the
exact, cheaper product ``J^T F J`` (:mod:`adaptrl.optim.fisher`) via ``fisher_product``;
:mod:`adaptrl.optim.meta_trpo` does that for a policy adapted by an inner loop.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from pydantic import Field
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from adaptrl.optim.fisher import KLHessian, flat_product
from adaptrl.schema import ConfigModel


class TRPOConfig(ConfigModel):
    """TRPO settings (defaults: MAML paper / its reference code)."""

    max_kl: float = Field(0.01, gt=0, description="KL trust-region bound delta")
    cg_iters: int = Field(10, ge=1, description="conjugate-gradient iterations")
    cg_damping: float = Field(1e-5, ge=0, description="damping added to the Fisher product")
    ls_steps: int = Field(15, ge=1, description="backtracking line-search steps")
    ls_ratio: float = Field(0.8, gt=0, lt=1, description="step shrink factor per backtrack")
    fisher_fraction: float = Field(
        0.1, gt=0, le=1,
        description="fraction of each task's episodes (at least one) on which the metric of "
                    "the trust region (the KL Hessian, J^T F J through MAML's inner loop) "
                    "is estimated; the gradient and the line search always use all the data. "
                    "1.0 = the exact metric of the reference implementation. Default 0.1, "
                    "the 10% of Schulman's thesis (2016): on navigation-2d it learns as well "
                    "as 1.0 (held-out return after one step, 60 meta-iterations, 2 seeds) at "
                    "about a fifth of the time per meta-iteration")


def conjugate_gradient(mvp: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor,
                       iters: int, tol: float = 1e-10) -> torch.Tensor:
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A`` given ``v -> A v``."""
    return _cg(mvp, b, iters, tol)[0]


def _cg(mvp: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int,
        tol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Conjugate gradient; returns ``x`` and the residual ``r = b - A x`` (kept recursively)."""
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
    return x, r


Surrogate = Callable[[bool], tuple[torch.Tensor, torch.Tensor]]
"""``surrogate(differentiable) -> (loss, kl)`` at the parameters' current values."""


def trpo_step(params: list[torch.nn.Parameter], surrogate: Surrogate, config: TRPOConfig,
              fisher_kl: Callable[[], torch.Tensor] | None = None, *,
              fisher_product: Callable[[torch.Tensor], torch.Tensor] | None = None,
              loss: torch.Tensor | None = None) -> dict[str, float]:
    """One TRPO update of ``params`` in place; returns diagnostics.

    ``surrogate(True)`` must build a graph (with ``create_graph`` through any inner
    update, for second-order meta-gradients); ``surrogate(False)`` is used by the line
    search and need not. The metric ``F`` is, by priority: ``fisher_product`` (``v -> F v``
    on flat vectors, undamped, e.g. :func:`adaptrl.optim.fisher.pullback_metric`; it may
    use the graph of ``loss``, which is retained), else the Hessian of ``fisher_kl()``
    (e.g. the KL on a subsample of the data; it must be minimal at the current
    parameters), else the Hessian of the surrogate's KL. ``loss``, if given, is the
    differentiable surrogate already evaluated at the current parameters (spares a call).

    The step is ``x = F^-1 g`` by conjugate gradient, scaled to the KL bound by
    ``sqrt(2 delta / x^T F x)`` (Schulman et al. 2015, App. C) with ``x^T F x = x^T (g - r)``
    from CG's residual ``r`` (no extra product), then backtracked until the surrogate
    improves and the KL bound holds; a fully rejected search restores the parameters.
    """
    kl = None
    if loss is None:
        loss, kl = surrogate(True)
    grads = torch.autograd.grad(loss, params, retain_graph=True)
    g = parameters_to_vector(grads).detach()
    if fisher_product is None:
        metric_kl = fisher_kl() if fisher_kl is not None else kl
        if metric_kl is None:
            metric_kl = surrogate(True)[1]
        named: dict[str, torch.Tensor] = {str(i): p for i, p in enumerate(params)}
        fisher_product = flat_product(KLHessian(metric_kl, named), named)
    metric = fisher_product

    def damped(v: torch.Tensor) -> torch.Tensor:
        return metric(v) + config.cg_damping * v

    step_dir, residual = _cg(damped, g, config.cg_iters, tol=1e-10)
    shs = 0.5 * step_dir @ (g - residual)
    lagrange = torch.sqrt(shs.clamp_min(1e-12) / config.max_kl)
    full_step = (step_dir / lagrange).detach()
    old_loss = float(loss.detach())

    info = {"grad_norm": float(g.norm())}
    info.update(backtracking_line_search(params, full_step, old_loss, surrogate, config))
    return info


def backtracking_line_search(params: list[torch.nn.Parameter], full_step: torch.Tensor,
                             old_loss: float, surrogate: Surrogate,
                             config: TRPOConfig) -> dict[str, float]:
    """Try ``old - ratio^i * full_step`` for ``i = 0, 1, ...`` from the current ``old``
    parameters (surrogate ``old_loss``); keep the first point whose surrogate is lower and
    whose KL is within the bound, else restore ``old``."""
    old = parameters_to_vector(params).detach().clone()
    info = {"loss_before": old_loss, "accepted": 0.0}
    scale = 1.0
    for i in range(config.ls_steps):
        vector_to_parameters(old - scale * full_step, params)
        new_loss, new_kl = (float(x.detach()) for x in surrogate(False))
        if new_loss < old_loss and new_kl <= config.max_kl:
            info.update(loss_after=new_loss, kl=new_kl, accepted=1.0,
                        ls_backtracks=float(i), step_fraction=scale)
            return info
        scale *= config.ls_ratio
    vector_to_parameters(old, params)
    info.update(loss_after=old_loss, kl=0.0, ls_backtracks=float(config.ls_steps),
                step_fraction=0.0)
    return info
