"""One VPG inner step at a step size given per call (MAML's inner step, Finn et al. 2017,
eq. 1): a convenience for callers outside the meta-learners, e.g. checking that packing
live steps leaves the step unchanged. Meta-learners compose an
:class:`~adaptrl.adaptation.inner_update.InnerUpdate` instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from adaptrl.adaptation.inner_optimizers import SGD, Scale
from adaptrl.adaptation.inner_update import InnerUpdate
from adaptrl.adaptation.objectives import AdvantageEstimator, PolicyGradientObjective
from adaptrl.models.functional import Params
from adaptrl.models.policies import MLPPolicy
from adaptrl.rollouts.trajectories import Trajectories


@dataclass
class PolicyGradientAdapter:
    """REINFORCE with the per-task linear baseline, one SGD step of size ``lr``."""

    policy: MLPPolicy
    gamma: float = 0.99
    gae_lambda: float = 1.0
    normalize_advantages: bool = True

    @property
    def objective(self) -> PolicyGradientObjective:
        return PolicyGradientObjective(
            self.policy, AdvantageEstimator(self.gamma, self.gae_lambda,
                                            self.normalize_advantages))

    def advantages(self, traj: Trajectories) -> torch.Tensor:
        """Support-set advantages (constant w.r.t. the policy parameters)."""
        return self.objective.prepare(traj)

    def step(self, params: Params, traj: Trajectories, adv: torch.Tensor, lr: Scale, *,
             first_order: bool, create_graph: bool = True) -> Params:
        """One inner VPG step for every task in ``traj``; returns per-task parameters."""
        update = InnerUpdate(self.objective, SGD(lr))
        return update.step(params, traj, adv, {}, first_order=first_order,
                           create_graph=create_graph)[0]
