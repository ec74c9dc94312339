"""The generic PPO update: known-answer loss terms, improvement, determinism, checkpoints."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn
from torch.distributions import Categorical

from adaptrl.optim.ppo import (
    PPOConfig,
    load_optimizer_state,
    make_optimizer,
    optimizer_state,
    ppo_loss,
    ppo_update,
)
from adaptrl.rollouts.trajectories import Trajectories


def one_step_batch(actions: torch.Tensor, log_probs: torch.Tensor) -> Trajectories:
    """``[T=1, rows, 1]`` trajectories with the given actions and behaviour log-probs."""
    rows = actions.shape[0]
    shape = (1, rows, 1)
    return Trajectories(observations=torch.zeros(*shape, 1), actions=actions.view(shape),
                        rewards=torch.zeros(shape), masks=torch.ones(shape),
                        terminated=torch.zeros(shape, dtype=torch.bool),
                        log_probs=log_probs.view(shape))


def test_loss_known_answer() -> None:
    cfg = PPOConfig(clip=0.2, value_coef=0.5, entropy_coef=0.1)
    logits = torch.log(torch.tensor([0.5, 0.5])).expand(1, 2, 1, 2)
    dist = Categorical(logits=logits)
    actions = torch.tensor([0, 1])
    # behaviour probs 0.25 (ratio 2, clipped to 1.2) and 0.5 (ratio 1)
    batch = one_step_batch(actions, torch.log(torch.tensor([0.25, 0.5])))
    adv = torch.tensor([1.0, -2.0]).view(1, 2, 1)
    returns = torch.tensor([1.0, 3.0]).view(1, 2, 1)
    values = torch.tensor([0.0, 1.0]).view(1, 2, 1)
    loss, stats = ppo_loss(dist, values, batch, adv, returns, cfg)
    policy_loss = -((1.2 * 1.0) + (1.0 * -2.0)) / 2  # min(r A, clip(r) A) per row
    value_loss = (1.0 + 4.0) / 2
    ent = math.log(2)
    assert float(stats["policy_loss"]) == pytest.approx(policy_loss)
    assert float(stats["value_loss"]) == pytest.approx(value_loss)
    assert float(stats["entropy"]) == pytest.approx(ent)
    assert float(loss) == pytest.approx(policy_loss + 0.5 * value_loss - 0.1 * ent)
    assert float(stats["clip_fraction"]) == pytest.approx(0.5)
    value_only, _ = ppo_loss(dist, values, batch, adv, returns, cfg, value_only=True)
    assert float(value_only) == pytest.approx(0.5 * value_loss)


class Bandit2(nn.Module):
    """A state-free 2-action policy and a scalar value: the smallest actor-critic."""

    def __init__(self) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(2))
        self.v = nn.Parameter(torch.zeros(()))

    def evaluate(self, rows: torch.Tensor) -> tuple[Categorical, torch.Tensor]:
        shape = (1, len(rows), 1)
        return Categorical(logits=self.logits.expand(*shape, 2)), self.v.expand(shape)


def run_update(seed: int, cfg: PPOConfig, sgd_lr: float | None = None
               ) -> tuple[Bandit2, dict[str, float]]:
    model = Bandit2()
    rows = 8
    actions = torch.arange(rows) % 2
    batch = one_step_batch(actions, torch.full((rows,), math.log(0.5)))
    adv = torch.where(actions == 0, 1.0, -1.0).view(1, rows, 1)  # action 0 is better
    returns = torch.ones(1, rows, 1)
    params = list(model.parameters())
    opt = (make_optimizer(params, cfg) if sgd_lr is None
           else torch.optim.SGD(params, lr=sgd_lr))
    info = ppo_update(params, opt, batch, adv, returns, model.evaluate, cfg,
                      torch.Generator().manual_seed(seed))
    return model, info


def test_update_improves_and_fits_the_value() -> None:
    cfg = PPOConfig(lr=0.05, epochs=5, minibatches=2, entropy_coef=0.0)
    model, info = run_update(0, cfg)
    probs = torch.softmax(model.logits.detach(), -1)
    assert probs[0] > 0.55
    assert 0 < float(model.v.detach()) < 1  # moved toward the return 1
    assert set(info) >= {"policy_loss", "value_loss", "entropy", "approx_kl",
                         "clip_fraction", "grad_norm"}


def test_clipping_stops_the_update_at_the_clip_boundary() -> None:
    """Once p0 / 0.5 > 1 + eps the clipped objective is flat: plain SGD stops there."""
    cfg = PPOConfig(epochs=50, minibatches=1, entropy_coef=0.0, clip=0.1, value_coef=0.0,
                    normalize_advantages=False)
    model, _ = run_update(0, cfg, sgd_lr=0.05)
    p0 = float(torch.softmax(model.logits.detach(), -1)[0])
    # each step moves logit0 - logit1 by 0.05 while unclipped; 50 unclipped steps would
    # reach sigmoid(2.5) = 0.92. Clipped, it stops at the first p0 >= 0.55.
    assert 0.55 <= p0 < 0.565


def test_update_is_deterministic_under_a_seed() -> None:
    cfg = PPOConfig(lr=0.05, epochs=3, minibatches=4)
    a, info_a = run_update(3, cfg)
    b, info_b = run_update(3, cfg)
    assert torch.equal(a.logits, b.logits) and info_a == info_b


def test_too_many_minibatches() -> None:
    with pytest.raises(ValueError, match="minibatches"):
        run_update(0, PPOConfig(minibatches=9))


def test_optimizer_state_round_trip() -> None:
    cfg = PPOConfig(lr=0.05)
    model = Bandit2()
    opt = make_optimizer(list(model.parameters()), cfg)
    model.logits.sum().backward()
    opt.step()
    buf = io.BytesIO()
    torch.save(optimizer_state(opt), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    fresh = make_optimizer(list(model.parameters()), cfg)
    load_optimizer_state(fresh, state)
    for key in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(fresh.state[model.logits][key], opt.state[model.logits][key])
    assert fresh.param_groups[0]["lr"] == 0.05
