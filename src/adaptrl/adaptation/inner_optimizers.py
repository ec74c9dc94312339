"""Inner optimizers: how per-task parameters move given their inner-loss gradients.

An :class:`InnerOptimizer` maps per-task parameters and gradients (leading task
dimension, ``[tasks, ...]``) to new per-task parameters, and may carry per-task state
across the inner steps of one adaptation (Adam's moments; a learned optimizer's
recurrent state). Its step is differentiable in the parameters, the gradients and the
optimizer's own meta-parameters (:meth:`InnerOptimizer.meta_parameters`), so the outer
loop can back-propagate through it and learn those meta-parameters with theta.

* :class:`SGD` — ``phi = theta - alpha g`` (MAML, Finn et al. 2017, eq. 1), ``alpha`` a
  float or fixed per-parameter tensors;
* :class:`MetaSGD` — a learned per-parameter ``alpha`` (Li et al. 2017, eq. 2);
* :class:`KroneckerSGD` — a learned per-layer transform, then the learned ``alpha``:
  ``phi = theta - alpha (.) L G R`` (Meta-Curvature, Park & Oliva 2019, §3);
* :class:`Adam` — per-task first and second moments (Kingma & Ba 2015, Algorithm 1).

The SGD family's update is linear in the gradient and, with fixed meta-parameters,
constant in theta, so its Jacobian is exactly ``J = I - P H`` with ``P`` the update's
linear map and ``H`` the per-task inner-loss Hessian (:class:`StepJacobian`): the cheap
TRPO metric ``J^T F J`` (:mod:`adaptrl.optim.meta_trpo`) needs only Hessian-vector
products. Adam's update is not linear in the gradient: it offers no such Jacobian, and
TRPO then takes the KL Hessian through the inner loop by autograd.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from adaptrl.adaptation.kronecker import (
    GRADIENT_TRANSFORMS,
    GradientTransformName,
    KroneckerGradientTransform,
)
from adaptrl.models.functional import Params, detach_params, named_params

InnerState = dict[str, torch.Tensor]
"""An inner optimizer's per-task state (tensors with a leading task dimension, plus
shared counters); ``{}`` for a stateless one. Plain tensors, so it checkpoints as is."""

Scale = float | dict[str, torch.Tensor]
"""A step size: one float, or one tensor per parameter shaped like it (Meta-SGD)."""

GradientMap = Callable[[Params, Params], Params]
"""``(weights, grads) -> T(grads)``: a linear map of per-task gradients given its own
parameters ``weights`` explicitly (so that a detached copy is just detached weights)."""


class StepJacobian:
    """``J = d phi / d theta`` of one SGD-family step ``phi = theta - P(g(theta))``, matrix-free.

    ``J = I - P H`` with ``H`` the per-task Hessian of the inner loss (block-diagonal over
    tasks) and ``P`` the step's linear map (``alpha``, or ``alpha (.) T``), constant in
    theta; so ``J v = v - P(H v)`` and ``J^T w = w - H P^T(w)`` (``H`` symmetric) are one
    Hessian-vector product each: one more backward pass through the retained graph of the
    inner gradient ``g`` (double backward, no third-order terms). All vectors are per-task
    dicts ``[tasks, ...]``. With no graph (``grads is None``: a first-order step, whose
    gradient is a constant) ``J = I``.
    """

    def __init__(self, inputs: Params, grads: Params | None,
                 update: LinearUpdate | None = None) -> None:
        if grads is not None and update is None:
            raise ValueError("a step Jacobian with a gradient graph needs the step's linear map")
        self.inputs, self.grads, self.update = inputs, grads, update

    def hvp(self, v: Params) -> Params:
        """``H v`` per task; the graph is kept for the next product."""
        assert self.grads is not None
        keys = list(self.inputs)
        hv = torch.autograd.grad([self.grads[k] for k in keys], [self.inputs[k] for k in keys],
                                 grad_outputs=[v[k] for k in keys], retain_graph=True,
                                 allow_unused=True)
        return {k: torch.zeros_like(v[k]) if h is None else h for k, h in zip(keys, hv)}

    def jvp(self, v: Params) -> Params:
        """``J v = v - P(H v)``."""
        if self.grads is None:
            return v
        assert self.update is not None
        step = self.update.precondition(self.hvp(v))
        return {k: v[k] - step[k] for k in v}

    def vjp(self, w: Params) -> Params:
        """``J^T w = w - H P^T(w)``."""
        if self.grads is None:
            return w
        assert self.update is not None
        hw = self.hvp(self.update.precondition_adjoint(w))
        return {k: w[k] - hw[k] for k in w}


class InnerOptimizer(Protocol):
    """One inner step for all tasks at once, possibly with per-task state."""

    def init(self, params: Params) -> InnerState:
        """The state before the first step, for per-task ``params`` ``[tasks, ...]``."""
        ...

    def step(self, params: Params, grads: Params, state: InnerState
             ) -> tuple[Params, InnerState]:
        """New per-task parameters and state; differentiable in all inputs and in
        :meth:`meta_parameters`."""
        ...

    def meta_parameters(self) -> list[nn.Parameter]:
        """What the outer loop learns with theta (none for a hand-set optimizer)."""
        ...

    def detached(self) -> InnerOptimizer:
        """The same optimizer with no graph to its meta-parameters (plain adaptation)."""
        ...

    def step_jacobian(self, inputs: Params, grads: Params) -> StepJacobian | None:
        """``d phi / d inputs`` of a step whose gradient ``grads`` carries its graph back to
        ``inputs``, as a matrix-free :class:`StepJacobian`; ``None`` where no cheap exact
        form exists (the TRPO metric then comes from autograd)."""
        ...

    def summary(self) -> dict[str, float]:
        """Diagnostics of the meta-parameters for the metrics log (``{}`` if none)."""
        ...


@runtime_checkable
class ScheduledStep(Protocol):
    """An optimizer with a hand-set step size, which an evaluation schedule may replace."""

    def with_lr(self, lr: float) -> InnerOptimizer: ...


class LinearUpdate(Protocol):
    """The SGD family's update ``P(g)``, linear in the gradient, and its transpose."""

    def precondition(self, grads: Params) -> Params: ...

    def precondition_adjoint(self, w: Params) -> Params: ...


def _scale(lr: Scale, key: str, x: torch.Tensor) -> torch.Tensor:
    return lr * x if isinstance(lr, float) else lr[key] * x


def _descend(update: LinearUpdate, params: Params, grads: Params) -> Params:
    step = update.precondition(grads)
    return {k: params[k] - step[k] for k in params}


@dataclass(frozen=True, eq=False)
class SGD:
    """``phi = theta - lr (.) g``: MAML's inner step (Finn et al. 2017, eq. 1); with ``lr``
    per-parameter tensors, Meta-SGD's step at given ``alpha`` (Li et al. 2017, eq. 2)."""

    lr: Scale

    def init(self, params: Params) -> InnerState:
        return {}

    def step(self, params: Params, grads: Params, state: InnerState
             ) -> tuple[Params, InnerState]:
        return _descend(self, params, grads), state

    def precondition(self, grads: Params) -> Params:
        return {k: _scale(self.lr, k, g) for k, g in grads.items()}

    def precondition_adjoint(self, w: Params) -> Params:
        return self.precondition(w)  # a diagonal map is its own transpose

    def meta_parameters(self) -> list[nn.Parameter]:
        return []

    def detached(self) -> SGD:
        return self if isinstance(self.lr, float) else SGD(detach_params(self.lr))

    def step_jacobian(self, inputs: Params, grads: Params) -> StepJacobian:
        return StepJacobian(inputs, grads, self.detached())

    def summary(self) -> dict[str, float]:
        return {}

    def with_lr(self, lr: float) -> SGD:
        return SGD(float(lr))


@dataclass(frozen=True, eq=False)
class PreconditionedSGD:
    """``phi = theta - lr (.) T(g)`` for a linear map ``T = transform(weights, .)``
    (Park & Oliva 2019, §3, with Meta-SGD's ``lr``); differentiable in ``lr`` and
    ``weights`` when they require grad."""

    lr: Scale
    transform: GradientMap
    weights: Params

    def init(self, params: Params) -> InnerState:
        return {}

    def step(self, params: Params, grads: Params, state: InnerState
             ) -> tuple[Params, InnerState]:
        return _descend(self, params, grads), state

    def precondition(self, grads: Params) -> Params:
        t = self.transform(self.weights, grads)
        return {k: _scale(self.lr, k, t[k]) for k in grads}

    def precondition_adjoint(self, w: Params) -> Params:
        """``T^T (lr (.) w)``, taken by autograd as the vector-Jacobian product of ``T`` at 0
        (exact: ``T`` is linear), so any linear map works without spelling out its transpose.
        The result carries no graph."""
        scaled = {k: _scale(self.lr, k, v) for k, v in w.items()}
        x = {k: torch.zeros_like(v, requires_grad=True) for k, v in w.items()}
        keys = list(w)
        with torch.enable_grad():
            t = self.transform(self.weights, x)
            out = torch.autograd.grad([t[k] for k in keys], [x[k] for k in keys],
                                      grad_outputs=[scaled[k] for k in keys], allow_unused=True)
        return {k: torch.zeros_like(w[k]) if g is None else g for k, g in zip(keys, out)}

    def meta_parameters(self) -> list[nn.Parameter]:
        return []

    def detached(self) -> PreconditionedSGD:
        lr = self.lr if isinstance(self.lr, float) else detach_params(self.lr)
        return PreconditionedSGD(lr, self.transform, detach_params(self.weights))

    def step_jacobian(self, inputs: Params, grads: Params) -> StepJacobian:
        return StepJacobian(inputs, grads, self.detached())

    def summary(self) -> dict[str, float]:
        return {}


class _LearnedStepSize(nn.Module):
    """Meta-learned step sizes ``alpha``, one per policy-parameter element, starting at
    ``init``; the step at the current ``alpha`` is the plain optimizer :meth:`current`
    returns (with its graph to ``alpha``), to which every method defers."""

    def __init__(self, params: Params, init: float) -> None:
        super().__init__()
        if not init > 0:
            raise ValueError(f"init (the initial step size) must be > 0, got {init}")
        self.names = list(params)
        self.alphas = nn.ParameterList(
            nn.Parameter(torch.full_like(p.detach(), float(init))) for p in params.values())

    def alpha(self) -> Params:
        """``{parameter name: alpha}``, with its graph."""
        return dict(zip(self.names, self.alphas))

    def current(self) -> SGD | PreconditionedSGD:
        raise NotImplementedError

    def init(self, params: Params) -> InnerState:
        return {}

    def step(self, params: Params, grads: Params, state: InnerState
             ) -> tuple[Params, InnerState]:
        return self.current().step(params, grads, state)

    def meta_parameters(self) -> list[nn.Parameter]:
        return list(self.parameters())

    def detached(self) -> SGD | PreconditionedSGD:
        return self.current().detached()

    def step_jacobian(self, inputs: Params, grads: Params) -> StepJacobian:
        """``J = I - P H`` with ``P`` at the current (detached) meta-parameters: the
        Jacobian in theta alone (the outer loop's metric covers ``alpha`` by autograd)."""
        return self.detached().step_jacobian(inputs, grads)

    def summary(self) -> dict[str, float]:
        """Mean, spread and range of ``alpha`` over all entries."""
        flat = torch.cat([a.detach().flatten() for a in self.alphas])
        return {"alpha_mean": float(flat.mean()), "alpha_std": float(flat.std()),
                "alpha_min": float(flat.min()), "alpha_max": float(flat.max())}


class MetaSGD(_LearnedStepSize):
    """Meta-SGD's inner step ``phi = theta - alpha (.) g`` with ``alpha`` (shaped like
    theta) meta-learned with theta, so the outer loop learns the direction and size of
    every parameter's inner step (Li et al. 2017, eq. 2); ``alpha`` may become negative."""

    def current(self) -> SGD:
        return SGD(self.alpha())


class KroneckerSGD(_LearnedStepSize):
    """Meta-Curvature's inner step ``phi = theta - alpha (.) T(g)``: a learned per-layer
    Kronecker-factored map ``T(G) = L G R`` (:class:`KroneckerGradientTransform`, identity
    at start: training starts exactly as :class:`MetaSGD`), then the learned ``alpha``
    (Park & Oliva 2019, §3). ``alpha``, ``L`` and ``R`` are all meta-parameters."""

    def __init__(self, params: Params, init: float) -> None:
        super().__init__(params, init)
        self.transform = KroneckerGradientTransform(params)

    def current(self) -> PreconditionedSGD:
        return PreconditionedSGD(self.alpha(), self.transform.functional,
                                 named_params(self.transform))

    def summary(self) -> dict[str, float]:
        """``alpha``'s statistics and the transform's distance from the identity."""
        return {**super().summary(), **self.transform.summary()}


def learned_sgd(params: Params, init: float,
                transform: GradientTransformName = "none") -> MetaSGD | KroneckerSGD:
    """Meta-SGD's learned inner optimizer for ``params``: :class:`MetaSGD`, or with
    ``transform = "kronecker"`` :class:`KroneckerSGD`; ``alpha`` starts at ``init``."""
    if transform not in GRADIENT_TRANSFORMS:
        raise ValueError(f"gradient_transform must be one of {list(GRADIENT_TRANSFORMS)}, "
                         f"got {transform!r}")
    return KroneckerSGD(params, init) if transform == "kronecker" else MetaSGD(params, init)


@dataclass(frozen=True)
class Adam:
    """Adam per task (Kingma & Ba 2015, Algorithm 1): with ``t`` the step count,

        m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2,
        phi = theta - lr m_hat / (sqrt(v_hat) + eps),   m_hat = m / (1 - b1^t),
                                                        v_hat = v / (1 - b2^t),

    with ``m``, ``v`` per task and parameter (the state) and ``t`` shared. Differentiable
    in theta and the gradient (``sqrt`` is taken of ``v_hat`` floored at the smallest
    normal float, so an exactly-zero gradient gives a zero, not an infinite, derivative).
    Nonlinear in the gradient: no cheap Jacobian.
    """

    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be in [0, 1), got {self.betas}")
        if not self.eps > 0:
            raise ValueError(f"eps must be > 0, got {self.eps}")

    def init(self, params: Params) -> InnerState:
        state = {"step": torch.zeros((), dtype=torch.long)}
        for k, p in params.items():
            state[f"m.{k}"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
            state[f"v.{k}"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
        return state

    def step(self, params: Params, grads: Params, state: InnerState
             ) -> tuple[Params, InnerState]:
        b1, b2 = self.betas
        t = int(state["step"]) + 1
        new: InnerState = {"step": torch.tensor(t)}
        out: Params = {}
        for k, g in grads.items():
            m = b1 * state[f"m.{k}"] + (1 - b1) * g
            v = b2 * state[f"v.{k}"] + (1 - b2) * g * g
            m_hat = m / (1 - b1 ** t)
            v_hat = v / (1 - b2 ** t)
            denom = v_hat.clamp_min(torch.finfo(v_hat.dtype).tiny).sqrt() + self.eps
            out[k] = params[k] - self.lr * m_hat / denom
            new[f"m.{k}"], new[f"v.{k}"] = m, v
        return out, new

    def meta_parameters(self) -> list[nn.Parameter]:
        return []

    def detached(self) -> Adam:
        return self

    def step_jacobian(self, inputs: Params, grads: Params) -> None:
        return None

    def summary(self) -> dict[str, float]:
        return {}

    def with_lr(self, lr: float) -> Adam:
        return replace(self, lr=float(lr))


@dataclass(frozen=True)
class RMSProp:
    """RMSProp per task (Tieleman & Hinton 2012; ``torch.optim.RMSprop``'s defaults):

        v <- alpha v + (1 - alpha) g^2,   phi = theta - lr g / (sqrt(v) + eps),

    ``v`` per task and parameter (the state). A hand-set baseline for learned optimizers
    (Optim4RL, Lan et al. 2024, compares against Adam and RMSProp). Nonlinear in the
    gradient: no cheap Jacobian.
    """

    lr: float
    alpha: float = 0.99
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.alpha < 1:
            raise ValueError(f"alpha must be in [0, 1), got {self.alpha}")
        if not self.eps > 0:
            raise ValueError(f"eps must be > 0, got {self.eps}")

    def init(self, params: Params) -> InnerState:
        return {f"v.{k}": torch.zeros_like(p, memory_format=torch.contiguous_format)
                for k, p in params.items()}

    def step(self, params: Params, grads: Params, state: InnerState
             ) -> tuple[Params, InnerState]:
        new: InnerState = {}
        out: Params = {}
        for k, g in grads.items():
            v = self.alpha * state[f"v.{k}"] + (1 - self.alpha) * g * g
            denom = v.clamp_min(torch.finfo(v.dtype).tiny).sqrt() + self.eps
            out[k] = params[k] - self.lr * g / denom
            new[f"v.{k}"] = v
        return out, new

    def meta_parameters(self) -> list[nn.Parameter]:
        return []

    def detached(self) -> RMSProp:
        return self

    def step_jacobian(self, inputs: Params, grads: Params) -> None:
        return None

    def summary(self) -> dict[str, float]:
        return {}

    def with_lr(self, lr: float) -> RMSProp:
        return replace(self, lr=float(lr))
