"""GrBAL's open-loop outer loss (``outer_loss: open_loop``, algorithms/grbal.py
``open_loop_loss``): one step of it is the one-step loss, longer windows are the rollout by
hand, its meta-gradient (through the inner step and the rollout) equals central finite
differences in float64, the non-meta-learned variant rolls out past and future, and a
wrong value is named."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from grbal_tiny import learner as tiny_learner

from adaptrl.algorithms.grbal import GrBAL, open_loop_loss
from adaptrl.algorithms.grbal_config import GrBALConfig, ModelInnerConfig
from adaptrl.models.functional import expand_params, named_params
from adaptrl.planning.controller import Window


def _learner(**settings: Any) -> GrBAL:
    return tiny_learner(outer_loss="open_loop", **settings)


def _double(window: Window) -> Window:
    return Window(window.obs.double(), window.action.double(), window.next_obs.double(),
                  window.mask)


def test_open_loop_loss_is_the_rollout_by_hand() -> None:
    learner = _learner()
    model = learner.model
    past, future = learner.windows(4)
    params = expand_params(named_params(model), 4)
    first = Window(future.obs[:, :1], future.action[:, :1], future.next_obs[:, :1],
                   future.mask[:, :1])
    torch.testing.assert_close(open_loop_loss(model, params, first),
                               model.loss(params, first.obs, first.action, first.next_obs))
    # three steps: from s_0, then from the model's own s_hat_1 and s_hat_2
    s, losses = future.obs[:, :1], []
    for k in range(3):
        a, nxt = future.action[:, k:k + 1], future.next_obs[:, k:k + 1]
        losses.append(model.loss(params, s, a, nxt))
        s = model.predict(s, a, params)
    torch.testing.assert_close(open_loop_loss(model, params, future),
                               torch.stack(losses).mean(0))
    # shared parameters give the same numbers as the same parameters per row
    torch.testing.assert_close(open_loop_loss(model, named_params(model), future),
                               open_loop_loss(model, params, future))
    # and differs from the one-step loss once the rollout leaves the data
    assert not torch.allclose(open_loop_loss(model, params, future),
                              model.loss(params, future.obs, future.action, future.next_obs))


@pytest.mark.parametrize("steps", [1, 0])
def test_open_loop_meta_gradient_equals_finite_differences(steps: int) -> None:
    learner = _learner(inner=ModelInnerConfig(steps=steps, lr=0.05))
    model = learner.model.double()
    past, future = (_double(w) for w in learner.windows(4))
    theta = {k: v.detach().clone().requires_grad_(True) for k, v in named_params(model).items()}
    loss, before = learner.meta_loss(theta, past, future)
    grads = torch.autograd.grad(loss, list(theta.values()))
    gen, eps = torch.Generator().manual_seed(3), 1e-6

    def at(step: dict[str, torch.Tensor]) -> float:
        shifted = {k: (v + step[k]).detach() for k, v in theta.items()}
        return float(learner.meta_loss(shifted, past, future)[0].detach())
    for _ in range(3):
        direction = {k: torch.randn(v.shape, generator=gen, dtype=v.dtype)
                     for k, v in theta.items()}
        numeric = (at({k: eps * d for k, d in direction.items()}) -
                   at({k: -eps * d for k, d in direction.items()})) / (2 * eps)
        analytic = sum(float((g * direction[k]).sum()) for g, k in zip(grads, theta))
        assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-9)
    detached = {k: v.detach() for k, v in theta.items()}
    assert before == pytest.approx(float(open_loop_loss(model, detached, future).mean()))
    if steps == 0:  # the non-meta-learned model: past and future each rolled out
        both = (open_loop_loss(model, detached, past) + open_loop_loss(model, detached, future))
        assert float(loss.detach()) == pytest.approx(float(both.mean() / 2))


def test_open_loop_training_logs_comparable_losses_and_the_field_is_checked() -> None:
    learner = _learner()
    assert learner.config.outer_loss == "open_loop"
    stats = learner.meta_update(learner.family.sample(3, "train",
                                                      torch.Generator().manual_seed(2)))
    assert all(torch.isfinite(torch.tensor(stats[k])) for k in ("model_loss_pre",
                                                                "model_loss_post"))
    assert GrBALConfig().outer_loss == "one_step"
    with pytest.raises(ValueError, match="outer_loss"):
        GrBALConfig(outer_loss="two_step")
