"""Meta-learners, one file each (the outer loop only), and their registry."""

from adaptrl.algorithms import maml as _maml  # noqa: F401  (registers "maml")
from adaptrl.algorithms.base import GradientAgent, MetaLearner
from adaptrl.algorithms.registry import algorithm_spec, algorithms, register_algorithm

__all__ = ["GradientAgent", "MetaLearner", "algorithm_spec", "algorithms", "register_algorithm"]
