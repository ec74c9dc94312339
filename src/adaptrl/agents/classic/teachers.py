"""Classic algorithms as teachers: what RL²'s imitation stage learns from.

:func:`build_teacher` turns a classic tabular-MDP algorithm of the comparison table (by
name, with its hyperparameters) into an :class:`~adaptrl.agents.classic.tabular.MDPTeacher`
that follows a trial and labels every step with the algorithm's action probabilities
(:mod:`adaptrl.rollouts.imitation`; DAgger, Ross et al. 2011). RL² builds its own teacher
from ``algorithm.imitation``; nothing is attached from outside.
"""

from __future__ import annotations

from typing import Any

from adaptrl.agents.classic.methods import MDP_METHODS, build_method
from adaptrl.agents.classic.tabular import MDPTeacher
from adaptrl.errors import UserError
from adaptrl.tasks.base import TaskFamily
from adaptrl.tasks.tabular_mdp import TabularMDP


def build_teacher(family: TaskFamily, name: str, params: dict[str, Any]) -> MDPTeacher:
    """The classic algorithm ``name`` of ``family``'s comparison table, with ``params``, as
    a teacher. Teachers exist for ``tabular-mdp``; a wrong name, parameter or family is a
    :class:`~adaptrl.errors.UserError` naming ``algorithm.imitation``'s field."""
    if not isinstance(family, TabularMDP):
        raise UserError("algorithm.imitation: teachers exist for the tabular-mdp family "
                        f"(its classic algorithms), got family {family.name!r}")
    agent = build_method(MDP_METHODS, name, params, "algorithm.imitation.teacher",
                         "algorithm.imitation.params")
    return MDPTeacher(agent, family.num_states, family.num_actions, family.horizon)
