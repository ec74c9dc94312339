"""Meta-learners, one file each (the outer loop only), and their registry."""

from adaptrl.algorithms import aggregation as _aggregation  # noqa: F401  (registers "aggregation")
from adaptrl.algorithms import anil as _anil  # noqa: F401  (registers "anil")
from adaptrl.algorithms import dqn_init as _dqn_init  # noqa: F401  (registers "dqn-*")
from adaptrl.algorithms import maml as _maml  # noqa: F401  (registers "maml")
from adaptrl.algorithms import metasgd as _metasgd  # noqa: F401  (registers "metasgd")
from adaptrl.algorithms import reptile as _reptile  # noqa: F401  (registers "reptile")
from adaptrl.algorithms import rl2 as _rl2  # noqa: F401  (registers "rl2")
from adaptrl.algorithms.base import GradientAgent, MetaLearner
from adaptrl.algorithms.registry import algorithm_spec, algorithms, register_algorithm

__all__ = ["GradientAgent", "MetaLearner", "algorithm_spec", "algorithms", "register_algorithm"]
