"""Batched sampling: run a policy in a :class:`BatchedEnv` for one episode per slot.

The hot path is one policy call and one env step per time step for *all* tasks x
episodes at once; buffers are preallocated; nothing loops over tasks in Python.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch.distributions import Distribution

from adaptrl.models.functional import Params
from adaptrl.rollouts.trajectories import Trajectories
from adaptrl.tasks.base import BatchedEnv


class Policy(Protocol):
    def distribution(self, obs: torch.Tensor, params: Params | None = None,
                     task_dim: int = 0) -> Distribution: ...

    @staticmethod
    def sample(dist: Distribution, generator: torch.Generator) -> torch.Tensor: ...


@torch.no_grad()
def rollout(env: BatchedEnv, policy: Policy, params: Params | None,
            generator: torch.Generator, deterministic: bool = False) -> Trajectories:
    """Sample one episode in every ``[task, episode]`` slot of ``env``.

    ``params`` may be shared or carry a leading task dimension (adapted parameters).
    Stops early once every episode has ended; the result is padded to the horizon with
    ``masks = 0`` so that shapes are fixed.
    """
    obs = env.reset(generator)
    H = env.horizon
    n, e = obs.shape[:2]
    dev = obs.device
    observations = torch.zeros(H, *obs.shape, device=dev, dtype=obs.dtype)
    rewards = torch.zeros(H, n, e, device=dev)
    masks = torch.zeros(H, n, e, device=dev)
    terminated = torch.zeros(H, n, e, dtype=torch.bool, device=dev)
    log_probs = torch.zeros(H, n, e, device=dev)
    actions: torch.Tensor | None = None
    alive = torch.ones(n, e, dtype=torch.bool, device=dev)
    for t in range(H):
        dist = policy.distribution(obs, params)
        if deterministic:
            act = dist.mean if not hasattr(dist, "probs") else dist.probs.argmax(-1)  # type: ignore[attr-defined]
        else:
            act = policy.sample(dist, generator)
        if actions is None:
            actions = torch.zeros(H, *act.shape, device=dev, dtype=act.dtype)
        observations[t] = obs
        actions[t] = act
        log_probs[t] = dist.log_prob(act)
        masks[t] = alive
        res = env.step(act)
        rewards[t] = res.reward
        terminated[t] = res.terminated & alive
        alive = alive & ~(res.terminated | res.truncated)
        obs = res.observation
        if not bool(alive.any()):
            break
    assert actions is not None
    return Trajectories(observations, actions, rewards * masks, masks, terminated,
                        log_probs * masks)


def trajectory_distribution(policy: Policy, traj: Trajectories,
                            params: Params | None) -> Distribution:
    """The policy's action distribution at every step of ``traj`` (time-major, tasks at dim 1)."""
    return policy.distribution(traj.observations, params, task_dim=1)
