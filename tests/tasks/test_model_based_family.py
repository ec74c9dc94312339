"""The model-based members of ``pendulum-physics`` and ``cartpole-physics``: the batched
reward of ``(s, a, s')`` equals the env's own reward, ``terminal`` its terminations, and
``true_dynamics`` its step (tasks.base.ModelBasedFamily)."""

from __future__ import annotations

import torch

from adaptrl.tasks import CartPolePhysics, PendulumPhysics
from adaptrl.tasks.base import ModelBasedFamily
from adaptrl.tasks.cartpole import CADM_PARAMS as CARTPOLE_CADM
from adaptrl.tasks.pendulum import CADM_PARAMS as PENDULUM_CADM


def _rollout(family: ModelBasedFamily, env_family: object, actions: torch.Tensor,
             n: int, m: int) -> None:
    """Step the env with ``actions [T, n, m, ...]`` and check every member on every live
    step."""
    gen = torch.Generator().manual_seed(3)
    tasks = env_family.sample(n, "train", gen)  # type: ignore[attr-defined]
    env = env_family.make_env(tasks, m)  # type: ignore[attr-defined]
    model = family.true_dynamics(tasks)
    obs = env.reset(gen)
    live = torch.ones(n, m, dtype=torch.bool)
    checked = 0
    for a in actions:
        res = env.step(a)
        predicted = family.reward(obs, a, res.observation)
        assert torch.allclose(predicted[live], res.reward[live], atol=1e-4, rtol=1e-5)
        assert torch.equal(family.terminal(res.observation)[live], res.terminated[live])
        nxt = model(obs, a)
        assert torch.allclose(nxt[live], res.observation[live], atol=1e-4)
        one = model(obs[:, :1], a[:, :1])  # any batch size
        assert torch.allclose(one, nxt[:, :1])
        checked += int(live.sum())
        live = live & ~(res.terminated | res.truncated)
        obs = res.observation
    assert checked > n * m * 10


def test_pendulum_reward_terminal_and_dynamics_match_the_env() -> None:
    family = PendulumPhysics(**PENDULUM_CADM)
    gen = torch.Generator().manual_seed(0)
    actions = 3 * (2 * torch.rand(60, 4, 5, 1, generator=gen) - 1)  # clipped by both
    _rollout(family, family, actions, 4, 5)
    assert isinstance(family, ModelBasedFamily)


def test_pendulum_reward_from_a_swinging_start() -> None:
    family = PendulumPhysics()  # full-circle start: theta across the +-pi seam
    gen = torch.Generator().manual_seed(1)
    actions = 2 * (2 * torch.rand(80, 3, 6, 1, generator=gen) - 1)
    _rollout(family, family, actions, 3, 6)


def test_cartpole_reward_terminal_and_dynamics_match_the_env() -> None:
    family = CartPolePhysics(**CARTPOLE_CADM)
    gen = torch.Generator().manual_seed(2)
    actions = torch.randint(0, 2, (60, 4, 8), generator=gen)
    _rollout(family, family, actions, 4, 8)
    assert isinstance(family, ModelBasedFamily)
