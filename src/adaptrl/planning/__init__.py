"""Planners: value iteration for tabular MDPs; MPC (random shooting, CEM, MPPI) in
:mod:`adaptrl.planning.mpc` and its trial-playing controller in
:mod:`adaptrl.planning.controller`."""

from adaptrl.planning.value_iteration import expected_backup, plan, policy_value, value_iteration

__all__ = ["expected_backup", "plan", "policy_value", "value_iteration"]
