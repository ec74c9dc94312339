"""Outer-loop optimisers shared by meta-learners: TRPO (conjugate gradient + line search)
and the Fisher-vector products that define its trust region."""

from adaptrl.optim.fisher import (
                                  KLHessian,
                                  flat_product,
                                  flat_to_params,
                                  params_to_flat,
                                  pullback_metric,
)
from adaptrl.optim.trpo import TRPOConfig, backtracking_line_search, conjugate_gradient, trpo_step

__all__ = ["KLHessian", "TRPOConfig", "backtracking_line_search", "conjugate_gradient",
           "flat_product", "flat_to_params", "params_to_flat", "pullback_metric", "trpo_step"]
