"""Agents: what the evaluation protocol adapts and scores, and the hand-designed ones.

:mod:`adaptrl.agents.contract` holds the contract every agent meets (its adaptation
unit); the meta-learners' agents (``algorithms/``) and the classic bandit / MDP
algorithms are agents under it.
"""

from adaptrl.agents.contract import AdaptationUnit, Agent

__all__ = ["AdaptationUnit", "Agent"]
