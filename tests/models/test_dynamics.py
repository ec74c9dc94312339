"""The dynamics model (models/dynamics.py): it fits a known linear system, its normaliser
reproduces the data's statistics, per-task parameters give per-task predictions, discrete
actions enter one-hot, and the Gaussian head / ensemble options train."""

from __future__ import annotations

import pytest
import torch

from adaptrl.models.dynamics import DynamicsModel
from adaptrl.models.functional import expand_params, named_params

A = torch.tensor([[0.9, 0.2], [-0.1, 0.95]])
B = torch.tensor([[0.0], [0.5]])


def linear_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    s = 3 * torch.randn(n, 2, generator=gen) + torch.tensor([1.0, -2.0])
    a = 2 * torch.rand(n, 1, generator=gen) - 1
    return s, a, s @ A.T + a @ B.T


def fit(model: DynamicsModel, s: torch.Tensor, a: torch.Tensor, s2: torch.Tensor,
        steps: int = 1500) -> None:
    model.fit_normalizer(s, a, s2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        opt.zero_grad()
        model.loss(None, s.unsqueeze(0), a.unsqueeze(0), s2.unsqueeze(0)).sum().backward()
        opt.step()


def test_model_fits_a_known_linear_system() -> None:
    torch.manual_seed(0)
    model = DynamicsModel(2, action_dim=1, hidden=(64, 64))
    fit(model, *linear_data(2000, 0))
    s, a, s2 = linear_data(500, 1)  # fresh states from the same distribution
    with torch.no_grad():
        err = (model.predict(s, a) - s2).norm(dim=-1)
        scale = (s2 - s).norm(dim=-1)
    assert float(err.mean()) < 0.02 * float(scale.mean()), float(err.mean())
    # the change, not the state: a zero network predicts the mean change exactly
    zero = {k: torch.zeros_like(v) for k, v in named_params(model).items()}
    assert torch.allclose(model.predict(s, a, zero) - s, model.delta_mean.expand_as(s),
                          atol=1e-5)


def test_normalizer_statistics() -> None:
    model = DynamicsModel(2, action_dim=1)
    s, a, s2 = linear_data(4000, 2)
    model.fit_normalizer(s, a, s2)
    assert torch.allclose(model.obs_mean, s.mean(0)) and torch.allclose(model.obs_std,
                                                                        s.std(0, unbiased=False))
    assert torch.allclose(model.delta_mean, (s2 - s).mean(0), atol=1e-6)
    target = model.normalised_target(s, s2)
    assert torch.allclose(target.mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(target.std(0, unbiased=False), torch.ones(2), atol=1e-4)
    assert "obs_mean" in model.state_dict() and "obs_mean" not in named_params(model)


def test_per_task_parameters_give_per_task_predictions() -> None:
    torch.manual_seed(1)
    model = DynamicsModel(3, action_dim=2, hidden=(16,))
    params = expand_params(named_params(model), 2)
    params = {k: v.clone() for k, v in params.items()}
    bias = "members.0.layers.1.bias"
    params[bias][1] += 1.0  # task 1's network outputs +1 (normalised) on every dim
    s, a = torch.randn(2, 5, 3), torch.randn(2, 5, 2)
    out = model.predict(s, a, params)
    assert torch.allclose(out[0], model.predict(s[0], a[0]), atol=1e-6)
    assert torch.allclose(out[1] - model.predict(s[1], a[1]), model.delta_std.expand(5, 3),
                          atol=1e-5)
    losses = model.loss(params, s, a, out)
    assert losses.shape == (2,) and losses.abs().max() < 1e-8


def test_discrete_actions_are_one_hot_and_masks_drop_rows() -> None:
    model = DynamicsModel(2, choices=3, hidden=(8,))
    s, a = torch.randn(1, 4, 2), torch.tensor([[0, 2, 1, 1]])
    x = model._inputs(s, a)
    assert torch.equal(x[0, :, 2:], torch.eye(3)[a[0]])
    s2 = s + 1
    full = model.loss(None, s, a, s2)
    masked = model.loss(None, s, a, s2, mask=torch.tensor([[True, True, False, False]]))
    first_two = model.loss(None, s[:, :2], a[:, :2], s2[:, :2])
    assert torch.allclose(masked, first_two) and not torch.allclose(masked, full)
    with pytest.raises(ValueError, match="either action_dim"):
        DynamicsModel(2, action_dim=1, choices=3)


@pytest.mark.parametrize("kwargs", [{"gaussian": True}, {"ensemble": 3}])
def test_gaussian_head_and_ensemble_fit_the_linear_system(kwargs: dict[str, object]) -> None:
    torch.manual_seed(2)
    model = DynamicsModel(2, action_dim=1, hidden=(64, 64), **kwargs)  # type: ignore[arg-type]
    fit(model, *linear_data(2000, 0), steps=800)
    s, a, s2 = linear_data(300, 3)
    with torch.no_grad():
        err = (model.predict(s, a) - s2).norm(dim=-1).mean()
    assert float(err) < 0.05 * float((s2 - s).norm(dim=-1).mean())
    if kwargs.get("gaussian"):  # a near-deterministic system: the predicted std shrinks
        with torch.no_grad():
            (_, log_std), = model.outputs(s, a)
        assert log_std is not None and float(log_std.mean()) < -2.0
