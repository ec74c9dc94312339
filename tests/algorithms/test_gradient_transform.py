"""Meta-SGD with a learned gradient transform (Meta-Curvature) as a learner.

Meta-gradients reaching the transform under both outer steps, the learner's inner loop
equal to plain Meta-SGD's at the identity, checkpoints and the agent, config validation.
The transform and its step on their own: tests/adaptation/test_kronecker.py.
"""

from __future__ import annotations

import copy
import io
from typing import Any

import pytest
import torch

from adaptrl.adaptation.inner_optimizers import (
    KroneckerSGD,
    MetaSGD,
    PreconditionedSGD,
    learned_sgd,
)
from adaptrl.algorithms.maml import MAML
from adaptrl.algorithms.registry import algorithm_spec
from adaptrl.experiment.config import ConfigError, validate_config
from adaptrl.models.functional import Params, named_params
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


def test_learner_with_an_identity_transform_adapts_as_metasgd() -> None:
    with_t, without = _learner("kronecker"), _learner("none")
    assert isinstance(with_t.update.optimizer, KroneckerSGD)
    assert isinstance(without.update.optimizer, MetaSGD)
    support = _support(with_t.policy, seed=0)
    supports = [(support, with_t.update.prepare(support))]
    a = with_t.replay(supports, differentiable=True)
    b = without.replay(supports, differentiable=True)
    for k in a:
        assert torch.equal(a[k], b[k]), k


# -- meta-learning the transform ----------------------------------------------------------
@pytest.mark.parametrize("outer", ["trpo", "ppo"])
def test_transform_gets_meta_gradients_and_changes(outer: str) -> None:
    extra = {"outer": outer, "ppo": {"epochs": 2, "minibatches": 1}} if outer == "ppo" else {}
    learner = _learner("kronecker", **extra)
    assert isinstance(learner.update.optimizer, KroneckerSGD)
    transform = learner.update.optimizer.transform
    ids = {id(p) for p in learner.meta_parameters()}
    assert all(id(p) in ids for p in transform.parameters())
    # d L(phi(theta, alpha, T)) / dT is nonzero for every matrix
    support, query = _support(learner.policy, seed=0), _support(learner.policy, seed=5)
    supports = [(support, learner.update.prepare(support))]
    phi = learner.replay(supports, differentiable=True)
    objective = learner.update.objective
    loss = objective.loss(phi, query, objective.prepare(query)).sum()
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
    step = agent.schedule[0]
    assert len(agent.schedule) == 1 and isinstance(step, PreconditionedSGD)
    assert not any(w.requires_grad for w in step.weights.values())
    assert isinstance(step.lr, dict) and not any(a.requires_grad for a in step.lr.values())
    adapted = agent.adapt(agent.initial_params(), support, 0)
    # the agent's step is the learned one: alpha (.) T(g), as the learner's own inner loop
    own = trained.replay([(support, trained.update.prepare(support))], differentiable=False)
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
        learned_sgd({"w": torch.zeros(2, 2)}, 0.1, "diagonal")  # type: ignore[arg-type]


def test_metasgd_without_transform_keeps_its_checkpoint_keys() -> None:
    """Plain Meta-SGD: alphas only (the checkpoint layout of earlier runs), no transform."""
    params: Params = {"w": torch.zeros(3, 2), "b": torch.zeros(3)}
    step = learned_sgd(params, 0.1)
    assert isinstance(step, MetaSGD) and set(step.alpha()) == {"w", "b"}
    assert set(step.state_dict()) == {"alphas.0", "alphas.1"}
    assert "transform_dist_mean" not in step.summary()
    learner = _learner("none")
    assert set(learner.state_dict()["step_size"]) == set(
        f"alphas.{i}" for i in range(len(named_params(learner.policy))))
    assert isinstance(learner, MAML)
