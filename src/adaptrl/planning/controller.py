"""An MPC controller that plays trials: plan, act the first action, remember, plan again.

:class:`MPCActor` is a :class:`~adaptrl.rollouts.trial_sampler.TrialActor`, so the one trial
loop (:func:`~adaptrl.rollouts.trial_sampler.play_trials`) drives it in training (GrBAL's
data collection) and in the evaluation protocol alike. Every slot (``[task, trial]``)
keeps a window of its last ``memory`` transitions, carried across the episodes of a trial
(a transition never spans a reset, so a window of them may). Before each step the actor
asks ``dynamics(window, slots)`` for the dynamics function to plan with: GrBAL adapts its model
on the window there (Nagabandi et al. 2019, Algorithm 2: "adapt from theta* on the last M
transitions at every step"), a non-adaptive model ignores it, and the MPC oracle returns
the simulator. CEM / MPPI start from the previous plan shifted by one step within an
episode (:func:`~adaptrl.planning.mpc.shift_warm_start`), from scratch at an episode's
start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from adaptrl.planning.mpc import (
    ActionDomain,
    Dynamics,
    PlannerSettings,
    Reward,
    Terminal,
    shift_warm_start,
)
from adaptrl.randomness import rand, randint
from adaptrl.rollouts.trial_sampler import Step
from adaptrl.tasks.base import BatchedEnv


@dataclass(frozen=True)
class Window:
    """The last ``M`` transitions of every slot, oldest first, flattened over slots:
    ``obs``/``next_obs [N, M, *obs]``, ``action [N, M, *act]``, ``mask [N, M]`` (rows
    filled so far: the last ``min(seen, M)``)."""

    obs: torch.Tensor
    action: torch.Tensor
    next_obs: torch.Tensor
    mask: torch.Tensor

    @property
    def filled(self) -> bool:
        return bool(self.mask.any())

    def push(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor,
             alive: torch.Tensor) -> Window:
        """Append one transition per slot where ``alive [N]``; other slots stay as they are."""
        def roll(old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
            moved = torch.cat([old[:, 1:], new.unsqueeze(1).to(old.dtype)], dim=1)
            keep = alive.reshape(-1, *([1] * (old.dim() - 1)))
            return torch.where(keep, moved, old)
        return Window(roll(self.obs, obs), roll(self.action, action),
                      roll(self.next_obs, next_obs),
                      roll(self.mask, torch.ones_like(alive)))

    @staticmethod
    def empty(slots: int, memory: int, obs: torch.Tensor, action: torch.Tensor) -> Window:
        """An empty window shaped after one step's ``obs [N, *obs]`` and ``action [N, *act]``."""
        def zeros(x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(slots, memory, *x.shape[1:], dtype=x.dtype, device=x.device)
        return Window(zeros(obs), zeros(action), zeros(obs),
                      torch.zeros(slots, memory, dtype=torch.bool, device=obs.device))


WindowDynamics = Callable[[Window | None, int], Dynamics]
"""``dynamics(window, slots)``: the dynamics function to plan with for all ``slots`` slots
(``N = tasks x trials`` rows, task-major), given their recent transitions (``None`` before
the first transition of the trial)."""


@dataclass(frozen=True)
class MPCState:
    """A trial's memory: the window, the warm start of CEM / MPPI, the slots' shape."""

    shape: tuple[int, int]
    memory: int
    window: Window | None = None
    warm: torch.Tensor | None = None
    action: torch.Tensor | None = None


@dataclass(frozen=True)
class MPCActor:
    """Receding-horizon control with ``settings`` on ``dynamics(window)`` (module docstring)."""

    settings: PlannerSettings
    domain: ActionDomain
    reward: Reward
    dynamics: WindowDynamics
    terminal: Terminal | None = None
    memory: int = 16

    def begin(self, env: BatchedEnv, episodes: int) -> MPCState:
        return MPCState((env.num_tasks, env.episodes_per_task), self.memory)

    def begin_episode(self, state: MPCState, episode: int) -> MPCState:
        return replace(state, warm=None)

    def act(self, obs: torch.Tensor, state: MPCState, generator: torch.Generator
            ) -> tuple[torch.Tensor, MPCState]:
        n, m = state.shape
        flat = obs.reshape(n * m, *obs.shape[2:])
        domain = self.domain.to(obs.device)
        dynamics = self.dynamics(state.window, n * m)
        plan = self.settings.plan(flat, dynamics, self.reward, domain, generator,
                                  self.terminal, state.warm)
        first = plan.actions[:, 0]
        return (first.reshape(n, m, *first.shape[1:]),
                replace(state, warm=shift_warm_start(plan.mean, domain), action=first))

    def observe(self, step: Step, state: MPCState) -> MPCState:
        n, m = state.shape

        def flat(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(n * m, *x.shape[2:])
        obs, action = flat(step.obs), flat(step.action)
        window = state.window or Window.empty(n * m, state.memory, obs, action)
        return replace(state, window=window.push(obs, action, flat(step.next_obs),
                                                 flat(step.alive)), action=None)


@dataclass(frozen=True)
class RandomActor:
    """Uniformly random actions from ``domain`` (GrBAL's first data, before any model)."""

    domain: ActionDomain

    def begin(self, env: BatchedEnv, episodes: int) -> tuple[int, int]:
        return (env.num_tasks, env.episodes_per_task)

    def begin_episode(self, state: tuple[int, int], episode: int) -> tuple[int, int]:
        return state

    def act(self, obs: torch.Tensor, state: tuple[int, int], generator: torch.Generator
            ) -> tuple[torch.Tensor, tuple[int, int]]:
        if self.domain.choices is not None:
            return randint(self.domain.choices, state, generator, obs.device), state
        domain = self.domain.to(obs.device)
        assert domain.low is not None and domain.high is not None
        u = rand((*state, *domain.shape), generator, obs.device)
        return domain.low + (domain.high - domain.low) * u, state

    def observe(self, step: Step, state: tuple[int, int]) -> tuple[int, int]:
        return state
