"""Online learning in env steps: the step-level contract of an agent that adapts while it
acts (unit ``env_steps``), and the one loop that drives it, :func:`play_online`.

An online learner (DQN, Mnih et al. 2015; a meta-learned DQN; MER) keeps its learning
state — parameters, replay, optimizer, clock — in a state object ``S`` it creates with
``begin(env)`` and updates every step through ``act`` and ``observe``, the same
``act`` / ``observe`` pair as :class:`~adaptrl.rollouts.trial_sampler.TrialActor` and the
same :class:`~adaptrl.rollouts.trial_sampler.Step`. ``evaluation_actor(state)`` is the
agent as it stands, acting without exploration and without learning: what the protocol
scores between two units (:func:`adaptrl.evaluation.protocol.online_curve`).

The built-in envs reset all slots together and never autoreset (:mod:`adaptrl.tasks.base`),
so :func:`play_online` runs episodes back to back: it resets the env when every slot's
episode has ended (or the horizon is reached), and a slot that ended early waits, frozen
and masked (``alive = False``: its steps are neither learned from nor counted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch

from adaptrl.rollouts.trial_sampler import Step, TrialActor
from adaptrl.tasks.base import BatchedEnv

S = TypeVar("S")


@runtime_checkable
class OnlineLearner(Protocol[S]):
    """The step-level contract of an agent whose adaptation unit is ``env_steps``.

    :func:`play_online` drives it: ``begin`` makes a fresh learning state for the tasks of
    ``env`` (every task learns on its own), then per step ``act`` and ``observe``; the
    state carries over from one call of :func:`play_online` to the next.
    """

    def begin(self, env: BatchedEnv) -> S:
        """A fresh learning state for every task of ``env`` (and its slots)."""
        ...

    def act(self, obs: torch.Tensor, state: S, generator: torch.Generator
            ) -> tuple[torch.Tensor, S]:
        """One (exploring) action per slot ``[tasks, slots]``."""
        ...

    def observe(self, step: Step, state: S) -> S:
        """Learn from one step (its ``alive`` slots only)."""
        ...

    def evaluation_actor(self, state: S) -> TrialActor[Any]:
        """The agent as ``state`` holds it, acting without exploration or learning."""
        ...


@dataclass(frozen=True)
class EpisodeLog:
    """The episodes an online run finished, one entry each, in order of their end.

    ``task`` / ``slot`` (long): where it was played; ``returns``: its undiscounted return;
    ``end_step`` (long): the slot's count of live env steps (in this run) at its last step.
    An episode the run's budget cut short is not logged.
    """

    task: torch.Tensor
    slot: torch.Tensor
    returns: torch.Tensor
    end_step: torch.Tensor

    def of_task(self, task: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(end_step, returns)`` of the episodes of ``task``, in order."""
        keep = self.task == task
        return self.end_step[keep], self.returns[keep]


@dataclass(frozen=True)
class OnlineRun:
    """What :func:`play_online` returns: the learner's state after the run, the finished
    episodes and the live steps taken per slot ``[tasks, slots]``."""

    state: Any
    episodes: EpisodeLog
    steps: torch.Tensor


OnlineHook = Callable[[int, Step, Any], None]
"""``hook(t, step, state_after_act)``: called by :func:`play_online` at every step it runs
(``t`` counts the run's steps of the env, live or not)."""


def play_online(env: BatchedEnv, agent: OnlineLearner[Any], env_steps: int,
                generator: torch.Generator, hook: OnlineHook | None = None,
                state: Any = None) -> OnlineRun:
    """Let ``agent`` act and learn in every slot of ``env`` until each slot has taken
    ``env_steps`` live steps; continue from ``state`` (default: ``agent.begin(env)``).

    Episodes run back to back: the env is reset (from ``generator``, like the agent's
    exploration) when no slot is live any more or at the horizon. A slot whose episode has
    ended waits for the others, and a slot that has used its budget waits for the rest of
    the run; those steps carry ``alive = False``. A slot's last budgeted step is reported
    with ``truncated`` set when its episode is still running: the run cuts the episode
    there (a learner bootstraps through it), and the next run starts with a reset.
    Gradient steps happen inside ``observe``, so this loop is not under ``no_grad``.
    """
    if env_steps < 0:
        raise ValueError(f"env_steps must be >= 0, got {env_steps}")
    n, m, dev = env.num_tasks, env.episodes_per_task, env.device
    if state is None:
        state = agent.begin(env)
    taken = torch.zeros(n, m, dtype=torch.long, device=dev)
    ret = torch.zeros(n, m, device=dev)
    logged: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    t = 0
    while bool((taken < env_steps).any()):
        obs = env.reset(generator)
        alive = taken < env_steps
        ret.zero_()
        for _ in range(env.horizon):
            act, state = agent.act(obs, state, generator)
            res = env.step(act)
            taken += alive.long()
            ended = res.terminated | res.truncated
            cut = alive & ~ended & (taken >= env_steps)
            step = Step(obs, act, res.reward, res.terminated, res.truncated | cut,
                        res.observation, alive)
            if hook is not None:
                hook(t, step, state)
            state = agent.observe(step, state)
            t += 1
            ret += res.reward * alive
            finished = alive & ended
            if bool(finished.any()):
                where = finished.nonzero(as_tuple=True)
                logged.append((torch.stack(where), ret[where], taken[where]))
            alive = alive & ~ended & (taken < env_steps)
            obs = res.observation
            if not bool(alive.any()):
                break
    return OnlineRun(state, _episode_log(logged, dev), taken)


def _episode_log(logged: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                 device: torch.device) -> EpisodeLog:
    if not logged:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return EpisodeLog(empty, empty, torch.zeros(0, device=device), empty)
    where = torch.cat([w for w, _, _ in logged], dim=1)
    return EpisodeLog(where[0], where[1], torch.cat([r for _, r, _ in logged]),
                      torch.cat([s for _, _, s in logged]))
