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

The step size ``lr`` is a float, a dict of tensors shaped like the parameters
(Meta-SGD's learned per-parameter step sizes, Li et al. 2017, eq. 2), or a
:class:`TransformedStep`: step sizes applied after a learned linear map ``T`` of the
gradient, ``phi = theta - alpha (.) T(grad L(theta))`` (Meta-Curvature, Park & Oliva 2019,
§3, with Meta-SGD's ``alpha``). The map travels *inside* the step-size argument, so
every caller that passes a step size on (adapters, the inner loop, the evaluated agent)
passes the transform on too, with no second argument to thread through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from adaptrl.models.functional import Params, detach_params

LossFn = Callable[[Params], torch.Tensor]
"""``params -> per-task losses [tasks]``."""

GradientMap = Callable[[Params, Params], Params]
"""``(weights, grads) -> T(grads)``: a map of per-task gradients ``[tasks, ...]`` given its
own parameters ``weights`` explicitly (so that a detached copy is just detached weights);
it must be linear in ``grads``."""

Scale = float | dict[str, torch.Tensor]
"""A plain step size: one float, or one tensor per parameter shaped like it (Meta-SGD)."""


def _scale(lr: Scale, key: str, x: torch.Tensor) -> torch.Tensor:
    return lr * x if isinstance(lr, float) else lr[key] * x


@dataclass(frozen=True, eq=False)
class TransformedStep:
    """The inner step ``alpha (.) T(g)``: a learned linear map ``T`` of the per-task
    gradient ``g``, then the step size ``lr`` (Park & Oliva 2019, §3; Li et al. 2017, eq. 2).

    ``T = transform(weights, .)``; with ``weights`` that require grad the step is
    differentiable in them, so the outer loop meta-learns ``T`` (and ``lr``) with theta.
    """

    lr: Scale
    transform: GradientMap
    weights: Params

    def __call__(self, grads: Params) -> Params:
        """``lr (.) T(grads)``."""
        t = self.transform(self.weights, grads)
        return {k: _scale(self.lr, k, t[k]) for k in grads}

    def adjoint(self, w: Params) -> Params:
        """``T^T (lr (.) w)``, the transpose of :meth:`__call__` (exact: ``T`` is linear).

        Taken by autograd as the vector-Jacobian product of ``T`` at 0, so any linear map
        works without spelling out its transpose. The result carries no graph.
        """
        scaled = {k: _scale(self.lr, k, v) for k, v in w.items()}
        x = {k: torch.zeros_like(v, requires_grad=True) for k, v in w.items()}
        keys = list(w)
        with torch.enable_grad():
            t = self.transform(self.weights, x)
            out = torch.autograd.grad([t[k] for k in keys], [x[k] for k in keys],
                                      grad_outputs=[scaled[k] for k in keys], allow_unused=True)
        return {k: torch.zeros_like(w[k]) if g is None else g for k, g in zip(keys, out)}

    def detach(self) -> TransformedStep:
        """The same step with no graph to ``lr`` and ``weights`` (shares their storage)."""
        lr = self.lr if isinstance(self.lr, float) else detach_params(self.lr)
        return TransformedStep(lr, self.transform, detach_params(self.weights))


StepSize = Scale | TransformedStep
"""What the inner step multiplies the gradient by: a float, per-parameter tensors, or a
learned map followed by a step size (:class:`TransformedStep`)."""


def scaled_step(lr: StepSize, grads: Params) -> Params:
    """The update ``lr (.) g`` subtracted from the parameters (``lr (.) T(g)`` if transformed)."""
    if isinstance(lr, TransformedStep):
        return lr(grads)
    return {k: _scale(lr, k, g) for k, g in grads.items()}


def _scaled_step_adjoint(lr: StepSize, w: Params) -> Params:
    """The transpose of :func:`scaled_step` (itself for a diagonal step size)."""
    if isinstance(lr, TransformedStep):
        return lr.adjoint(w)
    return scaled_step(lr, w)


def detach_step(lr: StepSize) -> StepSize:
    """``lr`` with no graph to learned step sizes or transform weights (for plain adaptation)."""
    if isinstance(lr, float):
        return lr
    if isinstance(lr, TransformedStep):
        return lr.detach()
    return detach_params(lr)


def _per_task(params: Params, num_tasks: int, batched: bool) -> Params:
    if batched:
        return params
    return {k: v.expand(num_tasks, *v.shape) for k, v in params.items()}


@dataclass
class StepJacobian:
    """``J = d phi / d theta`` of one SGD step ``phi = theta - lr * g(theta)``, matrix-free.

    ``J = I - lr * H`` with ``H`` the per-task Hessian of the inner loss (block-diagonal
    over tasks), so ``J v`` and ``J^T w`` are Hessian-vector products: one extra backward
    pass through the retained graph of the inner gradient ``g`` each (double backward, no
    third-order terms). With a :class:`TransformedStep` ``J = I - lr T H`` (``T`` linear and
    constant in theta) and ``J^T = I - H T^T lr``. All vectors are per-task dicts
    ``[tasks, ...]``. With no graph (``grads is None``: first-order steps) ``J = I``.
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
        """``J v = v - lr * H v`` (``v - lr T(H v)`` for a transformed step)."""
        if self.grads is None:
            return v
        step = scaled_step(self.lr, self.hvp(v))
        return {k: v[k] - step[k] for k in v}

    def vjp(self, w: Params) -> Params:
        """``J^T w = w - H (lr * w)`` (``H`` is symmetric; ``w - H T^T(lr w)`` if transformed)."""
        if self.grads is None:
            return w
        hw = self.hvp(_scaled_step_adjoint(self.lr, w))
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
    g = {k: v if need_graph else v.detach() for k, v in zip(keys, grads)}
    step = scaled_step(lr, g)
    out = {k: theta[k] - step[k] for k in keys}
    if not any(v.requires_grad for v in params.values()):
        out = {k: v.detach() for k, v in out.items()}
    jac = StepJacobian(theta, dict(zip(keys, grads)) if need_graph else None, detach_step(lr))
    return out, jac
