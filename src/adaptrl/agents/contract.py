"""The agent contract: what the evaluation protocol adapts to a new task and scores.

An *agent* is the adapting thing a meta-learner hands the evaluator (``learner.agent()``),
or a hand-designed algorithm scored beside it. Every agent declares its *adaptation unit*:
the budget the protocol spends on a task between two scores (DESIGN.md, "adaptation
budget"). The protocol (:mod:`adaptrl.evaluation.protocol`) scores the agent after
0, 1, ..., K units with one scorer per unit, whatever the algorithm behind it:

* ``gradient_steps`` — the MAML family: each unit is one inner gradient step on fresh
  support episodes sampled with the current adapted parameters (Finn et al. 2017, §3.2);
* ``episodes`` — memory-based agents (RL², classic bandit / MDP algorithms): each unit is
  one more episode of a trial, the adaptation held in the agent's memory (Duan et al.
  2016, §2.2);
* ``env_steps`` — online learners (a meta-learned DQN, MER, a learned optimizer): each
  unit is a fixed number of environment steps of learning on the task;
* ``transitions`` — model-based agents: each unit is a number of real transitions fed to
  the agent's dynamics model before it plans.
"""

from __future__ import annotations

from enum import Enum
from typing import Protocol, runtime_checkable


class AdaptationUnit(str, Enum):
    """The budget one adaptation unit spends on a task (see the module docstring).

    A ``str`` enum, so ``unit == "episodes"`` holds and eval.json stores the plain word.
    """

    GRADIENT_STEPS = "gradient_steps"
    EPISODES = "episodes"
    ENV_STEPS = "env_steps"
    TRANSITIONS = "transitions"

    def __str__(self) -> str:
        return self.value

    @property
    def word(self) -> str:
        """The unit's name in a table header or plot label, singular: ``step``, ``episode``."""
        return _WORDS[self]


_WORDS = {AdaptationUnit.GRADIENT_STEPS: "step", AdaptationUnit.EPISODES: "episode",
          AdaptationUnit.ENV_STEPS: "env step", AdaptationUnit.TRANSITIONS: "transition"}


@runtime_checkable
class Agent(Protocol):
    """What every agent declares: the unit its adaptation is counted and scored in.

    The unit's scorer in :mod:`adaptrl.evaluation.protocol` drives the rest through the
    unit's step-level contract: for ``episodes``,
    :class:`~adaptrl.rollouts.trial_sampler.TrialActor` (``begin`` a trial,
    ``begin_episode``, ``act``, ``observe`` each step — RL²'s agent, the classic bandit /
    MDP algorithms (:mod:`adaptrl.agents.classic.trial_agents`), and the one trial loop
    :func:`~adaptrl.rollouts.trial_sampler.play_trials` that RL² also trains with); for
    ``gradient_steps``, :class:`adaptrl.algorithms.base.GradientAgent`'s
    ``initial_params`` / ``adapt`` (one unit's episodes at a time); for ``env_steps``,
    :class:`~adaptrl.rollouts.online.OnlineLearner` (``begin`` a learning state, ``act``,
    ``observe`` each step, ``evaluation_actor`` to score it), driven by
    :func:`~adaptrl.rollouts.online.play_online` (:class:`adaptrl.agents.dqn.DQNAgent`).
    """

    @property
    def unit(self) -> AdaptationUnit: ...
