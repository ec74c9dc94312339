"""Trial sampling for RL²: memory carried across the episodes of a trial, reset between
trials, padding invisible to the agent, per-episode bookkeeping and determinism."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from adaptrl.models.recurrent import RecurrentPolicy
from adaptrl.rollouts.trajectories import Trajectories
from adaptrl.rollouts.trial_sampler import Trials, sample_trials
from adaptrl.tasks.bandits import BanditBernoulli
from adaptrl.tasks.base import StepResult


class CountdownEnv:
    """A deterministic env whose slot ``(i, j)`` terminates after ``lengths[i, j]`` steps
    (truncated at ``horizon`` otherwise); reward = 1 + action + t / 10; obs = [t]."""

    def __init__(self, lengths: torch.Tensor, horizon: int) -> None:
        self.lengths = lengths
        self.num_tasks, self.episodes_per_task = lengths.shape
        self.horizon = horizon
        self.device = torch.device("cpu")
        self.t = 0
        self.ended = torch.zeros(lengths.shape, dtype=torch.bool)

    def _obs(self) -> torch.Tensor:
        return torch.full((*self.lengths.shape, 1), float(self.t))

    def reset(self, generator: torch.Generator | None = None) -> torch.Tensor:
        self.t = 0
        self.ended.zero_()
        return self._obs()

    def step(self, action: torch.Tensor) -> StepResult:
        live = ~self.ended
        reward = (1.0 + action.float() + self.t / 10) * live
        self.t += 1
        terminated = self.lengths <= self.t
        truncated = ~terminated & (self.t >= self.horizon)
        self.ended = self.ended | terminated | truncated
        return StepResult(self._obs(), reward, terminated, truncated)


OBS1 = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)


def policy_for(obs_space: gym.Space, num_actions: int) -> RecurrentPolicy:
    torch.manual_seed(0)
    return RecurrentPolicy(obs_space, gym.spaces.Discrete(num_actions), hidden_size=16)


def bandit_trials(episodes: int = 4, trials: int = 3, seed: int = 0
                  ) -> tuple[RecurrentPolicy, Trials]:
    family = BanditBernoulli(num_arms=3, trial_length=episodes)
    g = torch.Generator().manual_seed(seed)
    env = family.make_env(family.sample(5, "train", g), trials)
    policy = policy_for(family.observation_space, 3)
    return policy, sample_trials(env, policy, None, episodes, g)


def test_shapes_and_counts() -> None:
    _, trials = bandit_trials(episodes=4, trials=3)
    assert trials.steps.rewards.shape == (4, 5, 3)  # T = episodes * horizon(1)
    assert trials.inputs.shape == (4, 5, 3, 1 + 3 + 2)
    assert trials.num_steps == 4 * 5 * 3
    assert torch.allclose(trials.episode_returns().sum(0), trials.trial_returns())


def test_inputs_report_the_previous_transition() -> None:
    """x_t = [obs, one-hot a_{t-1}, r_{t-1}, done_{t-1}]; zeros at the start of a trial."""
    _, trials = bandit_trials()
    x, steps = trials.inputs, trials.steps
    assert not x[0, ..., 1:].any()  # no previous transition in a new trial
    prev_action = torch.nn.functional.one_hot(steps.actions[:-1], 3).float()
    assert torch.equal(x[1:, ..., 1:4], prev_action)
    assert torch.equal(x[1:, ..., 4], steps.rewards[:-1])
    assert torch.all(x[1:, ..., 5] == 1.0)  # every bandit episode is one pull


def test_memory_carried_within_a_trial_and_reset_between_trials() -> None:
    policy, trials = bandit_trials()
    # the recorded log-probs are those of a GRU started from zeros at every trial's start
    # and carried across all its episodes
    dist, _ = policy.sequence(trials.inputs)
    assert torch.allclose(dist.log_prob(trials.steps.actions), trials.steps.log_probs,
                          atol=1e-6)
    # dropping the memory (restarting the GRU at episode 2) gives other probabilities
    restarted, _ = policy.sequence(trials.inputs[1:])
    assert not torch.allclose(restarted.log_prob(trials.steps.actions[1:]),
                              trials.steps.log_probs[1:], atol=1e-4)
    # first step of every trial: same (zero) memory and inputs -> same distribution
    first = dist.logits[0].reshape(-1, 3)
    assert torch.allclose(first, first[:1].expand_as(first))


def test_padding_does_not_advance_the_memory() -> None:
    """Episodes ending at different times leave gaps; the GRU must skip them."""
    lengths = torch.tensor([[1, 3, 2], [4, 2, 1]])
    env = CountdownEnv(lengths, horizon=4)
    policy = policy_for(OBS1, 2)
    trials = sample_trials(env, policy, None, 3, torch.Generator().manual_seed(0))
    masks = trials.steps.masks.reshape(3, 4, 2, 3)  # [episode, t, task, trial]
    expected = (torch.arange(4).view(4, 1, 1) < lengths).float()
    assert torch.equal(masks, expected.expand(3, 4, 2, 3))
    assert not trials.inputs[trials.steps.masks == 0].any()
    # reward of an episode: sum over its live steps of 1 + a + t/10
    a = trials.steps.actions.reshape(3, 4, 2, 3).float()
    want = ((1 + a + torch.arange(4).view(1, 4, 1, 1) / 10) * masks).sum(1)
    assert torch.allclose(trials.episode_returns(), want)
    # after compaction the live steps are contiguous, and one GRU pass reproduces the
    # log-probs of the step-by-step sampler (which froze the memory on padding)
    compact = trials.compact()
    live = compact.steps.masks
    assert torch.equal(live, (torch.arange(12).view(12, 1, 1) < 3 * lengths).float())
    dist, _ = policy.sequence(compact.inputs)
    assert torch.allclose(dist.log_prob(compact.steps.actions) * live,
                          compact.steps.log_probs, atol=1e-6)
    assert torch.allclose(compact.trial_returns(), trials.trial_returns())
    # the done flag marks the first step of each later episode
    first_of_episode = compact.inputs[lengths[0, 0], 0, 0]
    assert first_of_episode[-1] == 1.0


def test_flatten_makes_one_row_per_trial() -> None:
    _, trials = bandit_trials(episodes=4, trials=3)
    flat = trials.flatten()
    assert flat.steps.rewards.shape == (4, 15, 1)
    assert torch.equal(flat.steps.rewards[:, 3 * 2 + 1, 0], trials.steps.rewards[:, 2, 1])
    assert isinstance(flat.steps, Trajectories)


def test_determinism_under_a_seed() -> None:
    _, a = bandit_trials(seed=7)
    _, b = bandit_trials(seed=7)
    _, c = bandit_trials(seed=8)
    assert torch.equal(a.steps.actions, b.steps.actions)
    assert torch.equal(a.steps.rewards, b.steps.rewards)
    assert not torch.equal(a.steps.rewards, c.steps.rewards)


def test_deterministic_actions_take_the_mode() -> None:
    env = CountdownEnv(torch.tensor([[2, 2]]), horizon=2)
    policy = policy_for(OBS1, 2)
    trials = sample_trials(env, policy, None, 2, torch.Generator(), deterministic=True)
    dist, _ = policy.sequence(trials.inputs)
    assert torch.equal(trials.steps.actions, dist.logits.argmax(-1))


def test_bad_episodes() -> None:
    env = CountdownEnv(torch.tensor([[2]]), horizon=2)
    with pytest.raises(ValueError, match="episodes"):
        sample_trials(env, policy_for(OBS1, 2), None, 0, torch.Generator())
