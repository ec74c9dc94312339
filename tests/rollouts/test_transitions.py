"""Final observations kept by the samplers, and the transitions view built on them.

Known answers on hand-built batches and deterministic envs (a truncated and a terminated
episode, episodes of a trial), and proof that recording the final observations changed
no existing output or random draw (the pre-change sampler, kept below as the oracle).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from adaptrl.models.policies import make_policy
from adaptrl.models.recurrent import RecurrentPolicy
from adaptrl.rollouts.sampler import BatchSampler, Policy, act, rollout
from adaptrl.rollouts.trajectories import Trajectories, pack_live_steps
from adaptrl.rollouts.transitions import Transitions, to_transitions
from adaptrl.rollouts.trial_sampler import sample_trials
from adaptrl.tasks import make
from adaptrl.tasks.adapters.gymnasium_adapter import GymnasiumFamily
from adaptrl.tasks.bandits import BanditBernoulli
from adaptrl.tasks.base import BatchedEnv, StepResult, Tasks


class ClockEnv:
    """Slot ``(i, j)`` terminates after ``lengths[i, j]`` steps (truncated at the horizon
    otherwise); obs = ``[100 i + 10 j + t]`` and reward = ``t + 1`` at step ``t``. The clock
    runs on after an episode's end (obs keeps changing: the env does *not* freeze), so a
    sampler that read the final observation late would be caught."""

    def __init__(self, lengths: torch.Tensor, horizon: int) -> None:
        self.lengths, self.horizon = lengths, horizon
        self.num_tasks, self.episodes_per_task = lengths.shape
        self.device = torch.device("cpu")
        n, e = lengths.shape
        self.base = (100 * torch.arange(n)[:, None] + 10 * torch.arange(e)).float()

    def _obs(self) -> torch.Tensor:
        return (self.base + self.t).unsqueeze(-1)

    def reset(self, generator: torch.Generator | None = None) -> torch.Tensor:
        self.t = 0
        return self._obs()

    def step(self, action: torch.Tensor) -> StepResult:
        reward = torch.full(self.lengths.shape, float(self.t + 1))
        self.t += 1
        terminated = self.lengths <= self.t
        truncated = ~terminated & (self.t >= self.horizon)
        return StepResult(self._obs(), reward, terminated, truncated)


class ClockFamily:
    def __init__(self, lengths: torch.Tensor, horizon: int) -> None:
        self.lengths, self.horizon = lengths, horizon

    def make_env(self, tasks: Tasks, episodes: int, device: torch.device | str = "cpu"
                 ) -> ClockEnv:
        return ClockEnv(self.lengths[:, :episodes], self.horizon)


class ZeroPolicy:
    """Always action 0 (a discrete action per slot)."""

    @staticmethod
    def act(obs: torch.Tensor, params: object, generator: torch.Generator,
            deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(obs.shape[:2], dtype=torch.long), torch.zeros(obs.shape[:2])


# -- the samplers keep final observations ------------------------------------------------
def test_rollout_keeps_the_true_final_observation_of_terminated_and_truncated_episodes() -> None:
    # task 0 terminates after 2 steps, task 1 runs to the horizon (3) and is truncated
    env = ClockEnv(torch.tensor([[2], [9]]), horizon=3)
    traj = rollout(env, ZeroPolicy(), None, torch.Generator())  # type: ignore[arg-type]
    assert traj.truncated is not None and traj.next_observations is not None
    assert traj.masks[:, :, 0].T.tolist() == [[1, 1, 0], [1, 1, 1]]
    assert traj.terminated[:, :, 0].T.tolist() == [[False, True, False], [False, False, False]]
    assert traj.truncated[:, :, 0].T.tolist() == [[False, False, False], [False, False, True]]
    nxt = traj.next_observations[:, :, 0, 0].T
    assert nxt[0, :2].tolist() == [1.0, 2.0]  # the terminal state s_2, not the clock at 3
    assert nxt[1].tolist() == [101.0, 102.0, 103.0]  # the state at truncation
    assert traj.final_observations()[:, 0, 0].tolist() == [2.0, 103.0]


def test_an_episode_still_running_when_sampling_stops_counts_as_truncated() -> None:
    """An env that never truncates: the sampler's horizon cuts the episode, which must be
    bootstrapped like a truncation (never treated as terminal)."""
    env = ClockEnv(torch.tensor([[9]]), horizon=99)
    env.horizon = 3  # the sampler runs 3 steps; the env itself never says truncated
    traj = rollout(env, ZeroPolicy(), None, torch.Generator())  # type: ignore[arg-type]
    assert traj.truncated is not None and traj.next_observations is not None
    assert traj.truncated.flatten().tolist() == [False, False, True]
    assert traj.next_observations.flatten().tolist() == [1.0, 2.0, 3.0]


def test_trials_keep_every_episodes_final_observation_apart_from_the_next_reset() -> None:
    env = ClockEnv(torch.tensor([[2, 9]]), horizon=3)
    torch.manual_seed(0)
    policy = RecurrentPolicy(gym.spaces.Box(-np.inf, np.inf, (1,), np.float32),
                             gym.spaces.Discrete(2), hidden_size=4)
    trials = sample_trials(env, policy, None, 2, torch.Generator().manual_seed(0))
    steps = trials.steps
    assert steps.next_observations is not None and steps.truncated is not None
    # slot 0 terminates after 2 steps in each of its 2 episodes, slot 1 is truncated at 3
    live = steps.masks[:, 0, 0] > 0
    assert steps.next_observations[live, 0, 0, 0].tolist() == [1, 2, 1, 2]
    assert steps.next_observations[:, 0, 1, 0].tolist() == [11, 12, 13, 11, 12, 13]
    assert steps.truncated[:, 0, 1].tolist() == [False, False, True] * 2
    assert steps.terminated[:, 0, 0].tolist() == [False, True, False] * 2
    assert trials.final_observations()[..., 0].tolist() == [[[2, 13]], [[2, 13]]]
    # the trial's transitions: 4 from slot 0, 6 from slot 1, none across the reset
    x = to_transitions(steps)
    assert x.counts().tolist() == [10]
    assert x.obs[0, :, 0].tolist() == [0, 1, 0, 1, 10, 11, 12, 10, 11, 12]
    assert x.next_obs[0, :, 0].tolist() == [1, 2, 1, 2, 11, 12, 13, 11, 12, 13]


def test_the_optional_fields_follow_every_reshaping_of_a_batch() -> None:
    family = ClockFamily(torch.tensor([[1, 3, 2, 3], [2, 2, 3, 1]]), horizon=3)
    sampler = BatchSampler(family, Tasks({"id": torch.zeros(2)}), 2, unit="steps")  # type: ignore[arg-type]
    traj = sampler.sample(ZeroPolicy(), None, torch.Generator())  # type: ignore[arg-type]
    assert traj.next_observations is not None and traj.truncated is not None
    assert traj.next_observations.shape == traj.observations.shape
    packed, _ = pack_live_steps(traj, traj.rewards)
    assert packed.next_observations is not None and packed.truncated is not None
    # packing moves every field alike (in another order): the same transitions
    def rows(x: Transitions, task: int) -> list[tuple[float, float, bool, bool]]:
        k = int(x.counts()[task])
        return sorted(zip(x.obs[task, :k, 0].tolist(), x.next_obs[task, :k, 0].tolist(),
                          x.terminated[task, :k].tolist(), x.truncated[task, :k].tolist(),
                          strict=True))
    a, b = to_transitions(traj), to_transitions(packed)
    assert all(rows(a, i) == rows(b, i) for i in range(2))
    assert (0, 1, True, False) in rows(a, 0)  # task 0's one-step episode
    # the clock advances by one within an episode: no transition spans a reset
    assert all(nxt == obs + 1 for i in range(2) for obs, nxt, _, _ in rows(a, i))
    moved = traj.select_tasks(slice(1, 2)).to("cpu")
    assert moved.next_observations is not None
    assert torch.equal(moved.next_observations, traj.next_observations[:, 1:2])


class CountTo(gym.Env):
    """Counts up from 0 by one per step and terminates at the task's ``end`` (given at
    reset): the terminal observation is ``end``, a reset one is 0."""

    observation_space = gym.spaces.Box(0.0, np.inf, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.end, self.count = int((options or {})["task"]["end"]), 0
        return np.array([0.0], np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.count += 1
        return (np.array([self.count], np.float32), 1.0, self.count == self.end, False, {})


def test_the_gymnasium_adapter_gives_the_final_observation_before_its_autoreset() -> None:
    """gymnasium's vector env resets a finished sub-env on the next step; the episode's
    last transition must still lead to its terminal state, and a truncated one to the
    state at the family's horizon."""
    family = GymnasiumFamily(CountTo, lambda n, g: Tasks({"end": torch.tensor([2.0, 9.0])}),
                             horizon=4, splits="shared")
    env = family.make_env(Tasks({"end": torch.tensor([2.0, 9.0])}), 1)
    traj = rollout(env, ZeroPolicy(), None, torch.Generator().manual_seed(0))  # type: ignore[arg-type]
    x = to_transitions(traj)
    assert x.counts().tolist() == [2, 4]
    assert x.next_obs[0, :2, 0].tolist() == [1.0, 2.0] and x.terminated[0, :2].tolist() == [
        False, True]
    assert x.next_obs[1, :, 0].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert x.truncated[1].tolist() == [False, False, False, True]
    env.close()


# -- the transitions view: known answer ---------------------------------------------------
def two_task_batch() -> Trajectories:
    """2 tasks x 2 episodes, T = 3. Task 0: episode 0 terminates after 2 steps, episode 1
    is truncated after 3. Task 1: episode 0 is truncated after 3, episode 1 is padding
    (a step-counted batch's filler). obs = 10 * (task * 2 + episode) + t."""
    T, n, e = 3, 2, 2
    t = torch.arange(T, dtype=torch.float32).view(T, 1, 1)
    slot = (torch.arange(n * e, dtype=torch.float32) * 10).view(1, n, e)
    obs = (slot + t).unsqueeze(-1)
    masks = torch.tensor([[[1, 1], [1, 0]], [[1, 1], [1, 0]], [[0, 1], [1, 0]]],
                         dtype=torch.float32)
    terminated = torch.zeros(T, n, e, dtype=torch.bool)
    terminated[1, 0, 0] = True
    truncated = torch.zeros(T, n, e, dtype=torch.bool)
    truncated[2, 0, 1] = truncated[2, 1, 0] = True
    nxt = obs + 1
    nxt[1, 0, 0] = 1.5  # a terminal observation no shift of `obs` could produce
    nxt[2, 0, 1] = 99.0  # the true final observations at truncation
    nxt[2, 1, 0] = 77.0
    actions = (obs[..., 0] * 2).long()
    return Trajectories(obs, actions, (obs[..., 0] + 0.5) * masks, masks, terminated,
                        torch.zeros(T, n, e), truncated, nxt)


def test_transitions_of_a_hand_built_batch() -> None:
    x = to_transitions(two_task_batch())
    assert x.obs.shape == (2, 5, 1)  # task 0 holds 5 transitions, task 1 three (+2 padding)
    assert x.valid is not None and x.valid.tolist() == [[True] * 5, [True] * 3 + [False] * 2]
    assert x.counts().tolist() == [5, 3]
    assert x.obs[0, :, 0].tolist() == [0, 1, 10, 11, 12]
    assert x.next_obs[0, :, 0].tolist() == [1, 1.5, 11, 12, 99]
    assert x.action[0].tolist() == [0, 2, 20, 22, 24]
    assert x.reward[0].tolist() == [0.5, 1.5, 10.5, 11.5, 12.5]
    assert x.terminated[0].tolist() == [False, True, False, False, False]
    assert x.truncated[0].tolist() == [False, False, False, False, True]
    assert x.obs[1, :3, 0].tolist() == [20, 21, 22]
    assert x.next_obs[1, :3, 0].tolist() == [21, 22, 77]
    assert x.truncated[1, :3].tolist() == [False, False, True]


def test_full_batches_need_no_padding_and_no_gather() -> None:
    family = make("pendulum-physics")  # no terminal states: every episode runs the horizon
    g = torch.Generator().manual_seed(0)
    ts = family.sample(2, "train", g)
    policy = make_policy(family.observation_space, family.action_space, (8,))
    traj = rollout(family.make_env(ts, 3), policy, None, g)
    x = to_transitions(traj)
    H = family.horizon
    assert x.valid is None and x.obs.shape == (2, 3 * H, *traj.observations.shape[3:])
    # episode by episode: rows [H, 2H) are episode 1 of every task, in time order
    assert torch.equal(x.obs[:, H:2 * H], traj.observations[:, :, 1].transpose(0, 1))
    assert torch.equal(x.next_obs[:, H:2 * H - 1], x.obs[:, H + 1:2 * H])
    assert bool(x.truncated[:, H - 1::H].all()) and int(x.truncated.sum()) == 2 * 3
    assert torch.equal(x.next_obs[:, H - 1::H], traj.final_observations())


def test_a_batch_without_final_observations_is_refused() -> None:
    traj = two_task_batch()
    bare = Trajectories(traj.observations, traj.actions, traj.rewards, traj.masks,
                        traj.terminated, traj.log_probs)
    with pytest.raises(ValueError, match="next_observations"):
        to_transitions(bare)


def test_cat_keeps_padding_marked() -> None:
    x = to_transitions(two_task_batch())
    both = Transitions.cat([x, x])
    assert both.valid is not None and both.counts().tolist() == [10, 6]
    assert both.spec() == x.spec()


# -- nothing else changed -----------------------------------------------------------------
@torch.no_grad()
def reference_rollout(env: BatchedEnv, policy: Policy, params: None,
                      generator: torch.Generator) -> Trajectories:
    """The sampler as it was before final observations were recorded (the oracle)."""
    obs = env.reset(generator)
    H = env.horizon
    n, e = obs.shape[:2]
    observations = torch.zeros(H, *obs.shape, dtype=obs.dtype)
    rewards, masks, log_probs = (torch.zeros(H, n, e) for _ in range(3))
    terminated = torch.zeros(H, n, e, dtype=torch.bool)
    actions: torch.Tensor | None = None
    alive = torch.ones(n, e, dtype=torch.bool)
    for t in range(H):
        action, log_prob = act(policy, obs, params, generator)
        if actions is None:
            actions = torch.zeros(H, *action.shape, dtype=action.dtype)
        observations[t], actions[t], log_probs[t], masks[t] = obs, action, log_prob, alive
        res = env.step(action)
        rewards[t] = res.reward
        torch.logical_and(res.terminated, alive, out=terminated[t])
        alive = alive & ~(res.terminated | res.truncated)
        obs = res.observation
        if not bool(alive.any()):
            break
    assert actions is not None
    return Trajectories(observations, actions, rewards.mul_(masks), masks, terminated,
                        log_probs.mul_(masks))


@pytest.mark.parametrize("name", ["navigation-2d", "cartpole-physics", "tabular-mdp"])
def test_sampled_trajectories_are_bit_for_bit_those_of_the_previous_sampler(name: str) -> None:
    family = make(name)
    ts = family.sample(3, "train", torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    policy = make_policy(family.observation_space, family.action_space, (16,))
    g_new, g_old = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    new = rollout(family.make_env(ts, 4), policy, None, g_new)
    old = reference_rollout(family.make_env(ts, 4), policy, None, g_old)
    for field in ("observations", "actions", "rewards", "masks", "terminated", "log_probs"):
        a, b = getattr(new, field), getattr(old, field)
        assert a.dtype == b.dtype and torch.equal(a, b), field
    assert torch.equal(g_new.get_state(), g_old.get_state())  # the same random stream after


def test_trial_sampling_is_unchanged() -> None:
    """Golden values recorded with the trial sampler before final observations were kept
    (integer-valued fields of a seeded bandit trial) and the random stream after it."""
    family = BanditBernoulli(num_arms=5, trial_length=3)
    g = torch.Generator().manual_seed(0)
    env = family.make_env(family.sample(2, "train", g), 2)
    torch.manual_seed(0)
    policy = RecurrentPolicy(family.observation_space, family.action_space, hidden_size=16)
    steps = sample_trials(env, policy, None, 3, g).steps
    assert steps.actions.flatten().tolist() == GOLDEN_ACTIONS
    assert steps.rewards.flatten().tolist() == GOLDEN_REWARDS
    assert torch.rand(2, generator=g).tolist() == pytest.approx(GOLDEN_AFTER, abs=0)


GOLDEN_ACTIONS = [1, 2, 2, 3, 3, 1, 2, 2, 3, 4, 1, 1]
GOLDEN_REWARDS = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]
GOLDEN_AFTER = [0.5627331733703613, 0.3858276605606079]
