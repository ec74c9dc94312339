"""``catch-grid``: the small grid "Catch" of bsuite (Osband et al. 2020) that Optim4RL
meta-trains its learned optimizer on (Lan et al. 2024: a 10 x 5 grid), batched in torch,
with a task-varied sideways drift of the ball.

A ball starts in the top row at a uniformly drawn column; the paddle starts in the middle
of the bottom row. Every step (actions 0 = left, 1 = stay, 2 = right)::

    paddle' = clip(paddle + a - 1, 0, columns - 1)
    ball_row' = ball_row + 1
    ball_col' = clip(ball_col + s, 0, columns - 1)
    s = sign(drift) with probability |drift|, else 0

When the ball reaches the bottom row (after ``rows - 1`` steps) the episode **terminates**
with reward +1 if ``ball_col' == paddle'`` (a catch), else -1 (a miss); every other step
rewards 0. The horizon is ``rows - 1``: every episode terminates exactly there, none is
truncated. The drift's coin is one uniform per slot per step drawn from the generator given
to ``reset`` (drawn at every step, used where ``drift != 0``). No autoreset; an ended slot is
frozen (:mod:`adaptrl.tasks.base`).

Observation (float32): the board flattened row by row, ``rows x columns`` cells, 1 where
the ball or the paddle is, 0 elsewhere (bsuite's). A task is one scalar, ``drift`` uniform
in ``drift_range`` (default ``[-0.5, 0.5]``; 0 is bsuite's Catch); train and test tasks are
disjoint by their parameters' hash (:mod:`adaptrl.tasks.splits`).
"""

from __future__ import annotations

from functools import partial

import gymnasium as gym
import numpy as np
import torch

from adaptrl.randomness import rand
from adaptrl.tasks.base import Split, StepResult, Tasks
from adaptrl.tasks.common import (
    EpisodeClock,
    Range,
    check_int,
    check_range,
    draw_uniform_params,
    freeze,
)
from adaptrl.tasks.splits import sample_split

LEFT, STAY, RIGHT = 0, 1, 2
CATCH_REWARD, MISS_REWARD = 1.0, -1.0


class CatchGridEnv:
    """``tasks x episodes`` Catch boards stepped together; no autoreset.

    ``state`` ``[tasks, episodes, 3]`` (long): ball row, ball column, paddle column.
    """

    def __init__(self, drift: torch.Tensor, episodes_per_task: int, rows: int, columns: int,
                 device: torch.device) -> None:
        self.device, self.rows, self.columns = device, rows, columns
        self.drift = drift.to(device, torch.float32).unsqueeze(1)  # [tasks, 1]
        self.num_tasks, self.episodes_per_task = self.drift.shape[0], episodes_per_task
        self.horizon = rows - 1
        self.clock = EpisodeClock(self.num_tasks, episodes_per_task, self.horizon, device)
        self.state = torch.zeros(self.num_tasks, episodes_per_task, 3, dtype=torch.long,
                                 device=device)
        self.generator: torch.Generator | None = None

    def _observe(self) -> torch.Tensor:
        n, e = self.state.shape[:2]
        board = torch.zeros(n, e, self.rows, self.columns, device=self.device)
        row, col, paddle = self.state.unbind(-1)
        idx_n = torch.arange(n, device=self.device).unsqueeze(1).expand(n, e)
        idx_e = torch.arange(e, device=self.device).unsqueeze(0).expand(n, e)
        board[idx_n, idx_e, row, col] = 1.0
        board[idx_n, idx_e, torch.full_like(row, self.rows - 1), paddle] = 1.0
        return board.reshape(n, e, self.rows * self.columns)

    def reset(self, generator: torch.Generator | None = None) -> torch.Tensor:
        self.clock.reset()
        self.generator = generator
        n, e = self.num_tasks, self.episodes_per_task
        u = rand((n, e), generator, self.device)
        col = (u * self.columns).long().clamp_max(self.columns - 1)
        self.state = torch.stack([torch.zeros_like(col), col,
                                  torch.full_like(col, self.columns // 2)], -1)
        return self._observe()

    def step(self, action: torch.Tensor) -> StepResult:
        live = self.clock.live
        row, col, paddle = self.state.unbind(-1)
        u = rand(live.shape, self.generator, self.device)
        paddle = (paddle + action.to(self.device).long() - STAY).clamp(0, self.columns - 1)
        shift = torch.where(u < self.drift.abs(), torch.sign(self.drift), 0.0).long()
        col = (col + shift).clamp(0, self.columns - 1)
        row = row + 1
        landed = row >= self.rows - 1
        caught = landed & (col == paddle)
        reward = torch.where(caught, CATCH_REWARD, torch.where(landed, MISS_REWARD, 0.0))
        self.state = freeze(live, torch.stack([row, col, paddle], -1), self.state)
        terminated, truncated = self.clock.tick(live, landed)
        return StepResult(self._observe(), reward * live, terminated, truncated)


class CatchGrid:
    """Task family ``catch-grid`` (module docstring: rules, parameters)."""

    name = "catch-grid"

    def __init__(self, drift_range: Range = (-0.5, 0.5), rows: int = 10,
                 columns: int = 5) -> None:
        self.ranges = {"drift": check_range("drift_range", drift_range, -1.0, 1.0)}
        if self.ranges["drift"][0] == self.ranges["drift"][1]:
            raise ValueError("catch-grid: drift_range must have low < high, or the train / test "
                             "splits cannot both be non-empty")
        self.rows = check_int("rows", rows, 2)
        self.columns = check_int("columns", columns, 1)
        self.horizon = self.rows - 1
        self.observation_space = gym.spaces.Box(0.0, 1.0, (self.rows * self.columns,),
                                                np.float32)
        self.action_space = gym.spaces.Discrete(3)

    def sample(self, n: int, split: Split, generator: torch.Generator) -> Tasks:
        """``drift`` uniform in its range, train / test by hash (:func:`.splits.sample_split`)."""
        return sample_split(partial(draw_uniform_params, self.ranges), n, split, generator)

    def make_env(self, tasks: Tasks, episodes_per_task: int,
                 device: torch.device | str = "cpu") -> CatchGridEnv:
        return CatchGridEnv(tasks.params["drift"], episodes_per_task, self.rows, self.columns,
                            torch.device(device))

    def oracle_action(self, tasks: Tasks, observation: torch.Tensor) -> torch.Tensor:
        """Move the paddle under the ball (optimal without drift; near it with drift)."""
        board = observation.reshape(*observation.shape[:-1], self.rows, self.columns)
        ball_col = board[..., :-1, :].sum(-2).argmax(-1)
        paddle = board[..., -1, :].argmax(-1)
        return (torch.sign(ball_col - paddle) + STAY).long()
