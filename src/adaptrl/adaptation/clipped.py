"""A PPO-style inner update: several SGD steps per task on the clipped surrogate.

Where the VPG inner update (:class:`PolicyGradientAdapter`) takes one step on a support
batch, this one takes ``epochs`` plain-SGD steps on PPO's clipped surrogate (Schulman et
al. 2017, eq. 7) of the *same* batch, with the behaviour log-probabilities stored in the
trajectories as the ratio's denominator. The first step equals the VPG step (at the
behaviour parameters the clipped surrogate's gradient is the policy gradient); the later
ones reuse the batch, kept near the behaviour policy by the clip. All tasks step at once
(per-task parameters, one batched backward per epoch). Used as Reptile's ``rule: ppo``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

import torch

from adaptrl.adaptation.policy_gradient import PolicyGradientAdapter
from adaptrl.adaptation.sgd import StepSize, sgd_step
from adaptrl.models.functional import Params, is_batched
from adaptrl.rollouts.losses import clipped_loss
from adaptrl.rollouts.sampler import trajectory_distribution
from adaptrl.rollouts.trajectories import Trajectories


@dataclass
class ClippedPolicyGradientAdapter(PolicyGradientAdapter):
    """``epochs`` SGD steps on the per-task clipped surrogate; advantages as VPG's."""

    clip: float = 0.2
    epochs: int = 4

    def __post_init__(self) -> None:
        if not 0 < self.clip < 1:
            raise ValueError(f"clip must be in (0, 1), got {self.clip}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")

    def loss(self, params: Params, traj: Trajectories, adv: torch.Tensor) -> torch.Tensor:
        """Per-task clipped-surrogate loss of ``params`` on ``traj``."""
        return clipped_loss(trajectory_distribution(self.policy, traj, params), traj, adv,
                            self.clip)

    def step(self, params: Params, traj: Trajectories, adv: torch.Tensor, lr: StepSize, *,
             first_order: bool, create_graph: bool = True) -> Params:
        """``epochs`` inner SGD steps for every task in ``traj``; returns per-task parameters."""
        for _ in range(self.epochs):
            batched = is_batched(params, self.policy)
            params = sgd_step(params, lambda p: self.loss(p, traj, adv), lr, traj.num_tasks,
                              batched=batched, first_order=first_order,
                              create_graph=create_graph)
        return params

    def step_with_jacobian(self, *args: object, **kwargs: object) -> NoReturn:
        """Not available: the clipped epochs are meant for first-order learners (Reptile)."""
        raise NotImplementedError("ClippedPolicyGradientAdapter has no step Jacobian; use it "
                                  "with first-order learners (reptile, aggregation)")
