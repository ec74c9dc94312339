"""The meta-test protocol, one for every algorithm (DESIGN.md).

Held-out tasks from the ``test`` split, a fixed evaluation seed, K adaptation units and
the score after each unit: the mean episode return per task, summarised by its mean and
95% CI over tasks. For a gradient-based agent a unit is one inner gradient step (each on
``episodes`` fresh episodes sampled with the current adapted policy, which are also the
episodes scored: the MAML paper's meta-test); for a memory-based agent a unit is one
episode of the trial.
"""

from __future__ import annotations

from typing import Any

import torch

from adaptrl.agents.contract import AdaptationUnit, Agent
from adaptrl.algorithms.base import GradientAgent
from adaptrl.models.functional import expand_params
from adaptrl.rollouts.sampler import BatchSampler, BatchUnit
from adaptrl.rollouts.trial_sampler import TrialActor, play_trials, trial_episode_returns
from adaptrl.tasks.base import TaskFamily, Tasks


def gradient_curve(family: TaskFamily, agent: GradientAgent, tasks: Tasks, steps: int,
                   episodes: int, generator: torch.Generator, device: torch.device,
                   successes: list[torch.Tensor] | None = None,
                   batch_unit: BatchUnit = "episodes") -> tuple[torch.Tensor, list[Any]]:
    """Scores ``[steps+1, tasks]`` after 0..K gradient steps, and the episodes of each step.

    Every step samples ``episodes`` episodes per task, or with ``batch_unit = "steps"``
    whole episodes up to ``episodes x horizon`` steps (:class:`BatchSampler`).

    If the env reports task success (``env.last_success [tasks, episodes]``, e.g.
    Meta-World) and ``successes`` is a list, the success rate per task of every step is
    appended to it (over the first ``episodes`` episodes, which every batch holds).
    """
    sampler = BatchSampler(family, tasks, episodes, device, batch_unit)
    params = expand_params(agent.initial_params(), len(tasks))
    scores, trajs = [], []
    for k in range(steps + 1):
        traj = sampler.sample(agent.policy, params, generator)
        scores.append(traj.task_returns())
        trajs.append(traj)
        success = getattr(sampler.env, "last_success", None)
        if successes is not None and success is not None:
            successes.append(success.float().mean(-1).cpu())
        if k < steps:
            params = agent.adapt(params, traj, k)
    return torch.stack(scores), trajs


def trial_curve(family: TaskFamily, agent: TrialActor[Any], tasks: Tasks, steps: int,
                trials: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Scores ``[steps+1, tasks]`` of an agent that adapts within a trial (unit: episodes):
    the mean return of the ``k``-th episode over ``trials`` trials of ``steps + 1``
    episodes per task, played by :func:`~adaptrl.rollouts.trial_sampler.play_trials`."""
    env = family.make_env(tasks, trials, device)
    played = play_trials(env, agent, steps + 1, generator)
    return trial_episode_returns(played, steps + 1).mean(-1)


def adaptation_curves(family: TaskFamily, agent: Agent, tasks: Tasks, steps: int, episodes: int,
                      seed: int, device: torch.device, batch_unit: BatchUnit = "episodes"
                      ) -> dict[str, torch.Tensor]:
    """``{"return": [steps+1, tasks]}`` plus ``"success"`` where the env reports success.

    ``batch_unit`` counts a gradient agent's batches (:class:`BatchSampler`)."""
    generator = torch.Generator().manual_seed(seed)
    if agent.unit == AdaptationUnit.EPISODES and isinstance(agent, TrialActor):
        return {"return": trial_curve(family, agent, tasks, steps, episodes, generator,
                                      device)}
    if agent.unit != AdaptationUnit.GRADIENT_STEPS or not isinstance(agent, GradientAgent):
        raise TypeError(f"{type(agent).__name__} declares adaptation unit {agent.unit!s}, "
                        "which has no scorer in adaptrl.evaluation.protocol (or lacks that "
                        "unit's methods)")
    successes: list[torch.Tensor] = []
    scores, _ = gradient_curve(family, agent, tasks, steps, episodes, generator, device,
                               successes, batch_unit)
    out = {"return": scores}
    if successes:
        out["success"] = torch.stack(successes)
    return out


def adaptation_curve(family: TaskFamily, agent: Agent, tasks: Tasks, steps: int, episodes: int,
                     seed: int, device: torch.device, batch_unit: BatchUnit = "episodes"
                     ) -> torch.Tensor:
    """The adaptation curve of any agent on ``tasks``, sampling from a generator seeded ``seed``."""
    return adaptation_curves(family, agent, tasks, steps, episodes, seed, device,
                             batch_unit)["return"]


def oracle_curve(family: TaskFamily, tasks: Tasks, steps: int, episodes: int,
                 device: torch.device) -> torch.Tensor | None:
    """The return of the family's task-aware oracle (flat over units), if it has one."""
    oracle = getattr(family, "oracle_action", None)
    if oracle is None:
        return None
    env = family.make_env(tasks, 1, device)
    obs = env.reset(torch.Generator().manual_seed(0))
    total = torch.zeros(len(tasks), 1, device=device)
    for _ in range(env.horizon):
        res = env.step(oracle(tasks, obs))
        total += res.reward
        obs = res.observation
        if bool((res.terminated | res.truncated).all()):
            break
    return total.mean(-1).expand(steps + 1, len(tasks)).cpu()
