"""``cartpole-physics``: Gymnasium's ``CartPole-v1`` in batched torch, with task-varied physics.

The dynamics are those of Barto, Sutton & Anderson (1983) as Gymnasium 1.x writes them
(explicit Euler, ``tau = 0.02`` s): with ``F = +-force_mag``, ``m_t = cart_mass + pole_mass``
and ``l`` the pole's *half* length (Gymnasium's ``length``)::

    temp      = (F + pole_mass * l * thetadot^2 * sin theta) / m_t
    thetaacc  = (g sin theta - cos theta * temp) / (l * (4/3 - pole_mass cos^2 theta / m_t))
    xacc      = temp - pole_mass * l * thetaacc * cos theta / m_t

Observation ``[x, xdot, theta, thetadot]`` (float32; the state is kept in ``dtype``,
float64 by default as Gymnasium does). Action ``Discrete(2)``: 0 pushes left, 1 right.
Reward 1 for every step, the terminating step included. *Terminated* when ``|x| > 2.4``
or ``|theta| > 12 deg``; *truncated* at ``horizon`` (500 as ``CartPole-v1``). The initial
state is ``U(-0.05, 0.05)^4`` drawn from the generator given to ``reset``.

A task is five scalars, each uniform over its range (default 0.5x .. 2x of Gymnasium's
value): ``gravity`` [4.9, 19.6], ``cart_mass`` [0.5, 2], ``pole_mass`` [0.05, 0.2],
``length`` (half length) [0.25, 1], ``force_mag`` [5, 20]; and ``force_sign``, -1 with
probability ``reversed_fraction`` (default 0) and +1 otherwise: a reversed task swaps
the two push directions. At Gymnasium's values (sign +1) the env matches ``CartPole-v1``
step for step (tests/tasks/test_physics_known_answer.py).

Why reversed tasks: with physics alone, one robust balancing policy already scores
near the horizon on every task (a MAML run at horizon 200 scored 200 before adapting),
so there is nothing to adapt. Swapped controls cannot be handled without identifying
the task, which makes adaptation necessary.

Separate train and test sets (``train_grid`` / ``test_boxes``,
:class:`~adaptrl.tasks.splits.GridBoxSplit`) replace the hashed split of one prior: train
tasks on a grid, test tasks out of distribution in boxes. :data:`CADM_PARAMS` are those of
context-aware model-based RL (Lee et al. 2020, CaDM): Gymnasium's discrete cart-pole
(pole mass 0.1) with ``force_mag`` in {5, 6, ..., 15} and ``length`` (the half length,
CaDM's gym ``length`` too) in {0.40, 0.45, ..., 0.60} for training, and four
out-of-distribution test boxes (force, length): ([2, 2.5], [0.15, 0.2]),
([3, 3.5], [0.25, 0.3]), ([16.5, 17], [0.7, 0.75]), ([17.5, 18], [0.8, 0.85]); horizon 200.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from adaptrl.randomness import rand
from adaptrl.tasks.base import Split, StepResult, Tasks
from adaptrl.tasks.common import (
    EpisodeClock,
    Range,
    check_dtype,
    check_int,
    check_ranges,
    draw_uniform_params,
    env_step_dynamics,
    freeze,
)
from adaptrl.tasks.splits import HashSplit, TaskSplit, TestBoxes, TrainGrid, grid_box_split

GYMNASIUM_DEFAULTS: dict[str, float] = {
    "gravity": 9.8, "cart_mass": 1.0, "pole_mass": 0.1, "length": 0.5, "force_mag": 10.0,
    "force_sign": 1.0}
TAU = 0.02
X_THRESHOLD = 2.4
THETA_THRESHOLD = 12 * 2 * math.pi / 360

CADM_PARAMS: dict[str, Any] = {
    "gravity_range": (9.8, 9.8), "cart_mass_range": (1.0, 1.0), "pole_mass_range": (0.1, 0.1),
    "train_grid": {"force_mag": [5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0],
                   "length": [0.40, 0.45, 0.50, 0.55, 0.60]},
    "test_boxes": [{"force_mag": (2.0, 2.5), "length": (0.15, 0.2)},
                   {"force_mag": (3.0, 3.5), "length": (0.25, 0.3)},
                   {"force_mag": (16.5, 17.0), "length": (0.7, 0.75)},
                   {"force_mag": (17.5, 18.0), "length": (0.8, 0.85)}],
    "horizon": 200,
}
"""``CartPolePhysics(**CADM_PARAMS)``: the train grid and out-of-distribution test boxes of
context-aware model-based RL (Lee et al. 2020, CaDM; its ``cadm/envs/config.py``), gravity,
cart and pole mass at Gymnasium's values; configs/maml-cartpole-cadm.yaml spells it out."""


class CartPoleEnv:
    """``tasks x episodes`` cart-poles stepped together; no autoreset.

    ``state`` (``[tasks, episodes, 4]``, in ``dtype``) is the exact physical state.
    """

    def __init__(self, params: dict[str, torch.Tensor], episodes_per_task: int, horizon: int,
                 dtype: torch.dtype, device: torch.device) -> None:
        col = {k: v.to(device, dtype).unsqueeze(1) for k, v in params.items()}  # [n, 1]
        self.device, self.dtype = device, dtype
        self.num_tasks = col["gravity"].shape[0]
        self.episodes_per_task, self.horizon = episodes_per_task, horizon
        self.gravity, self.length = col["gravity"], col["length"]
        self.pole_mass = col["pole_mass"]
        sign = col.get("force_sign")  # absent in hand-made tasks: +1
        self.force_mag = col["force_mag"] if sign is None else col["force_mag"] * sign
        self.total_mass = col["pole_mass"] + col["cart_mass"]
        self.polemass_length = col["pole_mass"] * col["length"]
        self.clock = EpisodeClock(self.num_tasks, episodes_per_task, horizon, device)
        self.state = torch.zeros(self.num_tasks, episodes_per_task, 4, dtype=dtype,
                                 device=device)

    def reset(self, generator: torch.Generator | None = None) -> torch.Tensor:
        self.clock.reset()
        u = rand(self.state.shape, generator, self.device, self.dtype)
        self.state = -0.05 + 0.1 * u
        return self.state.float()

    def step(self, action: torch.Tensor) -> StepResult:
        live = self.clock.live
        x, x_dot, theta, theta_dot = self.state.unbind(-1)
        force = torch.where(action == 1, self.force_mag, -self.force_mag)
        cos, sin = theta.cos(), theta.sin()
        temp = (force + self.polemass_length * theta_dot.square() * sin) / self.total_mass
        theta_acc = (self.gravity * sin - cos * temp) / (
            self.length * (4.0 / 3.0 - self.pole_mass * cos.square() / self.total_mass))
        x_acc = temp - self.polemass_length * theta_acc * cos / self.total_mass
        new = torch.stack([x + TAU * x_dot, x_dot + TAU * x_acc,
                           theta + TAU * theta_dot, theta_dot + TAU * theta_acc], -1)
        self.state = freeze(live, new, self.state)
        x, theta = self.state[..., 0], self.state[..., 2]
        terminal = (x.abs() > X_THRESHOLD) | (theta.abs() > THETA_THRESHOLD)
        terminated, truncated = self.clock.tick(live, terminal)
        return StepResult(self.state.float(), live.float(), terminated, truncated)


class CartPolePhysics:
    """Task family ``cartpole-physics`` (module docstring: dynamics, ranges, episode ends).

    ``train_grid`` / ``test_boxes`` (both or neither; keys among ``force_mag``, ``length``,
    ``gravity``, ``cart_mass``, ``pole_mass``) give separate train and test sets
    (:func:`~adaptrl.tasks.splits.grid_box_split`; :data:`CADM_PARAMS`, Lee et al. 2020):
    a parameter they name takes its values from them, not from its ``*_range``, and
    ``ranges`` declares its hull. Without them a task's split is a hash of its parameters.
    """

    name = "cartpole-physics"

    def __init__(self, gravity_range: Range = (4.9, 19.6), cart_mass_range: Range = (0.5, 2.0),
                 pole_mass_range: Range = (0.05, 0.2), length_range: Range = (0.25, 1.0),
                 force_mag_range: Range = (5.0, 20.0), reversed_fraction: float = 0.0,
                 horizon: int = 500, dtype: str = "float64", train_grid: TrainGrid | None = None,
                 test_boxes: TestBoxes | None = None) -> None:
        given = {"gravity": gravity_range, "cart_mass": cart_mass_range,
                 "pole_mass": pole_mass_range, "length": length_range,
                 "force_mag": force_mag_range}
        grid = grid_box_split(self.name, train_grid, test_boxes, set(given), minimum=0.0,
                              strict_minimum=True)
        self.ranges = check_ranges(self.name, given, must_vary=grid is None)
        if grid is not None:
            self.ranges.update(grid.hull())
        self.splitter: TaskSplit = grid if grid is not None else HashSplit()
        if not (isinstance(reversed_fraction, (int, float)) and 0 <= reversed_fraction <= 1):
            raise ValueError(f"reversed_fraction must be a probability in [0, 1], "
                             f"got {reversed_fraction!r}")
        self.reversed_fraction = float(reversed_fraction)
        self.horizon = check_int("horizon", horizon, 1)
        self.dtype = check_dtype("dtype", dtype)
        high = np.array([X_THRESHOLD * 2, np.inf, THETA_THRESHOLD * 2, np.inf], np.float32)
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def _draw(self, n: int, generator: torch.Generator) -> Tasks:
        tasks = draw_uniform_params(self.ranges, n, generator)
        reversed_ = torch.rand(n, generator=generator) < self.reversed_fraction
        sign = 1.0 - 2.0 * reversed_.float()
        return Tasks({**tasks.params, "force_sign": sign})

    def sample(self, n: int, split: Split, generator: torch.Generator) -> Tasks:
        return self.splitter.sample(self._draw, n, split, generator)

    def split_of(self, tasks: Tasks) -> list[Split]:
        """The split each task belongs to: by test box, or by hash without one."""
        return self.splitter.split_of(tasks)

    def make_env(self, tasks: Tasks, episodes_per_task: int,
                 device: torch.device | str = "cpu") -> CartPoleEnv:
        return CartPoleEnv(tasks.params, episodes_per_task, self.horizon, self.dtype,
                           torch.device(device))

    # -- model-based members (adaptrl.tasks.base.ModelBasedFamily) --
    def reward(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
               ) -> torch.Tensor:
        """The env's reward: 1 for every step of a live episode, the terminating step
        included (a planner stops counting after :meth:`terminal`); batched."""
        return torch.ones(next_obs.shape[:-1], device=next_obs.device)

    def terminal(self, next_obs: torch.Tensor) -> torch.Tensor:
        """``|x| > 2.4`` or ``|theta| > 12 deg`` after the step, as the env terminates."""
        return (next_obs[..., 0].abs() > X_THRESHOLD) | (next_obs[..., 2].abs() > THETA_THRESHOLD)

    def true_dynamics(self, tasks: Tasks, device: torch.device | str = "cpu"
                      ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The env's own step as a dynamics function of observations (= states)
        ``[tasks, batch, 4] -> [tasks, batch, 4]``, actions ``[tasks, batch]`` in {0, 1}:
        the MPC oracle's model, a :class:`CartPoleEnv` of ``batch`` slots per task."""
        def set_state(env: CartPoleEnv, obs: torch.Tensor) -> None:
            env.state = obs.to(env.dtype)
        return env_step_dynamics(lambda batch: self.make_env(tasks, batch, device), set_state)
