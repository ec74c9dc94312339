"""Inner objectives: the per-task loss an inner optimizer descends on support experience.

An objective splits its work in two: :meth:`InnerObjective.prepare` computes, once per
support batch, what is constant with respect to the adapted parameters (advantages from
the per-task linear baseline: MAML for RL, Finn et al. 2017, §3.2 and App. A.2), and
:meth:`InnerObjective.loss` evaluates the per-task losses ``L_Ti(params)`` ``[tasks]``,
differentiable in the parameters, on the same batch, as often as the inner optimizer
steps. Because the task losses are separable, one backward pass of their sum gives every
task's own gradient (:class:`adaptrl.adaptation.inner_update.InnerUpdate`).

Objectives here: REINFORCE with a baseline (MAML's inner loss) and PPO's clipped
surrogate (Schulman et al. 2017, eq. 7; Reptile's ``rule: ppo``). A TD loss or a model
likelihood takes the same two methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch

from adaptrl.models.functional import Params
from adaptrl.models.policies import MLPPolicy
from adaptrl.rollouts.baselines import advantages
from adaptrl.rollouts.losses import clipped_loss, reinforce_loss
from adaptrl.rollouts.sampler import trajectory_distribution
from adaptrl.rollouts.trajectories import Trajectories


class InnerObjective(Protocol):
    """A per-task inner loss of a functional model (``policy``, called with explicit,
    possibly per-task, parameters)."""

    @property
    def policy(self) -> MLPPolicy:
        """The model whose parameters the loss takes."""
        ...

    def prepare(self, traj: Trajectories) -> torch.Tensor:
        """What the loss needs that does not depend on the parameters, per step
        ``[T, tasks, episodes]`` like ``traj.rewards`` (e.g. advantages)."""
        ...

    def loss(self, params: Params, traj: Trajectories, data: torch.Tensor) -> torch.Tensor:
        """Per-task losses ``[tasks]`` of ``params`` on ``traj``, given ``prepare(traj)``."""
        ...


@dataclass(frozen=True)
class AdvantageEstimator:
    """GAE advantages over the per-task linear feature baseline, standardised per task
    (the MAML reference code's inner-loop advantages)."""

    gamma: float = 0.99
    gae_lambda: float = 1.0
    normalize: bool = True

    def __call__(self, traj: Trajectories) -> torch.Tensor:
        return advantages(traj, self.gamma, self.gae_lambda, self.normalize)


@dataclass(frozen=True)
class PolicyGradientObjective:
    """REINFORCE with a baseline, ``-E[log pi(a|s) A]`` per task: MAML's inner loss
    (Finn et al. 2017, eq. 4 with the linear baseline of App. A.2)."""

    policy: MLPPolicy
    estimator: AdvantageEstimator = field(default_factory=AdvantageEstimator)

    def prepare(self, traj: Trajectories) -> torch.Tensor:
        return self.estimator(traj)

    def loss(self, params: Params, traj: Trajectories, data: torch.Tensor) -> torch.Tensor:
        return reinforce_loss(trajectory_distribution(self.policy, traj, params), traj, data)


@dataclass(frozen=True)
class ClippedPolicyGradientObjective:
    """PPO's clipped surrogate per task (Schulman et al. 2017, eq. 7), the behaviour
    log-probabilities stored in the trajectories as the ratio's denominator.

    At the behaviour parameters its gradient is the policy gradient, so a first step equals
    the :class:`PolicyGradientObjective` step; later steps on the same batch (an
    :class:`~adaptrl.adaptation.inner_update.InnerUpdate` with ``epochs > 1``) are kept
    near the behaviour policy by the clip.
    """

    policy: MLPPolicy
    estimator: AdvantageEstimator = field(default_factory=AdvantageEstimator)
    clip: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.clip < 1:
            raise ValueError(f"clip must be in (0, 1), got {self.clip}")

    def prepare(self, traj: Trajectories) -> torch.Tensor:
        return self.estimator(traj)

    def loss(self, params: Params, traj: Trajectories, data: torch.Tensor) -> torch.Tensor:
        return clipped_loss(trajectory_distribution(self.policy, traj, params), traj, data,
                            self.clip)
