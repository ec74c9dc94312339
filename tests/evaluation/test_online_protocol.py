"""The protocol's scorer for agents that adapt in env steps (a DQN)."""

from __future__ import annotations

import pytest
import torch

from adaptrl.agents.dqn import DQNAgent, DQNConfig
from adaptrl.evaluation.protocol import adaptation_curves, greedy_returns, online_curve
from adaptrl.tasks import TabularMDP

CPU = torch.device("cpu")


def setup() -> tuple[TabularMDP, DQNAgent]:
    family = TabularMDP(num_states=4, num_actions=3, horizon=5)
    torch.manual_seed(0)
    config = DQNConfig(learning_starts=5, train_frequency=1, batch_size=8, hidden=[8],
                       lr=1e-2, total_steps=40)
    return family, DQNAgent(config, family.observation_space, family.action_space)


def test_shape_and_unit_zero_is_the_untrained_greedy_return() -> None:
    family, agent = setup()
    tasks = family.sample(3, "test", torch.Generator().manual_seed(0))
    curve = online_curve(family, agent, tasks, 2, 4, 20, torch.Generator().manual_seed(1),
                         eval_seed=5, device=CPU)
    assert curve.shape == (3, 3)
    untrained = agent.evaluation_actor(agent.begin(family.make_env(tasks, 1)))
    expected = greedy_returns(family.make_env(tasks, 4), untrained, 5)
    torch.testing.assert_close(curve[0], expected, rtol=0, atol=0)
    assert not torch.equal(curve[2], curve[0])  # it learned something in 40 steps
    # the evaluation neither explores nor learns: scoring twice gives the same numbers
    again = online_curve(family, agent, tasks, 2, 4, 20, torch.Generator().manual_seed(1),
                         eval_seed=5, device=CPU)
    assert torch.equal(curve, again)


def test_adaptation_curves_dispatch_and_need_a_unit_size() -> None:
    family, agent = setup()
    tasks = family.sample(2, "test", torch.Generator().manual_seed(0))
    out = adaptation_curves(family, agent, tasks, 1, 2, 0, CPU, env_steps_per_unit=10)
    assert out["return"].shape == (2, 2)
    with pytest.raises(ValueError, match="env_steps_per_unit"):
        adaptation_curves(family, agent, tasks, 1, 2, 0, CPU)
