"""Outer-loop optimisers shared by meta-learners: TRPO (conjugate gradient + line search)."""

from adaptrl.optim.trpo import TRPOConfig, conjugate_gradient, trpo_step

__all__ = ["TRPOConfig", "conjugate_gradient", "trpo_step"]
