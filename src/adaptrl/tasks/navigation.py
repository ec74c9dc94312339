"""``navigation-2d``: the point-robot navigation family of MAML (Finn et al. 2017, §5.3).

A point agent starts at the origin and must move to a goal sampled uniformly in
``[-0.5, 0.5]^2``. Observation: the agent's position (2,). Action: a velocity, clipped to
``[-0.1, 0.1]`` per coordinate; the position moves by the clipped action. Reward: minus the
L2 distance to the goal after the move (the reference code's choice; the paper's text says
squared). The episode *terminates* when both coordinates are within 0.01 of the goal (the
reference code's test) and is *truncated* at the horizon (100).

All ``tasks x episodes`` agents are stepped at once as tensors.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from adaptrl.tasks.base import Split, StepResult, Tasks
from adaptrl.tasks.splits import sample_split


class NavigationEnv:
    """Batched 2D point navigation; no autoreset (see :mod:`adaptrl.tasks.base`).

    The step is the hot path of every navigation experiment, so it is written lean: every
    tensor it returns is freshly made by that step and never written to again (the env
    rebinds its state instead of mutating it), so nothing has to be cloned, and the
    temporaries are updated in place.
    """

    def __init__(self, goals: torch.Tensor, episodes_per_task: int, horizon: int,
                 max_action: float, goal_tolerance: float, device: torch.device) -> None:
        self.device = device
        self.goals = goals.to(device, torch.float32)  # [tasks, 2]
        self._goals = self.goals.unsqueeze(1)  # [tasks, 1, 2], broadcast over episodes
        self.num_tasks = goals.shape[0]
        self.episodes_per_task = episodes_per_task
        self.horizon = horizon
        self.max_action = max_action
        self.goal_tolerance = goal_tolerance
        self.reset()

    def reset(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Every agent back at the origin (deterministic: ``generator`` is not needed)."""
        shape = (self.num_tasks, self.episodes_per_task)
        self.position = torch.zeros(*shape, 2, device=self.device)
        self.terminated = torch.zeros(shape, dtype=torch.bool, device=self.device)
        self.truncated = torch.zeros(shape, dtype=torch.bool, device=self.device)
        self._live = torch.ones(shape, dtype=torch.bool, device=self.device)
        self.t = 0
        return self.position

    def step(self, action: torch.Tensor) -> StepResult:
        live = self._live
        move = action.clamp(-self.max_action, self.max_action)  # a new tensor: ours to edit
        move.mul_(live.unsqueeze(-1))  # frozen slots do not move
        self.position = self.position + move
        delta = move.copy_(self.position).sub_(self._goals)
        reward = torch.linalg.vector_norm(delta, dim=-1).neg_().mul_(live)
        reached = delta.abs_().amax(dim=-1) < self.goal_tolerance
        self.terminated = self.terminated | reached.logical_and_(live)
        self.t += 1
        if self.t >= self.horizon:
            self.truncated = self.truncated | ~self.terminated
        self._live = ~(self.terminated | self.truncated)
        return StepResult(self.position, reward, self.terminated, self.truncated)


class Navigation2D:
    """Task family ``navigation-2d``; task parameter ``goal`` of shape ``[n, 2]``."""

    name = "navigation-2d"

    def __init__(self, goal_low: float = -0.5, goal_high: float = 0.5, horizon: int = 100,
                 max_action: float = 0.1, goal_tolerance: float = 0.01) -> None:
        if not goal_low < goal_high:
            raise ValueError(f"goal_low must be < goal_high, got [{goal_low}, {goal_high}]")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        if max_action <= 0 or goal_tolerance <= 0:
            raise ValueError("max_action and goal_tolerance must be > 0")
        self.goal_low, self.goal_high = goal_low, goal_high
        # every goal coordinate's interval (tasks.base.DeclaresRanges: task schedules cut it)
        self.ranges = {"goal": (goal_low, goal_high)}
        self.horizon = horizon
        self.max_action = max_action
        self.goal_tolerance = goal_tolerance
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Box(-max_action, max_action, (2,), np.float32)

    def _draw(self, n: int, generator: torch.Generator) -> Tasks:
        u = torch.rand(n, 2, generator=generator)
        return Tasks({"goal": self.goal_low + (self.goal_high - self.goal_low) * u})

    def sample(self, n: int, split: Split, generator: torch.Generator) -> Tasks:
        return sample_split(self._draw, n, split, generator)

    def make_env(self, tasks: Tasks, episodes_per_task: int,
                 device: torch.device | str = "cpu") -> NavigationEnv:
        return NavigationEnv(tasks.params["goal"], episodes_per_task, self.horizon,
                             self.max_action, self.goal_tolerance, torch.device(device))

    def oracle_action(self, tasks: Tasks, observation: torch.Tensor) -> torch.Tensor:
        """The optimal action: head straight for the goal at full speed."""
        delta = tasks.params["goal"].to(observation.device).unsqueeze(1) - observation
        return delta.clamp(-self.max_action, self.max_action)
