"""Known-answer tests for the classic tabular-MDP baselines and the MDP table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch

from adaptrl.agents.classic import (
    BEB,
    PSRL,
    UCRL2,
    EpsilonGreedyMDP,
    GreedyMDP,
    MDPCounts,
    MDPPrior,
    MyopicGreedyMDP,
    OptimisticPSRL,
    RandomMDP,
    optimistic_expectation,
    run_mdp,
    tabular,
)
from adaptrl.agents.classic.tabular import PlansGreedily, _sample_mdps
from adaptrl.evaluation.classic_tables import format_table, mdp_table
from adaptrl.planning import value_iteration
from adaptrl.tasks.tabular_mdp import TabularMDP


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def two_state_mdp(num: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """State 0: action 0 stays (reward 1), action 1 moves to state 1 (reward 0).
    State 1: both actions stay (reward 2). Deterministic."""
    transitions = torch.zeros(num, 2, 2, 2)
    transitions[:, 0, 0, 0] = 1.0
    transitions[:, 0, 1, 1] = 1.0
    transitions[:, 1, :, 1] = 1.0
    rewards = torch.tensor([[1.0, 0.0], [2.0, 2.0]]).expand(num, 2, 2).clone()
    return transitions, rewards


def test_optimistic_expectation_moves_mass_to_the_best_state() -> None:
    p_hat = torch.tensor([0.5, 0.5, 0.0]).view(1, 1, 1, 3)
    value = torch.tensor([[0.0, 1.0, 2.0]])
    def at(radius: float) -> float:
        return optimistic_expectation(p_hat, torch.tensor([[[radius]]]), value).item()
    assert at(0.0) == pytest.approx(0.5)
    assert at(0.4) == pytest.approx(0.9)  # p = (0.3, 0.5, 0.2)
    assert at(1.4) == pytest.approx(1.0 * 0.3 + 2.0 * 0.7)  # p = (0, 0.3, 0.7)
    assert at(5.0) == pytest.approx(2.0)


def test_posterior_of_counts_is_conjugate() -> None:
    counts = MDPCounts.empty(1, 3, 2, horizon=4)
    s, a = torch.tensor([0]), torch.tensor([1])
    counts.update(s, a, torch.tensor([3.0]), torch.tensor([2]))
    counts.update(s, a, torch.tensor([-1.0]), torch.tensor([2]))
    prior = MDPPrior()
    transitions, rewards = counts.posterior_mean_mdp(prior)
    assert torch.allclose(transitions[0, 0, 1], torch.tensor([1.0, 1.0, 3.0]) / 5)
    assert torch.allclose(transitions[0, 1, 0], torch.full((3,), 1 / 3))
    # N(1, 1) prior, two unit-variance observations summing to 2: mean (1 + 2) / 3.
    assert rewards[0, 0, 1].item() == pytest.approx(1.0)
    mean, precision = counts.posterior_rewards(prior)
    assert precision[0, 0, 1].item() == 3.0 and mean[0, 1, 1].item() == 1.0
    assert counts.steps == 2


AGENTS = [RandomMDP(), GreedyMDP(), EpsilonGreedyMDP(0.1), MyopicGreedyMDP(), PSRL(),
          OptimisticPSRL(3), BEB(1.0), UCRL2(0.1)]


@pytest.mark.parametrize("agent", AGENTS, ids=lambda a: type(a).__name__)
def test_trials_are_deterministic_under_a_seed(agent: object) -> None:
    tasks = TabularMDP(4, 3, horizon=5).sample(16, "test", gen(1))
    args = (tasks.params["transitions"], tasks.params["reward_mean"], 4)
    first = run_mdp(agent, *args, gen(9), horizon=5)
    assert first.shape == (16, 4)
    assert torch.equal(first, run_mdp(agent, *args, gen(9), horizon=5))


@pytest.mark.parametrize("agent, same_as", [
    (OptimisticPSRL(num_samples=1), PSRL()),  # the max over one sample is that sample
    (EpsilonGreedyMDP(epsilon=0.0), GreedyMDP()),
])
def test_degenerate_hyperparameters_reduce_to_the_simpler_agent(agent: object,
                                                                same_as: object) -> None:
    tasks = TabularMDP(5, 3, horizon=4).sample(32, "test", gen(4))
    args = (tasks.params["transitions"], tasks.params["reward_mean"], 6)
    assert torch.equal(run_mdp(agent, *args, gen(5), horizon=4),
                       run_mdp(same_as, *args, gen(5), horizon=4))


def test_optimistic_psrl_acts_on_the_envelope_of_its_sampled_mdps(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """TabulaRL's optimistic PSRL: ``Q = max_k Q^k``, each sampled MDP solved on its own.

    Three given "samples" of the two-state MDP: the rich state pays 2, 0 or 5; staying in
    state 0 pays 1, 3 or 0. The envelope mixes samples: at 2 steps left its state-0 row
    comes from sample 1 (stay: 6) and sample 2 (move: 5), no single sample's Q.
    """
    transitions, rewards = two_state_mdp(1)
    rewards = torch.stack([rewards[0], torch.tensor([[3.0, 0.0], [0.0, 0.0]]),
                           torch.tensor([[0.0, 0.0], [5.0, 5.0]])])[None]  # [1, 3, 2, 2]
    transitions = transitions[:, None].expand(1, 3, 2, 2, 2)
    calls = []

    def fake_sample(counts: MDPCounts, prior: MDPPrior, samples: int,
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(samples)
        return transitions, rewards

    monkeypatch.setattr(tabular, "_sample_mdps", fake_sample)
    counts = MDPCounts.empty(1, 2, 2, horizon=2)
    q = OptimisticPSRL(num_samples=3).action_values(counts, gen())
    per_sample = value_iteration(transitions, rewards, 2)  # [1, 3, H, S, A]
    assert calls == [3]
    assert torch.equal(q, per_sample.amax(dim=1))
    assert q[0, 0, 0].tolist() == [6.0, 5.0] and q[0, 1, 1].tolist() == [5.0, 5.0]
    assert not any(torch.equal(q, per_sample[:, k]) for k in range(3))


@dataclass(frozen=True)
class ClippedSamplePSRL(PlansGreedily):
    """The *wrong* optimistic PSRL: one posterior MDP whose mean rewards are clipped from
    below at their posterior means (the bandit rule of May et al. 2012 carried over)."""

    prior: MDPPrior = MDPPrior()

    def action_values(self, counts: MDPCounts, generator: torch.Generator) -> torch.Tensor:
        transitions, rewards = _sample_mdps(counts, self.prior, 1, generator)
        mean = counts.posterior_rewards(self.prior)[0]
        return value_iteration(transitions[:, 0], torch.maximum(rewards[:, 0], mean),
                               counts.horizon)


def assert_untried_one_step_values_are_an_envelope_of_ten(agent: PlansGreedily) -> None:
    """With one step left and no experience, ``Q(s, a)`` is a reward drawn from the prior
    ``N(1, 1)``; the envelope of ten samples has mean ``1 + E max(Z_1..Z_10) = 2.5388``
    (a single sample clipped at its mean: ``1 + E max(Z, 0) = 1.3989``)."""
    counts = MDPCounts.empty(4000, 2, 5, horizon=1)
    q = agent.action_values(counts, gen(11))
    assert q.mean().item() == pytest.approx(1.0 + 1.538753, abs=0.02)


def test_optimistic_psrl_values_have_the_known_mean_a_clipped_sample_does_not() -> None:
    assert_untried_one_step_values_are_an_envelope_of_ten(OptimisticPSRL())  # K = 10
    with pytest.raises(AssertionError):
        assert_untried_one_step_values_are_an_envelope_of_ten(ClippedSamplePSRL())
    clipped = ClippedSamplePSRL().action_values(MDPCounts.empty(4000, 2, 5, horizon=1), gen(11))
    assert clipped.mean().item() == pytest.approx(1.0 + 0.398942, abs=0.02)


def test_optimistic_psrl_is_batched_over_instances() -> None:
    """Each instance's values depend on its own counts only: one batched call equals the
    per-instance envelopes of the same draws."""
    counts = MDPCounts.empty(3, 4, 2, horizon=3)
    for step in range(12):
        counts.update(torch.tensor([step % 4, 0, 1]), torch.tensor([step % 2, 1, 0]),
                      torch.tensor([0.5 * step, -1.0, 2.0]), torch.tensor([(step + 1) % 4, 2, 3]))
    transitions, rewards = _sample_mdps(counts, MDPPrior(), 4, gen(2))
    q = OptimisticPSRL(num_samples=4).action_values(counts, gen(2))
    for n in range(3):
        single = value_iteration(transitions[n], rewards[n], 3).amax(dim=0)
        assert torch.allclose(q[n], single)


def test_myopic_greedy_is_greedy_when_one_step_is_all_there_is() -> None:
    """With horizon 1 value iteration returns the reward itself: the two agents agree."""
    tasks = TabularMDP(5, 3, horizon=1).sample(32, "test", gen(4))
    args = (tasks.params["transitions"], tasks.params["reward_mean"], 8)
    assert torch.equal(run_mdp(MyopicGreedyMDP(), *args, gen(5), horizon=1),
                       run_mdp(GreedyMDP(), *args, gen(5), horizon=1))


def test_myopic_greedy_ignores_the_transitions() -> None:
    """State 0: action 0 pays 1 and stays, action 1 pays 0 and (mostly) leads to state 1,
    which pays 2. Over 10 steps planning on the posterior-mean MDP moves (value 12.56 vs
    12.50); the myopic agent takes the better reward now."""
    counts = MDPCounts.empty(1, 2, 2, 10, torch.device("cpu"))
    experience = ([(0, 1, 0.0, 1)] * 3 + [(0, 0, 1.0, 0)] * 3
                  + [(1, a, 2.0, 1) for a in (0, 1, 0, 1)])
    for state, action, reward, next_state in experience:
        counts.update(torch.tensor([state]), torch.tensor([action]), torch.tensor([reward]),
                      torch.tensor([next_state]))
    assert MyopicGreedyMDP()(counts, gen())[0, 0, 0].argmax() == 0
    assert GreedyMDP()(counts, gen())[0, 0, 0].argmax() == 1


def test_psrl_converges_to_the_optimal_return_on_a_deterministic_mdp() -> None:
    transitions, rewards = two_state_mdp(200)
    horizon = 5  # optimal: move at once, then 4 x 2 = 8; staying earns only 5
    returns = run_mdp(PSRL(), transitions, rewards, 40, gen(0), horizon=horizon)
    late = returns[:, -10:].mean().item()  # noise: sd sqrt(5) per episode, 2000 episodes
    assert late == pytest.approx(8.0, abs=0.2)
    assert returns[:, :2].mean().item() < 7.5  # it did have to learn


def test_every_method_beats_random_on_random_mdps() -> None:
    tasks = TabularMDP().sample(300, "test", gen(2))
    args = (tasks.params["transitions"], tasks.params["reward_mean"], 10)
    def score(agent: Any) -> float:
        return run_mdp(agent, *args, gen(3)).sum(dim=1).mean().item()
    random = score(RandomMDP())
    assert random == pytest.approx(100.0, abs=5.0)  # 10 episodes x 10 steps x E[mu] = 1
    for agent in AGENTS[1:]:
        assert score(agent) > random + 20, agent


@pytest.mark.parametrize("make, message", [
    (lambda: EpsilonGreedyMDP(epsilon=-0.1), "epsilon"),
    (lambda: BEB(beta=-1.0), "beta"),
    (lambda: UCRL2(delta=0.0), "delta"),
    (lambda: OptimisticPSRL(num_samples=0), "num_samples"),
    (lambda: MDPPrior(reward_precision=0.0), "reward_precision"),
    (lambda: run_mdp(RandomMDP(), torch.rand(2, 3, 2, 4), torch.rand(2, 3, 2), 1, gen()),
     "transitions"),
    (lambda: run_mdp(RandomMDP(), *two_state_mdp(), 0, gen()), "num_episodes"),
    (lambda: run_mdp(RandomMDP(), *two_state_mdp(), 1, gen(), start_state=2), "start_state"),
])
def test_bad_arguments_raise_value_errors_naming_them(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_mdp_table_structure_and_determinism() -> None:
    kwargs = dict(settings=[3], num_instances=30, tune_instances=10, seed=1,
                  methods=["random", "beb"], num_states=4, num_actions=2, horizon=4)
    table = mdp_table(**kwargs)
    assert (table["num_states"], table["num_actions"], table["horizon"]) == (4, 2, 4)
    (setting,) = table["settings"]
    assert setting["n"] == 3 and set(setting["methods"]) == {"random", "beb"}
    assert "beta" in setting["methods"]["beb"]["params"]
    assert mdp_table(**kwargs)["settings"][0]["methods"]["beb"]["mean"] == (
        setting["methods"]["beb"]["mean"])
    assert "n=3" in format_table(table)


def test_run_mdp_asks_an_every_step_agent_before_every_step() -> None:
    calls: list[int] = []

    @dataclass(frozen=True)
    class Counting:
        every_step: bool

        def __call__(self, counts: MDPCounts, generator: torch.Generator) -> torch.Tensor:
            calls.append(int(counts.visits.sum()))
            return RandomMDP()(counts, generator)

    tasks = TabularMDP(num_states=3, num_actions=2, horizon=4).sample(
        5, "test", torch.Generator().manual_seed(0))
    for every_step, expected in ((False, [0, 20, 40]), (True, list(range(0, 60, 5)))):
        calls.clear()
        run_mdp(Counting(every_step), tasks.params["transitions"], tasks.params["reward_mean"],
                3, torch.Generator().manual_seed(1), horizon=4)
        assert calls == expected  # total visits over the 5 MDPs when asked


def test_myopic_beb_values_are_the_posterior_mean_reward_plus_bonus() -> None:
    counts = MDPCounts.empty(1, 2, 2, horizon=3)
    counts.update(torch.tensor([0]), torch.tensor([1]), torch.tensor([3.0]), torch.tensor([1]))
    q = BEB(beta=0.5, myopic=True).action_values(counts, torch.Generator())
    # prior N(1, 1), unit noise: (1 + 3) / 2 = 2 for the tried pair, 1 elsewhere
    expected = torch.tensor([[1.0 + 0.5, 2.0 + 0.25], [1.5, 1.5]])
    assert q.shape == (1, 3, 2, 2)
    assert torch.allclose(q[0], expected.expand(3, 2, 2))
    planned = BEB(beta=0.5).action_values(counts, torch.Generator())
    assert torch.allclose(planned[0, -1], expected)  # the last step plans nothing ahead
    assert bool((planned[0, 0] > expected).all())    # earlier steps add the future
