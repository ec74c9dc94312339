"""Temporal-difference targets, one-step and n-step, as pure functions.

The bootstrapping rule (Sutton & Barto 2018, §6.1 and §7.1; Mnih et al. 2015 for the
one-step target of DQN): after a *terminated* transition the return is over, so the
target does not bootstrap; after a *truncated* one the episode was only cut (a horizon,
a time limit, the end of the data), so the target bootstraps from the value of the true
state at the cut, ``V(next_obs)``, which the samplers keep
(:class:`~adaptrl.rollouts.trajectories.Trajectories`, ``next_observations``).

Inputs are sequences along one dimension ``dim`` (time for ``[T, ...]`` trajectories;
rows for per-task :class:`~adaptrl.rollouts.transitions.Transitions` ``[tasks, N]`` from
:func:`~adaptrl.rollouts.transitions.to_transitions`, whose rows are chronological),
where every episode's last step has ``terminated`` or ``truncated`` set. The n-step
windows are evaluated for all positions at once: the only Python loop is over the ``n``
offsets of a window.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from adaptrl.rollouts.trajectories import gather_broadcast
from adaptrl.rollouts.transitions import Transitions


def td_targets(rewards: torch.Tensor, next_values: torch.Tensor, terminated: torch.Tensor,
               gamma: float) -> torch.Tensor:
    """One-step targets ``y = r + gamma * (1 - terminated) * V(s')`` (elementwise).

    ``next_values`` is the value of each transition's true next observation; a truncated
    transition bootstraps from it (its ``terminated`` is false), a terminal one does not.
    For DQN, ``V(s') = max_a Q_target(s', a)`` (Mnih et al. 2015, Algorithm 1).
    """
    return rewards + gamma * (next_values * (~terminated).to(next_values.dtype))


@dataclass(frozen=True)
class NStepWindows:
    """The n-step window that starts at every position (all shaped like ``rewards``).

    The window of position ``t`` holds ``m`` steps ``t .. t+m-1``: ``m = n`` unless the
    episode ends (terminated or truncated) or the data runs out first, then ``m`` stops at
    that last step.
    """

    returns: torch.Tensor  # sum_{k<m} gamma^k r_{t+k}
    discount: torch.Tensor  # gamma^m, the weight of the bootstrap value
    last: torch.Tensor  # long: the position t+m-1 of the window's last step
    terminated: torch.Tensor  # bool: the window's last step is terminal (no bootstrap)


def _shift(x: torch.Tensor, k: int, fill: float | bool) -> torch.Tensor:
    """``x[t + k]`` at position ``t`` along dim 0, ``fill`` past the end."""
    if k == 0:
        return x
    return torch.cat([x[k:], x.new_full((min(k, x.shape[0]), *x.shape[1:]), fill)])


def n_step_windows(rewards: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor,
                   gamma: float, n: int, dim: int = 0) -> NStepWindows:
    """The n-step window (discounted reward sum, discount, last position, terminal flag)
    that starts at every position along ``dim`` (Sutton & Barto 2018, eq. 7.1).

    A window stops at the first step that ends an episode, so no window crosses a reset;
    the last position along ``dim`` is taken as the end of the data (a cut: bootstrap).
    Positions on padding (after an episode's end) get meaningless windows: mask them.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    r = rewards.movedim(dim, 0)
    term = terminated.movedim(dim, 0)
    ended = term | truncated.movedim(dim, 0)
    ended[-1] = True  # the data ends: whatever runs to here is cut
    T = r.shape[0]
    t = torch.arange(T, device=r.device).view(T, *([1] * (r.dim() - 1)))
    returns = torch.zeros_like(r)
    discount = torch.ones_like(r)
    last = t.expand_as(r).clone()
    running = torch.ones_like(ended)  # the window has not met an episode end yet
    for k in range(min(n, T)):
        returns = returns + torch.where(running, discount * _shift(r, k, 0.0), 0.0)
        last = torch.where(running, t + k, last)
        discount = torch.where(running, discount * gamma, discount)
        running = running & ~_shift(ended, k, True)
    return NStepWindows(returns.movedim(0, dim), discount.movedim(0, dim),
                        last.movedim(0, dim), term.gather(0, last).movedim(0, dim))


def n_step_targets(rewards: torch.Tensor, next_values: torch.Tensor,
                   terminated: torch.Tensor, truncated: torch.Tensor, gamma: float, n: int,
                   dim: int = 0) -> torch.Tensor:
    """n-step TD targets ``G_t = sum_{k<m} gamma^k r_{t+k} + gamma^m V(s_{t+m})``, the
    bootstrap dropped when step ``t+m-1`` is terminal (Sutton & Barto 2018, eq. 7.1; the
    multi-step targets of Rainbow, Hessel et al. 2018).

    ``next_values[t] = V(s_{t+1})``, the value of the true observation after step ``t``
    (after an episode's last step, of its final observation). ``n = 1`` is
    :func:`td_targets`; a large ``n`` gives Monte-Carlo returns, bootstrapped at truncation.
    """
    w = n_step_windows(rewards, terminated, truncated, gamma, n, dim)
    boot = next_values.gather(dim, w.last)
    return w.returns + w.discount * (boot * (~w.terminated).to(boot.dtype))


def n_step_transitions(transitions: Transitions, gamma: float, n: int
                       ) -> tuple[Transitions, torch.Tensor]:
    """Chronological transitions (:func:`~adaptrl.rollouts.transitions.to_transitions`)
    turned into n-step transitions for replay, and the discount of each.

    Row ``t`` becomes ``(s_t, a_t, sum_{k<m} gamma^k r_{t+k}, s_{t+m}, terminated,
    truncated)`` where ``s_{t+m}`` is the true observation after the window's last step,
    ``terminated`` says that step is terminal and ``truncated`` that the episode was cut
    there; the second result, ``gamma^m`` per row (``[tasks, N]``), is the weight of the
    bootstrap: the target is ``reward + discount * (1 - terminated) * V(next_obs)``.
    Windows never cross an episode end; padding rows (``valid``) stay padding.
    """
    w = n_step_windows(transitions.reward, transitions.terminated, transitions.truncated,
                       gamma, n, dim=1)
    out = replace(transitions, reward=w.returns, terminated=w.terminated,
                  next_obs=gather_broadcast(transitions.next_obs, 1, w.last),
                  truncated=transitions.truncated.gather(1, w.last))
    return out, w.discount
