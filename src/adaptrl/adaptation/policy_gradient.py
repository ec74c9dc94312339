"""The policy-gradient inner loop of MAML for RL (Finn et al. 2017, §3.2 and App. A.2).

Adaptation on a task = K steps of vanilla policy gradient (REINFORCE with the per-task
linear feature baseline) from the meta-parameters, each step on fresh support episodes
sampled with the current adapted parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from adaptrl.adaptation.sgd import StepJacobian, StepSize, sgd_step_with_jacobian
from adaptrl.models.functional import Params, is_batched
from adaptrl.rollouts.baselines import advantages
from adaptrl.rollouts.losses import reinforce_loss
from adaptrl.rollouts.sampler import trajectory_distribution
from adaptrl.rollouts.trajectories import Trajectories


@dataclass
class PolicyGradientAdapter:
    """Differentiable VPG inner update for a functional policy."""

    policy: nn.Module
    gamma: float = 0.99
    gae_lambda: float = 1.0
    normalize_advantages: bool = True

    def advantages(self, traj: Trajectories) -> torch.Tensor:
        """Support-set advantages (constant w.r.t. the policy parameters)."""
        return advantages(traj, self.gamma, self.gae_lambda, self.normalize_advantages)

    def loss(self, params: Params, traj: Trajectories, adv: torch.Tensor) -> torch.Tensor:
        """Per-task REINFORCE loss of ``params`` on ``traj``."""
        return reinforce_loss(trajectory_distribution(self.policy, traj, params), traj, adv)

    def step(self, params: Params, traj: Trajectories, adv: torch.Tensor, lr: StepSize, *,
             first_order: bool, create_graph: bool = True) -> Params:
        """One inner VPG step for every task in ``traj``; returns per-task parameters."""
        return self.step_with_jacobian(params, traj, adv, lr, first_order=first_order,
                                       create_graph=create_graph)[0]

    def step_with_jacobian(self, params: Params, traj: Trajectories, adv: torch.Tensor,
                           lr: StepSize, *, first_order: bool, create_graph: bool = True
                           ) -> tuple[Params, StepJacobian]:
        """:meth:`step`, also returning ``d phi / d params`` (see :class:`StepJacobian`)."""
        batched = is_batched(params, self.policy)
        return sgd_step_with_jacobian(params, lambda p: self.loss(p, traj, adv), lr,
                                      traj.num_tasks, batched=batched,
                                      first_order=first_order, create_graph=create_graph)
