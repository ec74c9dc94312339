"""Meta-learners, one file each (the outer loop only), and their registry."""

from adaptrl.algorithms import aggregation as _aggregation  # noqa: F401  (registers "aggregation")
from adaptrl.algorithms import anil as _anil  # noqa: F401  (registers "anil")
from adaptrl.algorithms import dqn_init as _dqn_init  # noqa: F401  (registers "dqn-*")
from adaptrl.algorithms import dqn_mer as _dqn_mer  # noqa: F401  (registers "dqn-stream", "dqn-er", "dqn-mer")
from adaptrl.algorithms import grbal as _grbal  # noqa: F401  (registers "grbal", "rebal")
from adaptrl.algorithms import learned_optimizer as _l2o  # noqa: F401  (registers "l2o")
from adaptrl.algorithms import maml as _maml  # noqa: F401  (registers "maml")
from adaptrl.algorithms import metasgd as _metasgd  # noqa: F401  (registers "metasgd")
from adaptrl.algorithms import reptile as _reptile  # noqa: F401  (registers "reptile")
from adaptrl.algorithms import rl2 as _rl2  # noqa: F401  (registers "rl2")
from adaptrl.algorithms import tuned_optimizer as _tuned  # noqa: F401  (registers "tuned-optimizer")
from adaptrl.algorithms.base import GradientAgent, MetaLearner
from adaptrl.algorithms.registry import algorithm_spec, algorithms, register_algorithm

__all__ = ["GradientAgent", "MetaLearner", "algorithm_spec", "algorithms", "register_algorithm"]
