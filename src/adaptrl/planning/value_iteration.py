"""Finite-horizon value iteration: the exact planner of tabular MDPs (Puterman 1994, §4.5).

Batched over any leading dims (MDP instances, posterior samples), on any device. Used by the
classic tabular agents (:mod:`adaptrl.agents.classic.tabular`: PSRL, UCRL2, BEB, greedy
plan on their posterior or optimistic MDPs) and to score a policy exactly; the model-based
planners (MPC) will live beside it in :mod:`adaptrl.planning`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Backup = Callable[[torch.Tensor], torch.Tensor]


def expected_backup(transitions: torch.Tensor, rewards: torch.Tensor) -> Backup:
    """Bellman backup ``Q(s, a) = r(s, a) + sum_s' P(s' | s, a) V(s')`` of one MDP.

    ``transitions`` is ``[..., S, A, S]`` and ``rewards`` ``[..., S, A]`` with any batch dims.
    """
    return lambda value: rewards + torch.einsum("...sat,...t->...sa", transitions, value)


def plan(backup: Backup, value_shape: tuple[int, ...], horizon: int,
         device: torch.device | str = "cpu") -> torch.Tensor:
    """Finite-horizon value iteration: ``Q [..., H, S, A]`` with ``Q[..., h]`` for step ``h``.

    ``V_H = 0`` and ``Q_h = backup(V_{h+1})``, ``V_h = max_a Q_h`` (Puterman 1994, §4.5).
    ``value_shape`` is the shape ``[..., S]`` of a value function.
    """
    value = torch.zeros(value_shape, device=device)
    qs = []
    for _ in range(horizon):
        q = backup(value)
        qs.append(q)
        value = q.amax(dim=-1)
    return torch.stack(qs[::-1], dim=-3)


def value_iteration(transitions: torch.Tensor, rewards: torch.Tensor,
                    horizon: int) -> torch.Tensor:
    """Optimal ``Q [..., H, S, A]`` of the MDP ``(transitions, rewards)`` over ``horizon`` steps."""
    return plan(expected_backup(transitions, rewards), rewards.shape[:-1], horizon,
                rewards.device)


def policy_value(transitions: torch.Tensor, reward_mean: torch.Tensor,
                 policy: torch.Tensor, start: int = 0) -> torch.Tensor:
    """Expected return ``[N]`` from state ``start`` of the Markov policy ``[N, H, S, A]``."""
    value = torch.zeros(reward_mean.shape[:-1], device=reward_mean.device)
    for h in range(policy.shape[-3] - 1, -1, -1):
        q = expected_backup(transitions, reward_mean)(value)
        value = (policy[..., h, :, :] * q).sum(dim=-1)
    return value[..., start]
