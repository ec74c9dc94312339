"""Known answers of finite-horizon value iteration and of a policy's exact value."""

from __future__ import annotations

import pytest
import torch

from adaptrl.agents.classic.tabular import greedy_policy
from adaptrl.planning import policy_value, value_iteration


def two_state_mdp(num: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """State 0: action 0 stays (reward 1), action 1 moves to state 1 (reward 0).
    State 1: both actions stay (reward 2). Deterministic."""
    transitions = torch.zeros(num, 2, 2, 2)
    transitions[:, 0, 0, 0] = 1.0
    transitions[:, 0, 1, 1] = 1.0
    transitions[:, 1, :, 1] = 1.0
    rewards = torch.tensor([[1.0, 0.0], [2.0, 2.0]]).expand(num, 2, 2).clone()
    return transitions, rewards


def test_value_iteration_known_answer() -> None:
    transitions, rewards = two_state_mdp()
    q = value_iteration(transitions, rewards, horizon=3)[0]
    # Steps left 1: Q = r. Steps left 2: Q(0,.) = (1 + 1, 0 + 2), Q(1,.) = 4.
    # Steps left 3: Q(0,.) = (1 + 2, 0 + 4), Q(1,.) = 6.
    expected = torch.tensor([[[3.0, 4.0], [6.0, 6.0]],
                             [[2.0, 2.0], [4.0, 4.0]],
                             [[1.0, 0.0], [2.0, 2.0]]])
    assert torch.equal(q, expected)
    policy = greedy_policy(q[None], torch.Generator().manual_seed(0))
    assert policy[0, 0, 0].tolist() == [0.0, 1.0]  # move to the rich state first
    assert policy_value(transitions, rewards, policy).item() == 4.0


def test_policy_value_of_uniform_policy() -> None:
    transitions, rewards = two_state_mdp()
    uniform = torch.full((1, 2, 2, 2), 0.5)
    # Two steps from state 0: 0.5 (step 1) + [0.5 * 0.5 + 0.5 * 2] (step 2) = 1.75.
    assert policy_value(transitions, rewards, uniform).item() == pytest.approx(1.75)
