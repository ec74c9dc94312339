"""ANIL: MAML whose inner loop adapts only the head (the example of
docs/adding-an-algorithm.md)."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from adaptrl.algorithms.anil import ANILConfig, HeadSGD, build_anil, head_parameters
from adaptrl.algorithms.registry import algorithm_spec
from adaptrl.models.functional import expand_params, named_params
from adaptrl.tasks.navigation import Navigation2D

FAMILY = Navigation2D(horizon=10)
TINY = {"meta_batch_size": 3, "episodes_per_task": 4,
        "policy": {"hidden": [8, 8], "activation": "tanh"}}
CPU = torch.device("cpu")


def learner(**over: object) -> object:
    return build_anil(FAMILY, ANILConfig(**{**TINY, **over}), torch.Generator().manual_seed(0),
                      CPU)


def test_the_head_is_every_networks_last_layer() -> None:
    names = ["log_std", "mean.layers.0.weight", "mean.layers.0.bias", "mean.layers.1.weight",
             "mean.layers.1.bias", "value.layers.0.weight", "value.layers.3.bias"]
    assert head_parameters(names) == {"mean.layers.1.weight", "mean.layers.1.bias",
                                      "value.layers.3.bias"}
    with pytest.raises(ValueError, match="MLP head"):
        head_parameters(["log_std", "w"])


def test_an_inner_step_moves_the_head_by_minus_lr_times_its_gradient_and_nothing_else() -> None:
    alg = learner()
    tasks = FAMILY.sample(3, "train", torch.Generator().manual_seed(1))
    theta = named_params(alg.policy)
    episodes = alg.inner.sample(tasks, theta, 1, query=False)
    traj, data = episodes.supports[0]
    phi = episodes.params
    head = head_parameters(list(theta))
    per_task = {k: v.detach().requires_grad_(True)
                for k, v in expand_params(theta, 3).items()}
    loss = alg.update.objective.loss(per_task, traj, data).sum()
    grads = dict(zip(per_task, torch.autograd.grad(loss, list(per_task.values())),
                     strict=True))
    lr = alg.config.inner.lr
    for k, v in theta.items():
        expected = v.detach() - lr * grads[k] if k in head else v.detach().expand_as(phi[k])
        assert torch.allclose(phi[k], expected, atol=1e-6), k
    assert any(not torch.equal(phi[k], theta[k].detach().expand_as(phi[k])) for k in head)


def test_the_outer_step_meta_learns_the_body_too() -> None:
    alg = learner()
    before = {k: v.detach().clone() for k, v in named_params(alg.policy).items()}
    alg.meta_update(FAMILY.sample(3, "train", torch.Generator().manual_seed(2)))
    body = [k for k in before if k not in head_parameters(list(before))]
    assert any(not torch.equal(before[k], named_params(alg.policy)[k]) for k in body)


def test_an_evaluation_schedule_keeps_the_body_fixed() -> None:
    agent = learner().agent([0.5, 0.25])
    assert [type(o) for o in agent.schedule] == [HeadSGD, HeadSGD]
    assert [o.lr for o in agent.schedule] == [0.5, 0.25]
    assert agent.schedule[0].head == head_parameters(list(agent.params))


def test_anil_is_registered_with_the_gradient_family_and_refuses_an_adam_inner_loop() -> None:
    spec = algorithm_spec("anil")
    assert spec.unit == "gradient_steps" and "pretrained" in spec.baselines
    with pytest.raises(ValidationError, match="inner.optimizer"):
        ANILConfig(inner={"optimizer": "adam"})
