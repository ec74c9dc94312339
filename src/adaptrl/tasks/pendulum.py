"""``pendulum-physics``: Gymnasium's ``Pendulum-v1`` in batched torch, with task-varied physics.

Gymnasium 1.x dynamics (semi-implicit Euler, ``dt = 0.05`` s), extended by a viscous
damping torque ``-b * thetadot`` (``b = 0`` is Gymnasium's pendulum)::

    u            = clip(action, -max_torque, max_torque)
    cost         = normalize(theta)^2 + 0.1 thetadot^2 + 0.001 u^2,   reward = -cost
    thetadot'    = clip(thetadot + (3 g / (2 l) sin theta + 3 / (m l^2) (u - b thetadot)) dt,
                        -8, 8)
    theta'       = theta + thetadot' dt

``theta = 0`` is upright. Observation ``[cos theta, sin theta, thetadot]`` (float32; the
state is kept in ``dtype``, float64 by default). Action ``Box(-max_torque, max_torque,
(1,))`` (``max_torque = 2`` as Gymnasium). No terminal states; *truncated* at ``horizon``
(200, Gymnasium's time limit). The initial state is ``theta ~ U[start_theta_range]``,
``thetadot ~ U[start_theta_dot_range]`` (Gymnasium's ``U[-pi, pi]``, ``U[-1, 1]`` by
default) from the generator given to ``reset``.

A task is four scalars, each uniform over its range: ``gravity`` [5, 20] (Gymnasium 10),
``mass`` [0.5, 2] (1), ``length`` [0.5, 2] (1), ``damping`` [0, 0.5] (0). At Gymnasium's
values the env matches ``Pendulum-v1`` step for step
(tests/tasks/test_physics_known_answer.py).

Separate train and test sets (``train_grid`` / ``test_boxes``,
:class:`~adaptrl.tasks.splits.GridBoxSplit`) replace the hashed split of one prior.
:data:`CADM_PARAMS` are those of context-aware model-based RL (Lee et al. 2020, CaDM):
``mass`` and ``length`` in {0.75, 0.80, ..., 1.25} for training, four out-of-distribution
test boxes (mass, length): ([0.2, 0.4], [1.6, 1.8]), ([0.5, 0.7], [1.3, 1.5]),
([1.3, 1.5], [0.5, 0.7]), ([1.6, 1.8], [0.2, 0.4]); gravity 10, no damping; the pendulum
starts hanging down, ``theta ~ U[7 pi / 8, 9 pi / 8]``, ``thetadot ~ U[-0.2, 0.2]``; the
cost above; horizon 200. (CaDM's own code charges ``0.001 (u / 2)^2`` in its env's step,
its planner's reward ``0.001 u^2``; it also advances theta with the unclipped velocity, as
old gym did. We keep Gymnasium's step and the cost as the paper and REFERENCES.md give it.)
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
    check_positive,
    check_range,
    check_some_range_varies,
    draw_uniform_params,
    env_step_dynamics,
    freeze,
)
from adaptrl.tasks.splits import HashSplit, TaskSplit, TestBoxes, TrainGrid, grid_box_split

GYMNASIUM_DEFAULTS: dict[str, float] = {"gravity": 10.0, "mass": 1.0, "length": 1.0,
                                        "damping": 0.0}
DT = 0.05
MAX_SPEED = 8.0

_CADM_SET = [0.75, 0.80, 0.85, 0.90, 0.95, 1.00, 1.05, 1.10, 1.15, 1.20, 1.25]
CADM_PARAMS: dict[str, Any] = {
    "gravity_range": (10.0, 10.0), "damping_range": (0.0, 0.0),
    "train_grid": {"mass": _CADM_SET, "length": _CADM_SET},
    "test_boxes": [{"mass": (0.2, 0.4), "length": (1.6, 1.8)},
                   {"mass": (0.5, 0.7), "length": (1.3, 1.5)},
                   {"mass": (1.3, 1.5), "length": (0.5, 0.7)},
                   {"mass": (1.6, 1.8), "length": (0.2, 0.4)}],
    "start_theta_range": (7 * math.pi / 8, 9 * math.pi / 8),
    "start_theta_dot_range": (-0.2, 0.2),
    "horizon": 200,
}
"""``PendulumPhysics(**CADM_PARAMS)``: the train grid, out-of-distribution test boxes and
hanging start of context-aware model-based RL (Lee et al. 2020, CaDM; its
``cadm/envs/config.py`` and ``classic_control.py``); configs/maml-pendulum-cadm.yaml spells
it out."""


def angle_normalize(theta: torch.Tensor) -> torch.Tensor:
    """Wrap an angle into ``[-pi, pi)``."""
    return torch.remainder(theta + math.pi, 2 * math.pi) - math.pi


class PendulumEnv:
    """``tasks x episodes`` pendulums stepped together; no autoreset.

    ``state`` (``[tasks, episodes, 2]``: theta, thetadot, in ``dtype``) is the exact state.
    """

    def __init__(self, params: dict[str, torch.Tensor], episodes_per_task: int, horizon: int,
                 max_torque: float, dtype: torch.dtype, device: torch.device,
                 start: tuple[Range, Range] = ((-math.pi, math.pi), (-1.0, 1.0))) -> None:
        col = {k: v.to(device, dtype).unsqueeze(1) for k, v in params.items()}  # [n, 1]
        self.device, self.dtype = device, dtype
        self.num_tasks = col["gravity"].shape[0]
        self.episodes_per_task, self.horizon = episodes_per_task, horizon
        self.max_torque = max_torque
        self.gravity_term = 3 * col["gravity"] / (2 * col["length"])
        self.torque_term = 3.0 / (col["mass"] * col["length"] ** 2)
        self.damping = col["damping"]
        # the start box as centre +- half width: Gymnasium's high * (2u - 1) at the default
        self.start_centre = torch.tensor([(lo + hi) / 2 for lo, hi in start], dtype=dtype,
                                         device=device)
        self.start_half = torch.tensor([(hi - lo) / 2 for lo, hi in start], dtype=dtype,
                                       device=device)
        self.clock = EpisodeClock(self.num_tasks, episodes_per_task, horizon, device)
        self.state = torch.zeros(self.num_tasks, episodes_per_task, 2, dtype=dtype,
                                 device=device)
        self.observation = self._observe()

    def _observe(self) -> torch.Tensor:
        theta, theta_dot = self.state.unbind(-1)
        return torch.stack([theta.cos(), theta.sin(), theta_dot], -1).float()

    def reset(self, generator: torch.Generator | None = None) -> torch.Tensor:
        self.clock.reset()
        u = rand(self.state.shape, generator, self.device, self.dtype)
        self.state = self.start_centre + self.start_half * (2 * u - 1)
        self.observation = self._observe()
        return self.observation.clone()

    def step(self, action: torch.Tensor) -> StepResult:
        live = self.clock.live
        theta, theta_dot = self.state.unbind(-1)
        u = action[..., 0].clamp(-self.max_torque, self.max_torque).to(self.dtype)
        cost = angle_normalize(theta).square() + 0.1 * theta_dot.square() + 0.001 * u.square()
        acc = self.gravity_term * theta.sin() + self.torque_term * (u - self.damping * theta_dot)
        new_theta_dot = (theta_dot + acc * DT).clamp(-MAX_SPEED, MAX_SPEED)
        new = torch.stack([theta + new_theta_dot * DT, new_theta_dot], -1)
        self.state = freeze(live, new, self.state)
        terminated, truncated = self.clock.tick(live)
        self.observation = freeze(live, self._observe(), self.observation)
        return StepResult(self.observation.clone(), (-cost * live).float(), terminated,
                          truncated)


class PendulumPhysics:
    """Task family ``pendulum-physics`` (module docstring: dynamics, ranges, episode ends).

    ``train_grid`` / ``test_boxes`` (both or neither; keys among ``mass``, ``length``,
    ``gravity``, ``damping``) give separate train and test sets
    (:func:`~adaptrl.tasks.splits.grid_box_split`; :data:`CADM_PARAMS`, Lee et al. 2020):
    a parameter they name takes its values from them, not from its ``*_range``, and
    ``ranges`` declares its hull. Without them a task's split is a hash of its parameters.
    """

    name = "pendulum-physics"

    def __init__(self, gravity_range: Range = (5.0, 20.0), mass_range: Range = (0.5, 2.0),
                 length_range: Range = (0.5, 2.0), damping_range: Range = (0.0, 0.5),
                 max_torque: float = 2.0, horizon: int = 200, dtype: str = "float64",
                 train_grid: TrainGrid | None = None, test_boxes: TestBoxes | None = None,
                 start_theta_range: Range = (-math.pi, math.pi),
                 start_theta_dot_range: Range = (-1.0, 1.0)) -> None:
        self.ranges = {
            "gravity": check_range("gravity_range", gravity_range, 0.0),
            "mass": check_range("mass_range", mass_range, 0.0, strict_minimum=True),
            "length": check_range("length_range", length_range, 0.0, strict_minimum=True),
            "damping": check_range("damping_range", damping_range, 0.0),
        }
        grid = grid_box_split(self.name, train_grid, test_boxes, set(self.ranges), minimum=0.0)
        self.splitter: TaskSplit = grid if grid is not None else HashSplit()
        if grid is None:
            check_some_range_varies(self.name,
                                    {f"{k}_range": v for k, v in self.ranges.items()})
        else:
            for key, hull in grid.hull().items():  # mass, length: > 0 (divisors)
                self.ranges[key] = check_range(f"train_grid / test_boxes {key}", hull, 0.0,
                                               strict_minimum=key in ("mass", "length"))
        self.start = (check_range("start_theta_range", start_theta_range),
                      check_range("start_theta_dot_range", start_theta_dot_range))
        self.max_torque = check_positive("max_torque", max_torque)
        self.horizon = check_int("horizon", horizon, 1)
        self.dtype = check_dtype("dtype", dtype)
        high = np.array([1.0, 1.0, MAX_SPEED], dtype=np.float32)
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.action_space = gym.spaces.Box(-max_torque, max_torque, (1,), np.float32)

    def _draw(self, n: int, generator: torch.Generator) -> Tasks:
        return draw_uniform_params(self.ranges, n, generator)

    def sample(self, n: int, split: Split, generator: torch.Generator) -> Tasks:
        return self.splitter.sample(self._draw, n, split, generator)

    def split_of(self, tasks: Tasks) -> list[Split]:
        """The split each task belongs to: by test box, or by hash without one."""
        return self.splitter.split_of(tasks)

    def make_env(self, tasks: Tasks, episodes_per_task: int,
                 device: torch.device | str = "cpu") -> PendulumEnv:
        return PendulumEnv(tasks.params, episodes_per_task, self.horizon, self.max_torque,
                           self.dtype, torch.device(device), self.start)

    # -- model-based members (adaptrl.tasks.base.ModelBasedFamily) --
    def reward(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
               ) -> torch.Tensor:
        """The env's reward ``-(theta^2 + 0.1 thetadot^2 + 0.001 u^2)`` of the transition,
        from the observation ``[cos, sin, thetadot]`` it acted on (``theta`` recovered by
        ``atan2``, which is already in ``[-pi, pi]``); batched over leading dims."""
        theta = torch.atan2(obs[..., 1], obs[..., 0])
        u = action[..., 0].clamp(-self.max_torque, self.max_torque)
        return -(theta.square() + 0.1 * obs[..., 2].square() + 0.001 * u.square())

    def terminal(self, next_obs: torch.Tensor) -> torch.Tensor:
        """No terminal states."""
        return torch.zeros(next_obs.shape[:-1], dtype=torch.bool, device=next_obs.device)

    def true_dynamics(self, tasks: Tasks, device: torch.device | str = "cpu"
                      ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The env's own step as a dynamics function of observations
        ``[tasks, batch, 3] -> [tasks, batch, 3]`` (the MPC oracle's model): the state is
        recovered from the observation and stepped by a :class:`PendulumEnv` of ``batch``
        slots per task."""
        def set_state(env: PendulumEnv, obs: torch.Tensor) -> None:
            theta = torch.atan2(obs[..., 1], obs[..., 0]).to(env.dtype)
            env.state = torch.stack([theta, obs[..., 2].to(env.dtype)], -1)
        return env_step_dynamics(lambda batch: self.make_env(tasks, batch, device), set_state)
