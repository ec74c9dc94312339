"""Family wrappers: change how an agent sees a task family without touching the family.

:class:`RescaledActions` is rllab's ``normalize(env)`` for batched families: the agent
acts in ``[-1, 1]^d`` and the env receives the linear map of that box onto the family's
action box (then clips as it always does). The MAML paper's reference code wraps every
continuous-control env this way, so that a Gaussian policy with unit initial std explores
the whole action box instead of saturating it ten times over (navigation-2d's box is
``[-0.1, 0.1]^2``), and so that one inner step size means the same on every family.
"""

from __future__ import annotations

from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch

from adaptrl.tasks.base import BatchedEnv, Split, StepResult, TaskFamily, Tasks


class _RescaledEnv:
    """A :class:`BatchedEnv` whose actions are mapped from ``[-1, 1]^d`` to ``[low, high]``."""

    def __init__(self, env: BatchedEnv, low: torch.Tensor, high: torch.Tensor) -> None:
        self.env = env
        self.num_tasks = env.num_tasks
        self.episodes_per_task = env.episodes_per_task
        self.horizon = env.horizon
        self.device = env.device
        self._center = ((high + low) / 2).to(env.device)
        self._half_width = ((high - low) / 2).to(env.device)

    def reset(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.env.reset(generator)

    def step(self, action: torch.Tensor) -> StepResult:
        return self.env.step(torch.addcmul(self._center, action, self._half_width))

    def __getattr__(self, name: str) -> Any:  # the wrapped env's extras (goals, success, ...)
        if name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)


class RescaledActions:
    """``family`` with its bounded Box action space presented as ``[-1, 1]^d``."""

    def __init__(self, family: TaskFamily) -> None:
        space = family.action_space
        if not isinstance(space, gym.spaces.Box) or not (
                np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
            raise ValueError(f"rescale_actions needs a bounded Box action space; family "
                             f"{family.name!r} has {space}")
        self.family = family
        self.name = family.name
        self.horizon = family.horizon
        self.observation_space = family.observation_space
        self.action_space = gym.spaces.Box(-1.0, 1.0, space.shape, np.float32)
        self._low = torch.as_tensor(space.low, dtype=torch.float32)
        self._high = torch.as_tensor(space.high, dtype=torch.float32)

    def sample(self, n: int, split: Split, generator: torch.Generator) -> Tasks:
        return self.family.sample(n, split, generator)

    def make_env(self, tasks: Tasks, episodes_per_task: int,
                 device: torch.device | str = "cpu") -> BatchedEnv:
        env = self.family.make_env(tasks, episodes_per_task, device)
        return _RescaledEnv(env, self._low, self._high)

    def to_family_action(self, action: torch.Tensor) -> torch.Tensor:
        """The family's action for the agent's ``action`` in ``[-1, 1]^d``."""
        low, high = self._low.to(action.device), self._high.to(action.device)
        return (high + low) / 2 + action * (high - low) / 2

    def from_family_action(self, action: torch.Tensor) -> torch.Tensor:
        """The agent's action (in ``[-1, 1]^d``) that the family reads as ``action``."""
        low, high = self._low.to(action.device), self._high.to(action.device)
        return (2 * action - (high + low)) / (high - low)

    def __getattr__(self, name: str) -> Any:
        # Everything else (renderers, success flags, ...) is the wrapped family's; an oracle
        # policy is translated into the agent's action units.
        if name == "family":  # not yet set (copy, unpickling): no recursion
            raise AttributeError(name)
        if name == "oracle_action":
            oracle = cast(Any, self.family).oracle_action  # present: asked for by name
            return lambda tasks, obs: self.from_family_action(oracle(tasks, obs))
        return getattr(self.family, name)


class PooledTasks:
    """A :class:`BatchedEnv` of ``n`` tasks x ``m`` slots seen as **one** task with ``n m``
    slots (slot ``i m + j`` is task ``i``'s slot ``j``): a learner batched over tasks (DQN)
    then keeps one set of parameters and one replay for all of them, i.e. it trains on the
    tasks pooled (the multi-task *pretrained* baseline)."""

    def __init__(self, env: BatchedEnv) -> None:
        self.env = env
        self.num_tasks = 1
        self.episodes_per_task = env.num_tasks * env.episodes_per_task
        self.horizon = env.horizon
        self.device = env.device

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(1, self.episodes_per_task, *x.shape[2:])

    def reset(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return self._pool(self.env.reset(generator))

    def step(self, action: torch.Tensor) -> StepResult:
        res = self.env.step(action.reshape(self.env.num_tasks, self.env.episodes_per_task,
                                           *action.shape[2:]))
        return StepResult(*(self._pool(x) for x in res))
