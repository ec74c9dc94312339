"""Meta-SGD for reinforcement learning (Li, Zhou, Chen, Li 2017, §3.2 and Algorithm 2).

    phi_i = theta - alpha (.) grad L_Ti(theta; D_i)                     eq. 2
    (theta, alpha) <- outer step on sum_i L_Ti(phi_i(theta, alpha); D'_i)

MAML with the inner step size turned into a meta-parameter ``alpha`` of the same shape
as theta (one step size per weight), so the outer loop learns the direction and size of
every parameter's inner step along with the initialisation. It is a composition, not a
variant: MAML's learner with the inner optimizer
:class:`adaptrl.adaptation.inner_optimizers.MetaSGD` (or ``KroneckerSGD``) in place of
SGD. Everything else is MAML's:
the sampling of support and query episodes, the inner VPG step, the TRPO (or PPO) outer
step, which here updates theta and alpha together. TRPO's trust region covers alpha too:
its metric is the Hessian of the KL through the inner step with respect to (theta,
alpha), taken by autograd (MAML's cheaper pulled-back ``J^T F J`` covers theta only) on
the same ``trpo.fisher_fraction`` of the episodes as MAML's metric.

Choices (documented in docs/gradient_family.md):

* ``alpha`` starts at ``alpha_init`` everywhere (default ``inner.lr``): Meta-SGD starts as
  MAML, and the paper's random init U[0.005, 0.1] is one config value away.
* At meta-test the learned ``alpha`` is the step size of *every* adaptation step; the
  evaluation's ``step_sizes`` schedule does not apply (the step size is part of what was
  learned; it was only ever trained for the first step).
* ``inner.first_order`` drops the second-order terms in theta; alpha still gets its exact
  gradient ``-grad L_Ti(theta) (.) dL'/dphi``.
* ``gradient_transform: kronecker`` learns, besides alpha, a linear map ``T`` of the inner
  gradient, ``phi_i = theta - alpha (.) T(grad L_Ti(theta))``: eq. 2's diagonal
  preconditioner ``alpha`` generalised to a per-layer Kronecker-factored matrix
  (Meta-Curvature, Park & Oliva 2019): ``T(G) = L G R`` per weight matrix, so the inner
  step can mix the gradients of a layer's weights (a learned preconditioner). ``T``
  starts at the identity, i.e. as plain Meta-SGD, and is updated by the same outer step
  (TRPO's autograd metric and PPO's Adam cover it, as they cover alpha).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator

from adaptrl.adaptation.inner_optimizers import learned_sgd
from adaptrl.adaptation.kronecker import GradientTransformName
from adaptrl.agents.contract import AdaptationUnit
from adaptrl.algorithms.common import GRADIENT_FAMILY_BASELINES
from adaptrl.algorithms.maml import MAML, MAMLConfig
from adaptrl.algorithms.registry import register_algorithm
from adaptrl.tasks.base import TaskFamily


class MetaSGDConfig(MAMLConfig):
    """Meta-SGD settings: MAML's, plus the initial value of the learned step sizes and an
    optional learned transform of the inner gradient."""

    name: Literal["metasgd"] = "metasgd"  # type: ignore[assignment]
    alpha_init: float | None = Field(
        None, gt=0, description="initial value of every learned step size (default: inner.lr)")
    gradient_transform: GradientTransformName = Field(
        "none", description="learned linear map of the inner gradient before alpha: none "
                            "(plain Meta-SGD) or kronecker (per layer T(G) = L G R, L and R "
                            "learned, identity at start; Meta-Curvature, Park & Oliva 2019)")

    @model_validator(mode="after")
    def _inner_optimizer_is_learned(self) -> MetaSGDConfig:
        if self.inner.optimizer != "sgd":
            raise ValueError("metasgd learns its inner optimizer (alpha, and a transform if "
                             f"asked for): inner.optimizer must be sgd, got "
                             f"{self.inner.optimizer!r}")
        return self


def build_metasgd(family: TaskFamily, config: MetaSGDConfig, generator: torch.Generator,
                  device: torch.device) -> MAML:
    """MAML whose inner optimizer is a learned per-parameter ``alpha`` (after a learned
    Kronecker transform of the gradient with ``gradient_transform: kronecker``)."""
    init = config.alpha_init if config.alpha_init is not None else config.inner.lr
    return MAML(family, config, generator, device,
                inner_optimizer=lambda params: learned_sgd(params, init,
                                                           config.gradient_transform))


register_algorithm("metasgd", MetaSGDConfig, build_metasgd,
                   "Meta-SGD (Li et al. 2017): MAML with learned per-parameter inner step "
                   "sizes, TRPO/PPO outer loop", unit=AdaptationUnit.GRADIENT_STEPS,
                   baselines=GRADIENT_FAMILY_BASELINES)
