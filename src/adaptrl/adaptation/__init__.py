"""Inner-loop updates: differentiable SGD, learned step sizes, learned optimisers."""

from adaptrl.adaptation.policy_gradient import PolicyGradientAdapter
from adaptrl.adaptation.sgd import StepSize, sgd_step

__all__ = ["PolicyGradientAdapter", "StepSize", "sgd_step"]
