"""Inner-loop pieces: objectives (what a task's adaptation minimises), inner optimizers
(how per-task parameters move, possibly with per-task state) and their composition, the
inner update that MAML, FOMAML, Meta-SGD, Meta-Curvature, Reptile and aggregation share."""

from adaptrl.adaptation.inner_optimizers import (
                                                 SGD,
                                                 Adam,
                                                 InnerOptimizer,
                                                 InnerState,
                                                 KroneckerSGD,
                                                 MetaSGD,
                                                 PreconditionedSGD,
                                                 StepJacobian,
                                                 learned_sgd,
)
from adaptrl.adaptation.inner_update import InnerUpdate
from adaptrl.adaptation.objectives import (
                                                 AdvantageEstimator,
                                                 ClippedPolicyGradientObjective,
                                                 InnerObjective,
                                                 PolicyGradientObjective,
)
from adaptrl.adaptation.policy_gradient import PolicyGradientAdapter

__all__ = ["SGD", "Adam", "AdvantageEstimator", "ClippedPolicyGradientObjective",
           "InnerObjective", "InnerOptimizer", "InnerState", "InnerUpdate", "KroneckerSGD",
           "MetaSGD", "PolicyGradientAdapter", "PolicyGradientObjective", "PreconditionedSGD",
           "StepJacobian", "learned_sgd"]
