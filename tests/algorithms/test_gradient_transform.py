"""Meta-SGD's learned gradient transform (Kronecker-factored, Meta-Curvature style).

Known answers for ``T(G) = L G R`` (and its transpose), identity initialisation equal to
plain Meta-SGD, the step's Jacobian through the transform, meta-gradients reaching the
transform, checkpoints and config validation.
"""

from __future__ import annotations

import copy
import io
from typing import Any

import pytest
import torch

from adaptrl.adaptation.learned_step import (KroneckerGradientTransform, PerParameterStepSize,
                                             make_gradient_transform)
from adaptrl.adaptation.policy_gradient import PolicyGradientAdapter
from adaptrl.adaptation.sgd import TransformedStep, sgd_step_with_jacobian
from adaptrl.algorithms.maml import MAML, MAMLConfig
from adaptrl.algorithms.registry import algorithm_spec
from adaptrl.experiment.config import ConfigError, validate_config
from adaptrl.models.functional import Params, detach_params, named_params
from adaptrl.rollouts.sampler import rollout
from adaptrl.rollouts.trajectories import Trajectories
from adaptrl.tasks import make

FAMILY = make("navigation-2d", horizon=10)
TINY = {"meta_batch_size": 3, "episodes_per_task": 3,
        "policy": {"hidden": [8, 8], "activation": "tanh"}}


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _learner(transform: str = "kronecker", seed: int = 0, **extra: Any) -> MAML:
    spec = algorithm_spec("metasgd")
    cfg = spec.config_cls.model_validate({"name": "metasgd", "gradient_transform": transform,
                                          **TINY, **extra})
    torch.manual_seed(seed)
    return spec.build(FAMILY, cfg, _generator(seed), torch.device("cpu"))


def _support(policy: torch.nn.Module, seed: int, n: int = 3) -> Trajectories:
    env = FAMILY.make_env(FAMILY.sample(n, "train", _generator(seed)), 4, "cpu")
    return rollout(env, policy, None, _generator(seed + 1))


def _perturb(transform: KroneckerGradientTransform, seed: int, scale: float = 0.3) -> None:
    g = _generator(seed)
    with torch.no_grad():
        for m in transform.parameters():
            m.add_(scale * torch.randn(m.shape, generator=g))


# -- the transform itself ---------------------------------------------------------------
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
    step = TransformedStep(0.5, t.functional, weights)
    adj = step.adjoint(one)
    # L^T W = [[1, 6], [2, 8]], then R^T swaps its columns; 0.5 is the step size
    assert torch.equal(adj["net.weight"], torch.tensor([[3.0, 0.5], [4.0, 1.0]]))
    assert torch.equal(adj["net.bias"], torch.tensor([2.0, 3.0]))    # 0.5 L^T [1, 1]
    assert torch.equal(adj["log_std"], torch.tensor([2.0, 1.0]))     # 0.5 M^T [1, 2]


def test_transform_shapes_follow_the_policy_layers() -> None:
    policy = MAMLConfig(**TINY).policy.build(FAMILY.observation_space, FAMILY.action_space)
    t = KroneckerGradientTransform(named_params(policy))
    shapes = {k: tuple(v.shape) for k, v in named_params(t).items()}
    # mean MLP 2 -> 8 -> 8 -> 2: L [out, out], R [in, in] per layer; log_std [2] a full 2 x 2
    assert shapes == {"left.0": (8, 8), "left.1": (8, 8), "left.2": (2, 2),
                      "right.0": (2, 2), "right.1": (8, 8), "right.2": (8, 8),
                      "full.0": (2, 2)}
    assert t.summary() == {"transform_dist_mean": 0.0, "transform_dist_max": 0.0}


def test_identity_transform_reproduces_the_metasgd_step_exactly() -> None:
    policy = MAMLConfig(**TINY).policy.build(FAMILY.observation_space, FAMILY.action_space)
    adapter = PolicyGradientAdapter(policy)
    support = _support(policy, seed=0)
    adv = adapter.advantages(support)
    g = _generator(3)
    theta = named_params(policy)
    alpha = {k: 0.1 * torch.rand(v.shape, generator=g) for k, v in theta.items()}
    t = KroneckerGradientTransform(theta)
    plain = adapter.step(theta, support, adv, alpha, first_order=False)
    transformed = adapter.step(theta, support, adv,
                               TransformedStep(alpha, t.functional, named_params(t)),
                               first_order=False)
    for k in plain:
        assert torch.equal(plain[k], transformed[k]), k
    # and a Meta-SGD learner with an (untrained) transform adapts exactly as one without
    with_t, without = _learner("kronecker"), _learner("none")
    supports = [(support, adv)]
    a = with_t.inner.adapt(named_params(with_t.policy), supports, with_t.inner_lr,
                           first_order=False, differentiable=True)
    b = without.inner.adapt(named_params(without.policy), supports, without.inner_lr,
                            first_order=False, differentiable=True)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_step_jacobian_through_the_transform_matches_autograd() -> None:
    """``J = I - alpha T H``: ``J^T w`` equals autograd's through the step, ``J v`` its adjoint."""
    policy = MAMLConfig(**TINY).policy.build(FAMILY.observation_space, FAMILY.action_space)
    adapter = PolicyGradientAdapter(policy)
    support = _support(policy, seed=0)
    adv = adapter.advantages(support)
    n = support.num_tasks
    theta = {k: v.detach().expand(n, *v.shape).clone().requires_grad_(True)
             for k, v in named_params(policy).items()}
    t = KroneckerGradientTransform(named_params(policy))
    _perturb(t, seed=4)
    step = TransformedStep(0.2, t.functional, detach_params(named_params(t)))
    phi, jac = sgd_step_with_jacobian(theta, lambda p: adapter.loss(p, support, adv), step, n,
                                      batched=True, first_order=False)
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


# -- meta-learning the transform ----------------------------------------------------------
@pytest.mark.parametrize("outer", ["trpo", "ppo"])
def test_transform_gets_meta_gradients_and_changes(outer: str) -> None:
    extra = {"outer": outer, "ppo": {"epochs": 2, "minibatches": 1}} if outer == "ppo" else {}
    learner = _learner("kronecker", **extra)
    assert learner.step_size is not None and learner.step_size.transform is not None
    transform = learner.step_size.transform
    ids = {id(p) for p in learner.meta_parameters()}
    assert all(id(p) in ids for p in transform.parameters())
    # d L(phi(theta, alpha, T)) / dT is nonzero for every matrix
    support, query = _support(learner.policy, seed=0), _support(learner.policy, seed=5)
    supports = [(support, learner.adapter.advantages(support))]
    phi = learner.inner.adapt(named_params(learner.policy), supports, learner.inner_lr,
                              first_order=False, differentiable=True)
    loss = learner.adapter.loss(phi, query, learner.adapter.advantages(query)).sum()
    grads = torch.autograd.grad(loss, list(transform.parameters()))
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)

    before = [p.detach().clone() for p in transform.parameters()]
    metrics = learner.meta_update(FAMILY.sample(3, "train", _generator(1)))
    if outer == "trpo":
        assert metrics["trpo/accepted"] == 1.0
    assert metrics["transform_dist_mean"] == 0.0       # logged at the start of the update
    changed = [not torch.equal(b, p.detach()) for b, p in zip(before, transform.parameters())]
    assert all(changed)
    assert transform.summary()["transform_dist_max"] > 0


# -- evaluation and checkpoints -----------------------------------------------------------
def test_agent_and_checkpoint_round_trip_adapt_identically() -> None:
    trained = _learner("kronecker", seed=0)
    trained.meta_update(FAMILY.sample(3, "train", _generator(1)))
    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert any(k.startswith("transform.") for k in state["step_size"])

    support = _support(trained.policy, seed=7)
    agent = trained.agent([0.5, 0.25])
    step = agent.step_sizes[0]
    assert len(agent.step_sizes) == 1 and isinstance(step, TransformedStep)
    assert not any(w.requires_grad for w in step.weights.values())
    adapted = agent.adapt(agent.initial_params(), support, 0)
    # the agent's step is the learned one: alpha (.) T(g), as the learner's own inner loop
    own = trained.inner.adapt(named_params(trained.policy),
                              [(support, trained.adapter.advantages(support))],
                              trained.inner_lr, first_order=True, differentiable=False)
    for k in adapted:
        assert torch.equal(adapted[k], own[k]), k

    fresh = _learner("kronecker", seed=1)
    fresh_agent = fresh.agent()
    before = fresh_agent.adapt(fresh_agent.initial_params(), support, 0)
    assert any(not torch.equal(before[k], adapted[k]) for k in adapted)
    fresh.load_state_dict(copy.deepcopy(state))
    restored = fresh.agent().adapt(fresh.agent().initial_params(), support, 0)
    for k in adapted:
        assert torch.equal(restored[k], adapted[k]), k


# -- configuration --------------------------------------------------------------------------
def test_config_rejects_an_unknown_gradient_transform(tiny_config: dict[str, Any]) -> None:
    cfg = copy.deepcopy(tiny_config)
    cfg["algorithm"] = {"name": "metasgd", "gradient_transform": "diagonal", **TINY}
    with pytest.raises(ConfigError, match=r"algorithm\.gradient_transform.*'none'.*'kronecker'"):
        validate_config(cfg)
    cfg["algorithm"]["gradient_transform"] = "kronecker"
    _, algo = validate_config(cfg)
    assert algo.gradient_transform == "kronecker"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="gradient_transform must be one of"):
        make_gradient_transform("diagonal", {"w": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match="gradient_transform needs a learned step size"):
        MAML(FAMILY, MAMLConfig(**TINY), _generator(), torch.device("cpu"),
             gradient_transform="kronecker")


def test_step_size_without_transform_is_unchanged() -> None:
    """Plain Meta-SGD: the step size is still the dict of alphas, no transform keys."""
    params: Params = {"w": torch.zeros(3, 2), "b": torch.zeros(3)}
    step = PerParameterStepSize(params, 0.1)
    assert isinstance(step(), dict) and set(step()) == {"w", "b"}
    assert set(step.state_dict()) == {"alphas.0", "alphas.1"}
    assert "transform_dist_mean" not in step.summary()
