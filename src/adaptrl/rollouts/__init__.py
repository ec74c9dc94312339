"""Rollouts: batched sampling, the trajectory container, returns / GAE and baselines."""

from adaptrl.rollouts.baselines import advantages, fit_linear_baseline, linear_features
from adaptrl.rollouts.returns import discounted_returns, gae, masked_mean, normalize
from adaptrl.rollouts.sampler import Policy, rollout, trajectory_distribution
from adaptrl.rollouts.trajectories import Trajectories

__all__ = ["Policy", "Trajectories", "advantages", "discounted_returns", "fit_linear_baseline",
           "gae", "linear_features", "masked_mean", "normalize", "rollout",
           "trajectory_distribution"]
