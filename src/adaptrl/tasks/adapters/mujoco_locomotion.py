"""MuJoCo locomotion families of MAML (Finn et al. 2017, §5.3), on Gymnasium's v5 envs.

=================== ========================= ================================================
family              task parameter            reward per step
=================== ========================= ================================================
``halfcheetah-vel`` ``velocity`` ~ U[0, 2]    ``-|v - velocity| - 0.05 |a|^2``
``halfcheetah-dir`` ``direction`` in {-1, +1} ``direction * v - 0.05 |a|^2``
``ant-vel``         ``velocity`` ~ U[0, 3]    ``-|v - velocity| + 1 - 0.005 |a|^2 - c + 0.05``
``ant-dir``         ``direction`` in {-1, +1} ``direction * v - 0.005 |a|^2 - c + 0.05``
=================== ========================= ================================================

``v`` is the forward (x) velocity of the torso over one control step (Gymnasium's
``info["x_velocity"]``), ``a`` the action as given (not clipped; MuJoCo clamps the control
itself) and ``c`` Gymnasium's Ant contact cost ``5e-4 |clip(cfrc_ext, -1, 1)|^2``. The
constants are those of the MAML reference code (rllab; also pytorch-maml-rl): control
weight ``0.5 * 1e-1`` for the cheetah and ``0.5 * 1e-2`` for the ant, contact weight
``0.5 * 1e-3``, survive bonus ``0.05``, and the ``+1`` of the ant velocity task. The ant
terminates when its torso leaves the height band ``[0.2, 1.0]`` (Gymnasium's default, the
reference's test); the cheetah never terminates.

Differences from the reference, stated so they are not mistaken for results: the
observations are Gymnasium v5's (HalfCheetah 17-d, Ant 105-d), not rllab's; the physics
is MuJoCo's current release, not MuJoCo 1.31.

Horizon: 200 as in the paper (the later reference code used 100); ``horizon=`` changes it.

Splits. Velocity tasks are split by a hash of the velocity (disjoint, see
:mod:`adaptrl.tasks.splits`). Direction tasks are a finite set of two, and the paper
meta-tests on those same two tasks, so **both directions appear in both splits**
(``splits="shared"``): ``sample(n, "test")`` draws +1 / -1 with probability 1/2 each, like
``"train"``. There is no held-out direction; what is held out at meta-test time is the
fresh adaptation experience only.

Needs the extra ``adaptrl[mujoco]`` (``mujoco`` and ``gymnasium[mujoco]``); nothing here
imports MuJoCo until a family is built.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch

from adaptrl.tasks.adapters.gymnasium_adapter import GymnasiumFamily, Vectorization
from adaptrl.tasks.base import Tasks
from adaptrl.tasks.common import check_range, draw_uniform_params

TaskKind = Literal["velocity", "direction"]


@dataclass(frozen=True)
class Robot:
    """A Gymnasium MuJoCo env and the MAML reward constants that go with it."""

    env_id: str
    ctrl_cost_weight: float  # times |a|^2
    survive_reward: float  # added every step
    velocity_bonus: float  # added to the velocity task's forward term (the ant's +1)
    contact_cost: bool  # subtract Gymnasium's contact cost (info["reward_contact"] is -c)


HALF_CHEETAH = Robot("HalfCheetah-v5", ctrl_cost_weight=0.05, survive_reward=0.0,
                     velocity_bonus=0.0, contact_cost=False)
ANT = Robot("Ant-v5", ctrl_cost_weight=0.005, survive_reward=0.05, velocity_bonus=1.0,
            contact_cost=True)


class LocomotionTaskReward(gym.Wrapper):
    """Replaces a MuJoCo env's reward by a MAML task reward (see the module doc).

    The task arrives in ``reset(options={"task": {"velocity": v}})`` or
    ``{"direction": d}``; ``info`` gains ``reward_task`` (the forward term).
    """

    def __init__(self, env: gym.Env, robot: Robot, kind: TaskKind) -> None:
        super().__init__(env)
        self.robot = robot
        self.kind = kind
        self.goal = 0.0 if kind == "velocity" else 1.0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[Any, dict[str, Any]]:
        options = dict(options or {})
        task = options.pop("task", None)
        if task is not None:
            self.goal = float(task[self.kind])
        return self.env.reset(seed=seed, options=options or None)

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, _, terminated, truncated, info = self.env.step(action)
        v = float(info["x_velocity"])
        if self.kind == "velocity":
            forward = -abs(v - self.goal) + self.robot.velocity_bonus
        else:
            forward = self.goal * v
        reward = forward - self.robot.ctrl_cost_weight * float(np.dot(action, action))
        reward += self.robot.survive_reward
        if self.robot.contact_cost:
            reward += float(info["reward_contact"])
        info["reward_task"] = forward
        return obs, reward, terminated, truncated, info


def require_mujoco() -> None:
    """Raise a clear ImportError when the MuJoCo extra is missing."""
    if importlib.util.find_spec("mujoco") is None:
        raise ImportError("the MuJoCo locomotion families need the extra: "
                          "pip install 'adaptrl[mujoco]' (mujoco, gymnasium[mujoco])")


def make_locomotion_env(robot: Robot, kind: TaskKind, horizon: int) -> gym.Env:
    """One Gymnasium MuJoCo env with the task reward (module level: picklable)."""
    return LocomotionTaskReward(gym.make(robot.env_id, max_episode_steps=horizon), robot, kind)


def _velocity_sampler(low: float, high: float, n: int, generator: torch.Generator) -> Tasks:
    return draw_uniform_params({"velocity": (low, high)}, n, generator)


def _direction_sampler(n: int, generator: torch.Generator) -> Tasks:
    coin = torch.randint(0, 2, (n,), generator=generator)
    return Tasks({"direction": (2 * coin - 1).to(torch.float32)})


def velocity_family(name: str, robot: Robot, velocity_range: tuple[float, float],
                    horizon: int, vectorization: Vectorization) -> GymnasiumFamily:
    """A target-velocity family; velocities ~ U[velocity_range], disjoint hash splits."""
    require_mujoco()
    low, high = check_range("velocity_range", velocity_range)
    if low == high:
        raise ValueError(f"velocity_range must have low < high (a single velocity leaves one "
                         f"split empty), got {velocity_range!r}")
    return GymnasiumFamily(functools.partial(make_locomotion_env, robot, "velocity", horizon),
                           functools.partial(_velocity_sampler, low, high), "reset",
                           horizon=horizon, vectorization=vectorization, name=name)


def direction_family(name: str, robot: Robot, horizon: int,
                     vectorization: Vectorization) -> GymnasiumFamily:
    """A forward / backward family; both directions in both splits (see the module doc)."""
    require_mujoco()
    return GymnasiumFamily(functools.partial(make_locomotion_env, robot, "direction", horizon),
                           _direction_sampler, "reset", horizon=horizon,
                           vectorization=vectorization, name=name, splits="shared")


def half_cheetah_vel(horizon: int = 200, velocity_range: tuple[float, float] = (0.0, 2.0),
                     vectorization: Vectorization = "sync") -> GymnasiumFamily:
    """``halfcheetah-vel``: run at a target velocity ~ U[0, 2] (MAML §5.3)."""
    return velocity_family("halfcheetah-vel", HALF_CHEETAH, velocity_range, horizon,
                           vectorization)


def half_cheetah_dir(horizon: int = 200, vectorization: Vectorization = "sync"
                     ) -> GymnasiumFamily:
    """``halfcheetah-dir``: run forward (+1) or backward (-1) (MAML §5.3)."""
    return direction_family("halfcheetah-dir", HALF_CHEETAH, horizon, vectorization)


def ant_vel(horizon: int = 200, velocity_range: tuple[float, float] = (0.0, 3.0),
            vectorization: Vectorization = "sync") -> GymnasiumFamily:
    """``ant-vel``: run at a target velocity ~ U[0, 3] (MAML §5.3)."""
    return velocity_family("ant-vel", ANT, velocity_range, horizon, vectorization)


def ant_dir(horizon: int = 200, vectorization: Vectorization = "sync") -> GymnasiumFamily:
    """``ant-dir``: run forward (+1) or backward (-1) (MAML §5.3)."""
    return direction_family("ant-dir", ANT, horizon, vectorization)
