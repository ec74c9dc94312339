"""MAML meta-gradients and the TRPO metric through the inner loop, on a tiny float64 problem.

* The second-order meta-gradient of the outer (TRPO surrogate) loss through one and two
  inner VPG steps equals a central finite-difference estimate.
* The first-order (FOMAML) gradient equals the gradient with the inner update detached.
* The Fisher product ``J^T F J`` (pulled back through the inner steps' Jacobians) equals
  the autograd Hessian-vector product of the mean KL through the adaptation.
"""

from __future__ import annotations

import pytest
import torch

from adaptrl.adaptation.inner_optimizers import SGD, Scale
from adaptrl.adaptation.inner_update import InnerUpdate
from adaptrl.adaptation.objectives import PolicyGradientObjective
from adaptrl.models.functional import Params, named_params
from adaptrl.models.policies import GaussianMLPPolicy
from adaptrl.optim.fisher import KLHessian, flat_to_params, params_to_flat, pullback_metric
from adaptrl.rollouts.losses import importance_loss, mean_kl
from adaptrl.rollouts.sampler import trajectory_distribution
from adaptrl.rollouts.trajectories import Trajectories

T, N, E = 4, 3, 3  # time steps, tasks, episodes


def make_policy(seed: int = 0) -> GaussianMLPPolicy:
    torch.manual_seed(seed)
    policy = GaussianMLPPolicy(2, 2, hidden=(5,), activation="tanh").double()
    with torch.no_grad():  # move away from the tiny-output initialisation
        for p in policy.parameters():
            p.copy_(0.5 * torch.randn_like(p))
    return policy


def make_traj(seed: int) -> tuple[Trajectories, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(T, N, E, 2, generator=g, dtype=torch.float64)
    actions = torch.randn(T, N, E, 2, generator=g, dtype=torch.float64)
    ends = torch.randint(2, T + 1, (N, E), generator=g)
    masks = (torch.arange(T).view(T, 1, 1) < ends).double()
    log_probs = 0.3 * torch.randn(T, N, E, generator=g, dtype=torch.float64) - 2.0
    traj = Trajectories(obs, actions, torch.zeros(T, N, E, dtype=torch.float64), masks,
                        torch.zeros(T, N, E, dtype=torch.bool), log_probs * masks)
    adv = torch.randn(T, N, E, generator=g, dtype=torch.float64) * masks
    return traj, adv


SUPPORTS = [make_traj(1), make_traj(2)]
QUERY, QUERY_ADV = make_traj(3)
LR = 0.3


def vpg(policy: GaussianMLPPolicy, lr: Scale = LR) -> InnerUpdate:
    """MAML's inner update: REINFORCE descended by SGD."""
    return InnerUpdate(PolicyGradientObjective(policy), SGD(lr))


def adapt(update: InnerUpdate, params: Params, steps: int, first_order: bool) -> Params:
    state = update.init(params, N)
    for traj, adv in SUPPORTS[:steps]:
        params, state = update.step(params, traj, adv, state, first_order=first_order)
    return params


def outer_loss(policy: GaussianMLPPolicy, params: Params, steps: int,
               first_order: bool = False) -> torch.Tensor:
    phi = adapt(vpg(policy), params, steps, first_order)
    return importance_loss(trajectory_distribution(policy, QUERY, phi), QUERY, QUERY_ADV).mean()


@pytest.mark.parametrize("steps", [1, 2])
def test_second_order_meta_gradient_matches_finite_differences(steps: int) -> None:
    policy = make_policy()
    theta = named_params(policy)
    grad = torch.autograd.grad(outer_loss(policy, theta, steps), list(theta.values()))
    analytic = torch.cat([g.reshape(-1) for g in grad])

    flat = params_to_flat(theta).detach()
    eps = 1e-6
    numeric = torch.zeros_like(flat)
    with torch.no_grad():
        for i in range(flat.numel()):
            hi, lo = flat.clone(), flat.clone()
            hi[i] += eps
            lo[i] -= eps
            with torch.enable_grad():
                f_hi = outer_loss(policy, flat_to_params(hi, theta), steps)
                f_lo = outer_loss(policy, flat_to_params(lo, theta), steps)
            numeric[i] = (f_hi - f_lo) / (2 * eps)
    torch.testing.assert_close(analytic, numeric, rtol=1e-6, atol=1e-8)
    # the second-order terms matter on this problem (the check is not vacuous)
    fo = torch.autograd.grad(outer_loss(policy, theta, steps, first_order=True),
                             list(theta.values()))
    assert not torch.allclose(analytic, torch.cat([g.reshape(-1) for g in fo]), atol=1e-4)


@pytest.mark.parametrize("steps", [1, 2])
def test_first_order_gradient_is_the_gradient_at_the_adapted_parameters(steps: int) -> None:
    policy = make_policy(1)
    theta = named_params(policy)
    fo = torch.autograd.grad(outer_loss(policy, theta, steps, first_order=True),
                             list(theta.values()))
    # the same with the inner update computed separately and detached: phi = theta + const
    phi = {k: v.detach() for k, v in adapt(vpg(policy), theta, steps, first_order=False).items()}
    leaf = {k: v.clone().requires_grad_(True) for k, v in phi.items()}
    loss = importance_loss(trajectory_distribution(policy, QUERY, leaf), QUERY, QUERY_ADV)
    at_phi = torch.autograd.grad(loss.mean(), list(leaf.values()))
    for a, b in zip(fo, at_phi):
        torch.testing.assert_close(a, b.sum(0))  # the task dim sums back onto theta


def kl_through_adaptation(policy: GaussianMLPPolicy, theta: Params, phi_old: Params,
                          steps: int, lr: Scale) -> torch.Tensor:
    phi = adapt(vpg(policy, lr), theta, steps, first_order=False)
    with torch.no_grad():
        old = trajectory_distribution(policy, QUERY, phi_old)
    return mean_kl(old, trajectory_distribution(policy, QUERY, phi), QUERY.masks).mean()


@pytest.mark.parametrize("steps,learned_lr", [(1, False), (2, False), (1, True)])
def test_pullback_fisher_equals_the_kl_hessian_through_adaptation(steps: int,
                                                                   learned_lr: bool) -> None:
    policy = make_policy(2)
    theta = named_params(policy)
    lr: Scale = LR
    if learned_lr:  # Meta-SGD: per-parameter step sizes
        g = torch.Generator().manual_seed(9)
        lr = {k: 0.1 + 0.4 * torch.rand(v.shape, generator=g, dtype=torch.float64)
              for k, v in theta.items()}
    update = vpg(policy, lr)
    phi, jacobians, state = theta, [], update.init(theta, N)
    for traj, adv in SUPPORTS[:steps]:
        phi, state, jac = update.step_with_jacobian(phi, traj, adv, state, first_order=False)
        assert jac is not None
        jacobians.extend(jac)
    phi_old = {k: v.detach() for k, v in phi.items()}

    # reference: Hessian-vector products of the KL, differentiated through the adaptation
    kl = kl_through_adaptation(policy, theta, phi_old, steps, lr)
    grad_kl = torch.autograd.grad(kl, list(theta.values()), create_graph=True)
    flat_grad = torch.cat([g.reshape(-1) for g in grad_kl])
    assert float(flat_grad.detach().abs().max()) < 1e-12  # the KL is minimal at theta_old

    leaf = {k: v.clone().requires_grad_(True) for k, v in phi_old.items()}
    with torch.no_grad():
        old = trajectory_distribution(policy, QUERY, phi_old)
    fisher = KLHessian(mean_kl(old, trajectory_distribution(policy, QUERY, leaf),
                               QUERY.masks).mean(), leaf)
    product = pullback_metric(fisher, jacobians, N)

    g = torch.Generator().manual_seed(5)
    for _ in range(3):
        v = torch.randn(flat_grad.numel(), generator=g, dtype=torch.float64)
        reference = torch.autograd.grad(flat_grad @ v, list(theta.values()), retain_graph=True)
        expected = torch.cat([h.reshape(-1) for h in reference])
        got = params_to_flat(product(flat_to_params(v, theta)))
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)
        assert float(v @ got) > 0  # positive definite, as a metric must be
