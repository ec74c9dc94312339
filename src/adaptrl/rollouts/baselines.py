"""Value baselines for policy-gradient advantage estimates."""

from __future__ import annotations

import torch

from adaptrl.rollouts.returns import discounted_returns, gae, normalize
from adaptrl.rollouts.trajectories import Trajectories


def linear_features(observations: torch.Tensor) -> torch.Tensor:
    """Features of Duan et al. (2016)'s linear baseline used by MAML (Finn et al. 2017, App. A.2).

    ``[o, o^2, t, t^2, t^3, 1]`` with ``o`` the flattened observation clipped to
    ``[-10, 10]`` and ``t`` the time step / 100. Input ``[T, n, e, *obs]``, output
    ``[T, n, e, F]``.
    """
    T, n, e = observations.shape[:3]
    o = observations.reshape(T, n, e, -1).clamp(-10, 10)
    t = (torch.arange(T, device=o.device, dtype=o.dtype) / 100.0).view(T, 1, 1, 1)
    t = t.expand(T, n, e, 1)
    return torch.cat([o, o * o, t, t * t, t ** 3, torch.ones_like(t)], dim=-1)


def fit_linear_baseline(traj: Trajectories, gamma: float, reg: float = 1e-5) -> torch.Tensor:
    """Fit the linear baseline to discounted returns *separately for every task*.

    Solves the ridge regression ``(X^T X + reg I) w = X^T y`` batched over tasks, over
    live steps only; the regulariser grows tenfold until the solve is finite, as in the
    rllab implementation. Returns the fitted values ``[T, n, e]`` (0 on padding).
    """
    feats = linear_features(traj.observations) * traj.masks.unsqueeze(-1)
    returns = discounted_returns(traj.rewards, traj.masks, gamma)
    T, n, e, F = feats.shape
    X = feats.permute(1, 0, 2, 3).reshape(n, T * e, F).double()
    y = returns.permute(1, 0, 2).reshape(n, T * e, 1).double()
    xtx = X.transpose(1, 2) @ X
    xty = X.transpose(1, 2) @ y
    eye = torch.eye(F, dtype=X.dtype, device=X.device)
    for _ in range(5):
        w = torch.linalg.solve(xtx + reg * eye, xty)
        if torch.isfinite(w).all():
            break
        reg *= 10
    values = (X @ w).reshape(n, T, e).permute(1, 0, 2)
    return values.to(traj.rewards.dtype) * traj.masks


def advantages(traj: Trajectories, gamma: float, gae_lambda: float,
               normalize_advantages: bool = True) -> torch.Tensor:
    """Advantages with a per-task linear baseline and GAE, optionally standardised per task."""
    values = fit_linear_baseline(traj, gamma)
    adv = gae(traj.rewards, values, traj.masks, gamma, gae_lambda, traj.terminated)
    if normalize_advantages:
        adv = normalize(adv, traj.masks, dims=(0, 2))
    return adv
