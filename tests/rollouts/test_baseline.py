"""The per-task linear feature baseline (Duan et al. 2016, used by MAML)."""

from __future__ import annotations

import torch

from adaptrl.rollouts.baselines import fit_linear_baseline, linear_features
from adaptrl.rollouts.trajectories import Trajectories


def trajectories_with_linear_returns(weights: torch.Tensor, gamma: float, T: int = 100,
                                     e: int = 10, seed: int = 0) -> tuple[Trajectories,
                                                                          torch.Tensor]:
    """Episodes whose discounted returns are exactly ``linear_features @ weights[task]``.

    Observations are random; rewards are chosen as ``r_t = R_t - gamma R_{t+1}`` so that
    the discounted return is the wanted linear target ``R``. Episodes end at random times.
    """
    g = torch.Generator().manual_seed(seed)
    n = weights.shape[0]
    obs = torch.rand(T, n, e, 2, generator=g, dtype=torch.float64) * 2 - 1
    ends = torch.randint(T // 2, T + 1, (n, e), generator=g)
    masks = (torch.arange(T).view(T, 1, 1) < ends).to(torch.float64)
    target = (linear_features(obs) @ weights.view(1, n, 1, -1).transpose(-1, -2)).squeeze(-1)
    target = target * masks
    next_target = torch.cat([target[1:], torch.zeros_like(target[:1])])
    rewards = (target - gamma * next_target) * masks
    traj = Trajectories(obs, torch.zeros(T, n, e, 2, dtype=torch.float64), rewards, masks,
                        torch.zeros(T, n, e, dtype=torch.bool),
                        torch.zeros(T, n, e, dtype=torch.float64))
    return traj, target


def test_features_layout() -> None:
    obs = torch.tensor([[[[0.5, -20.0]]], [[[1.0, 2.0]]]])  # [T=2, n=1, e=1, 2]
    f = linear_features(obs)
    assert f.shape == (2, 1, 1, 8)
    # [o (clipped to +-10), o^2, t/100, (t/100)^2, (t/100)^3, 1]
    torch.testing.assert_close(f[0, 0, 0], torch.tensor([0.5, -10.0, 0.25, 100.0, 0, 0, 0, 1]))
    torch.testing.assert_close(f[1, 0, 0], torch.tensor([1.0, 2.0, 1.0, 4.0, 0.01, 1e-4, 1e-6,
                                                         1.0]))


def test_linear_baseline_recovers_an_exactly_linear_target() -> None:
    g = torch.Generator().manual_seed(3)
    weights = torch.randn(3, 8, generator=g, dtype=torch.float64)
    traj, target = trajectories_with_linear_returns(weights, gamma=0.9)
    values = fit_linear_baseline(traj, gamma=0.9)
    torch.testing.assert_close(values.double(), target, atol=1e-4, rtol=0)
    assert bool((values[traj.masks == 0] == 0).all())  # padding stays 0


def test_per_task_fits_are_independent() -> None:
    g = torch.Generator().manual_seed(4)
    weights = torch.randn(4, 8, generator=g, dtype=torch.float64)
    traj, _ = trajectories_with_linear_returns(weights, gamma=0.99, seed=5)
    # make task 2's returns non-linear: its fit changes, the others must not
    noisy = torch.randn(traj.rewards.shape, generator=g, dtype=torch.float64)
    rewards = traj.rewards.clone()
    rewards[:, 2] += noisy[:, 2] * traj.masks[:, 2]
    traj2 = Trajectories(traj.observations, traj.actions, rewards, traj.masks,
                         traj.terminated, traj.log_probs)
    together = fit_linear_baseline(traj2, gamma=0.99)
    for i in range(4):
        alone = fit_linear_baseline(traj2.select_tasks(slice(i, i + 1)), gamma=0.99)
        torch.testing.assert_close(together[:, i:i + 1], alone)
    untouched = fit_linear_baseline(traj, gamma=0.99)
    torch.testing.assert_close(together[:, [0, 1, 3]], untouched[:, [0, 1, 3]])
    assert not torch.allclose(together[:, 2], untouched[:, 2])
