"""play_online: budgets in live steps per slot, frozen slots masked, episodes logged,
the budget's cut reported as a truncation."""

from __future__ import annotations

from typing import Any

import torch

from adaptrl.rollouts.online import OnlineLearner, play_online
from adaptrl.rollouts.trial_sampler import Step
from adaptrl.tasks.base import StepResult


class CountdownEnv:
    """Slot ``(i, j)``'s episode terminates after ``lengths[i, j]`` steps (reward 1 per
    live step, observation = steps taken in the episode); truncated at ``horizon``."""

    def __init__(self, lengths: torch.Tensor, horizon: int) -> None:
        self.lengths = lengths
        self.num_tasks, self.episodes_per_task = lengths.shape
        self.horizon, self.device = horizon, torch.device("cpu")
        self.t = torch.zeros_like(lengths)
        self.resets = 0

    def reset(self, generator: torch.Generator | None = None) -> torch.Tensor:
        self.t = torch.zeros_like(self.lengths)
        self.resets += 1
        return self.t.float().unsqueeze(-1)

    def step(self, action: torch.Tensor) -> StepResult:
        live = (self.t < self.lengths) & (self.t < self.horizon)
        self.t = self.t + live.long()
        terminated = self.t >= self.lengths
        truncated = (self.t >= self.horizon) & ~terminated
        return StepResult(self.t.float().unsqueeze(-1), live.float(), terminated, truncated)


class Recorder:
    """An online learner that acts 0 and records every step it observes."""

    def __init__(self) -> None:
        self.steps: list[Step] = []

    def begin(self, env: Any) -> int:
        return 0

    def act(self, obs: torch.Tensor, state: int, generator: torch.Generator
            ) -> tuple[torch.Tensor, int]:
        return torch.zeros(obs.shape[:2], dtype=torch.long), state

    def observe(self, step: Step, state: int) -> int:
        self.steps.append(step)
        return state + 1

    def evaluation_actor(self, state: int) -> Any:
        raise NotImplementedError


def test_budget_masks_and_episode_log() -> None:
    env = CountdownEnv(torch.tensor([[2, 3], [1, 3]]), horizon=4)
    agent = Recorder()
    assert isinstance(agent, OnlineLearner)
    hooked: list[int] = []
    run = play_online(env, agent, 5, torch.Generator().manual_seed(0),
                      hook=lambda t, step, state: hooked.append(t))
    assert torch.equal(run.steps, torch.full((2, 2), 5))
    alive = torch.stack([s.alive for s in agent.steps])
    assert torch.equal(alive.sum(0), torch.full((2, 2), 5))  # every slot: 5 live steps
    assert run.state == len(agent.steps) == len(hooked)
    # a live step never comes from a frozen slot: its observation is the episode's clock
    for s in agent.steps:
        assert bool((s.next_obs[..., 0] > s.obs[..., 0])[s.alive].all())
    # the slots that the budget cut mid-episode report it as a truncation, and only they
    cut = torch.stack([s.alive & s.truncated & ~s.terminated for s in agent.steps])
    assert torch.equal(cut.sum(0), torch.tensor([[1, 1], [0, 1]]))
    ends = {(0, 0): [2, 4], (0, 1): [3], (1, 0): [1, 2, 3, 4, 5], (1, 1): [3]}
    for (i, j), expected in ends.items():
        keep = (run.episodes.task == i) & (run.episodes.slot == j)
        assert run.episodes.end_step[keep].tolist() == expected
        lengths = torch.diff(torch.tensor([0, *expected]))
        assert run.episodes.returns[keep].tolist() == lengths.float().tolist()
    end_steps, returns = run.episodes.of_task(1)
    assert len(end_steps) == len(returns) == 6


def test_state_carries_over_and_zero_budget_does_nothing() -> None:
    env = CountdownEnv(torch.tensor([[2]]), horizon=2)
    agent = Recorder()
    run = play_online(env, agent, 0, torch.Generator())
    assert run.state == 0 and env.resets == 0 and len(run.episodes.returns) == 0
    run = play_online(env, agent, 3, torch.Generator(), state=10)
    assert run.state == 13
