"""Discounted returns and generalised advantage estimation, as pure functions.

All inputs are time-major ``[T, ...]``. ``masks[t]`` is 1 for live steps; ``terminated[t]``
stops bootstrapping. Steps after an episode's end contribute nothing.
"""

from __future__ import annotations

import torch


def discounted_returns(rewards: torch.Tensor, masks: torch.Tensor, gamma: float) -> torch.Tensor:
    """``R_t = r_t + gamma * R_{t+1}`` within each episode; zero on padding."""
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = (rewards[t] + gamma * running) * masks[t]
        out[t] = running
    return out


def gae(rewards: torch.Tensor, values: torch.Tensor, masks: torch.Tensor, gamma: float,
        lam: float, terminated: torch.Tensor | None = None,
        last_values: torch.Tensor | None = None) -> torch.Tensor:
    """Generalised advantage estimation (Schulman et al. 2016, eq. 16).

    ``delta_t = r_t + gamma * V(s_{t+1}) - V(s_t)`` and ``A_t = delta_t + gamma*lam*A_{t+1}``.
    The value after the last live step of an episode is 0 if it terminated; if it was
    truncated it is ``V(s_{t+1})`` when given (``values`` beyond the episode, or
    ``last_values`` for the step after ``T-1``), else 0, as in rllab's MAML code.
    """
    T = rewards.shape[0]
    if terminated is None:
        terminated = torch.zeros_like(masks, dtype=torch.bool)
    next_values = torch.zeros_like(values)
    next_values[:-1] = values[1:]
    if last_values is not None:
        next_values[-1] = last_values
    next_values = next_values * (~terminated).to(values.dtype)
    # after the last live step of a truncated episode, only bootstrap if the next value is
    # a real state (a live step of the same episode, or the explicit last value)
    next_live = torch.zeros_like(masks)
    next_live[:-1] = masks[1:]
    if last_values is not None:
        next_live[-1] = masks[-1]
    next_values = next_values * next_live
    deltas = (rewards + gamma * next_values - values) * masks
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(T - 1, -1, -1):
        running = deltas[t] + gamma * lam * next_live[t] * running
        running = running * masks[t]
        adv[t] = running
    return adv


def normalize(x: torch.Tensor, masks: torch.Tensor, dims: tuple[int, ...],
              eps: float = 1e-8) -> torch.Tensor:
    """Standardise ``x`` over ``dims`` counting only live steps; padding stays 0."""
    count = masks.sum(dims, keepdim=True).clamp_min(1.0)
    mean = (x * masks).sum(dims, keepdim=True) / count
    var = (((x - mean) * masks) ** 2).sum(dims, keepdim=True) / count
    return (x - mean) / (var.sqrt() + eps) * masks


def masked_mean(x: torch.Tensor, masks: torch.Tensor, dims: tuple[int, ...] | None = None
                ) -> torch.Tensor:
    """Mean of ``x`` over live steps (over ``dims``, or over everything)."""
    if dims is None:
        return (x * masks).sum() / masks.sum().clamp_min(1.0)
    return (x * masks).sum(dims) / masks.sum(dims).clamp_min(1.0)
