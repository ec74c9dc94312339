"""The meta-test protocol, one for every algorithm (DESIGN.md).

Held-out tasks from the ``test`` split, a fixed evaluation seed, K adaptation units and
the score after each unit: the mean episode return per task, summarised by its mean and
95% CI over tasks. For a gradient-based agent a unit is one inner gradient step (each on
``episodes`` fresh episodes sampled with the current adapted policy, which are also the
episodes scored: the MAML paper's meta-test); for a memory-based agent a unit is one
episode of the trial; for an online learner (a DQN) a unit is ``env_steps_per_unit``
env steps of learning on each task, and the score is the greedy return of ``episodes``
separate evaluation episodes (:func:`online_curve`); for a model-based agent (unit
``transitions``) a unit is one more episode of a trial on the task, the agent adapting on
the transitions at every step (:func:`transitions_curve`).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from adaptrl.agents.contract import AdaptationUnit, Agent
from adaptrl.algorithms.base import GradientAgent
from adaptrl.models.functional import expand_params
from adaptrl.rollouts.online import OnlineLearner, play_online
from adaptrl.rollouts.sampler import BatchSampler, BatchUnit
from adaptrl.rollouts.trial_sampler import (
    TrialActor,
    play_trials,
    trial_episode_returns,
    trial_returns,
)
from adaptrl.tasks.base import BatchedEnv, TaskFamily, Tasks


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


def greedy_returns(env: BatchedEnv, actor: TrialActor[Any], seed: int) -> torch.Tensor:
    """The mean return per task ``[tasks]`` of one episode in every slot of ``env``, played
    by ``actor`` from a generator seeded ``seed``."""
    played = play_trials(env, actor, 1, torch.Generator().manual_seed(seed))
    return trial_returns(played).mean(-1)


def online_curve(family: TaskFamily, agent: OnlineLearner[Any], tasks: Tasks, steps: int,
                 episodes: int, env_steps_per_unit: int, generator: torch.Generator,
                 eval_seed: int, device: torch.device) -> torch.Tensor:
    """Scores ``[steps+1, tasks]`` of an online learner (unit: env steps) after
    ``0, s, 2s, ..., steps x s`` env steps of learning, ``s = env_steps_per_unit``.

    Every task learns in one env slot of its own (:func:`play_online`, from
    ``generator``); after each unit the agent as it stands
    (``agent.evaluation_actor(state)``: no exploration, no learning) plays ``episodes``
    episodes per task in a separate evaluation env, each checkpoint from a generator
    seeded ``eval_seed`` (the same episode randomness at every checkpoint, so that the
    curve's differences are the learning's). Unit 0 scores the untrained agent.
    """
    env = family.make_env(tasks, 1, device)
    eval_env = family.make_env(tasks, episodes, device)
    state = agent.begin(env)
    scores = []
    for k in range(steps + 1):
        scores.append(greedy_returns(eval_env, agent.evaluation_actor(state), eval_seed))
        if k < steps:
            state = play_online(env, agent, env_steps_per_unit, generator, state=state).state
    return torch.stack(scores)


@runtime_checkable
class TransitionsAgent(Protocol):
    """An agent that adapts on the transitions it sees on a task (unit ``transitions``: a
    model-based planner, :class:`adaptrl.algorithms.grbal.ModelBasedAgent`):
    ``actor(tasks)`` is the trial actor that plays ``tasks`` (the tasks are given so that an
    oracle may plan with their simulator; a learner ignores them)."""

    @property
    def unit(self) -> AdaptationUnit: ...

    def actor(self, tasks: Tasks) -> TrialActor[Any]: ...


def transitions_curve(family: TaskFamily, agent: TransitionsAgent, tasks: Tasks, steps: int,
                      trials: int, generator: torch.Generator, device: torch.device
                      ) -> torch.Tensor:
    """Scores ``[steps+1, tasks]`` of an agent that adapts on transitions: one trial of
    ``steps + 1`` consecutive episodes per slot (``trials`` slots per task), played by
    :func:`~adaptrl.rollouts.trial_sampler.play_trials` with ``agent.actor(tasks)``, which
    adapts online at every step from the transitions it has seen (GrBAL, Nagabandi et al.
    2019, Algorithm 2). Score ``k`` is the mean return of episode ``k``, played after ``k``
    episodes' transitions of experience on the task and adapting within it."""
    env = family.make_env(tasks, trials, device)
    played = play_trials(env, agent.actor(tasks), steps + 1, generator)
    return trial_episode_returns(played, steps + 1).mean(-1)


def normalised_to_oracle(scores: torch.Tensor, oracle: torch.Tensor, floor: torch.Tensor
                         ) -> torch.Tensor:
    """``(R - R_floor) / (R_oracle - R_floor)`` per task (broadcast): the oracle scores 1
    (GrBAL's normalisation, Nagabandi et al. 2019, §6) and the floor (e.g. random actions)
    0, which fixes the scale where returns are negative costs."""
    return (scores - floor) / (oracle - floor)


def adaptation_curves(family: TaskFamily, agent: Agent, tasks: Tasks, steps: int, episodes: int,
                      seed: int, device: torch.device, batch_unit: BatchUnit = "episodes",
                      env_steps_per_unit: int | None = None) -> dict[str, torch.Tensor]:
    """``{"return": [steps+1, tasks]}`` plus ``"success"`` where the env reports success.

    ``batch_unit`` counts a gradient agent's batches (:class:`BatchSampler`);
    ``env_steps_per_unit`` is the size of a unit of an online learner (required for one:
    :func:`online_curve`)."""
    generator = torch.Generator().manual_seed(seed)
    if agent.unit == AdaptationUnit.EPISODES and isinstance(agent, TrialActor):
        return {"return": trial_curve(family, agent, tasks, steps, episodes, generator,
                                      device)}
    if agent.unit == AdaptationUnit.ENV_STEPS and isinstance(agent, OnlineLearner):
        if env_steps_per_unit is None:
            raise ValueError(f"{type(agent).__name__} adapts in env steps: the protocol "
                             "needs env_steps_per_unit (evaluation.env_steps_per_unit)")
        # the evaluation episodes draw from their own seed, taken from the run's generator
        eval_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        return {"return": online_curve(family, agent, tasks, steps, episodes,
                                       env_steps_per_unit, generator, eval_seed, device)}
    if agent.unit == AdaptationUnit.TRANSITIONS and isinstance(agent, TransitionsAgent):
        return {"return": transitions_curve(family, agent, tasks, steps, episodes, generator,
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
                     seed: int, device: torch.device, batch_unit: BatchUnit = "episodes",
                     env_steps_per_unit: int | None = None) -> torch.Tensor:
    """The adaptation curve of any agent on ``tasks``, sampling from a generator seeded ``seed``."""
    return adaptation_curves(family, agent, tasks, steps, episodes, seed, device,
                             batch_unit, env_steps_per_unit)["return"]


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
