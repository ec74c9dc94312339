"""Meta-Curvature's Kronecker-factored gradient transform and the KroneckerSGD step.

Known answers for ``T(G) = L G R`` (and its transpose), shapes following the policy's
layers, identity initialisation equal to plain Meta-SGD, and the step's Jacobian through
the transform against autograd.
"""

from __future__ import annotations

import torch

from adaptrl.adaptation.inner_optimizers import (
    KroneckerSGD,
    MetaSGD,
    PreconditionedSGD,
    StepJacobian,
)
from adaptrl.adaptation.inner_update import InnerUpdate
from adaptrl.adaptation.kronecker import KroneckerGradientTransform
from adaptrl.adaptation.objectives import PolicyGradientObjective
from adaptrl.models.functional import named_params
from adaptrl.models.policies import PolicyConfig
from adaptrl.rollouts.sampler import rollout
from adaptrl.rollouts.trajectories import Trajectories
from adaptrl.tasks import make

FAMILY = make("navigation-2d", horizon=10)
POLICY = PolicyConfig(hidden=[8, 8], activation="tanh")


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _policy() -> torch.nn.Module:
    torch.manual_seed(0)
    return POLICY.build(FAMILY.observation_space, FAMILY.action_space)


def _support(policy: torch.nn.Module, seed: int, n: int = 3) -> Trajectories:
    env = FAMILY.make_env(FAMILY.sample(n, "train", _generator(seed)), 4, "cpu")
    return rollout(env, policy, None, _generator(seed + 1))


def _perturb(module: torch.nn.Module, seed: int, scale: float = 0.3) -> None:
    g = _generator(seed)
    with torch.no_grad():
        for m in module.parameters():
            m.add_(scale * torch.randn(m.shape, generator=g))


def test_kronecker_transform_known_answer_batched_over_tasks() -> None:
    """Hand-computed L G R, L g and M v, for two tasks at once (task 2 = 2 x task 1)."""
    params = {"net.weight": torch.zeros(2, 2), "net.bias": torch.zeros(2),
              "log_std": torch.zeros(2)}
    t = KroneckerGradientTransform(params)
    assert t.layers == [("net.weight", "net.bias")]
    assert [name for name, _ in t.others] == ["log_std"]
    weights = {"left.0": torch.tensor([[1.0, 2.0], [3.0, 4.0]]),
               "right.0": torch.tensor([[0.0, 1.0], [1.0, 0.0]]),    # swaps columns
               "full.0": torch.tensor([[2.0, 0.0], [1.0, 1.0]])}
    one = {"net.weight": torch.tensor([[1.0, 0.0], [0.0, 2.0]]),
           "net.bias": torch.tensor([1.0, 1.0]), "log_std": torch.tensor([1.0, 2.0])}
    grads = {k: torch.stack([v, 2 * v]) for k, v in one.items()}     # [tasks=2, ...]
    out = t.functional(weights, grads)
    # L G = [[1, 4], [3, 8]]; (L G) R swaps its columns
    expected = {"net.weight": torch.tensor([[4.0, 1.0], [8.0, 3.0]]),
                "net.bias": torch.tensor([3.0, 7.0]),                # L [1, 1]
                "log_std": torch.tensor([2.0, 3.0])}                 # M [1, 2]
    for k, v in expected.items():
        assert torch.equal(out[k], torch.stack([v, 2 * v])), k
    # the same map on unbatched gradients, and its transpose L^T W R^T, L^T w, M^T v
    assert torch.equal(t.functional(weights, one)["net.weight"], expected["net.weight"])
    step = PreconditionedSGD(0.5, t.functional, weights)
    adj = step.precondition_adjoint(one)
    # L^T W = [[1, 6], [2, 8]], then R^T swaps its columns; 0.5 is the step size
    assert torch.equal(adj["net.weight"], torch.tensor([[3.0, 0.5], [4.0, 1.0]]))
    assert torch.equal(adj["net.bias"], torch.tensor([2.0, 3.0]))    # 0.5 L^T [1, 1]
    assert torch.equal(adj["log_std"], torch.tensor([2.0, 1.0]))     # 0.5 M^T [1, 2]
    # and the step itself: phi = theta - 0.5 T(g)
    theta = {k: torch.ones_like(v) for k, v in grads.items()}
    phi, state = step.step(theta, grads, {})
    assert state == {}
    for k, v in expected.items():
        assert torch.equal(phi[k], 1 - 0.5 * torch.stack([v, 2 * v])), k


def test_transform_shapes_follow_the_policy_layers() -> None:
    t = KroneckerGradientTransform(named_params(_policy()))
    shapes = {k: tuple(v.shape) for k, v in named_params(t).items()}
    # mean MLP 2 -> 8 -> 8 -> 2: L [out, out], R [in, in] per layer; log_std [2] a full 2 x 2
    assert shapes == {"left.0": (8, 8), "left.1": (8, 8), "left.2": (2, 2),
                      "right.0": (2, 2), "right.1": (8, 8), "right.2": (8, 8),
                      "full.0": (2, 2)}
    assert t.summary() == {"transform_dist_mean": 0.0, "transform_dist_max": 0.0}


def test_identity_transform_reproduces_the_metasgd_step_exactly() -> None:
    policy = _policy()
    objective = PolicyGradientObjective(policy)
    support = _support(policy, seed=0)
    adv = objective.prepare(support)
    theta = named_params(policy)
    plain, curved = MetaSGD(theta, 0.1), KroneckerSGD(theta, 0.1)
    _perturb(plain, seed=3, scale=0.05)
    curved.alphas.load_state_dict(plain.alphas.state_dict())
    a, _ = InnerUpdate(objective, plain).step(theta, support, adv, {}, first_order=False)
    b, _ = InnerUpdate(objective, curved).step(theta, support, adv, {}, first_order=False)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert set(curved.state_dict()) == {*plain.state_dict(), *(
        f"transform.{k}" for k in curved.transform.state_dict())}


def test_step_jacobian_through_the_transform_matches_autograd() -> None:
    """``J = I - alpha T H``: ``J^T w`` equals autograd's through the step, ``J v`` its adjoint."""
    policy = _policy()
    objective = PolicyGradientObjective(policy)
    support = _support(policy, seed=0)
    adv = objective.prepare(support)
    n = support.num_tasks
    theta = {k: v.detach().expand(n, *v.shape).clone().requires_grad_(True)
             for k, v in named_params(policy).items()}
    curved = KroneckerSGD(named_params(policy), 0.2)
    _perturb(curved.transform, seed=4)
    update = InnerUpdate(objective, curved.detached())
    phi, _, jacobians = update.step_with_jacobian(theta, support, adv, {}, first_order=False)
    assert jacobians is not None and len(jacobians) == 1
    jac = jacobians[0]
    assert isinstance(jac, StepJacobian)
    g = _generator(5)
    w = {k: torch.randn(v.shape, generator=g) for k, v in phi.items()}
    v = {k: torch.randn(x.shape, generator=g) for k, x in phi.items()}
    keys = list(theta)
    by_autograd = torch.autograd.grad(sum((phi[k] * w[k]).sum() for k in keys),
                                      [theta[k] for k in keys], retain_graph=True)
    jtw = jac.vjp(w)
    for k, expected in zip(keys, by_autograd):
        torch.testing.assert_close(jtw[k], expected, rtol=1e-4, atol=1e-6)
    jv = jac.jvp(v)
    lhs = sum((jv[k] * w[k]).sum() for k in keys)
    rhs = sum((v[k] * jtw[k]).sum() for k in keys)
    torch.testing.assert_close(lhs, rhs, rtol=1e-4, atol=1e-5)
    # a first-order step's Jacobian is the identity
    _, _, first = update.step_with_jacobian(theta, support, adv, {}, first_order=True)
    assert first is not None and first[0].vjp(w) is w and first[0].jvp(v) is v
