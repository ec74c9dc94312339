"""TD targets: one-step and n-step, bootstrapping through truncation, not termination."""

from __future__ import annotations

import pytest
import torch

from adaptrl.rollouts.returns import discounted_returns
from adaptrl.rollouts.td import n_step_targets, n_step_transitions, n_step_windows, td_targets
from adaptrl.rollouts.transitions import Transitions

# one column, two episodes: A = steps 0..2, truncated at 2; B = steps 3..4, terminated at 4
REWARDS = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
NEXT_VALUES = torch.tensor([10.0, 20.0, 30.0, 40.0, 50.0])
TERMINATED = torch.tensor([False, False, False, False, True])
TRUNCATED = torch.tensor([False, False, True, False, False])


def test_one_step_targets_by_hand() -> None:
    y = td_targets(REWARDS, NEXT_VALUES, TERMINATED, gamma=0.5)
    # the truncated step (2) bootstraps from V(final obs) = 30; the terminal one (4) does not
    assert y.tolist() == [6.0, 12.0, 18.0, 24.0, 5.0]
    assert n_step_targets(REWARDS, NEXT_VALUES, TERMINATED, TRUNCATED, 0.5, n=1).tolist() == (
        y.tolist())


def test_n_step_targets_by_hand() -> None:
    y2 = n_step_targets(REWARDS, NEXT_VALUES, TERMINATED, TRUNCATED, gamma=0.5, n=2)
    assert y2.tolist() == [1 + 0.5 * 2 + 0.25 * 20,  # a full window, bootstrap at s_2
                           2 + 0.5 * 3 + 0.25 * 30,  # ends at the truncation: V(final obs)
                           3 + 0.5 * 30,  # a one-step window: the episode ends here
                           4 + 0.5 * 5,  # ends in the terminal state: no bootstrap
                           5.0]
    y3 = n_step_targets(REWARDS, NEXT_VALUES, TERMINATED, TRUNCATED, gamma=0.5, n=3)
    assert y3.tolist() == [1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 30, y2[1], y2[2], y2[3], y2[4]]
    w = n_step_windows(REWARDS, TERMINATED, TRUNCATED, 0.5, n=3)
    assert w.last.tolist() == [2, 2, 2, 4, 4]  # no window crosses the reset after step 2
    assert w.discount.tolist() == [0.125, 0.25, 0.5, 0.25, 0.5]
    assert w.terminated.tolist() == [False, False, False, True, True]


def test_the_end_of_the_data_is_a_cut_that_bootstraps() -> None:
    # nothing marks the last step: the data ends there, so its value is bootstrapped
    y = n_step_targets(torch.ones(3), torch.full((3,), 10.0), torch.zeros(3, dtype=torch.bool),
                       torch.zeros(3, dtype=torch.bool), gamma=0.5, n=5)
    assert y.tolist() == [1 + 0.5 + 0.25 + 0.125 * 10, 1 + 0.5 + 0.25 * 10, 1 + 0.5 * 10]


def brute_force(rewards: torch.Tensor, next_values: torch.Tensor, terminated: torch.Tensor,
                truncated: torch.Tensor, gamma: float, n: int) -> torch.Tensor:
    """The n-step target of every position of a 1-d sequence, by its definition."""
    T = len(rewards)
    out = torch.zeros(T, dtype=torch.float64)
    for t in range(T):
        g, k = 0.0, 0
        while True:
            g += gamma ** k * float(rewards[t + k])
            end = bool(terminated[t + k] or truncated[t + k]) or t + k == T - 1
            if end or k == n - 1:
                if not terminated[t + k]:
                    g += gamma ** (k + 1) * float(next_values[t + k])
                break
            k += 1
        out[t] = g
    return out


@pytest.mark.parametrize("n", [1, 2, 5, 40])
def test_n_step_targets_match_the_definition_on_random_episodes(n: int) -> None:
    g = torch.Generator().manual_seed(n)
    T, B = 30, 4
    rewards = torch.randn(T, B, generator=g, dtype=torch.float64)
    next_values = torch.randn(T, B, generator=g, dtype=torch.float64)
    ends = torch.rand(T, B, generator=g) < 0.2
    terminated = ends & (torch.rand(T, B, generator=g) < 0.5)
    truncated = ends & ~terminated
    y = n_step_targets(rewards, next_values, terminated, truncated, 0.9, n)
    for b in range(B):
        want = brute_force(rewards[:, b], next_values[:, b], terminated[:, b],
                           truncated[:, b], 0.9, n)
        assert torch.allclose(y[:, b], want)
    # along another dim: the same numbers
    y_rows = n_step_targets(rewards.T, next_values.T, terminated.T, truncated.T, 0.9, n, dim=1)
    assert torch.allclose(y_rows, y.T)


def test_long_windows_are_monte_carlo_returns_on_terminating_episodes() -> None:
    # two terminating episodes (lengths 3 and 2): n >= the length gives the discounted return
    rewards = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    terminated = torch.tensor([False, False, True, False, True])
    y = n_step_targets(rewards, torch.randn(5), terminated, torch.zeros(5, dtype=torch.bool),
                       0.9, n=10)
    masks = torch.ones(3, 2)
    per_episode = torch.zeros(3, 2)
    per_episode[:, 0], per_episode[:2, 1] = rewards[:3], rewards[3:]
    masks[2, 1] = 0
    mc = discounted_returns(per_episode, masks, 0.9)
    assert torch.allclose(y, torch.cat([mc[:, 0], mc[:2, 1]]))


def test_n_step_transitions_for_replay() -> None:
    """Per task, rows in chronological order; the n-step transition of a row carries the
    discounted reward sum, the observation after its window (the true final observation
    at a truncation) and the bootstrap's discount."""
    obs = torch.arange(5.0).view(1, 5, 1)
    next_obs = obs + 1
    next_obs[0, 2] = 99.0  # the true state at truncation
    x = Transitions(obs, torch.zeros(1, 5, dtype=torch.long), REWARDS.view(1, 5), next_obs,
                    TERMINATED.view(1, 5), TRUNCATED.view(1, 5))
    y, discount = n_step_transitions(x, gamma=0.5, n=2)
    assert y.reward[0].tolist() == [2.0, 3.5, 3.0, 6.5, 5.0]
    assert y.next_obs[0, :, 0].tolist() == [2.0, 99.0, 99.0, 5.0, 5.0]
    assert y.terminated[0].tolist() == [False, False, False, True, True]
    assert y.truncated[0].tolist() == [False, True, True, False, False]
    assert discount[0].tolist() == [0.25, 0.25, 0.5, 0.25, 0.5]
    assert torch.equal(y.obs, x.obs)
    # with V at each window's last step (positions 1, 2, 2, 4, 4) they give the n-step targets
    boot = torch.tensor([[20.0, 30.0, 30.0, 50.0, 50.0]])
    assert torch.allclose(y.reward + discount * boot * ~y.terminated,
                          n_step_targets(x.reward, NEXT_VALUES.view(1, 5), x.terminated,
                                         x.truncated, 0.5, 2, dim=1))


def test_n_must_be_positive() -> None:
    with pytest.raises(ValueError, match="n must be"):
        n_step_windows(REWARDS, TERMINATED, TRUNCATED, 0.5, n=0)
