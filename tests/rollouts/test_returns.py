"""Discounted returns, GAE and normalisation against answers worked out by hand."""

from __future__ import annotations

import pytest
import torch

from adaptrl.rollouts.returns import (
    discounted_returns,
    gae,
    is_prefix_mask,
    normalize,
    reverse_discounted_sum,
)


def col(*values: float) -> torch.Tensor:
    """A time-major ``[T, 1]`` column (one episode)."""
    return torch.tensor(values, dtype=torch.float64).unsqueeze(1)


def loop_returns(rewards: torch.Tensor, masks: torch.Tensor, gamma: float) -> torch.Tensor:
    """The textbook recursion, one step at a time (the reference for the fast path)."""
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = (rewards[t] + gamma * running) * masks[t]
        out[t] = running
    return out


def test_discounted_returns_known_answer() -> None:
    # R_2 = 3, R_1 = 2 + 0.5 * 3 = 3.5, R_0 = 1 + 0.5 * 3.5 = 2.75
    r = discounted_returns(col(1, 2, 3), col(1, 1, 1), 0.5)
    torch.testing.assert_close(r, col(2.75, 3.5, 3.0))


def test_discounted_returns_stop_at_the_end_of_the_episode() -> None:
    # the episode ends after step 1: the reward 5 on padding never counts
    r = discounted_returns(col(1, 2, 5), col(1, 1, 0), 0.5)
    torch.testing.assert_close(r, col(2.0, 2.0, 0.0))


def test_discounted_returns_restart_after_a_masked_step() -> None:
    # a non-prefix mask breaks the chain: R_1 = 0, so R_0 = 1 (the loop fallback)
    masks = col(1, 0, 1)
    assert not is_prefix_mask(masks)
    torch.testing.assert_close(discounted_returns(col(1, 2, 3), masks, 0.5), col(1.0, 0.0, 3.0))


def test_fast_path_equals_the_recursion_on_random_episodes() -> None:
    g = torch.Generator().manual_seed(0)
    T, n, e = 30, 3, 5
    rewards = torch.randn(T, n, e, generator=g, dtype=torch.float64)
    ends = torch.randint(1, T + 1, (n, e), generator=g)
    masks = (torch.arange(T).view(T, 1, 1) < ends).to(torch.float64)
    assert is_prefix_mask(masks)
    torch.testing.assert_close(discounted_returns(rewards, masks, 0.97),
                               loop_returns(rewards, masks, 0.97))
    cont = masks
    torch.testing.assert_close(reverse_discounted_sum(rewards * masks, 0.9, cont, prefix=True),
                               reverse_discounted_sum(rewards * masks, 0.9, cont, prefix=False))


def test_gae_known_answer_terminated() -> None:
    # gamma 0.9, lambda 0.5, V = 0.5 everywhere, reward 1, terminal after step 2:
    # deltas 0.95, 0.95, 0.5; A_2 = 0.5, A_1 = 0.95 + 0.45 * 0.5, A_0 = 0.95 + 0.45 * A_1
    term = col(0, 0, 1).bool()
    adv = gae(col(1, 1, 1), col(0.5, 0.5, 0.5), col(1, 1, 1), 0.9, 0.5, term)
    torch.testing.assert_close(adv, col(0.95 + 0.45 * 1.175, 1.175, 0.5))


def test_gae_bootstraps_a_truncated_episode_from_last_values() -> None:
    # no termination, V(s_3) = 2: delta_2 = 1 + 0.9 * 2 - 0.5 = 2.3
    adv = gae(col(1, 1, 1), col(0.5, 0.5, 0.5), col(1, 1, 1), 0.9, 0.5,
              last_values=torch.tensor([2.0], dtype=torch.float64))
    a1 = 0.95 + 0.45 * 2.3
    torch.testing.assert_close(adv, col(0.95 + 0.45 * a1, a1, 2.3))
    # without a value beyond the horizon the truncated episode bootstraps 0 (as terminated)
    adv0 = gae(col(1, 1, 1), col(0.5, 0.5, 0.5), col(1, 1, 1), 0.9, 0.5)
    torch.testing.assert_close(adv0, col(0.95 + 0.45 * 1.175, 1.175, 0.5))


def test_gae_does_not_bootstrap_from_padding() -> None:
    # the episode ends (truncated) after step 1; the value 7 on padding must not be used
    adv = gae(col(1, 1, 0), col(0.5, 0.5, 7.0), col(1, 1, 0), 0.9, 0.5)
    torch.testing.assert_close(adv, col(0.95 + 0.45 * 0.5, 0.5, 0.0))


def test_gae_lambda_one_is_returns_minus_values_and_lambda_zero_is_td_error() -> None:
    g = torch.Generator().manual_seed(1)
    T = 12
    rewards = torch.randn(T, 2, 3, generator=g, dtype=torch.float64)
    values = torch.randn(T, 2, 3, generator=g, dtype=torch.float64)
    ends = torch.tensor([[12, 5, 9], [1, 12, 7]])
    masks = (torch.arange(T).view(T, 1, 1) < ends).to(torch.float64)
    terminated = (torch.arange(T).view(T, 1, 1) == ends - 1) & (ends < T)
    gamma = 0.95
    mc = gae(rewards, values, masks, gamma, 1.0, terminated)
    torch.testing.assert_close(mc, (discounted_returns(rewards, masks, gamma) - values) * masks)
    td = gae(rewards, values, masks, gamma, 0.0, terminated)
    next_v = torch.cat([values[1:], torch.zeros_like(values[:1])])
    next_v = next_v * torch.cat([masks[1:], torch.zeros_like(masks[:1])]) * ~terminated
    torch.testing.assert_close(td, (rewards + gamma * next_v - values) * masks)


def test_normalize_standardises_live_steps_per_group_and_keeps_padding_zero() -> None:
    x = torch.tensor([[1.0, 10.0], [3.0, 20.0], [99.0, 30.0]]).unsqueeze(-1)  # [T=3, n=2, e=1]
    masks = torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.0, 1.0]]).unsqueeze(-1)
    out = normalize(x, masks, dims=(0, 2), eps=0.0)
    # task 0: live values 1, 3 -> mean 2, std 1; task 1: 10, 20, 30 -> mean 20, std sqrt(200/3)
    s = (200 / 3) ** 0.5
    expected = torch.tensor([[-1.0, -10 / s], [1.0, 0.0], [0.0, 10 / s]]).unsqueeze(-1)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("factor", [0.0, 0.5, 1.0])
def test_reverse_discounted_sum_edge_factors(factor: float) -> None:
    x = col(1, 2, 3)
    cont = col(1, 1, 1)
    y = reverse_discounted_sum(x, factor, cont, prefix=True)
    expected = col(1 + factor * 2 + factor ** 2 * 3, 2 + factor * 3, 3)
    torch.testing.assert_close(y, expected)
