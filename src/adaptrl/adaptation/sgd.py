"""Differentiable inner-loop SGD: one gradient step per task, batched over tasks.

Given meta-parameters ``theta`` (shared, or already per-task) and a per-task loss
``L_i``, returns ``phi_i = theta - alpha * grad L_i(theta)`` for every task ``i`` at once
(MAML, Finn et al. 2017, eq. 1). Shared parameters are expanded to a leading task
dimension; because the task losses are separable, one backward pass of ``sum_i L_i``
yields every task's own gradient.

``create_graph=True`` keeps the step differentiable, so the outer loss can back-propagate
through it (second-order MAML). With ``first_order=True`` the inner gradient is treated as
a constant (FOMAML): ``d phi / d theta = I``.

The step size ``lr`` is a float, or a dict of tensors shaped like the parameters
(Meta-SGD's learned per-parameter step sizes, Li et al. 2017, eq. 2).
"""

from __future__ import annotations

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


def sgd_step(params: Params, loss_fn: LossFn, lr: StepSize, num_tasks: int, *,
             batched: bool, first_order: bool, create_graph: bool = True) -> Params:
    """One inner SGD step per task; returns per-task parameters ``[tasks, ...]``.

    ``batched`` says whether ``params`` already carry the task dimension.
    ``create_graph`` is ignored (False) when ``first_order`` is set.
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
        step = lr * g if isinstance(lr, float) else lr[k] * g
        out[k] = theta[k] - step
    if not any(v.requires_grad for v in params.values()):
        out = {k: v.detach() for k, v in out.items()}
    return out
