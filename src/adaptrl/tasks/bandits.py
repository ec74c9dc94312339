"""``bandit-bernoulli``: the multi-armed Bernoulli bandits of RL² (Duan et al. 2016, §4.1).

A task is a ``k``-armed bandit with success probabilities ``p_i ~ U[0, 1]`` (task
parameter ``p``, shape ``[n, k]``). One *episode* is a single pull (horizon 1): the
observation is the constant ``0.0`` (shape ``(1,)``), the action is an arm in
``Discrete(k)``, the reward is ``Bernoulli(p_a)``, and the episode is *truncated* (never
terminated) after the pull. A *trial* is ``trial_length`` (= ``n`` in the paper) pulls of
the same bandit: RL²'s recurrent policy keeps its memory across them, and the classic
baselines (UCB1, Thompson sampling, Gittins) run for that many pulls.

Rewards are drawn from the generator given to ``reset`` (one uniform per slot and step,
whatever the slot's state), so a seeded generator reproduces a trial exactly.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from adaptrl.randomness import rand
from adaptrl.tasks.base import Split, StepResult, Tasks
from adaptrl.tasks.common import EpisodeClock, check_int
from adaptrl.tasks.splits import sample_split


class BanditEnv:
    """``tasks x episodes`` Bernoulli bandits stepped together; no autoreset."""

    def __init__(self, p: torch.Tensor, episodes_per_task: int, device: torch.device) -> None:
        self.device = device
        self.p = p.to(device, torch.float32)  # [tasks, arms]
        self.num_tasks = p.shape[0]
        self.episodes_per_task = episodes_per_task
        self.horizon = 1
        self.clock = EpisodeClock(self.num_tasks, episodes_per_task, self.horizon, device)
        self.observation = torch.zeros(self.num_tasks, episodes_per_task, 1, device=device)
        self.generator: torch.Generator | None = None

    def reset(self, generator: torch.Generator | None = None) -> torch.Tensor:
        self.generator = generator
        self.clock.reset()
        return self.observation.clone()

    def step(self, action: torch.Tensor) -> StepResult:
        live = self.clock.live
        u = rand(live.shape, self.generator, self.device)
        p_arm = self.p.gather(1, action.long())  # [tasks, episodes]
        reward = (u < p_arm).float() * live
        terminated, truncated = self.clock.tick(live)
        return StepResult(self.observation.clone(), reward, terminated, truncated)


class BanditBernoulli:
    """Task family ``bandit-bernoulli``: ``num_arms`` arms, ``p_i ~ U[0, 1]``.

    ``trial_length`` is the number of pulls (episodes) in one RL² trial.
    """

    name = "bandit-bernoulli"

    def __init__(self, num_arms: int = 5, trial_length: int = 100) -> None:
        self.num_arms = check_int("num_arms", num_arms, 2)
        self.trial_length = check_int("trial_length", trial_length, 1)
        self.ranges = {"p": (0.0, 1.0)}  # every arm's probability (tasks.base.DeclaresRanges)
        self.horizon = 1
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(num_arms)

    def _draw(self, n: int, generator: torch.Generator) -> Tasks:
        return Tasks({"p": torch.rand(n, self.num_arms, generator=generator)})

    def sample(self, n: int, split: Split, generator: torch.Generator) -> Tasks:
        return sample_split(self._draw, n, split, generator)

    def make_env(self, tasks: Tasks, episodes_per_task: int,
                 device: torch.device | str = "cpu") -> BanditEnv:
        return BanditEnv(tasks.params["p"], episodes_per_task, torch.device(device))

    def oracle_action(self, tasks: Tasks, observation: torch.Tensor) -> torch.Tensor:
        """The best arm of each task, ``[tasks, episodes]``."""
        best = tasks.params["p"].to(observation.device).argmax(-1, keepdim=True)
        return best.expand(observation.shape[:2])

    def oracle_return(self, tasks: Tasks) -> torch.Tensor:
        """Expected reward of one pull of the best arm, ``[tasks]`` (``max_i p_i``)."""
        return tasks.params["p"].max(-1).values
