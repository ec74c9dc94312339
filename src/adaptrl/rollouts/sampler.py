"""Batched sampling: run a policy in a :class:`BatchedEnv` for one episode per slot.

The hot path is one policy call and one env step per time step for *all* tasks x
episodes at once; buffers are preallocated; nothing loops over tasks in Python.

Episode ends: the env never autoresets and freezes an ended slot
(:mod:`adaptrl.tasks.base`); the sampler masks the frozen steps out and, after the loop,
records every episode's end (``truncated`` apart from ``terminated``) and the
observation after every step, so that an episode's true final observation is kept for
bootstrapping and replay (:func:`~adaptrl.rollouts.trajectories.episode_ends`). This
costs nothing per step and changes neither the other fields nor the random stream.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal, Protocol, get_args, runtime_checkable

import torch
from torch.distributions import Distribution

from adaptrl.models.functional import Params
from adaptrl.rollouts.trajectories import Trajectories, episode_ends
from adaptrl.tasks.base import BatchedEnv, TaskFamily, Tasks

BatchUnit = Literal["episodes", "steps", "finished_steps"]
"""How a batch of ``E`` episodes per task is counted: ``episodes`` = exactly ``E`` episodes;
``steps`` = whole episodes, in order, until the task has ``E x horizon`` steps (rllab's
``batch_size``, which counts steps: the MAML reference code's sampling);
``finished_steps`` = ``E`` workers per task run episodes back to back, and sampling stops at
the first time step at which the episodes they have *finished* hold ``E x horizon`` steps;
the episodes still running then are dropped (rllab's ``VectorizedSampler``, which the MAML
reference code's meta-test used). Dropping the running episodes favours short ones: where
episodes can end early, the batch and its mean return lean towards the quick episodes."""


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


@runtime_checkable
class EpisodeSource(Protocol):
    """A family that samples its episodes elsewhere: :class:`BatchSampler` hands it every
    batch instead of stepping ``family.make_env(...)`` here (the Ray backend,
    :class:`adaptrl.rollouts.ray_sampler.RaySampling`). The result must equal
    :func:`rollout` on ``family.make_env(tasks, episodes, device)`` from ``generator``,
    which it must leave as :func:`rollout` would."""

    def sample_episodes(self, tasks: Tasks, episodes: int, policy: Policy,
                        params: Params | None, generator: torch.Generator,
                        device: torch.device | str) -> Trajectories: ...


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
            generator: torch.Generator, deterministic: bool = False,
            stop_when_ended: bool = True) -> Trajectories:
    """Sample one episode in every ``[task, episode]`` slot of ``env``.

    ``params`` may be shared or carry a leading task dimension (adapted parameters).
    Stops early once every episode has ended; the result is padded to the horizon with
    ``masks = 0`` so that shapes are fixed. Per step: one policy call and one env step for
    all slots, written into buffers preallocated for the whole horizon. ``truncated`` and
    ``next_observations`` (with every episode's true final observation) are filled after
    the loop; an episode still running at the horizon counts as truncated.
    ``stop_when_ended = False`` runs all ``H`` steps (a Ray worker sampling part of a batch
    does, :mod:`adaptrl.rollouts.ray_sampler`).
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
    t = 0
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
        if stop_when_ended and not bool(alive.any()):
            break
    assert actions is not None
    truncated, next_observations = episode_ends(observations, masks, terminated,
                                                obs.unsqueeze(0), [t + 1])
    return Trajectories(observations, actions, rewards.mul_(masks), masks, terminated,
                        log_probs.mul_(masks), truncated, next_observations)


def trajectory_distribution(policy: Policy, traj: Trajectories,
                            params: Params | None) -> Distribution:
    """The policy's action distribution at every step of ``traj`` (time-major, tasks at dim 1)."""
    return policy.distribution(traj.observations, params, task_dim=1)


class BatchSampler:
    """Samples one batch of whole episodes per task for a fixed set of tasks.

    ``unit = "episodes"``: ``episodes`` episodes per task, one :func:`rollout`.
    ``unit = "steps"``: episodes are taken in order until a task's batch holds
    ``episodes x horizon`` steps (an episode is kept if the task had fewer steps before it),
    as rllab's samplers do (Finn et al. 2017's reference code: ``batch_size`` = 20 or 40
    trajectories x 100 steps). A policy whose episodes end early (navigation: the goal is
    reached) then learns from more episodes. The first ``episodes`` slots are sampled as
    with ``"episodes"``; more are sampled in chunks while any task is short; the batch is
    padded to the largest count over tasks with fully masked episodes (see
    :meth:`Trajectories.episode_mask`).
    """

    def __init__(self, family: TaskFamily, tasks: Tasks, episodes: int,
                 device: torch.device | str = "cpu", unit: BatchUnit = "episodes") -> None:
        if unit not in get_args(BatchUnit):
            raise ValueError(f"batch unit must be one of {list(get_args(BatchUnit))}, "
                             f"got {unit!r}")
        self.family, self.tasks, self.episodes, self.device, self.unit = (
            family, tasks, episodes, device, unit)
        # a family that samples elsewhere (EpisodeSource) gets every batch; none is stepped here
        self.source = family if isinstance(family, EpisodeSource) else None
        self.env = family.make_env(tasks, episodes, device) if self.source is None else None

    @property
    def step_budget(self) -> int:
        """Steps per task of a ``"steps"`` batch."""
        return self.episodes * self.horizon

    @property
    def horizon(self) -> int:
        return self.family.horizon if self.env is None else self.env.horizon

    def _rollout(self, episodes: int, policy: Policy, params: Params | None,
                 generator: torch.Generator, first: bool = False) -> Trajectories:
        """One episode in each of ``episodes`` slots per task: :func:`rollout` here (the
        ``first`` batch in ``self.env``, more in new envs), or the family's
        :class:`EpisodeSource`."""
        if self.source is not None:
            return self.source.sample_episodes(self.tasks, episodes, policy, params, generator,
                                               self.device)
        env = self.env if first and self.env is not None else \
            self.family.make_env(self.tasks, episodes, self.device)
        return rollout(env, policy, params, generator)

    def sample(self, policy: Policy, params: Params | None, generator: torch.Generator
               ) -> Trajectories:
        traj = self._rollout(self.episodes, policy, params, generator, first=True)
        if self.unit == "episodes":
            return traj
        if self.unit == "finished_steps":
            return self._finished_steps(traj, policy, params, generator)
        budget = self.step_budget
        parts = [traj]
        steps = traj.masks.sum((0, 2))  # [tasks]
        count = traj.episodes_per_task
        while bool((steps < budget).any()):
            # enough episodes for the shortest task at its mean length so far, plus a margin
            short = (budget - steps).clamp_min(0) / (steps / count)
            extra = min(int(short.max().ceil().item()) + 2, budget)
            more = self._rollout(extra, policy, params, generator)
            parts.append(more)
            steps = steps + more.masks.sum((0, 2))
            count += extra
        return keep_until(cat_episodes(parts), budget)

    def _finished_steps(self, traj: Trajectories, policy: Policy, params: Params | None,
                        generator: torch.Generator) -> Trajectories:
        """The ``"finished_steps"`` batch, starting from ``traj`` (every worker's first episode).

        Episodes of a fixed policy are independent, so rather than stepping workers with
        resets, whole rounds of one more episode per worker are sampled until every task's
        stop time is known (:func:`finished_by_stop`); column ``c`` is worker ``c % E``'s
        ``(c // E)``-th episode.
        """
        workers, budget, horizon = self.episodes, self.step_budget, self.horizon
        parts, lengths = [traj], traj.masks.sum(0)
        while (keep := finished_by_stop(lengths, workers, budget)) is None:
            mean = lengths.mean(-1)
            # the stop comes near budget / workers + one episode: rounds for the slowest task
            short = (budget / workers + mean - covered_time(lengths, workers)) / mean
            rounds = min(max(int(short.ceil().max().item()), 1), horizon)
            more = self._rollout(rounds * workers, policy, params, generator)
            parts.append(more)
            lengths = torch.cat([lengths, more.masks.sum(0)], dim=-1)
        return keep_episodes(cat_episodes(parts), keep)


def cat_episodes(parts: list[Trajectories]) -> Trajectories:
    """Batches of the same tasks and horizon side by side, along the episode dimension."""
    return Trajectories.cat_episodes(parts)


def keep_until(traj: Trajectories, budget: int) -> Trajectories:
    """Per task, the episodes (in order) that start before ``budget`` steps were taken."""
    lengths = traj.masks.sum(0)  # [tasks, episodes]
    return keep_episodes(traj, lengths.cumsum(-1) - lengths < budget)


def covered_time(lengths: torch.Tensor, workers: int) -> torch.Tensor:
    """``[tasks]``: the time up to which every worker's episodes are sampled (the least
    total length over the workers; ``lengths`` laid out as in :func:`finished_by_stop`)."""
    return lengths.view(len(lengths), -1, workers).sum(1).min(-1).values


def finished_by_stop(lengths: torch.Tensor, workers: int, budget: int) -> torch.Tensor | None:
    """Which episodes a ``"finished_steps"`` batch keeps, or ``None`` if not yet known.

    ``lengths [tasks, rounds x workers]``: column ``c`` is worker ``c % workers``'s
    ``(c // workers)``-th episode, run back to back, so it ends at time ``ends`` = the
    worker's cumulative length. The stop time of a task is the first time at which the
    episodes ended by then hold ``budget`` steps; the kept episodes are those ended by the
    stop (rllab's ``VectorizedSampler`` checks after every step of all workers, so episodes
    ending at the stop step are all kept). The stop is known once it falls within the time
    every worker's sampled episodes cover.
    """
    n, count = lengths.shape
    ends = lengths.view(n, count // workers, workers).cumsum(1).view(n, count)
    covered = covered_time(lengths, workers)  # all episodes ending by then are sampled
    if bool(((lengths * (ends <= covered[:, None])).sum(-1) < budget).any()):
        return None
    order = ends.argsort(dim=-1, stable=True)
    finished = lengths.gather(-1, order).cumsum(-1)
    first = (finished >= budget).to(torch.int8).argmax(-1, keepdim=True)
    stop = ends.gather(-1, order).gather(-1, first)
    return ends <= stop


def keep_episodes(traj: Trajectories, keep: torch.Tensor) -> Trajectories:
    """Per task, the episodes where ``keep [tasks, episodes]`` is true, moved to the front
    in their order; the result is as wide as the most kept by a task, and the episodes
    beyond a task's own count are masked out (padding that no loss or score counts)."""
    count = keep.sum(-1, keepdim=True)
    width = int(count.max().item())
    if bool((keep[:, 1:] <= keep[:, :-1]).all()):  # a prefix for every task: no gather
        traj = traj.select_episodes(slice(0, width))
    else:
        order = (~keep).to(torch.uint8).argsort(dim=-1, stable=True)[:, :width]
        traj = traj.take_episodes(order)
    kept = torch.arange(width, device=keep.device) < count
    m = kept.to(traj.masks.dtype)
    truncated = None if traj.truncated is None else traj.truncated & kept
    return replace(traj, rewards=traj.rewards * m, masks=traj.masks * m,
                   terminated=traj.terminated & kept, log_probs=traj.log_probs * m,
                   truncated=truncated)
