"""The task API: task families, batches of tasks and batched environments.

A *task family* is a distribution p(T) over MDPs. A *task* is one MDP, given by its
parameters (a goal, a velocity, a mass, arm probabilities). A batch of tasks is a
:class:`Tasks`: a dict of parameter tensors sharing a leading dimension ``n``.

A :class:`BatchedEnv` steps ``tasks x episodes`` environments at once with tensors
shaped ``[tasks, episodes, ...]``.

Episode-end semantics (every built-in env follows them):

* ``terminated`` (the MDP reached a terminal state) and ``truncated`` (the horizon ran
  out) are kept apart.
* There is **no autoreset**. Once an episode has ended, the env keeps that episode
  frozen: further ``step`` calls return the same observation, zero reward and
  ``terminated``/``truncated`` unchanged. The sampler records an ``alive`` mask so that a
  transition after (or across) the end of an episode never enters a loss. A new episode
  starts only with ``reset()``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol, runtime_checkable

import gymnasium as gym
import torch

Split = Literal["train", "test"]
SPLITS: tuple[str, ...] = ("train", "test")


@dataclass(frozen=True)
class Tasks:
    """A batch of ``n`` tasks: parameter tensors with a shared leading dimension."""

    params: dict[str, torch.Tensor]

    def __post_init__(self) -> None:
        sizes = {k: v.shape[0] for k, v in self.params.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"task parameters disagree on the number of tasks: {sizes}")

    def __len__(self) -> int:
        return next(iter(self.params.values())).shape[0] if self.params else 0

    def __getitem__(self, index: int | slice | torch.Tensor) -> Tasks:
        """Select tasks (keeps the leading dimension)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return Tasks({k: v[index] for k, v in self.params.items()})

    def to(self, device: torch.device | str) -> Tasks:
        return Tasks({k: v.to(device) for k, v in self.params.items()})

    def features(self) -> torch.Tensor:
        """Every task's parameters as one float vector: ``[n, d]``, the tensors flattened
        per task and concatenated in sorted key order.

        What a *privileged* critic reads (RL²'s ``critic_task_input``): the task itself,
        which the policy must infer from experience.
        """
        if not self.params:
            raise ValueError("a batch of tasks with no parameters has no features")
        return torch.cat([self.params[k].reshape(len(self), -1).float()
                          for k in sorted(self.params)], dim=-1)

    @staticmethod
    def cat(batches: list[Tasks]) -> Tasks:
        keys = batches[0].params.keys()
        return Tasks({k: torch.cat([b.params[k] for b in batches]) for k in keys})


class StepResult(NamedTuple):
    """What ``BatchedEnv.step`` returns; every tensor is ``[tasks, episodes, ...]``."""

    observation: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor


@runtime_checkable
class BatchedEnv(Protocol):
    """``tasks x episodes`` environments stepped together (no autoreset, see module doc)."""

    num_tasks: int
    episodes_per_task: int
    horizon: int
    device: torch.device

    def reset(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Start a fresh episode everywhere; returns observations ``[tasks, episodes, *obs]``.

        A stochastic env keeps ``generator`` and draws every later random number of the
        episode (initial states, transitions, rewards) from it, so that a seeded generator
        makes the whole rollout reproducible.
        """
        ...

    def step(self, action: torch.Tensor) -> StepResult:
        """Advance every live episode by one step."""
        ...


@runtime_checkable
class TaskFamily(Protocol):
    """A distribution over MDPs with disjoint ``train`` / ``test`` splits."""

    # read-only members: a family may narrow them (a ``Box``, a ``Literal`` name)
    @property
    def name(self) -> str: ...

    @property
    def observation_space(self) -> gym.Space: ...

    @property
    def action_space(self) -> gym.Space: ...

    @property
    def horizon(self) -> int: ...

    def sample(self, n: int, split: Split, generator: torch.Generator) -> Tasks:
        """Draw ``n`` tasks from ``split``; the two splits never share a task."""
        ...

    def make_env(
        self, tasks: Tasks, episodes_per_task: int, device: torch.device | str = "cpu"
    ) -> BatchedEnv:
        """A batched env over ``tasks`` with ``episodes_per_task`` parallel episodes each."""
        ...


@runtime_checkable
class DeclaresRanges(Protocol):
    """Optional: a family whose scalar task parameters are drawn from declared intervals.

    ``ranges[key] = (low, high)`` bounds every value (every component, for a vector
    parameter) of ``Tasks.params[key]``. Task schedules read it to cut a parameter's range
    into stages (:func:`adaptrl.rollouts.schedule.parameter_stream`); ``cartpole-physics``
    and ``pendulum-physics`` declare it, as does any family that draws its prior with
    :func:`adaptrl.tasks.common.draw_uniform_params`.
    """

    ranges: Mapping[str, tuple[float, float]]


@runtime_checkable
class ModelBasedFamily(Protocol):
    """Optional: what model-based agents (MPC planners, :mod:`adaptrl.planning.mpc`) need of a
    family beyond :class:`TaskFamily` (DESIGN.md: "its reward as a batched function of
    (s, a, s')").

    All three are batched over any leading dims (``[tasks, candidates, ...]``):

    * ``reward(obs, action, next_obs)`` — the env's reward of the transition, computed from
      observations (``cartpole-physics``, ``pendulum-physics``; checked against the env's
      own in tests/tasks/test_model_based_family.py);
    * ``terminal(next_obs)`` — bool, the transition reached a terminal state (no reward
      counts after it);
    * ``true_dynamics(tasks, device)`` — the simulator as a dynamics function
      ``(obs [n, batch, *obs], action [n, batch, *act]) -> next_obs`` for the ``n`` tasks
      (any ``batch``): the MPC oracle's model.
    """

    def reward(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
               ) -> torch.Tensor: ...

    def terminal(self, next_obs: torch.Tensor) -> torch.Tensor: ...

    def true_dynamics(self, tasks: Tasks, device: torch.device | str = "cpu"
                      ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]: ...


def check_split(split: str) -> Split:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split  # type: ignore[return-value]
