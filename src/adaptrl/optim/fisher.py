"""Fisher-vector products: the metric of natural-gradient and trust-region steps.

TRPO (Schulman et al. 2015, App. C) needs ``F v`` where ``F`` is the Hessian of the mean
KL ``KL(pi_old || pi)`` at ``pi = pi_old``. Two ways to apply it, both exact:

* :class:`KLHessian`: double backward through the KL (Pearlmutter's trick). The KL
  gradient graph is built once and reused for every product (``retain_graph``).
* :func:`pullback_metric`, for a policy whose parameters ``phi(theta)`` are the output of
  an inner adaptation (MAML-TRPO, Finn et al. 2017, §3.2). At ``theta_old`` the KL and its
  gradient with respect to ``phi`` vanish, so the chain rule's second-order term drops out
  and the Hessian with respect to ``theta`` is exactly ``J^T F_phi J`` with
  ``J = d phi / d theta``. ``J v`` and ``J^T w`` are Hessian-vector products of the *inner*
  loss (:class:`adaptrl.adaptation.inner_optimizers.StepJacobian`) and ``F_phi`` is a
  :class:`KLHessian` at ``phi_old``: no third-order derivatives, unlike differentiating
  the KL Hessian through the adaptation. :mod:`adaptrl.optim.meta_trpo` puts the two
  together for MAML-TRPO's outer step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import torch

from adaptrl.models.functional import Params

ParamsMap = Callable[[Params], Params]


def params_to_flat(p: Params) -> torch.Tensor:
    """Concatenate a parameter dict (in its key order) into one vector."""
    return torch.cat([v.reshape(-1) for v in p.values()])


def flat_to_params(v: torch.Tensor, like: Params) -> Params:
    """Split a vector into tensors shaped like ``like`` (inverse of :func:`params_to_flat`)."""
    out: Params = {}
    i = 0
    for k, ref in like.items():
        out[k] = v[i:i + ref.numel()].view_as(ref)
        i += ref.numel()
    if i != v.numel():
        raise ValueError(f"vector has {v.numel()} entries, the parameters {i}")
    return out


class KLHessian:
    """``u -> (d^2 kl / d params^2) u`` by double backward, reusing one gradient graph.

    ``kl`` must be a scalar function of ``params`` (tensors that require grad) whose
    gradient vanishes at the current point (a KL to the current policy), though the
    product is the plain Hessian-vector product either way.
    """

    def __init__(self, kl: torch.Tensor, params: Params) -> None:
        self.params = params
        keys = list(params)
        grads = torch.autograd.grad(kl, [params[k] for k in keys], create_graph=True)
        self.grads = dict(zip(keys, grads))

    def __call__(self, u: Params) -> Params:
        keys = list(self.params)
        inner = sum((self.grads[k] * u[k]).sum() for k in keys)
        assert isinstance(inner, torch.Tensor)
        hv = torch.autograd.grad(inner, [self.params[k] for k in keys], retain_graph=True,
                                 allow_unused=True)
        return {k: torch.zeros_like(u[k]) if h is None else h for k, h in zip(keys, hv)}


class LinearStep(Protocol):
    """A Jacobian ``J`` given by its products (see
    :class:`adaptrl.adaptation.inner_optimizers.StepJacobian`)."""

    def jvp(self, v: Params) -> Params: ...

    def vjp(self, w: Params) -> Params: ...


def pullback_metric(fisher: ParamsMap, steps: Sequence[LinearStep],
                    num_tasks: int | None) -> ParamsMap:
    """``v -> J^T F J v`` for ``J = J_K ... J_1`` (the inner steps in order).

    ``v`` is shared (no task dim); with ``num_tasks`` set, ``fisher`` and the steps act on
    per-task vectors: ``v`` is broadcast to every task on the way in and the per-task
    results are summed on the way out (the transpose of that broadcast).
    """

    def product(v: Params) -> Params:
        u = v if num_tasks is None else {k: x.expand(num_tasks, *x.shape) for k, x in v.items()}
        for step in steps:
            u = step.jvp(u)
        u = fisher(u)
        for step in reversed(steps):
            u = step.vjp(u)
        return u if num_tasks is None else {k: x.sum(0) for k, x in u.items()}

    return product


def flat_product(product: ParamsMap, like: Params) -> Callable[[torch.Tensor], torch.Tensor]:
    """A ``Params -> Params`` linear map as a map on flat vectors (for conjugate gradient)."""
    return lambda v: params_to_flat(product(flat_to_params(v, like)))
