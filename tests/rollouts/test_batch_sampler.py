"""BatchSampler: batches counted in episodes or, as rllab's samplers count them, in steps."""

from __future__ import annotations

from dataclasses import replace

import torch

from adaptrl.adaptation.policy_gradient import PolicyGradientAdapter
from adaptrl.models.functional import named_params
from adaptrl.models.policies import GaussianMLPPolicy
from adaptrl.rollouts.baselines import advantages
from adaptrl.rollouts.sampler import BatchSampler, finished_by_stop, keep_episodes, rollout
from adaptrl.rollouts.trajectories import pack_live_steps
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


def simulate_vectorized_sampler(lengths: list[list[int]], budget: int) -> list[int]:
    """rllab's ``VectorizedSampler`` loop, literally: ``lengths[w]`` are worker ``w``'s
    episode lengths in order; every global step advances every worker, a finished episode
    adds its length to the count, and the loop ends after the first step at which the
    count reaches ``budget``. Returns the indices (into ``w + workers * k``) kept."""
    workers = len(lengths)
    position = [0] * workers  # index of the running episode of every worker
    elapsed = [0] * workers  # steps into it
    kept, count = [], 0
    while count < budget:
        for w in range(workers):
            elapsed[w] += 1
            if elapsed[w] == lengths[w][position[w]]:
                kept.append(w + workers * position[w])
                count += lengths[w][position[w]]
                position[w] += 1
                elapsed[w] = 0
    return sorted(kept)


def test_finished_steps_keeps_what_the_vectorized_sampler_keeps() -> None:
    g = torch.Generator().manual_seed(4)
    workers, rounds, tasks_, budget = 5, 12, 30, 5 * HORIZON
    lengths = torch.randint(1, HORIZON + 1, (tasks_, rounds * workers), generator=g).float()
    keep = finished_by_stop(lengths, workers, budget)
    assert keep is not None  # 12 rounds of >= 1 step cover any stop with mean length 5.5
    for i in range(tasks_):
        per_worker = [[int(lengths[i, w + workers * k]) for k in range(rounds)]
                      for w in range(workers)]
        expected = simulate_vectorized_sampler(per_worker, budget)
        assert keep[i].nonzero().flatten().tolist() == expected
    # too few rounds to know the stop: more must be sampled
    assert finished_by_stop(lengths[:, :workers], workers, budget) is None


def test_finished_steps_batches_drop_running_episodes_and_favour_short_ones() -> None:
    workers, n = 4, 200
    family = RandomLengthFamily()
    sampler = BatchSampler(family, tasks(n), workers, unit="finished_steps")  # type: ignore[arg-type]
    traj = sampler.sample(ZeroPolicy(), None, torch.Generator().manual_seed(2))
    lengths = traj.masks.sum(0)
    valid = traj.episode_mask().bool()
    budget = workers * HORIZON
    assert bool(((lengths * valid).sum(-1) >= budget).all())  # enough finished steps
    # every kept episode is whole, and the padding carries nothing
    assert torch.equal(lengths[valid], traj.observations[0][valid][:, 0])
    assert float(traj.rewards[:, ~valid].abs().sum()) == 0
    # the mean kept length is below the episodes' true mean (1 + 10) / 2 = 5.5: the
    # episodes still running at the stop are the long ones
    assert float(lengths[valid].mean()) < 5.0
    steps = BatchSampler(family, tasks(n), workers, unit="steps").sample(  # type: ignore[arg-type]
        ZeroPolicy(), None, torch.Generator().manual_seed(2))
    kept = steps.masks.sum(0)[steps.episode_mask().bool()]
    assert abs(float(kept.mean()) - 5.5) < 0.3


def test_full_length_episodes_give_the_same_batch_when_finished_steps_are_counted() -> None:
    family = make("navigation-2d")
    ts = family.sample(3, "test", torch.Generator().manual_seed(0))
    policy = ZeroPolicy()  # every episode lasts the horizon: all end together at step 100
    finished = BatchSampler(family, ts, 4, unit="finished_steps").sample(
        policy, None, torch.Generator().manual_seed(5))
    plain = rollout(family.make_env(ts, 4), policy, None, torch.Generator().manual_seed(5))
    assert torch.equal(finished.observations, plain.observations)
    assert torch.equal(finished.masks, plain.masks)


def test_keep_episodes_moves_the_kept_ones_to_the_front_per_task() -> None:
    traj = rollout(RandomLengthEnv(2, 4), ZeroPolicy(), None,  # type: ignore[arg-type]
                   torch.Generator().manual_seed(6))
    keep = torch.tensor([[False, True, False, True], [True, False, False, False]])
    out = keep_episodes(traj, keep)
    assert out.episodes_per_task == 2
    assert torch.equal(out.observations[0, 0], traj.observations[0, 0, [1, 3]])
    assert torch.equal(out.observations[0, 1, 0], traj.observations[0, 1, 0])
    assert out.episode_mask().tolist() == [[1.0, 1.0], [1.0, 0.0]]


def test_packing_live_steps_keeps_every_live_step_and_the_inner_step() -> None:
    """A steps batch of short episodes packed into one column per task: the same live
    steps (as a multiset), far less padding, and the same VPG inner step."""
    traj = BatchSampler(RandomLengthFamily(), tasks(3), 4, unit="steps").sample(  # type: ignore[arg-type]
        ZeroPolicy(), None, torch.Generator().manual_seed(8))
    g = torch.Generator().manual_seed(0)
    traj = replace(traj, actions=torch.randn(traj.actions.shape, generator=g),
                   observations=torch.randn(traj.observations.shape, generator=g))
    adv = torch.randn(traj.masks.shape, generator=g) * traj.masks
    packed, packed_adv = pack_live_steps(traj, adv)
    live = traj.masks.sum((0, 2))
    assert packed.masks.shape == (int(live.max()), 3, 1)
    assert torch.equal(packed.masks.sum((0, 2)), live)
    for i in range(3):
        mine = traj.observations[:, i][traj.masks[:, i] > 0]
        theirs = packed.observations[:, i, 0][packed.masks[:, i, 0] > 0]
        assert sorted(mine[:, 0].tolist()) == sorted(theirs[:, 0].tolist())
    policy = GaussianMLPPolicy(1, 1, hidden=(8,))
    adapter = PolicyGradientAdapter(policy)
    params = named_params(policy)
    a = adapter.step(params, traj, adv, 0.1, first_order=True, create_graph=False)
    b = adapter.step(params, packed, packed_adv, 0.1, first_order=True, create_graph=False)
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6), name
    assert not torch.allclose(a["log_std"], params["log_std"])  # the step moved something
