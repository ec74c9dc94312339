"""Policy-gradient surrogate losses and KL terms, per task.

Every function returns one value per task (shape ``[tasks]``), averaging over the live
steps of that task's episodes (``sum / count`` over time and episodes, as rllab's MAML code
does), so that per-task gradients can be taken in one batched backward pass.
"""

from __future__ import annotations

import torch
from torch.distributions import Categorical, Distribution, Independent, Normal, kl_divergence

from adaptrl.rollouts.returns import masked_mean
from adaptrl.rollouts.trajectories import Trajectories

_TASK_MEAN_DIMS = (0, 2)  # time and episode dims of [T, tasks, episodes]


def reinforce_loss(dist: Distribution, traj: Trajectories, adv: torch.Tensor) -> torch.Tensor:
    """Vanilla policy gradient (REINFORCE with a baseline): ``-E[log pi(a|s) * A]`` per task."""
    log_prob = dist.log_prob(traj.actions)
    return -masked_mean(log_prob * adv, traj.masks, _TASK_MEAN_DIMS)


def importance_loss(dist: Distribution, traj: Trajectories, adv: torch.Tensor) -> torch.Tensor:
    """The TRPO surrogate ``-E[pi(a|s) / pi_old(a|s) * A]`` per task (Schulman et al. 2015,
    eq. 14)."""
    ratio = torch.exp(dist.log_prob(traj.actions) - traj.log_probs)
    return -masked_mean(ratio * adv, traj.masks, _TASK_MEAN_DIMS)


def clipped_loss(dist: Distribution, traj: Trajectories, adv: torch.Tensor,
                 clip: float) -> torch.Tensor:
    """PPO's clipped surrogate per task (Schulman et al. 2017, eq. 7), as a loss to minimise."""
    ratio = torch.exp(dist.log_prob(traj.actions) - traj.log_probs)
    surr = torch.minimum(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
    return -masked_mean(surr, traj.masks, _TASK_MEAN_DIMS)


def mean_kl(old: Distribution, new: Distribution, masks: torch.Tensor) -> torch.Tensor:
    """``E_s[KL(old(.|s) || new(.|s))]`` over live states, per task."""
    return masked_mean(kl_divergence(old, new), masks, _TASK_MEAN_DIMS)


def entropy(dist: Distribution, masks: torch.Tensor) -> torch.Tensor:
    """Mean policy entropy over live states, per task."""
    return masked_mean(dist.entropy(), masks, _TASK_MEAN_DIMS)


def detached(dist: Distribution) -> Distribution:
    """``dist`` with its parameters cut from the graph: TRPO's ``pi_old`` from the same
    forward pass that builds the surrogate (no second evaluation of the policy)."""
    if isinstance(dist, Independent):
        return Independent(detached(dist.base_dist), dist.reinterpreted_batch_ndims,
                           validate_args=False)
    if isinstance(dist, Normal):
        return Normal(dist.loc.detach(), dist.scale.detach(), validate_args=False)
    if isinstance(dist, Categorical):
        return Categorical(logits=dist.logits.detach(), validate_args=False)
    raise TypeError(f"detached: unsupported distribution {type(dist).__name__}; allowed: "
                    "Normal, Categorical, Independent of those")
