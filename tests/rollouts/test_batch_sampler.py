"""BatchSampler: batches counted in episodes or, as rllab counts them, in steps."""

from __future__ import annotations

import torch

from adaptrl.rollouts.baselines import advantages
from adaptrl.rollouts.sampler import BatchSampler, rollout
from adaptrl.tasks import make
from adaptrl.tasks.base import StepResult, Tasks

HORIZON = 10


class RandomLengthEnv:
    """Every episode lasts a random number of steps in 1..HORIZON, drawn at reset; reward 1
    per step and the observation is the episode's length, so a test can check the sums."""

    def __init__(self, num_tasks: int, episodes: int) -> None:
        self.num_tasks, self.episodes_per_task, self.horizon = num_tasks, episodes, HORIZON
        self.device = torch.device("cpu")

    def reset(self, generator: torch.Generator | None = None) -> torch.Tensor:
        shape = (self.num_tasks, self.episodes_per_task)
        self.length = torch.randint(1, HORIZON + 1, shape, generator=generator)
        self.t = 0
        return self.length.float().unsqueeze(-1)

    def step(self, action: torch.Tensor) -> StepResult:
        self.t += 1
        ended = self.length <= self.t
        obs = self.length.float().unsqueeze(-1)
        return StepResult(obs, torch.ones(self.length.shape), ended,
                          torch.zeros_like(ended) if self.t < HORIZON else ~ended)


class RandomLengthFamily:
    def make_env(self, tasks: Tasks, episodes: int, device: torch.device | str = "cpu"
                 ) -> RandomLengthEnv:
        return RandomLengthEnv(len(tasks), episodes)


class ZeroPolicy:
    @staticmethod
    def act(obs: torch.Tensor, params: object, generator: torch.Generator,
            deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros_like(obs), torch.zeros(obs.shape[:2])


def tasks(n: int) -> Tasks:
    return Tasks({"id": torch.arange(n).float().unsqueeze(-1)})


def test_step_budget_keeps_whole_episodes_until_the_budget_is_reached() -> None:
    episodes = 4
    sampler = BatchSampler(RandomLengthFamily(), tasks(6), episodes, unit="steps")  # type: ignore[arg-type]
    traj = sampler.sample(ZeroPolicy(), None, torch.Generator().manual_seed(0))
    budget = episodes * HORIZON
    lengths = traj.masks.sum(0)  # [tasks, episodes]
    valid = traj.episode_mask().bool()
    for i in range(6):
        kept = lengths[i][valid[i]]
        assert bool(valid[i, : len(kept)].all())  # the kept episodes are a prefix
        assert kept.sum() >= budget  # enough steps ...
        assert kept[:-1].sum() < budget  # ... and the last episode started before the budget
        assert len(kept) >= episodes
        # every kept episode's steps are whole (its length equals its observation)
        assert torch.equal(kept, traj.observations[0, i, : len(kept), 0])
    # padding episodes carry nothing; the score averages the sampled episodes only
    assert float(traj.rewards[:, ~valid].abs().sum()) == 0
    assert torch.allclose(traj.task_returns(),
                          (lengths * valid).sum(-1) / valid.sum(-1))


def test_step_budget_needs_more_episodes_when_episodes_are_short() -> None:
    sampler = BatchSampler(RandomLengthFamily(), tasks(8), 5, unit="steps")  # type: ignore[arg-type]
    traj = sampler.sample(ZeroPolicy(), None, torch.Generator().manual_seed(1))
    # mean length (1 + 10) / 2 = 5.5 steps: about 50 / 5.5 ~ 9 episodes per task
    assert float(traj.episode_mask().sum(-1).float().mean()) > 7


def test_full_length_episodes_give_the_same_batch_in_either_unit() -> None:
    family = make("navigation-2d")
    ts = family.sample(3, "test", torch.Generator().manual_seed(0))
    policy = ZeroPolicy()  # never reaches a goal: every episode lasts the horizon
    by_episodes = BatchSampler(family, ts, 4, unit="episodes").sample(
        policy, None, torch.Generator().manual_seed(5))
    by_steps = BatchSampler(family, ts, 4, unit="steps").sample(
        policy, None, torch.Generator().manual_seed(5))
    plain = rollout(family.make_env(ts, 4), policy, None, torch.Generator().manual_seed(5))
    for a, b in ((by_episodes, plain), (by_steps, plain)):
        assert torch.equal(a.observations, b.observations)
        assert torch.equal(a.masks, b.masks)


def test_padding_episodes_change_no_advantage_or_loss() -> None:
    """Advantages (per-task baseline fit and standardisation) of a padded batch equal those
    of the same episodes without the padding."""
    sampler = BatchSampler(RandomLengthFamily(), tasks(2), 3, unit="steps")  # type: ignore[arg-type]
    traj = sampler.sample(ZeroPolicy(), None, torch.Generator().manual_seed(3))
    valid = traj.episode_mask().bool()
    adv = advantages(traj, 0.99, 1.0, True)
    for i in range(2):
        own = traj.select_tasks(slice(i, i + 1)).select_episodes(valid[i].nonzero().squeeze(-1))
        own_adv = advantages(own, 0.99, 1.0, True)
        assert torch.allclose(adv[:, i][:, valid[i]], own_adv[:, 0], atol=1e-5)


def test_step_batches_are_reproducible_under_a_seed() -> None:
    sampler = BatchSampler(RandomLengthFamily(), tasks(4), 3, unit="steps")  # type: ignore[arg-type]
    a = sampler.sample(ZeroPolicy(), None, torch.Generator().manual_seed(9))
    b = sampler.sample(ZeroPolicy(), None, torch.Generator().manual_seed(9))
    assert torch.equal(a.masks, b.masks) and torch.equal(a.observations, b.observations)
