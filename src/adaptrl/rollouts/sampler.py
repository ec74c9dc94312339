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
    """What the sampler needs of a policy.

    A policy may also offer ``act(obs, params, generator, deterministic) -> (action,
    log_prob)`` that samples without building a distribution object (the built-in
    policies do); :func:`act` falls back on ``distribution`` + ``sample`` otherwise.
    """

    def distribution(self, obs: torch.Tensor, params: Params | None = None,
                     task_dim: int = 0) -> Distribution: ...

    @staticmethod
    def sample(dist: Distribution, generator: torch.Generator) -> torch.Tensor: ...


def act(policy: Policy, obs: torch.Tensor, params: Params | None, generator: torch.Generator,
        deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One action per slot and its log-probability under ``policy``."""
    fast = getattr(policy, "act", None)
    if fast is not None:
        return fast(obs, params, generator, deterministic)
    dist = policy.distribution(obs, params)
    if deterministic:
        probs = getattr(dist, "probs", None)
        action = dist.mean if probs is None else probs.argmax(-1)
    else:
        action = policy.sample(dist, generator)
    return action, dist.log_prob(action)


@torch.no_grad()
def rollout(env: BatchedEnv, policy: Policy, params: Params | None,
            generator: torch.Generator, deterministic: bool = False) -> Trajectories:
    """Sample one episode in every ``[task, episode]`` slot of ``env``.

    ``params`` may be shared or carry a leading task dimension (adapted parameters).
    Stops early once every episode has ended; the result is padded to the horizon with
    ``masks = 0`` so that shapes are fixed. Per step: one policy call and one env step for
    all slots, written into buffers preallocated for the whole horizon.
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
        action, log_prob = act(policy, obs, params, generator, deterministic)
        if actions is None:
            actions = torch.zeros(H, *action.shape, device=dev, dtype=action.dtype)
        observations[t] = obs
        actions[t] = action
        log_probs[t] = log_prob
        masks[t] = alive
        res = env.step(action)
        rewards[t] = res.reward
        torch.logical_and(res.terminated, alive, out=terminated[t])
        alive = alive & ~(res.terminated | res.truncated)
        obs = res.observation
        if not bool(alive.any()):
            break
    assert actions is not None
    return Trajectories(observations, actions, rewards.mul_(masks), masks, terminated,
                        log_probs.mul_(masks))


def trajectory_distribution(policy: Policy, traj: Trajectories,
                            params: Params | None) -> Distribution:
    """The policy's action distribution at every step of ``traj`` (time-major, tasks at dim 1)."""
    return policy.distribution(traj.observations, params, task_dim=1)
