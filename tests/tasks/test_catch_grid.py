"""``catch-grid``: a catch and a miss worked by hand, drift known answers, the board, the
checker's promises, the oracle, bad parameters."""

from __future__ import annotations

import pytest
import torch

from adaptrl.tasks import CatchGrid, Tasks, check_task_family, make
from adaptrl.tasks.catch_grid import LEFT, RIGHT, STAY, CatchGridEnv


def _env(drift: float = 0.0, seed: int = 0, column: int | None = None
         ) -> tuple[CatchGridEnv, torch.Tensor]:
    env = CatchGrid().make_env(Tasks({"drift": torch.tensor([drift])}), 1)
    obs = env.reset(torch.Generator().manual_seed(seed))
    if column is not None:
        env.state[0, 0, 1] = column
    return env, obs


def _play(env: CatchGridEnv, actions: list[int]) -> tuple[list[float], list[bool]]:
    rewards, ends = [], []
    for a in actions:
        res = env.step(torch.tensor([[a]]))
        rewards.append(float(res.reward))
        ends.append(bool(res.terminated))
    return rewards, ends


def test_a_catch() -> None:
    """The ball in column 4, the paddle in column 2: two moves right, then stay; the ball
    lands after 9 steps on the paddle: +1, terminated, nothing before."""
    env, _ = _env(column=4)
    rewards, ends = _play(env, [RIGHT, RIGHT] + [STAY] * 7)
    assert rewards == [0.0] * 8 + [1.0]
    assert ends == [False] * 8 + [True]
    assert not bool(env.clock.truncated.any())


def test_a_miss() -> None:
    env, _ = _env(column=0)
    rewards, ends = _play(env, [RIGHT] * 9)  # the paddle runs to the right wall
    assert rewards == [0.0] * 8 + [-1.0]
    assert ends[-1] and int(env.state[0, 0, 2]) == 4


def test_the_paddle_stops_at_the_walls_and_the_slot_freezes() -> None:
    env, _ = _env(column=0)
    rewards, _ = _play(env, [LEFT] * 9)
    assert int(env.state[0, 0, 2]) == 0 and rewards[-1] == 1.0
    frozen = env.step(torch.tensor([[RIGHT]]))
    assert float(frozen.reward) == 0.0 and int(env.state[0, 0, 2]) == 0


@pytest.mark.parametrize(("drift", "column"), [(1.0, 4), (-1.0, 0)])
def test_full_drift_carries_the_ball_to_the_wall(drift: float, column: int) -> None:
    env, _ = _env(drift=drift, column=2)
    _play(env, [STAY] * 9)
    assert int(env.state[0, 0, 1]) == column


def test_the_board_shows_ball_and_paddle() -> None:
    env, obs = _env(seed=3)
    board = obs.reshape(10, 5)
    col = int(env.state[0, 0, 1])
    assert board.sum() == 2 and board[0, col] == 1 and board[9, 2] == 1


def test_keeps_the_task_api_promises() -> None:
    check_task_family(make("catch-grid"))


def test_the_oracle_catches_without_drift() -> None:
    family = CatchGrid(drift_range=(0.0, 1e-6))
    tasks = Tasks({"drift": torch.zeros(2)})
    env = family.make_env(tasks, 8)
    obs = env.reset(torch.Generator().manual_seed(0))
    total = torch.zeros(2, 8)
    for _ in range(family.horizon):
        res = env.step(family.oracle_action(tasks, obs))
        total += res.reward
        obs = res.observation
    assert bool((total == 1.0).all())


def test_bad_parameters_name_the_field() -> None:
    with pytest.raises(ValueError, match="drift_range"):
        CatchGrid(drift_range=(-2.0, 0.5))
    with pytest.raises(ValueError, match="rows"):
        CatchGrid(rows=1)
