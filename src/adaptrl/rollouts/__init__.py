"""Rollouts: batched sampling, the trajectory container, returns / GAE and baselines."""

from adaptrl.rollouts.baselines import advantages, fit_linear_baseline, linear_features
from adaptrl.rollouts.returns import (
                                      discounted_returns,
                                      gae,
                                      is_prefix_mask,
                                      masked_mean,
                                      normalize,
                                      reverse_discounted_sum,
)
from adaptrl.rollouts.sampler import Policy, act, rollout, trajectory_distribution
from adaptrl.rollouts.trajectories import Trajectories

__all__ = ["Policy", "Trajectories", "act", "advantages", "discounted_returns",
           "fit_linear_baseline", "gae", "is_prefix_mask", "linear_features", "masked_mean",
           "normalize", "reverse_discounted_sum", "rollout", "trajectory_distribution"]
