"""The classic bandit and tabular-MDP algorithms as agents under the one agent contract.

Each is a :class:`~adaptrl.rollouts.trial_sampler.TrialActor` whose adaptation unit is the
episode (:class:`~adaptrl.agents.contract.AdaptationUnit`), so that
:func:`~adaptrl.evaluation.protocol.adaptation_curves` scores it exactly as it scores RL²
(:func:`~adaptrl.evaluation.protocol.trial_curve`): ``steps + 1`` episodes of a trial in
every ``[task, trial]`` slot of the family's batched env, played by
:func:`~adaptrl.rollouts.trial_sampler.play_trials`, the score after ``k`` units being the
mean return of episode ``k``. The agent's memory is the algorithm's statistics:

* :class:`ClassicBanditAgent`: any :class:`~adaptrl.agents.classic.bandits.BanditPolicy`
  (UCB1, Thompson sampling, Gittins, ...) on ``bandit-bernoulli``; its memory is the
  success / pull counts per arm of every slot (:class:`~adaptrl.agents.classic.bandits.
  BanditState`), a pull being a one-step episode of the trial (Duan et al. 2016, §4.1);
* :class:`ClassicMDPAgent`: any :class:`~adaptrl.agents.classic.tabular.MDPAgent` (PSRL,
  BEB, UCRL2, ...) on ``tabular-mdp``; its memory is the trial's
  :class:`~adaptrl.agents.classic.tabular.MDPCounts` kept by an
  :class:`~adaptrl.agents.classic.tabular.MDPTrialMemory`, the implementation RL²'s
  imitation teacher (:class:`~adaptrl.agents.classic.tabular.MDPTeacher`) follows a trial
  with (Duan et al. 2016, §4.2).

All slots move together (one batched call per step, no loop over tasks or trials), on the
env's device; the draws come from the trial's generator on its own device
(:mod:`adaptrl.randomness`). On the tables' instances they score what the tables' own loops
:func:`~adaptrl.agents.classic.bandits.run_bandit` and
:func:`~adaptrl.agents.classic.tabular.run_mdp` score (a bandit agent with one trial per
task draws the very same random numbers; tests/agents/test_classic_trial_agents.py).
:func:`classic_agent` builds one by its name in the registry
(:mod:`~adaptrl.agents.classic.methods`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch

from adaptrl.agents.classic._common import sample_categorical
from adaptrl.agents.classic.bandits import BanditPolicy, BanditState
from adaptrl.agents.classic.methods import BANDIT_METHODS, MDP_METHODS, build_method
from adaptrl.agents.classic.tabular import MDPAgent, MDPTrialMemory
from adaptrl.agents.contract import AdaptationUnit
from adaptrl.errors import UserError
from adaptrl.rollouts.trial_sampler import Step
from adaptrl.tasks.bandits import BanditBernoulli, BanditEnv
from adaptrl.tasks.base import BatchedEnv, TaskFamily
from adaptrl.tasks.tabular_mdp import TabularMDP, TabularMDPEnv


def _size(name: str, given: int | None, from_env: int | None, agent: str) -> int:
    """A size the agent needs: the env's where it declares one (``given``, if set, must
    agree), else ``given``."""
    if from_env is not None:
        if given is not None and given != from_env:
            raise ValueError(f"{agent} was built for {name} = {given}, the env has {from_env}")
        return from_env
    if given is None:
        raise ValueError(f"{agent} needs {name} for an env that does not declare it")
    return given


@dataclass(frozen=True)
class ClassicBanditAgent:
    """A bandit algorithm playing trials (a :class:`~adaptrl.rollouts.trial_sampler.TrialActor`,
    adaptation unit: episodes, one pull each).

    Every ``[task, trial]`` slot keeps its own :class:`BanditState` row (successes and pulls
    per arm, the trial's length ``episodes x horizon`` pulls); ``act`` asks ``policy`` for
    one arm per slot, ``observe`` counts the pull where the slot was live. ``num_arms`` is
    read from a ``bandit-bernoulli`` env; give it for another env.
    """

    policy: BanditPolicy
    num_arms: int | None = None

    @property
    def unit(self) -> AdaptationUnit:
        return AdaptationUnit.EPISODES

    def begin(self, env: BatchedEnv, episodes: int) -> BanditState:
        arms = _size("num_arms", self.num_arms,
                     env.p.shape[1] if isinstance(env, BanditEnv) else None,
                     type(self).__name__)
        return BanditState.empty(env.num_tasks * env.episodes_per_task, arms,
                                 episodes * env.horizon, env.device)

    def begin_episode(self, state: BanditState, episode: int) -> BanditState:
        return state

    def act(self, obs: torch.Tensor, state: BanditState, generator: torch.Generator
            ) -> tuple[torch.Tensor, BanditState]:
        return self.policy(state, generator).reshape(obs.shape[:2]), state

    def observe(self, step: Step, state: BanditState) -> BanditState:
        state.update(step.action.reshape(-1).long(), step.reward.reshape(-1),
                     step.alive.reshape(-1))
        return state


@dataclass(frozen=True)
class MDPTrialState:
    """A :class:`ClassicMDPAgent`'s memory in a trial: the algorithm following it and the
    step of the current episode."""

    memory: MDPTrialMemory
    step: int = 0


@dataclass(frozen=True)
class ClassicMDPAgent:
    """A tabular-MDP algorithm playing trials (a
    :class:`~adaptrl.rollouts.trial_sampler.TrialActor`, adaptation unit: episodes).

    An :class:`MDPTrialMemory` follows the trial (counts per ``[task, trial]`` slot, a plan
    per episode, or per step for an agent that re-plans every step, as in
    :func:`~adaptrl.agents.classic.tabular.run_mdp`); ``act`` draws each slot's action
    from the plan's probabilities in its state at the current step of the episode.
    ``num_states`` and ``num_actions`` are read from a ``tabular-mdp`` env; give them for
    another env with one-hot observations.
    """

    agent: MDPAgent
    num_states: int | None = None
    num_actions: int | None = None

    @property
    def unit(self) -> AdaptationUnit:
        return AdaptationUnit.EPISODES

    def begin(self, env: BatchedEnv, episodes: int) -> MDPTrialState:
        tabular = env if isinstance(env, TabularMDPEnv) else None
        name = type(self).__name__
        states = _size("num_states", self.num_states,
                       None if tabular is None else tabular.num_states, name)
        actions = _size("num_actions", self.num_actions,
                        None if tabular is None else tabular.num_actions, name)
        return MDPTrialState(MDPTrialMemory.empty(self.agent, env.num_tasks,
                                                  env.episodes_per_task, states, actions,
                                                  env.horizon, env.device))

    def begin_episode(self, state: MDPTrialState, episode: int) -> MDPTrialState:
        state.memory.begin_episode()
        return replace(state, step=0)

    def act(self, obs: torch.Tensor, state: MDPTrialState, generator: torch.Generator
            ) -> tuple[torch.Tensor, MDPTrialState]:
        probs = state.memory.action_probs(obs, state.step, generator)
        return sample_categorical(probs, generator), state

    def observe(self, step: Step, state: MDPTrialState) -> MDPTrialState:
        state.memory.observe(step.obs, step.action, step.reward, step.next_obs, step.alive)
        return replace(state, step=state.step + 1)


ClassicAgent = ClassicBanditAgent | ClassicMDPAgent


def classic_agent(family: TaskFamily, name: str,
                  params: Mapping[str, Any] | None = None) -> ClassicAgent:
    """The classic algorithm ``name`` of ``family``'s comparison table
    (:data:`~adaptrl.agents.classic.methods.BANDIT_METHODS` on ``bandit-bernoulli``,
    :data:`~adaptrl.agents.classic.methods.MDP_METHODS` on ``tabular-mdp``), built with
    ``params``, as a trial actor sized for ``family``. A wrong family, name or parameter is
    a :class:`~adaptrl.errors.UserError`."""
    if isinstance(family, BanditBernoulli):
        policy = build_method(BANDIT_METHODS, name, params or {})
        return ClassicBanditAgent(policy, family.num_arms)
    if isinstance(family, TabularMDP):
        agent = build_method(MDP_METHODS, name, params or {})
        return ClassicMDPAgent(agent, family.num_states, family.num_actions)
    raise UserError("classic agents exist for the bandit-bernoulli and tabular-mdp families, "
                    f"got family {family.name!r}")
