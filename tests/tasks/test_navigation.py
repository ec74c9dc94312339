"""``navigation-2d``: known rewards, clipping, episode ends, freezing, determinism, splits."""

from __future__ import annotations

import math

import torch

from adaptrl.models.functional import detach_params, named_params
from adaptrl.models.policies import make_policy
from adaptrl.rollouts.sampler import rollout
from adaptrl.tasks import Navigation2D, Tasks, split_of
from adaptrl.tasks.navigation import NavigationEnv


def env_for(goals: list[list[float]], episodes: int = 1, horizon: int = 100) -> NavigationEnv:
    family = Navigation2D(horizon=horizon)
    return family.make_env(Tasks({"goal": torch.tensor(goals)}), episodes)


def act(*xy: float) -> torch.Tensor:
    return torch.tensor([[list(xy)]])  # [tasks=1, episodes=1, 2]


def test_known_rewards_on_a_hand_trajectory() -> None:
    env = env_for([[0.3, -0.2]])
    obs = env.reset()
    assert obs.dtype == torch.float32 and torch.equal(obs, torch.zeros(1, 1, 2))
    r1 = env.step(act(0.1, 0.1))
    torch.testing.assert_close(r1.observation, act(0.1, 0.1))
    assert math.isclose(float(r1.reward), -math.hypot(0.2, 0.3), rel_tol=1e-6)
    r2 = env.step(act(0.05, -0.1))
    torch.testing.assert_close(r2.observation, act(0.15, 0.0))
    assert math.isclose(float(r2.reward), -math.hypot(0.15, 0.2), rel_tol=1e-6)
    assert not bool(r2.terminated) and not bool(r2.truncated)


def test_actions_are_clipped_per_coordinate_and_left_untouched() -> None:
    env = env_for([[0.5, 0.5]])
    env.reset()
    action = act(1.0, -5.0)
    res = env.step(action)
    torch.testing.assert_close(res.observation, act(0.1, -0.1))
    torch.testing.assert_close(action, act(1.0, -5.0))  # the caller's tensor is not modified


def test_termination_within_a_hundredth_per_coordinate() -> None:
    env = env_for([[0.105, 0.0], [0.1, 0.0], [0.1, 0.0]])
    env.reset()
    # |dx| = 0.005 -> reached; |dy| = 0.011 -> not; |dy| = 0.009 -> reached
    res = env.step(torch.tensor([[[0.1, 0.0]], [[0.1, 0.011]], [[0.1, 0.009]]]))
    assert res.terminated.flatten().tolist() == [True, False, True]
    assert not bool(res.truncated.any())


def test_truncation_at_the_horizon_only_for_live_slots() -> None:
    env = env_for([[0.05, 0.0], [-0.4, 0.4]], horizon=3)
    env.reset()
    still = torch.tensor([[[0.0, 0.0]], [[0.0, 0.0]]])
    for t in range(2):
        res = env.step(torch.tensor([[[0.05, 0.0]], [[0.0, 0.0]]]) if t == 0 else still)
        assert not bool(res.truncated.any())
    assert res.terminated.flatten().tolist() == [True, False]
    res = env.step(still)  # step 3 = horizon
    assert res.truncated.flatten().tolist() == [False, True]  # the terminated slot is not
    assert res.terminated.flatten().tolist() == [True, False]


def test_ended_slots_are_frozen() -> None:
    env = env_for([[0.05, 0.0]], horizon=5)
    env.reset()
    first = env.step(act(0.05, 0.0))
    assert bool(first.terminated)
    kept = first.observation.clone()
    for _ in range(6):
        res = env.step(act(0.1, 0.1))
        torch.testing.assert_close(res.observation, kept)
        assert float(res.reward) == 0.0
        assert bool(res.terminated) and not bool(res.truncated)
    torch.testing.assert_close(first.observation, kept)  # earlier results are never mutated


def test_returned_tensors_are_not_aliased_across_steps_and_resets() -> None:
    env = env_for([[0.4, 0.4]], episodes=3)
    env.reset()
    a = env.step(torch.full((1, 3, 2), 0.1))
    saved = [x.clone() for x in a]
    env.step(torch.full((1, 3, 2), 0.1))
    env.reset()
    for x, y in zip(a, saved):
        assert torch.equal(x, y)


def test_rollouts_are_deterministic_under_a_seed() -> None:
    family = Navigation2D()
    tasks = family.sample(4, "train", torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    policy = make_policy(family.observation_space, family.action_space, (8,), "tanh")
    params = detach_params(named_params(policy))
    runs = [rollout(family.make_env(tasks, 3), policy, params, torch.Generator().manual_seed(7))
            for _ in range(2)]
    for name in ("observations", "actions", "rewards", "masks", "log_probs"):
        assert torch.equal(getattr(runs[0], name), getattr(runs[1], name)), name


def test_splits_are_disjoint_and_recognised() -> None:
    family = Navigation2D()
    g = torch.Generator().manual_seed(1)
    train, test = family.sample(300, "train", g), family.sample(300, "test", g)
    assert split_of(train) == ["train"] * 300 and split_of(test) == ["test"] * 300
    goals_train = {tuple(x) for x in train.params["goal"].tolist()}
    goals_test = {tuple(x) for x in test.params["goal"].tolist()}
    assert not goals_train & goals_test
    for goals in (train.params["goal"], test.params["goal"]):
        assert float(goals.min()) >= -0.5 and float(goals.max()) <= 0.5
