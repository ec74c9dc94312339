"""Discounted returns and generalised advantage estimation, as pure functions.

All inputs are time-major ``[T, ...]``. ``masks[t]`` is 1 for live steps; ``terminated[t]``
stops bootstrapping. Steps after an episode's end contribute nothing.
"""

from __future__ import annotations

import functools

import torch

_MATRIX_MAX_T = 1024  # beyond this the T x T discount matrix costs more than the loop


@functools.lru_cache(maxsize=16)
def _discount_matrix(T: int, factor: float, dtype: torch.dtype,
                     device: torch.device) -> torch.Tensor:
    """Upper-triangular ``D[t, k] = factor^(k - t)`` for ``k >= t`` (0 below the diagonal)."""
    k = torch.arange(T, dtype=torch.float64)
    lag = k.unsqueeze(0) - k.unsqueeze(1)
    d = torch.where(lag >= 0, torch.pow(factor, lag.clamp_min(0)), torch.zeros(()))
    return d.to(device=device, dtype=dtype)


def is_prefix_mask(masks: torch.Tensor) -> bool:
    """Whether every episode's live steps are a prefix ``0..end-1`` (no restart after an end).

    This is what :func:`~adaptrl.rollouts.sampler.rollout` produces (no autoreset).
    """
    return bool((masks[1:] <= masks[:-1]).all())


def reverse_discounted_sum(x: torch.Tensor, factor: float, cont: torch.Tensor,
                           prefix: bool = False) -> torch.Tensor:
    """``y_t = x_t + factor * cont_t * y_{t+1}`` backwards over time (dim 0), ``y_T = 0``.

    ``cont_t`` (0/1) says whether step ``t``'s episode continues into ``t+1``. When the
    caller guarantees ``prefix`` (``x`` and ``cont`` vanish from every episode's first break
    on, as with prefix masks) the chain never breaks where it matters and
    ``y = D x`` with the discount matrix ``D[t, k] = factor^(k-t)``: one matmul instead of
    a Python loop over time steps.
    """
    T = x.shape[0]
    if prefix and T <= _MATRIX_MAX_T:
        D = _discount_matrix(T, float(factor), x.dtype, x.device)
        return (D @ x.reshape(T, -1)).reshape(x.shape)
    out = torch.empty_like(x)
    running = torch.zeros_like(x[0])
    for t in range(T - 1, -1, -1):
        running = x[t] + factor * cont[t] * running
        out[t] = running
    return out


def discounted_returns(rewards: torch.Tensor, masks: torch.Tensor, gamma: float) -> torch.Tensor:
    """``R_t = r_t + gamma * R_{t+1}`` within each episode; zero on padding.

    Exactly the recursion ``R_t = m_t (r_t + gamma R_{t+1})`` (a step with mask 0 ends
    the chain), evaluated as one discount-matrix product when masks are prefixes.
    """
    x = rewards * masks
    return reverse_discounted_sum(x, gamma, masks, is_prefix_mask(masks)) * masks


def gae(rewards: torch.Tensor, values: torch.Tensor, masks: torch.Tensor, gamma: float,
        lam: float, terminated: torch.Tensor | None = None,
        last_values: torch.Tensor | None = None) -> torch.Tensor:
    """Generalised advantage estimation (Schulman et al. 2016, eq. 16).

    ``delta_t = r_t + gamma * V(s_{t+1}) - V(s_t)`` and ``A_t = delta_t + gamma*lam*A_{t+1}``.
    The value after the last live step of an episode is 0 if it terminated; if it was
    truncated it is ``V(s_{t+1})`` when given (``values`` beyond the episode, or
    ``last_values`` for the step after ``T-1``), else 0, as in rllab's MAML code.
    ``lam = 1`` gives Monte-Carlo returns minus the baseline, ``lam = 0`` the one-step TD
    error.
    """
    next_values = torch.zeros_like(values)
    next_values[:-1] = values[1:]
    if last_values is not None:
        next_values[-1] = last_values
    if terminated is not None:
        next_values = next_values * (~terminated).to(values.dtype)
    # after the last live step of a truncated episode, only bootstrap if the next value is
    # a real state (a live step of the same episode, or the explicit last value)
    next_live = torch.zeros_like(masks)
    next_live[:-1] = masks[1:]
    if last_values is not None:
        next_live[-1] = masks[-1]
    deltas = (rewards + gamma * next_values * next_live - values) * masks
    adv = reverse_discounted_sum(deltas, gamma * lam, masks * next_live, is_prefix_mask(masks))
    return adv * masks


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
