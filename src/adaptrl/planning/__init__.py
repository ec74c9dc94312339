"""Planners: value iteration for tabular MDPs now; MPC (random shooting, CEM, MPPI) next."""

from adaptrl.planning.value_iteration import expected_backup, plan, policy_value, value_iteration

__all__ = ["expected_backup", "plan", "policy_value", "value_iteration"]
