"""Inner optimizers: known answers on a quadratic, state round trips, and meta-gradients
through every optimizer against central finite differences (float64).

The quadratic ``L_i(p) = 1/2 sum ||p - c_i||^2`` has gradient ``p - c_i``, so SGD with step
``a`` (per entry, for Meta-SGD) gives ``c_i + (1 - a)^k (theta - c_i)`` after ``k`` steps
and Adam's steps are computed by hand (Kingma & Ba 2015, Algorithm 1) and by torch.optim.
"""

from __future__ import annotations

import io
import math

import pytest
import torch

from adaptrl.adaptation.inner_optimizers import SGD, Adam, InnerOptimizer, KroneckerSGD, MetaSGD
from adaptrl.adaptation.inner_update import InnerUpdate
from adaptrl.adaptation.objectives import PolicyGradientObjective
from adaptrl.models.functional import Params, named_params
from adaptrl.models.policies import GaussianMLPPolicy
from adaptrl.rollouts.losses import importance_loss
from adaptrl.rollouts.sampler import trajectory_distribution
from adaptrl.rollouts.trajectories import Trajectories

N = 3  # tasks


def quadratic(theta: Params, centers: Params) -> Params:
    """The per-task gradient ``p - c_i`` of the quadratic."""
    return {k: theta[k] - centers[k] for k in theta}


def _problem(seed: int = 0) -> tuple[Params, Params]:
    g = torch.Generator().manual_seed(seed)
    theta = {"layer.weight": torch.randn(N, 3, 2, generator=g, dtype=torch.float64),
             "layer.bias": torch.randn(N, 3, generator=g, dtype=torch.float64)}
    centers = {k: torch.randn(v.shape, generator=g, dtype=torch.float64)
               for k, v in theta.items()}
    return theta, centers


def _run(optimizer: InnerOptimizer, theta: Params, centers: Params, steps: int) -> Params:
    state = optimizer.init(theta)
    for _ in range(steps):
        theta, state = optimizer.step(theta, quadratic(theta, centers), state)
    return theta


# -- known answers ----------------------------------------------------------------------
@pytest.mark.parametrize("steps", [1, 3])
def test_sgd_and_metasgd_on_a_quadratic(steps: int) -> None:
    theta, centers = _problem()
    phi = _run(SGD(0.3), theta, centers, steps)
    for k in theta:
        torch.testing.assert_close(phi[k], centers[k] + 0.7 ** steps * (theta[k] - centers[k]))
    shared = {k: v[0] for k, v in theta.items()}
    learned = MetaSGD(shared, 0.3)
    with torch.no_grad():
        for a in learned.alphas:
            a.copy_(torch.rand(a.shape, generator=torch.Generator().manual_seed(1)))
    alpha = learned.alpha()
    phi = _run(learned, theta, centers, steps)
    for k in theta:
        expected = centers[k] + (1 - alpha[k]) ** steps * (theta[k] - centers[k])
        torch.testing.assert_close(phi[k], expected)  # alpha broadcasts over the tasks
    assert learned.init(theta) == {} and SGD(0.3).init(theta) == {}


def test_kronecker_step_is_alpha_times_l_g_r() -> None:
    theta, centers = _problem()
    shared = {k: v[0] for k, v in theta.items()}
    curved = KroneckerSGD(shared, 0.5)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for m in curved.transform.parameters():
            m.copy_(torch.randn(m.shape, generator=g, dtype=torch.float64))
    left, right = curved.transform.left[0], curved.transform.right[0]
    phi = _run(curved, theta, centers, 1)
    grad = quadratic(theta, centers)
    w, b = "layer.weight", "layer.bias"
    torch.testing.assert_close(phi[w], theta[w] - 0.5 * left @ grad[w] @ right)
    torch.testing.assert_close(phi[b], theta[b] - 0.5 * grad[b] @ left.T)  # L g per task


def _adam_by_hand(theta: float, center: float, lr: float, b1: float, b2: float, eps: float,
                  steps: int) -> float:
    m = v = 0.0
    for t in range(1, steps + 1):
        grad = theta - center
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad * grad
        theta -= lr * (m / (1 - b1 ** t)) / (math.sqrt(v / (1 - b2 ** t)) + eps)
    return theta


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_adam_on_a_quadratic_by_hand_and_by_torch_optim(steps: int) -> None:
    theta, centers = _problem()
    adam = Adam(0.1, betas=(0.8, 0.95), eps=1e-3)
    phi = _run(adam, theta, centers, steps)
    for k in theta:
        for i in range(theta[k].numel()):  # every task and entry by hand
            expected = _adam_by_hand(float(theta[k].flatten()[i]), float(centers[k].flatten()[i]),
                                     0.1, 0.8, 0.95, 1e-3, steps)
            assert float(phi[k].flatten()[i]) == pytest.approx(expected, rel=1e-12, abs=1e-12)
        # and torch.optim.Adam, per task, on the same loss
        for task in range(N):
            p = theta[k][task].clone().requires_grad_(True)
            opt = torch.optim.Adam([p], lr=0.1, betas=(0.8, 0.95), eps=1e-3)
            for _ in range(steps):
                opt.zero_grad()
                (0.5 * (p - centers[k][task]).pow(2).sum()).backward()
                opt.step()
            torch.testing.assert_close(phi[k][task], p.detach())


def test_adam_first_step_is_lr_times_the_sign_and_rejects_bad_settings() -> None:
    theta, centers = _problem()
    phi = _run(Adam(0.01), theta, centers, 1)
    for k in theta:
        torch.testing.assert_close(phi[k], theta[k] - 0.01 * torch.sign(theta[k] - centers[k]),
                                   rtol=0, atol=1e-8)
    for bad in ({"lr": 0.0}, {"lr": 0.1, "betas": (0.9, 1.0)}, {"lr": 0.1, "eps": 0.0}):
        with pytest.raises(ValueError):
            Adam(**bad)  # type: ignore[arg-type]
    assert Adam(0.1).with_lr(0.5) == Adam(0.5)


# -- state -------------------------------------------------------------------------------
def test_adam_state_round_trips_through_a_checkpoint() -> None:
    theta, centers = _problem()
    adam = Adam(0.1)
    state = adam.init(theta)
    assert int(state["step"]) == 0 and set(state) == {"step", *(f"{m}.layer.{p}" for m in "mv"
                                                              for p in ("weight", "bias"))}
    assert all(bool((v == 0).all()) for v in state.values())
    phi, state = adam.step(theta, quadratic(theta, centers), state)
    assert int(state["step"]) == 1 and state["m.layer.weight"].shape == (N, 3, 2)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    a, state_a = adam.step(phi, quadratic(phi, centers), state)
    b, state_b = adam.step(phi, quadratic(phi, centers), loaded)
    for k in a:
        assert torch.equal(a[k], b[k])
    for k in state_a:
        assert torch.equal(state_a[k], state_b[k])
    # the state matters: a fresh one gives a different second step
    c, _ = adam.step(phi, quadratic(phi, centers), adam.init(phi))
    assert not torch.allclose(a["layer.weight"], c["layer.weight"])


def test_detached_optimizers_carry_no_graph_to_their_meta_parameters() -> None:
    theta, centers = _problem()
    shared = {k: v[0] for k, v in theta.items()}
    for learned in (MetaSGD(shared, 0.1), KroneckerSGD(shared, 0.1)):
        assert learned.meta_parameters()
        live = _run(learned, theta, centers, 1)
        frozen = _run(learned.detached(), theta, centers, 1)
        assert all(v.requires_grad for v in live.values())
        assert not any(v.requires_grad for v in frozen.values())
        for k in live:
            assert torch.equal(live[k].detach(), frozen[k])
        assert learned.detached().meta_parameters() == []
    for fixed in (SGD(0.1), Adam(0.1)):
        assert fixed.meta_parameters() == [] and fixed.detached() is fixed


# -- meta-gradients through each optimizer ---------------------------------------------
T, E = 4, 3


def _traj(seed: int) -> tuple[Trajectories, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(T, N, E, 2, generator=g, dtype=torch.float64)
    actions = torch.randn(T, N, E, 2, generator=g, dtype=torch.float64)
    masks = torch.ones(T, N, E, dtype=torch.float64)
    log_probs = 0.3 * torch.randn(T, N, E, generator=g, dtype=torch.float64) - 2.0
    traj = Trajectories(obs, actions, torch.zeros(T, N, E, dtype=torch.float64), masks,
                        torch.zeros(T, N, E, dtype=torch.bool), log_probs)
    return traj, torch.randn(T, N, E, generator=g, dtype=torch.float64)


SUPPORTS = [_traj(1), _traj(2)]
QUERY, QUERY_ADV = _traj(3)


def _policy() -> GaussianMLPPolicy:
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(2, 2, hidden=(4,), activation="tanh").double()
    with torch.no_grad():
        for p in policy.parameters():
            p.copy_(0.5 * torch.randn_like(p))
    return policy


def _optimizer(name: str, params: Params) -> InnerOptimizer:
    g = torch.Generator().manual_seed(7)
    if name == "sgd":
        return SGD(0.3)
    if name == "adam":
        return Adam(0.05, betas=(0.5, 0.9), eps=0.05)  # a large eps: a curved, smooth step
    learned = MetaSGD(params, 0.2) if name == "metasgd" else KroneckerSGD(params, 0.2)
    with torch.no_grad():
        for m in learned.parameters():
            m.add_(0.1 * torch.randn(m.shape, generator=g, dtype=torch.float64))
    return learned


def shift(params: list[torch.nn.Parameter], direction: list[torch.Tensor], eps: float) -> None:
    with torch.no_grad():
        for p, d in zip(params, direction):
            p.add_(eps * d)


@pytest.mark.parametrize("name,steps", [("sgd", 2), ("metasgd", 2), ("kronecker", 2),
                                        ("adam", 1), ("adam", 2)])
def test_meta_gradient_through_the_optimizer_matches_finite_differences(name: str,
                                                                        steps: int) -> None:
    """d L_query(phi(theta, meta)) / d(theta, meta) through second-order inner steps (the
    optimizer's state carried between them), against central differences along random
    directions of all meta-parameters."""
    policy = _policy()
    theta = named_params(policy)
    optimizer = _optimizer(name, theta)
    update = InnerUpdate(PolicyGradientObjective(policy), optimizer)
    meta = list(theta.values()) + optimizer.meta_parameters()

    def outer() -> torch.Tensor:
        params, state = named_params(policy), update.init(named_params(policy), N)
        for traj, adv in SUPPORTS[:steps]:
            params, state = update.step(params, traj, adv, state, first_order=False)
        dist = trajectory_distribution(policy, QUERY, params)
        return importance_loss(dist, QUERY, QUERY_ADV).mean()

    grads = torch.autograd.grad(outer(), meta)
    g = torch.Generator().manual_seed(11)
    eps = 1e-6
    for _ in range(3):
        direction = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in meta]
        analytic = sum(float((gr * d).sum()) for gr, d in zip(grads, direction))
        shift(meta, direction, eps)
        hi = float(outer().detach())
        shift(meta, direction, -2 * eps)
        lo = float(outer().detach())
        shift(meta, direction, eps)
        assert analytic == pytest.approx((hi - lo) / (2 * eps), rel=1e-6, abs=1e-9)
    if optimizer.meta_parameters():  # the meta-parameters get a gradient of their own
        assert any(float(gr.abs().sum()) > 0 for gr in grads[len(theta):])
