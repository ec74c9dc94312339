"""TRPO: conjugate gradient, the trust-region step and its line search."""

from __future__ import annotations

import math

import torch
from torch import nn

from adaptrl.models.functional import named_params
from adaptrl.models.policies import GaussianMLPPolicy
from adaptrl.optim.trpo import TRPOConfig, conjugate_gradient, trpo_step
from adaptrl.rollouts.losses import importance_loss, mean_kl
from adaptrl.rollouts.trajectories import Trajectories


def test_conjugate_gradient_solves_a_2x2_system_exactly() -> None:
    A = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    b = torch.tensor([1.0, 2.0], dtype=torch.float64)
    x = conjugate_gradient(lambda v: A @ v, b, iters=2)
    torch.testing.assert_close(x, torch.tensor([1 / 11, 7 / 11], dtype=torch.float64))


def test_conjugate_gradient_solves_a_random_spd_system() -> None:
    g = torch.Generator().manual_seed(0)
    M = torch.randn(12, 12, generator=g, dtype=torch.float64)
    A = M @ M.T + 12 * torch.eye(12, dtype=torch.float64)
    b = torch.randn(12, generator=g, dtype=torch.float64)
    x = conjugate_gradient(lambda v: A @ v, b, iters=12, tol=1e-24)
    torch.testing.assert_close(x, torch.linalg.solve(A, b), rtol=1e-8, atol=1e-10)


def test_step_on_a_quadratic_kl_has_the_closed_form_length() -> None:
    """Linear loss ``c.x``, KL ``x^T A x / 2``: the step is
    ``-sqrt(2 delta / c^T A^-1 c) A^-1 c``, accepted at once with KL exactly ``delta``."""
    A = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    c = torch.tensor([1.0, -2.0], dtype=torch.float64)
    x = nn.Parameter(torch.zeros(2, dtype=torch.float64))

    def surrogate(differentiable: bool) -> tuple[torch.Tensor, torch.Tensor]:
        return c @ x, 0.5 * x @ A @ x

    cfg = TRPOConfig(max_kl=0.02, cg_damping=0.0, cg_iters=2)
    info = trpo_step([x], surrogate, cfg)
    a_inv_c = torch.linalg.solve(A, c)
    expected = -math.sqrt(2 * 0.02 / float(c @ a_inv_c)) * a_inv_c
    torch.testing.assert_close(x.detach(), expected)
    assert info["accepted"] == 1.0 and info["ls_backtracks"] == 0.0
    assert math.isclose(info["kl"], 0.02, rel_tol=1e-9)


def policy_problem(seed: int = 0) -> tuple[GaussianMLPPolicy, Trajectories, torch.Tensor]:
    """A small Gaussian policy with behaviour log-probs of its own actions and fixed advantages."""
    torch.manual_seed(seed)
    policy = GaussianMLPPolicy(3, 2, hidden=(8,), activation="tanh").double()
    g = torch.Generator().manual_seed(seed)
    T, n, e = 6, 2, 8
    obs = torch.randn(T, n, e, 3, generator=g, dtype=torch.float64)
    with torch.no_grad():
        dist = policy.distribution(obs)
        actions = dist.sample()
        log_probs = dist.log_prob(actions)
    masks = torch.ones(T, n, e, dtype=torch.float64)
    traj = Trajectories(obs, actions, torch.zeros_like(masks), masks,
                        torch.zeros(T, n, e, dtype=torch.bool), log_probs)
    adv = torch.randn(T, n, e, generator=g, dtype=torch.float64)
    return policy, traj, adv


def test_trpo_step_respects_the_kl_bound_and_improves_the_surrogate() -> None:
    policy, traj, adv = policy_problem()
    with torch.no_grad():
        old = policy.distribution(traj.observations)

    def surrogate(differentiable: bool) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.set_grad_enabled(differentiable):
            dist = policy.distribution(traj.observations)
            return (importance_loss(dist, traj, adv).mean(),
                    mean_kl(old, dist, traj.masks).mean())

    before = float(surrogate(False)[0])
    cfg = TRPOConfig(max_kl=0.01)
    info = trpo_step(list(policy.parameters()), surrogate, cfg)
    after, kl = surrogate(False)
    assert info["accepted"] == 1.0
    assert float(after) < before
    assert 0 < float(kl) <= cfg.max_kl
    assert math.isclose(info["kl"], float(kl), rel_tol=1e-9)


def test_rejected_line_search_restores_the_parameters() -> None:
    policy, traj, adv = policy_problem(1)
    start = {k: v.detach().clone() for k, v in named_params(policy).items()}

    def surrogate(differentiable: bool) -> tuple[torch.Tensor, torch.Tensor]:
        dist = policy.distribution(traj.observations)
        loss = importance_loss(dist, traj, adv).mean()
        # the line search sees a KL above any bound: every candidate is rejected
        return loss, loss.new_tensor(1.0) if not differentiable else loss * 0

    info = trpo_step(list(policy.parameters()), surrogate, TRPOConfig(ls_steps=4))
    assert info["accepted"] == 0.0 and info["step_fraction"] == 0.0
    for k, v in named_params(policy).items():
        assert torch.equal(v.detach(), start[k])
