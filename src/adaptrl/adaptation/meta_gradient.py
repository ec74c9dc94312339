"""Online meta-gradients of hyperparameters (Xu, van Hasselt, Silver 2018, "Meta-gradient
reinforcement learning", NeurIPS; §1.2-1.3): the pieces any learner can compose.

The learner's update depends on hyperparameters ``eta`` (discount, learning rate, ...):
``theta' = theta + f(tau, theta, eta)`` (eq. 1). After the update, the *meta-objective*
``J'(tau', theta', eta_bar)`` — the learner's own objective on the next batch ``tau'``,
computed with a fixed reference ``eta_bar`` (e.g. ``gamma_bar = 1`` or ``0.995``) — is
differentiated with respect to ``eta`` through the update (eq. 2)::

    dJ'/d eta = dJ'(tau', theta', eta_bar)/d theta' . d theta'/d eta,

and ``eta`` takes a gradient step. ``d theta'/d eta`` is accumulated online as a trace
(eq. 3-4): ``d theta'/d eta = (I + df/d theta) d theta/d eta + df/d eta``, with
``I + df/d theta`` approximated by ``mu I`` (the paper's decay ``mu in [0, 1]``; ``mu = 0``
keeps only the last update's ``df/d eta``)::

    z <- mu z + df(tau, theta, eta)/d eta.

Here ``eta`` is a raw, unconstrained tensor ``[tasks, k]`` (one set per task: tasks learn
independently) mapped to the hyperparameters by fixed squashing functions — the
discount through a sigmoid (:func:`discount`), a learning rate through an exponential
(:func:`step_size`) — as the paper does for ``gamma`` and ``lambda``. ``df/d eta`` is taken in
forward mode (:func:`torch.func.jvp`, one pass per component of ``eta``): ``k`` is two or
three while ``theta`` has thousands of entries. With parameters ``[tasks, ...]``, a tangent
of ones in component ``j`` for every task gives every task's own ``d theta_i/d eta_ij``,
because task ``i``'s update does not depend on ``eta_i'`` for ``i' != i``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch

from adaptrl.models.functional import Params

A = TypeVar("A")

Trace = list[Params]
"""``d theta/d eta_j`` for each learned component ``j``: parameter-shaped dicts."""


def discount(x: torch.Tensor) -> torch.Tensor:
    """``gamma = sigmoid(x)``: the discount's parameterisation (Xu et al. 2018, §1.2)."""
    return torch.sigmoid(x)


def discount_logit(gamma: float | torch.Tensor) -> torch.Tensor:
    """The raw value ``x`` whose :func:`discount` is ``gamma`` (in ``(0, 1)``)."""
    g = torch.as_tensor(gamma, dtype=torch.float64)
    if not bool(((g > 0) & (g < 1)).all()):
        raise ValueError(f"a sigmoid-parameterised discount must be in (0, 1), got {gamma}")
    return torch.logit(g)


def step_size(x: torch.Tensor) -> torch.Tensor:
    """``lr = exp(x)``: a positive learning rate's parameterisation."""
    return torch.exp(x)


def update_with_tangents(update: Callable[[torch.Tensor], tuple[Params, A]], eta: torch.Tensor,
                         components: Sequence[int]) -> tuple[Params, A, Trace]:
    """``theta', aux = update(eta)`` and ``d theta'/d eta_j`` for each ``j`` of
    ``components`` (the last dim of ``eta``), by forward-mode differentiation.

    ``update`` must be a pure function of ``eta`` (closing over the batch and ``theta``),
    written with :mod:`torch.func`-compatible ops (e.g. :func:`torch.func.grad` for the
    inner gradient)."""
    if not components:
        primal, aux = update(eta)
        return primal, aux, []
    tangents: Trace = []
    out: Any = None
    for j in components:
        tangent = torch.zeros_like(eta)
        tangent[..., j] = 1.0
        out = torch.func.jvp(update, (eta,), (tangent,), has_aux=True)
        tangents.append({k: v.detach() for k, v in out[1].items()})
    new: Params = out[0]
    return {k: v.detach() for k, v in new.items()}, out[2], tangents


def accumulate_trace(trace: Trace | None, tangents: Trace, decay: float) -> Trace:
    """``z <- decay z + df/d eta`` per component (Xu et al. 2018, eq. 4 with
    ``I + df/d theta ~ decay I``); ``trace = None`` starts from ``z = 0``."""
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"the trace decay mu must be in [0, 1], got {decay}")
    if trace is None or decay == 0.0:
        return [dict(t) for t in tangents]
    if len(trace) != len(tangents):
        raise ValueError(f"trace has {len(trace)} components, the update {len(tangents)}")
    return [{k: decay * z[k] + t[k] for k in t} for z, t in zip(trace, tangents)]


def meta_gradient(grads: Params, trace: Trace) -> torch.Tensor:
    """``dJ'/d eta_j = sum over parameters of dJ'/d theta' * z_j``, per task: ``grads``
    (``dJ'/d theta'``) and every ``z_j`` are ``[tasks, ...]``; returns ``[tasks, len(trace)]``
    (Xu et al. 2018, eq. 2)."""
    if not trace:
        raise ValueError("no learned component: the trace is empty")
    cols = []
    for z in trace:
        parts = [(g * z[k]).flatten(1).sum(1) for k, g in grads.items()]
        cols.append(torch.stack(parts).sum(0))
    return torch.stack(cols, dim=-1)


def shared_meta_gradient(d_eta: torch.Tensor) -> torch.Tensor:
    """The meta-gradient of one ``eta`` shared by every task ``[tasks, k]`` (each row the
    same), when the meta-objective is the mean of the tasks' ``J'_i``: ``d/d eta mean_i
    J'_i = mean_i dJ'_i/d eta``, where ``dJ'_i/d eta`` (row ``i`` of ``d_eta``, from
    :func:`meta_gradient`) is task ``i``'s alone because its update depends on ``eta``
    only through its own parameters. Returned broadcast to every row, so that an
    elementwise optimizer keeps the rows equal: hyperparameters learned across tasks
    (issue 28, item 5a) with the online machinery of Xu et al. (2018)."""
    return d_eta.mean(0, keepdim=True).expand_as(d_eta)
