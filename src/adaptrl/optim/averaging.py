"""Outer updates that move the shared parameters toward a weighted mean of per-task ones.

    theta <- theta + eps * (sum_i w_i phi_i - theta),    w_i >= 0, sum_i w_i = 1

With uniform weights this is Reptile's batched outer update (Nichol, Achiam, Schulman
2018, Algorithm 2); with ``eps = 1`` and weights from validation returns it is model
aggregation (the weighted average of per-task models).

The update is plain SGD with step size ``eps`` on the *pseudo-gradient*
``theta - sum_i w_i phi_i``; :func:`set_pseudo_gradient` writes it into ``.grad`` so that
any ``torch.optim`` optimiser can take the step instead (Nichol et al. 2018, §3: "treat
``theta - W`` as a gradient and plug it into a more sophisticated optimizer like Adam").
"""

from __future__ import annotations

import torch

from adaptrl.models.functional import Params


def check_weights(weights: torch.Tensor, num_tasks: int) -> None:
    """Raise ``ValueError`` unless ``weights`` is ``[num_tasks]``, >= 0 and sums to one."""
    if weights.shape != (num_tasks,):
        raise ValueError(f"weights must have shape ({num_tasks},), got {tuple(weights.shape)}")
    if bool((weights < 0).any()) or abs(float(weights.sum()) - 1.0) > 1e-5:
        raise ValueError(f"weights must be >= 0 and sum to 1, got {weights.tolist()}")


def weighted_mean(per_task: Params, weights: torch.Tensor) -> Params:
    """``sum_i w_i phi_i`` for every parameter (``per_task`` tensors are ``[tasks, ...]``)."""
    n = next(iter(per_task.values())).shape[0]
    check_weights(weights, n)
    out = {}
    for k, v in per_task.items():
        w = weights.to(v).reshape(n, *([1] * (v.dim() - 1)))
        out[k] = (w * v).sum(0)
    return out


@torch.no_grad()
def set_pseudo_gradient(params: Params, per_task: Params, weights: torch.Tensor
                        ) -> dict[str, float]:
    """``p.grad = theta - sum_i w_i phi_i`` for every shared parameter; returns its norm."""
    target = weighted_mean(per_task, weights)
    sq = 0.0
    for k, p in params.items():
        p.grad = (p - target[k]).detach()
        sq += float((p.grad ** 2).sum())
    return {"outer_distance": sq ** 0.5}
