"""Reptile for reinforcement learning (Nichol, Achiam, Schulman 2018, Algorithm 2, batched).

    for each meta-iteration:
        sample a batch of training tasks T_1..T_n
        for each task (all at once, batched):                          (inner loop)
            phi_i <- theta; k times: sample episodes with pi_phi_i, update phi_i
        theta <- theta + eps * (1/n sum_i phi_i - theta)               (outer loop)

The outer step is the formula above (``outer_optimizer: sgd``, step size ``outer_lr``) or
Adam on the pseudo-gradient ``theta - mean_i phi_i`` (``outer_optimizer: adam``), as
Nichol et al. suggest (§3); Adam's per-parameter scaling makes the small mean
displacement of RL inner loops (the task-specific parts cancel) usable in few iterations.
The inner update is MAML's VPG step (``inner.rule: vpg``) or ``inner.epochs`` SGD steps
on PPO's clipped surrogate (``inner.rule: ppo``); no second-order terms and no query
episodes are needed. With ``k = 1`` the outer step is (up to the step size) the
multi-task policy gradient, i.e. *pretrained*; the meta-learning signal of Reptile comes
from ``k >= 2`` (Nichol et al., §5: the expected update contains the gradient of the
inner product of the gradients of successive minibatches). At evaluation the agent
adapts with the same inner rule and the evaluation's step sizes.
"""

from __future__ import annotations

from typing import Literal

import torch

from adaptrl.agents.contract import AdaptationUnit
from adaptrl.algorithms.common import (
    GRADIENT_FAMILY_BASELINES,
    AveragingConfig,
    AveragingLearner,
    averaging_step,
    return_metrics,
)
from adaptrl.algorithms.registry import register_algorithm
from adaptrl.models.functional import named_params
from adaptrl.tasks.base import Tasks


class ReptileConfig(AveragingConfig):
    """Reptile settings: per-task training (``inner``) and the outer step (``outer_*``)."""

    name: Literal["reptile"] = "reptile"


class Reptile(AveragingLearner):
    """Batched Reptile: per-task SGD from theta, then theta moves toward the mean phi."""

    def meta_update(self, tasks: Tasks) -> dict[str, float]:
        cfg = self.config
        theta = named_params(self.policy)
        episodes = self.inner.sample(tasks, theta, cfg.inner.steps, query=False)
        self.env_steps += episodes.num_steps
        uniform = torch.full((len(tasks),), 1.0 / len(tasks))
        info = averaging_step(self.optimizer, theta, episodes.params, uniform)
        return {**return_metrics(episodes), **info}


register_algorithm("reptile", ReptileConfig, Reptile,
                   "Reptile (Nichol et al. 2018): k per-task VPG/PPO steps, "
                   "theta += eps (mean phi - theta) or Adam on it",
                   unit=AdaptationUnit.GRADIENT_STEPS, baselines=GRADIENT_FAMILY_BASELINES)
