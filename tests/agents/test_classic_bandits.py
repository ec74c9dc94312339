"""Known-answer tests for the classic bandit baselines, the Gittins index and bandit tables."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pytest
import torch

from adaptrl.agents.classic import (
    BANDIT_METHODS,
    UCB1,
    BanditState,
    EpsilonGreedy,
    GittinsPolicy,
    Greedy,
    MostProbableThompson,
    OptimisticThompson,
    RandomBandit,
    Thompson,
    bandits,
    discounted_table,
    finite_horizon_table,
    gittins_index,
    grid,
    grid_search,
    run_bandit,
)
from adaptrl.agents.classic.bandits import beta_log_density
from adaptrl.evaluation.classic_tables import (
    bandit_table,
    derived_generator,
    format_table,
    setting_instances,
)
from adaptrl.tasks.bandits import BanditBernoulli


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- posterior

def test_beta_posterior_counts_successes_and_failures() -> None:
    state = BanditState.empty(2, 3, horizon=5)
    pulls = [([0, 2], [1.0, 0.0]), ([0, 2], [0.0, 0.0]), ([1, 2], [1.0, 1.0])]
    for arm, reward in pulls:
        state.update(torch.tensor(arm), torch.tensor(reward))
    alpha, beta = state.posterior((1.0, 1.0))
    assert torch.equal(alpha, torch.tensor([[2.0, 2.0, 1.0], [1.0, 1.0, 2.0]]))
    assert torch.equal(beta, torch.tensor([[2.0, 1.0, 1.0], [1.0, 1.0, 3.0]]))
    assert state.t == 3 and state.remaining == 2
    mean = state.mean((0.0, 0.0))  # empirical mean, +inf where never pulled
    assert mean[0, 0] == 0.5 and mean[0, 1] == 1.0 and mean[0, 2] == float("inf")


# ----------------------------------------------------------------------------- policies

ALL_POLICIES = [RandomBandit(), Greedy(), EpsilonGreedy(0.1), UCB1(), UCB1(0.2, (1.0, 1.0)),
                Thompson(), OptimisticThompson(), MostProbableThompson(num_samples=5),
                GittinsPolicy(), GittinsPolicy(discount=0.9)]


@pytest.mark.parametrize("policy", ALL_POLICIES, ids=lambda p: type(p).__name__)
def test_trials_are_deterministic_under_a_seed(policy: object) -> None:
    p = torch.rand(64, 4, generator=gen(1))
    first = run_bandit(policy, p, 30, gen(7))
    assert torch.equal(first, run_bandit(policy, p, 30, gen(7)))
    assert first.shape == (64, 30) and set(first.unique().tolist()) <= {0.0, 1.0}


def test_ucb1_without_bonus_is_greedy() -> None:
    p = torch.rand(64, 5, generator=gen(2))
    assert torch.equal(run_bandit(UCB1(c=0.0, prior=(1.0, 1.0)), p, 40, gen(3)),
                       run_bandit(Greedy(), p, 40, gen(3)))


def test_ucb1_settles_on_a_dominant_arm() -> None:
    p = torch.tensor([[0.9, 0.1, 0.1]]).expand(50, 3)
    state_pulls = torch.zeros(50, 3)

    class Recorder:  # wraps UCB1 to count the arms it picks
        def __call__(self, state: BanditState, generator: torch.Generator) -> torch.Tensor:
            arm = UCB1()(state, generator)
            state_pulls.scatter_add_(1, arm[:, None], torch.ones(50, 1))
            return arm

    run_bandit(Recorder(), p, 500, gen(0))
    share = state_pulls[:, 0] / 500
    assert (share > 0.9).all(), share.min()


def test_auer_initialisation_pulls_every_arm_once_first() -> None:
    state = BanditState.empty(8, 6, horizon=20)
    g = gen(3)
    for _ in range(6):
        state.update(UCB1()(state, g), torch.zeros(8))
    assert torch.equal(state.pulls, torch.ones(8, 6))


def test_optimistic_thompson_never_scores_an_arm_below_its_mean() -> None:
    # Arm 0: Beta(1, 1) (mean 0.5); arm 1: known p = 0.4 (a very narrow posterior).
    # Thompson picks arm 0 when its draw beats 0.4: probability 0.6. Optimistic Thompson
    # scores arm 0 at least 0.5 > 0.4, so it always picks it.
    num = 20000
    state = BanditState(torch.tensor([[0.0, 4e5]]).expand(num, 2).clone(),
                        torch.tensor([[0.0, 1e6]]).expand(num, 2).clone(), 0, 10)
    ts = (Thompson()(state, gen(0)) == 0).float().mean().item()
    ots = (OptimisticThompson()(state, gen(0)) == 0).float().mean().item()
    assert ts == pytest.approx(0.6, abs=0.015)
    assert ots == 1.0


@dataclass(frozen=True)
class FixedDraw(OptimisticThompson):
    """Optimistic Thompson with its posterior draw replaced by a given tensor."""

    draw: torch.Tensor = torch.zeros(0)

    def sample(self, state: BanditState, generator: torch.Generator) -> torch.Tensor:
        return self.draw


def one_instance_state() -> BanditState:
    """Arms with posteriors Beta(1, 1), Beta(3, 1), Beta(1, 3): means 1/2, 3/4, 1/4."""
    state = BanditState.empty(1, 3, horizon=10)
    for arm, reward in ((1, 1.0), (1, 1.0), (2, 0.0), (2, 0.0)):
        state.update(torch.tensor([arm]), torch.tensor([reward]))
    return state


def test_optimistic_thompson_index_is_the_draw_or_the_mean_whichever_is_larger() -> None:
    """May et al. (2012): ``q_i = max(theta_i, mu_i)``, for a given draw ``theta``."""
    draw = torch.tensor([[0.9, 0.2, 0.3]])
    index = FixedDraw(draw=draw).index(one_instance_state(), gen())
    assert torch.equal(index, torch.tensor([[0.9, 0.75, 0.3]]))
    assert FixedDraw(draw=draw)(one_instance_state(), gen()).item() == 0
    # Plain Thompson would pull arm 0 too; with a low draw for it, the clipped mean of
    # arm 1 (0.75) wins where Thompson would take arm 2's 0.3.
    low = FixedDraw(draw=torch.tensor([[0.1, 0.2, 0.3]]))
    assert low(one_instance_state(), gen()).item() == 1


def untried_arm_index(policy: Thompson, num: int = 40000) -> float:
    """Mean index of an untried arm (posterior Beta(1, 1)) over ``num`` instances."""
    return policy.index(BanditState.empty(num, 1, horizon=1), gen(3)).mean().item()


def test_optimistic_thompson_index_of_an_untried_arm_has_the_known_mean() -> None:
    """``E max(U, 1/2) = 5/8`` for ``U ~ U[0, 1]``; an index that is one posterior draw,
    clipped or not (plain Thompson, the most probable of several draws: the Beta(1, 1)
    density is flat, so any draw is as probable as any other), has mean 1/2."""
    assert untried_arm_index(OptimisticThompson()) == pytest.approx(0.625, abs=0.004)
    for other in (Thompson(), MostProbableThompson(num_samples=10)):
        assert untried_arm_index(other) == pytest.approx(0.5, abs=0.006)


def test_most_probable_thompson_keeps_the_draw_of_highest_joint_density(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The RL² authors' "OTS": of ``m`` posterior draws, act on the most probable one."""
    draws = torch.tensor([[[0.5, 0.2, 0.9],     # arm 2 far above its mean 1/4: improbable
                           [0.1, 0.8, 0.2],     # near the modes of arms 1 and 2: kept
                           [0.5, 0.4, 0.5]]])
    monkeypatch.setattr(bandits, "sample_beta", lambda alpha, beta, generator: draws)
    state = one_instance_state()
    alpha, beta = state.posterior((1.0, 1.0))
    density = beta_log_density(draws, alpha[:, None], beta[:, None]).sum(-1)
    assert density.argmax().item() == 1
    index = MostProbableThompson(num_samples=3).index(state, gen())
    assert torch.equal(index, draws[:, 1])
    assert MostProbableThompson(num_samples=3)(state, gen()).item() == 1


def test_most_probable_thompson_with_one_draw_is_thompson() -> None:
    p = torch.rand(64, 5, generator=gen(2))
    assert torch.equal(run_bandit(MostProbableThompson(num_samples=1), p, 30, gen(3)),
                       run_bandit(Thompson(), p, 30, gen(3)))


def test_beta_log_density_matches_torch_and_is_finite_at_the_ends() -> None:
    alpha, beta = torch.tensor([1.0, 2.0, 3.5, 1.0]), torch.tensor([1.0, 5.0, 1.5, 4.0])
    x = torch.tensor([0.3, 0.1, 0.8, 0.6])
    expected = torch.distributions.Beta(alpha, beta).log_prob(x)
    assert torch.allclose(beta_log_density(x, alpha, beta), expected, atol=1e-5)
    ends = beta_log_density(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 3.0]),
                            torch.tensor([2.0, 1.0]))
    assert torch.allclose(ends, torch.tensor([2.0, 3.0]).log())


def test_epsilon_greedy_explores_at_rate_epsilon() -> None:
    # Arm 0 is clearly best in the posterior; a uniform arm is any of 4, so the
    # non-greedy share is epsilon * 3/4.
    num = 20000
    state = BanditState(torch.tensor([[9.0, 0.0, 0.0, 0.0]]).expand(num, 4).clone(),
                        torch.tensor([[10.0, 10.0, 10.0, 10.0]]).expand(num, 4).clone(), 40, 100)
    share = (EpsilonGreedy(0.2)(state, gen(0)) != 0).float().mean().item()
    assert share == pytest.approx(0.15, abs=0.01)
    assert (Greedy()(state, gen(0)) == 0).all()


def trial_mean(policy: object, n: int, k: int, num: int = 1000, seed: int = 0) -> float:
    p = torch.rand(num, k, generator=gen(100 + seed))
    return run_bandit(policy, p, n, gen(seed)).sum(dim=1).mean().item()


def test_thompson_beats_random() -> None:
    random, thompson = trial_mean(RandomBandit(), 100, 5), trial_mean(Thompson(), 100, 5)
    assert random == pytest.approx(50.0, abs=2.0)  # n * E[p] = 100 * 0.5
    assert thompson > random + 20


def test_gittins_beats_thompson_and_greedy_on_the_paper_setting() -> None:
    # n = 100, k = 10 (RL² Table 1): the finite-horizon Gittins index is the
    # Bayes-motivated index for this very prior and horizon.
    gittins = trial_mean(GittinsPolicy(), 100, 10)
    assert gittins > trial_mean(Thompson(), 100, 10) + 3
    assert gittins > trial_mean(Greedy(), 100, 10) + 2


@pytest.mark.parametrize("make, message", [
    (lambda: EpsilonGreedy(epsilon=1.5), "epsilon"),
    (lambda: UCB1(c=-1.0), "c must"),
    (lambda: Greedy(prior=(-1.0, 1.0)), "prior"),
    (lambda: Thompson(prior=(0.0, 1.0)), "prior"),
    (lambda: MostProbableThompson(num_samples=0), "num_samples"),
    (lambda: GittinsPolicy(discount=1.0), "discount"),
    (lambda: run_bandit(RandomBandit(), torch.rand(5), 3, gen()), "p must"),
    (lambda: run_bandit(RandomBandit(), torch.rand(5, 2), 0, gen()), "num_pulls"),
])
def test_bad_arguments_raise_value_errors_naming_them(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


# ----------------------------------------------------------------------------- Gittins

@pytest.mark.parametrize("alpha, beta, discount, published", [
    (1, 1, 0.9, 0.7029), (2, 2, 0.9, 0.6346), (3, 3, 0.9, 0.6010), (10, 2, 0.9, 0.8695),
    (1, 1, 0.99, 0.8699),
])
def test_discounted_index_matches_gittins_published_table(alpha: int, beta: int,
                                                          discount: float,
                                                          published: float) -> None:
    """Values of Gittins' tables for Bernoulli arms with a uniform prior (Gittins 1989),
    as quoted by Christian & Griffiths, *Algorithms to Live By* (2016), ch. 2: a 0-0 arm
    is worth 0.7029 at discount 0.9 and 0.8699 at 0.99; 1-1 is 0.6346, 2-2 is 0.6010 and
    9 wins 1 loss 0.8695 at 0.9."""
    assert gittins_index(alpha, beta, discount, grid_size=256) == pytest.approx(
        published, abs=1.5e-4)


def brute_force_finite_horizon_index(alpha: float, beta: float, horizon: int) -> float:
    """Independent check: bisection on the retirement reward with a memoised recursion."""

    def index_at(lam: float) -> bool:  # is pulling strictly better than retiring?
        @functools.cache
        def value(a: float, b: float, left: int) -> float:
            if left == 0:
                return 0.0
            p = a / (a + b)
            pull = p * (1 + value(a + 1, b, left - 1)) + (1 - p) * value(a, b + 1, left - 1)
            return max(lam * left, pull)

        p = alpha / (alpha + beta)
        pull = (p * (1 + value(alpha + 1, beta, horizon - 1))
                + (1 - p) * value(alpha, beta + 1, horizon - 1))
        return pull > lam * horizon

    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if index_at(mid) else (lo, mid)
    return 0.5 * (lo + hi)


@pytest.mark.parametrize("s, f, left", [(0, 0, 6), (2, 1, 4), (0, 3, 5), (4, 0, 3), (1, 1, 2)])
def test_finite_horizon_index_matches_brute_force(s: int, f: int, left: int) -> None:
    table = finite_horizon_table(10, grid_size=256)
    expected = brute_force_finite_horizon_index(1.0 + s, 1.0 + f, left)
    assert table.index(torch.tensor(s), torch.tensor(f), left).item() == pytest.approx(
        expected, abs=1e-3)


def test_finite_horizon_index_properties() -> None:
    horizon = 40
    table = finite_horizon_table(horizon, grid_size=128)
    counts = torch.arange(horizon + 1, dtype=torch.float32)
    means = (1 + counts[:, None]) / (2 + counts[:, None] + counts)
    # One pull left: nothing to learn for, the index is the posterior mean.
    assert torch.allclose(table.levels[0], means[:horizon, :horizon], atol=1e-6)
    for h in (2, 10, 30):
        size = horizon - h + 1
        index = table.levels[h - 1]
        valid = (counts[:size, None] + counts[:size]) <= size - 1
        assert (index[valid] > means[:size, :size][valid]).all()  # the exploration bonus
        # Increasing in successes, decreasing in failures (on reachable states).
        assert (index[1:, :-1] - index[:-1, :-1])[valid[1:, :-1]].min() > 0
        assert (index[:-1, 1:] - index[:-1, :-1])[valid[:-1, 1:]].max() < 0
        # More pulls left, more worth exploring.
        assert (index[valid] >= table.levels[h - 2][:size, :size][valid] - 1e-6).all()


def test_finite_horizon_index_tends_to_discounted_index_for_long_horizons() -> None:
    # With discount 0.9, the index over 100 pulls is the infinite-horizon one to ~1e-5.
    finite = finite_horizon_table(100, discount=0.9, grid_size=256)
    discounted = discounted_table(3, 0.9, grid_size=256)
    for s, f in [(0, 0), (1, 0), (0, 2), (1, 1)]:
        assert finite.index(torch.tensor(s), torch.tensor(f), 100 - s - f).item() == (
            pytest.approx(discounted[s, f].item(), abs=5e-4))


# ----------------------------------------------------------------------------- tuning, tables

def test_grid_search_picks_the_best_and_keeps_the_first_of_ties() -> None:
    best, scores = grid_search(lambda p: -abs(p["x"] - 2), grid(x=[0, 1, 2, 3]))
    assert best == {"x": 2} and len(scores) == 4
    best, _ = grid_search(lambda p: 1.0, grid(x=[5, 6], y=["a"]))
    assert best == {"x": 5, "y": "a"}
    with pytest.raises(ValueError, match="grid"):
        grid_search(lambda p: 0.0, [])


def test_bandit_table_structure_determinism_and_rendering() -> None:
    kwargs = dict(settings=[(20, 3)], num_instances=50, tune_instances=20, seed=4,
                  methods=["random", "epsilon_greedy"])
    table = bandit_table(**kwargs)
    assert table["unit"] == "episodes" and table["num_instances"] == 50
    (setting,) = table["settings"]
    assert (setting["n"], setting["k"]) == (20, 3)
    assert set(setting["methods"]) == {"random", "epsilon_greedy"}
    eps = setting["methods"]["epsilon_greedy"]
    assert eps["params"]["epsilon"] in [g["epsilon"] for g in BANDIT_METHODS[
        "epsilon_greedy"].grid]
    assert eps["ci95"] > 0
    again = bandit_table(**kwargs)
    for name in ("random", "epsilon_greedy"):
        assert again["settings"][0]["methods"][name]["mean"] == setting["methods"][name]["mean"]
    setting["methods"]["rl2"] = {"mean": 15.0, "ci95": 0.5}  # another agent's column
    text = format_table(table)
    assert "n=20, k=3" in text and "rl2" in text and "15.0 ± 0.5" in text
    with pytest.raises(ValueError, match="methods"):
        bandit_table(settings=[(5, 2)], methods=["oracle"])


def test_table_scores_are_per_instance_on_the_setting_instances() -> None:
    """``scores`` hands out what the means summarise, played on ``setting_instances``: an
    agent scored there can be paired with each method instance by instance."""
    scores: dict = {}
    table = bandit_table(settings=[(6, 3)], num_instances=40, tune_instances=10, seed=2,
                         methods=["greedy", "random"], scores=scores)
    assert set(scores) == {(6, 3)} and set(scores[(6, 3)]) == {"greedy", "random"}
    for name, per_instance in scores[(6, 3)].items():
        assert per_instance.shape == (40,)
        assert float(per_instance.double().mean()) == pytest.approx(
            table["settings"][0]["methods"][name]["mean"])
    tasks = setting_instances(BanditBernoulli(num_arms=3, trial_length=6), (6, 3), 40, 2)
    again = run_bandit(Greedy(), tasks.params["p"], 6,
                       derived_generator(2, "run", (6, 3), "greedy")).sum(1)
    assert torch.equal(again, scores[(6, 3)]["greedy"])
