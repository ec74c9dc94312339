"""Q-networks: plain and dueling heads, per-task parameters in one batched call."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from adaptrl.models.functional import expand_params, named_params
from adaptrl.models.q_networks import QNetwork, make_q_network


def test_dueling_aggregation_is_value_plus_mean_free_advantage() -> None:
    torch.manual_seed(0)
    net = QNetwork(3, 4, hidden=(8, 6), dueling=True)
    obs = torch.randn(5, 3)
    q = net(obs)
    feats = torch.relu(net.body(obs))
    value = net.value(feats)
    adv = net.advantage(feats)
    torch.testing.assert_close(q, value + adv - adv.mean(-1, keepdim=True))
    torch.testing.assert_close(q.mean(-1), value.squeeze(-1))  # V identifiable (Wang et al.)
    assert not torch.allclose(q, q[:, :1].expand_as(q))  # the advantages do differ


@pytest.mark.parametrize("dueling", [False, True])
def test_per_task_parameters_are_one_call_per_task(dueling: bool) -> None:
    torch.manual_seed(1)
    net = QNetwork(3, 2, hidden=(8,), dueling=dueling)
    params = {k: v + 0.1 * torch.randn(v.shape)
              for k, v in expand_params(named_params(net), 4).items()}
    obs = torch.randn(4, 7, 3)
    q = net(obs, params)
    assert q.shape == (4, 7, 2)
    for i in range(4):
        own = {k: v[i] for k, v in params.items()}
        torch.testing.assert_close(q[i], net(obs[i], own))


def test_needs_a_discrete_action_space() -> None:
    obs = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    assert make_q_network(obs, gym.spaces.Discrete(3)).num_actions == 3
    with pytest.raises(ValueError, match="Discrete action space"):
        make_q_network(obs, gym.spaces.Box(-1.0, 1.0, (1,), np.float32))


def test_torch_init_is_nn_linears_own() -> None:
    """``init="torch"`` (CleanRL's): weights and biases uniform in +-1/sqrt(fan_in);
    ``"xavier"``: zero biases."""
    torch.manual_seed(0)
    net = QNetwork(4, 2, (120, 84), init="torch").requires_grad_(False)
    for layer in net.body.layers:
        bound = 1 / layer.in_features ** 0.5
        assert float(layer.weight.abs().max()) <= bound and float(layer.bias.abs().max()) > 0
        assert float(layer.bias.abs().max()) <= bound
    xavier = QNetwork(4, 2).requires_grad_(False)
    assert all(float(layer.bias.abs().max()) == 0 for layer in xavier.body.layers)
    with pytest.raises(ValueError, match="init"):
        QNetwork(4, 2, init="normal")
