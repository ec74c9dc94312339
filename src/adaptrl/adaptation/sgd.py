"""Differentiable inner-loop SGD: one gradient step per task, batched over tasks.

Given meta-parameters ``theta`` (shared, or already per-task) and a per-task loss
``L_i``, returns ``phi_i = theta - alpha * grad L_i(theta)`` for every task ``i`` at once
(MAML, Finn et al. 2017, eq. 1). Shared parameters are expanded to a leading task
dimension; because the task losses are separable, one backward pass of ``sum_i L_i``
yields every task's own gradient.

``create_graph=True`` keeps the step differentiable, so the outer loss can back-propagate
through it (second-order MAML). With ``first_order=True`` the inner gradient is treated as
a constant (FOMAML): ``d phi / d theta = I``. :func:`sgd_step_with_jacobian` also returns
the step's Jacobian ``J = I - alpha * H`` as matrix-free products (used for the TRPO
metric of MAML, which is ``J^T F J``).

The step size ``lr`` is a float, or a dict of tensors shaped like the parameters
(Meta-SGD's learned per-parameter step sizes, Li et al. 2017, eq. 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from adaptrl.models.functional import Params

LossFn = Callable[[Params], torch.Tensor]
"""``params -> per-task losses [tasks]``."""

StepSize = float | dict[str, torch.Tensor]


def _per_task(params: Params, num_tasks: int, batched: bool) -> Params:
    if batched:
        return params
    return {k: v.expand(num_tasks, *v.shape) for k, v in params.items()}


def _scale(lr: StepSize, key: str, x: torch.Tensor) -> torch.Tensor:
    return lr * x if isinstance(lr, float) else lr[key] * x


@dataclass
class StepJacobian:
    """``J = d phi / d theta`` of one SGD step ``phi = theta - lr * g(theta)``, matrix-free.

    ``J = I - lr * H`` with ``H`` the per-task Hessian of the inner loss (block-diagonal
    over tasks), so ``J v`` and ``J^T w`` are Hessian-vector products: one extra backward
    pass through the retained graph of the inner gradient ``g`` each (double backward, no
    third-order terms). All vectors are per-task dicts ``[tasks, ...]``. With no graph
    (``grads is None``: first-order steps) ``J = I``.
    """

    inputs: dict[str, torch.Tensor]
    grads: dict[str, torch.Tensor] | None
    lr: StepSize

    def hvp(self, v: Params) -> Params:
        """``H v`` per task; the graph is kept for the next product."""
        assert self.grads is not None
        keys = list(self.inputs)
        hv = torch.autograd.grad([self.grads[k] for k in keys], [self.inputs[k] for k in keys],
                                 grad_outputs=[v[k] for k in keys], retain_graph=True,
                                 allow_unused=True)
        return {k: torch.zeros_like(v[k]) if h is None else h for k, h in zip(keys, hv)}

    def jvp(self, v: Params) -> Params:
        """``J v = v - lr * H v``."""
        if self.grads is None:
            return v
        hv = self.hvp(v)
        return {k: v[k] - _scale(self.lr, k, hv[k]) for k in v}

    def vjp(self, w: Params) -> Params:
        """``J^T w = w - H (lr * w)`` (``H`` is symmetric)."""
        if self.grads is None:
            return w
        hw = self.hvp({k: _scale(self.lr, k, w[k]) for k in w})
        return {k: w[k] - hw[k] for k in w}


def sgd_step(params: Params, loss_fn: LossFn, lr: StepSize, num_tasks: int, *,
             batched: bool, first_order: bool, create_graph: bool = True) -> Params:
    """One inner SGD step per task; returns per-task parameters ``[tasks, ...]``.

    ``batched`` says whether ``params`` already carry the task dimension.
    ``create_graph`` is ignored (False) when ``first_order`` is set.
    """
    return sgd_step_with_jacobian(params, loss_fn, lr, num_tasks, batched=batched,
                                  first_order=first_order, create_graph=create_graph)[0]


def sgd_step_with_jacobian(params: Params, loss_fn: LossFn, lr: StepSize, num_tasks: int, *,
                           batched: bool, first_order: bool, create_graph: bool = True
                           ) -> tuple[Params, StepJacobian]:
    """:func:`sgd_step`, also returning the step's Jacobian as a :class:`StepJacobian`.

    The Jacobian holds the graph of the inner gradient (when one was created), so
    products with it are valid while the caller keeps the step's inputs alive.
    """
    theta = _per_task(params, num_tasks, batched)
    # plain (non-meta) adaptation of detached parameters: make them differentiable leaves
    theta = {k: v if v.requires_grad else v.detach().requires_grad_(True)
             for k, v in theta.items()}
    keys = list(theta)
    need_graph = create_graph and not first_order
    with torch.enable_grad():
        losses = loss_fn(theta)
        grads = torch.autograd.grad(losses.sum(), [theta[k] for k in keys],
                                    create_graph=need_graph)
    out: Params = {}
    for k, g in zip(keys, grads):
        if not need_graph:
            g = g.detach()
        out[k] = theta[k] - _scale(lr, k, g)
    if not any(v.requires_grad for v in params.values()):
        out = {k: v.detach() for k, v in out.items()}
    fixed_lr = lr if isinstance(lr, float) else {k: v.detach() for k, v in lr.items()}
    jac = StepJacobian(theta, dict(zip(keys, grads)) if need_graph else None, fixed_lr)
    return out, jac
