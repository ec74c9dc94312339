"""Models: policies, Q-networks, dynamics models; all called functionally with param dicts."""

from adaptrl.models.functional import (
                                       MLP,
                                       Params,
                                       detach_params,
                                       expand_params,
                                       fast_tanh,
                                       linear,
                                       named_params,
)
from adaptrl.models.policies import (
                                       CategoricalMLPPolicy,
                                       GaussianMLPPolicy,
                                       PolicyConfig,
                                       make_policy,
)

__all__ = ["MLP", "CategoricalMLPPolicy", "GaussianMLPPolicy", "Params", "PolicyConfig",
           "detach_params", "expand_params", "fast_tanh", "linear", "make_policy",
           "named_params"]
