"""Inner-loop updates: differentiable SGD, learned step sizes, learned optimisers."""

from adaptrl.adaptation.policy_gradient import PolicyGradientAdapter
from adaptrl.adaptation.sgd import (StepJacobian, StepSize, TransformedStep, detach_step,
                                    sgd_step, sgd_step_with_jacobian)

__all__ = ["PolicyGradientAdapter", "StepJacobian", "StepSize", "TransformedStep",
           "detach_step", "sgd_step", "sgd_step_with_jacobian"]
