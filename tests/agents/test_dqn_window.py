"""The replay's window sampler and the lambda-return (agents/dqn.py): known answers on a
hand-made ring (an episode end inside the window, truncation against termination, the
ring's wrap-around, per-task isolation) and the identities lambda = 1 (the n-step return
of :func:`sample_n_step`) and lambda = 0 (the one-step TD target)."""

from __future__ import annotations

import pytest
import torch

from adaptrl.agents.dqn import WindowBatch, lambda_returns, sample_n_step, sample_window
from adaptrl.rollouts.replay import RingBuffer
from adaptrl.rollouts.td import td_targets
from adaptrl.rollouts.transitions import Transitions

Row = tuple[list[float], list[float], list[bool], list[bool]]


def chain(rewards: list[float], terminated: frozenset[int] = frozenset(),
          truncated: frozenset[int] = frozenset(), offset: float = 0.0) -> Transitions:
    """One row's chronological transitions: obs ``offset + i``, next obs ``offset + i + 1``."""
    n = len(rewards)
    i = torch.arange(n, dtype=torch.float32) + offset
    return Transitions(i.view(1, n, 1), torch.zeros(1, n, dtype=torch.long),
                       torch.tensor([rewards]), (i + 1).view(1, n, 1),
                       torch.tensor([[k in terminated for k in range(n)]]),
                       torch.tensor([[k in truncated for k in range(n)]]))


def windows(replay: RingBuffer, n: int, slots: int = 1, task: int = 0) -> dict[int, Row]:
    """Every start's window ``(rewards, next obs, terminated, valid)``, keyed by its obs."""
    b = sample_window(replay, slots, 400, n, torch.Generator().manual_seed(0))
    return {int(b.obs[task, j, 0]): (b.rewards[task, j].tolist(),
                                     b.next_obs[task, j, :, 0].tolist(),
                                     b.terminated[task, j].tolist(), b.valid[task, j].tolist())
            for j in range(b.obs.shape[1])}


T, F = True, False


def test_window_stops_at_an_episode_end_bootstrapping_through_truncation_only() -> None:
    replay = RingBuffer(1, 8)
    replay.add(chain([1, 2, 3, 4, 5], terminated=frozenset({4}), truncated=frozenset({2})))
    assert windows(replay, 3) == {
        0: ([1, 2, 3], [1, 2, 3], [F, F, F], [T, T, T]),  # ends at the truncation (step 2)
        1: ([2, 3, 0], [2, 3, 4], [F, F, F], [T, T, F]),  # never into the next episode
        2: ([3, 0, 0], [3, 4, 5], [F, F, F], [T, F, F]),
        3: ([4, 5, 0], [4, 5, 0], [F, T, F], [T, T, F]),  # terminal at step 4
        4: ([5, 0, 0], [5, 0, 0], [T, F, F], [T, F, F])}  # (ring slots 5, 6 are empty)


def test_window_wraps_round_the_ring_and_stops_at_the_newest_transition() -> None:
    replay = RingBuffer(1, 4)  # holds steps 2..5 at slots 2, 3, 0, 1; step 5 is the newest
    replay.add(chain([0, 1, 2, 3, 4, 5], terminated=frozenset({3})))
    assert windows(replay, 3) == {
        2: ([2, 3, 0], [3, 4, 5], [F, T, F], [T, T, F]),  # slot 3 -> 0: ends at termination
        3: ([3, 0, 0], [4, 5, 6], [T, F, F], [T, F, F]),
        4: ([4, 5, 0], [5, 6, 3], [F, F, F], [T, T, F]),  # the data ends at step 5: never
        5: ([5, 0, 0], [6, 3, 4], [F, F, F], [T, F, F])}  # wrap round to the oldest step


def test_windows_stay_in_their_own_slot_and_task() -> None:
    """2 tasks x 2 slots: rows hold obs 100 * row + i; every step of a window comes from the
    row its start came from, and every task draws from both its slots only."""
    replay = RingBuffer(4, 6)
    data = [chain([1.0] * 9, truncated=frozenset({3}), offset=100.0 * r) for r in range(4)]
    replay.add(Transitions(*(torch.cat([getattr(d, f) for d in data]) for f in
                             ("obs", "action", "reward", "next_obs", "terminated",
                              "truncated"))))
    b = sample_window(replay, 2, 300, 4, torch.Generator().manual_seed(1))
    row_of_start = (b.obs[..., 0] // 100).long()  # [tasks, batch]
    row_of_step = (b.next_obs[..., 0] // 100).long()  # [tasks, batch, n]
    assert bool((row_of_step[b.valid] == row_of_start.unsqueeze(-1).expand_as(b.valid)
                 [b.valid]).all())
    for task in range(2):
        assert set(row_of_start[task].tolist()) == {2 * task, 2 * task + 1}


def test_same_starts_as_sample_n_step() -> None:
    replay = RingBuffer(2, 5)
    replay.add(Transitions(*(torch.cat([getattr(chain([1, 2, 3, 4, 5, 6, 7], offset=o), f)
                                        for o in (0.0, 50.0)]) for f in
                             ("obs", "action", "reward", "next_obs", "terminated",
                              "truncated"))))
    w = sample_window(replay, 1, 32, 3, torch.Generator().manual_seed(4))
    n = sample_n_step(replay, 1, 32, 0.5, 3, torch.Generator().manual_seed(4))
    assert torch.equal(w.obs, n.obs) and torch.equal(w.action, n.action)
    with pytest.raises(ValueError, match="n must be"):
        sample_window(replay, 1, 4, 0, torch.Generator())


def _window(rewards: list[float], valid: list[bool], terminated: list[bool]) -> WindowBatch:
    k = len(rewards)
    return WindowBatch(torch.zeros(1, 1, 1), torch.zeros(1, 1, dtype=torch.long),
                       torch.tensor([[rewards]], dtype=torch.float64),
                       torch.zeros(1, 1, k, 1), torch.tensor([[terminated]]),
                       torch.tensor([[valid]]))


def test_lambda_return_known_answers() -> None:
    """gamma = lambda = 0.5, rewards 1, 2, 3, values after each step 10, 20, 40:
    G_2 = 3 + 0.5 * 40 = 23; G_1 = 2 + 0.5 (0.5 * 20 + 0.5 * 23) = 12.75;
    G_0 = 1 + 0.5 (0.5 * 10 + 0.5 * 12.75) = 6.6875, which is also eq. 12.9-12.10's
    weighted sum of the n-step returns G^(1) = 6, G^(2) = 7, G^(3) = 7.75:
    (1 - lambda) (G^(1) + lambda G^(2)) + lambda^2 G^(3)."""
    v = torch.tensor([[[10.0, 20.0, 40.0]]], dtype=torch.float64)
    g = lambda_returns(_window([1, 2, 3], [T, T, T], [F, F, F]), v, 0.5, 0.5)
    assert g.tolist() == [[6.6875]]
    assert 0.5 * (6 + 0.5 * 7) + 0.25 * 7.75 == 6.6875
    # terminal at step 1: G_1 = 2 (no bootstrap), G_0 = 1 + 0.5 (0.5 * 10 + 0.5 * 2) = 4;
    # step 2 lies outside the window and is ignored whatever it holds
    g = lambda_returns(_window([1, 2, 99], [T, T, F], [F, T, F]), v, 0.5, 0.5)
    assert g.tolist() == [[4.0]]
    # a window cut after one step (a truncation) bootstraps there: 1 + 0.5 * 10
    assert lambda_returns(_window([1, 0, 0], [T, F, F], [F, F, F]), v, 0.5, 0.5).tolist() \
        == [[6.0]]
    # per-task gamma and lambda ([tasks, 1]) broadcast over the batch
    g = lambda_returns(_window([1, 2, 3], [T, T, T], [F, F, F]), v,
                       torch.tensor([[0.5]], dtype=torch.float64),
                       torch.tensor([[0.5]], dtype=torch.float64))
    assert g.tolist() == [[6.6875]]


def _replay() -> RingBuffer:
    replay = RingBuffer(2, 6)
    a = chain([1, 2, 3, 4, 5, 6, 7, 8], terminated=frozenset({4}), truncated=frozenset({1}))
    b = chain([2, 4, 6, 8, 10, 12, 14, 16], terminated=frozenset({6}), offset=20.0)
    replay.add(Transitions(*(torch.cat([getattr(a, f), getattr(b, f)]) for f in
                             ("obs", "action", "reward", "next_obs", "terminated",
                              "truncated"))))
    return replay


@pytest.mark.parametrize("n", [1, 2, 4])
def test_lambda_one_is_the_n_step_return(n: int) -> None:
    """lambda = 1: ``sum_{k<m} gamma^k r_k + gamma^m (1 - terminated) V(s_{t+m})``, the
    target of :func:`sample_n_step` for the same draws (dyadic numbers: exact)."""
    replay = _replay()
    w = sample_window(replay, 1, 64, n, torch.Generator().manual_seed(3))
    s = sample_n_step(replay, 1, 64, 0.5, n, torch.Generator().manual_seed(3))
    value = lambda obs: obs[..., 0].double() * 0.25  # V(s) of the obs number  # noqa: E731
    g = lambda_returns(w, value(w.next_obs), 0.5, 1.0)
    expected = td_targets(s.returns.double(), s.discount.double() * value(s.next_obs),
                          s.terminated, 1.0)
    assert torch.equal(g, expected)


def test_lambda_zero_is_the_one_step_target() -> None:
    replay = _replay()
    w = sample_window(replay, 1, 64, 4, torch.Generator().manual_seed(5))
    s = sample_n_step(replay, 1, 64, 0.5, 1, torch.Generator().manual_seed(5))
    values = w.next_obs[..., 0].double() * 0.25
    g = lambda_returns(w, values, 0.5, 0.0)
    expected = td_targets(s.returns.double(), values[..., 0], s.terminated, 0.5)
    assert torch.equal(g, expected)
