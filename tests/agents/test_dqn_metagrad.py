"""The meta-gradient DQN (agents/dqn_metagrad.py; Xu, van Hasselt, Silver 2018) and the
Q-network's eta input (models/q_networks.py): config validation, the loss written for
forward mode against DQN's own, the conditioning input, determinism, exact resume, and a
run under the env-steps protocol."""

from __future__ import annotations

import io

import gymnasium as gym
import pytest
import torch
from pydantic import ValidationError

from adaptrl.agents.dqn import DQNConfig, td_loss
from adaptrl.agents.dqn_metagrad import (
    MetaGradientConfig,
    MetaGradientDQN,
    MetaGradientDQNConfig,
    MetaGradientDQNState,
    _td_loss,
)
from adaptrl.evaluation.protocol import online_curve
from adaptrl.models.q_networks import QNetwork
from adaptrl.rollouts.online import play_online
from adaptrl.tasks import make
from adaptrl.tasks.base import TaskFamily

SMALL = DQNConfig(lr=1e-3, batch_size=16, hidden=[16], total_steps=400, learning_starts=40,
                  train_frequency=4, target_period=50, buffer_size=500)


def _family() -> TaskFamily:
    return make("catcher", horizon=30)


def _agent(meta: MetaGradientConfig | None = None, seed: int = 0) -> MetaGradientDQN:
    family = _family()
    torch.manual_seed(seed)
    cfg = MetaGradientDQNConfig(dqn=SMALL, meta=meta or MetaGradientConfig(meta_lr=1e-2))
    return MetaGradientDQN(cfg, family.observation_space, family.action_space)


def _run(agent: MetaGradientDQN, steps: int, seed: int = 0,
         state: MetaGradientDQNState | None = None,
         generator: torch.Generator | None = None) -> MetaGradientDQNState:
    family = _family()
    tasks = family.sample(3, "train", torch.Generator().manual_seed(1))
    g = generator or torch.Generator().manual_seed(seed)
    return play_online(family.make_env(tasks, 1), agent, steps, g, state=state).state


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ValidationError, match="dqn.n_step"):
        MetaGradientDQNConfig(dqn=DQNConfig(n_step=3))
    with pytest.raises(ValidationError, match="dqn.gamma"):
        MetaGradientDQNConfig(dqn=DQNConfig(gamma=1.0))
    with pytest.raises(ValidationError, match="learn"):
        MetaGradientConfig(learn=["epsilon"])
    with pytest.raises(ValidationError, match="learn"):
        MetaGradientConfig(learn=[])
    with pytest.raises(ValidationError, match="gamma_bar"):
        MetaGradientConfig(gamma_bar=1.5)
    with pytest.raises(ValidationError, match="trace_decay"):
        MetaGradientConfig(trace_decay=-0.1)


@pytest.mark.parametrize("kwargs,field", [
    ({"learn": ["gamma", "lambda"]}, "window >= 2"),  # lambda needs a window
    ({"learn": ["lambda"], "window": 1}, "window >= 2"),
    ({"window": 0}, "window"),
    ({"lambda_init": 1.0, "window": 3}, "lambda_init"),
    ({"lambda_init": 0.0, "window": 3}, "lambda_init"),
    ({"lambda_bar": 1.5}, "lambda_bar"),
    ({"learn": ["gamma", "gamma"]}, "each hyperparameter once"),
])
def test_lambda_config_validation_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        MetaGradientConfig(**kwargs)


LAMBDA = MetaGradientConfig(meta_lr=1e-2, window=4, learn=["gamma", "lr", "lambda"],
                            lambda_init=0.7)


def test_lambda_is_learned_and_the_network_conditioned_on_gamma_and_lambda() -> None:
    agent = _agent(LAMBDA)
    assert agent.network.eta_dim == 2
    fresh = agent.begin(_family().make_env(_family().sample(2, "train", torch.Generator()), 1))
    assert fresh.eta.shape == (2, 3)
    torch.testing.assert_close(agent.hyperparameters(fresh)["lambda"], torch.full((2,), 0.7))
    state = _run(agent, 200)
    hp = agent.hyperparameters(state)
    assert bool(torch.isfinite(state.eta).all())
    assert not torch.allclose(hp["lambda"], torch.full((3,), 0.7))
    assert state.dqn.eta is not None
    torch.testing.assert_close(state.dqn.eta, torch.stack([hp["gamma"], hp["lambda"]], -1))


def test_a_fixed_lambda_stays_put() -> None:
    agent = _agent(MetaGradientConfig(meta_lr=1e-2, window=3, lambda_init=0.4))
    hp = agent.hyperparameters(_run(agent, 150))
    torch.testing.assert_close(hp["lambda"], torch.full((3,), 0.4))
    assert not torch.allclose(hp["gamma"], torch.full((3,), SMALL.gamma))


def _straight_and_resumed(agent: MetaGradientDQN, seed: int
                          ) -> tuple[MetaGradientDQNState, MetaGradientDQNState]:
    """Run 120 steps, save the state (and the generator), then continue 80 steps both
    directly and from the state restored into a fresh one."""
    g = torch.Generator().manual_seed(seed)
    state = _run(agent, 120, generator=g)
    buf = io.BytesIO()
    torch.save({"state": state.state_dict(), "generator": g.get_state()}, buf)
    straight = _run(agent, 80, state=state, generator=g)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    family = _family()
    restored = agent.begin(family.make_env(family.sample(3, "train", torch.Generator()), 1))
    restored.load_state_dict(saved["state"])
    g2 = torch.Generator()
    g2.set_state(saved["generator"])
    return straight, _run(agent, 80, state=restored, generator=g2)


def test_lambda_agent_starts_from_a_plain_networks_values() -> None:
    family = _family()
    dim = gym.spaces.flatdim(family.observation_space)
    torch.manual_seed(0)
    plain = QNetwork(dim, 3, (16,))
    cfg = MetaGradientDQNConfig(dqn=SMALL, meta=LAMBDA)
    agent = MetaGradientDQN.starting_from(cfg, family.observation_space, family.action_space,
                                          plain)
    assert agent.network.eta_dim == 2
    obs = torch.randn(2, 5, dim)
    params = {k: v.expand(2, *v.shape) for k, v in agent.network.named_parameters()}
    torch.testing.assert_close(agent.network(obs, params, torch.tensor([[0.9, 0.7],
                                                                        [0.5, 0.1]])),
                               plain(obs))


@pytest.mark.parametrize("delta", [None, 0.5])
def test_forward_mode_loss_equals_dqn_loss(delta: float | None) -> None:
    g = torch.Generator().manual_seed(0)
    q, y = torch.randn(3, 7, generator=g), torch.randn(3, 7, generator=g)
    torch.testing.assert_close(_td_loss(q, y, delta), td_loss(q, y, delta))


def test_q_network_eta_input_is_appended_to_the_observation() -> None:
    torch.manual_seed(0)
    net = QNetwork(4, 2, (8,), eta_dim=1)
    plain = QNetwork(5, 2, (8,))
    plain.load_state_dict(net.state_dict())
    obs = torch.randn(3, 6, 4)  # [tasks, batch, obs]
    eta = torch.tensor([[0.9], [0.95], [0.99]])  # per task
    expected = plain(torch.cat([obs, eta.unsqueeze(1).expand(3, 6, 1)], -1))
    params = {k: v.expand(3, *v.shape) for k, v in net.named_parameters()}
    torch.testing.assert_close(net(obs, params, eta), expected)
    torch.testing.assert_close(net(obs, None, torch.tensor([0.5])),
                               plain(torch.cat([obs, torch.full((3, 6, 1), 0.5)], -1)))
    with pytest.raises(ValueError, match="pass eta"):
        net(obs)
    with pytest.raises(ValueError, match="takes no eta"):
        plain(torch.randn(2, 5), None, eta)
    with pytest.raises(ValueError, match="eta_dim"):
        QNetwork(4, 2, eta_dim=-1)


def test_eta_starts_at_the_dqn_values_moves_and_stays_finite() -> None:
    agent = _agent()
    state = _run(agent, 200)
    hp = agent.hyperparameters(state)
    assert state.dqn.updates > 0
    assert bool(torch.isfinite(state.eta).all())
    assert not torch.allclose(hp["gamma"], torch.full((3,), SMALL.gamma))
    assert not torch.allclose(hp["lr"], torch.full((3,), SMALL.lr))
    assert state.dqn.eta is not None  # the network is conditioned on the current gamma
    torch.testing.assert_close(state.dqn.eta[:, 0], hp["gamma"])
    fresh = agent.begin(_family().make_env(_family().sample(2, "train", torch.Generator()), 1))
    torch.testing.assert_close(agent.hyperparameters(fresh)["gamma"],
                               torch.full((2,), SMALL.gamma))
    torch.testing.assert_close(agent.hyperparameters(fresh)["lr"], torch.full((2,), SMALL.lr))


@pytest.mark.parametrize("learn,conditioned", [(["lr"], False), (["gamma"], True)])
def test_only_the_learned_hyperparameters_move(learn: list, conditioned: bool) -> None:
    agent = _agent(MetaGradientConfig(learn=learn, conditioned=conditioned, meta_lr=1e-2))
    hp = agent.hyperparameters(_run(agent, 150))
    fixed = "gamma" if learn == ["lr"] else "lr"
    value = SMALL.gamma if fixed == "gamma" else SMALL.lr
    torch.testing.assert_close(hp[fixed], torch.full((3,), value))
    other = SMALL.lr if fixed == "gamma" else SMALL.gamma
    assert not torch.allclose(hp[learn[0]], torch.full((3,), other))


def test_deterministic_under_a_seed() -> None:
    a, b = _run(_agent(), 150, seed=3), _run(_agent(), 150, seed=3)
    torch.testing.assert_close(a.eta, b.eta, rtol=0, atol=0)
    for k in a.dqn.params:
        torch.testing.assert_close(a.dqn.params[k], b.dqn.params[k], rtol=0, atol=0)


@pytest.mark.parametrize(("meta", "seed", "components"), [
    (MetaGradientConfig(meta_lr=1e-2, trace_decay=0.5), 5, 2),
    (LAMBDA.model_copy(update={"trace_decay": 0.5}), 6, 3)], ids=["gamma-lr", "lambda"])
def test_resume_is_exact(meta: MetaGradientConfig, seed: int, components: int) -> None:
    """Run 120 steps, save the state (and the generator), restore into a fresh state,
    continue 80: the same parameters, eta (the agent's and the one its Q-network is
    conditioned on) and trace as continuing without the round trip."""
    straight, resumed = _straight_and_resumed(_agent(meta), seed)
    torch.testing.assert_close(resumed.eta, straight.eta, rtol=0, atol=0)
    assert straight.dqn.eta is not None and resumed.dqn.eta is not None
    torch.testing.assert_close(resumed.dqn.eta, straight.dqn.eta, rtol=0, atol=0)
    assert resumed.trace is not None and straight.trace is not None
    assert len(resumed.trace) == components
    for z1, z2 in zip(resumed.trace, straight.trace):
        for k in z1:
            torch.testing.assert_close(z1[k], z2[k], rtol=0, atol=0)
    for k in straight.dqn.params:
        torch.testing.assert_close(resumed.dqn.params[k], straight.dqn.params[k], rtol=0,
                                   atol=0)


def test_scored_by_the_env_steps_protocol() -> None:
    family = _family()
    tasks = family.sample(2, "test", torch.Generator().manual_seed(0))
    curve = online_curve(family, _agent(), tasks, 2, 2, 100, torch.Generator().manual_seed(0),
                         7, torch.device("cpu"))
    assert curve.shape == (3, 2) and bool(torch.isfinite(curve).all())


def test_eta_dim_default_leaves_the_network_unchanged() -> None:
    gym_obs = gym.spaces.Box(-1, 1, (4,))
    torch.manual_seed(0)
    a = QNetwork(4, 3, (8,))
    torch.manual_seed(0)
    b = QNetwork(4, 3, (8,), eta_dim=0)
    x = torch.randn(5, gym_obs.shape[0])
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
