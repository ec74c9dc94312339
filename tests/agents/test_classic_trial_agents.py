"""The classic bandit / MDP algorithms as trial actors under the one agent contract.

They must score what the comparison tables' own loops (``run_bandit``, ``run_mdp``) score
on the same instances, and the evaluation protocol must score them like RL², by one call.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from adaptrl.agents.classic import (
    BANDIT_METHODS,
    MDP_METHODS,
    UCB1,
    ClassicBanditAgent,
    ClassicMDPAgent,
    Greedy,
    GreedyMDP,
    RandomMDP,
    classic_agent,
    run_bandit,
    run_mdp,
)
from adaptrl.agents.contract import AdaptationUnit, Agent
from adaptrl.errors import UserError
from adaptrl.evaluation.protocol import adaptation_curve, adaptation_curves
from adaptrl.rollouts.trial_sampler import (
    TrialActor,
    play_trials,
    trial_episode_returns,
    trial_returns,
)
from adaptrl.tasks.bandits import BanditBernoulli
from adaptrl.tasks.base import Tasks
from adaptrl.tasks.navigation import Navigation2D
from adaptrl.tasks.tabular_mdp import TabularMDP

CPU = torch.device("cpu")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def play(family: Any, tasks: Tasks, agent: TrialActor[Any], episodes: int, trials: int,
         seed: int) -> torch.Tensor:
    """Total reward of every trial, ``[tasks * trials]`` (task-major, as ``repeat_interleave``)."""
    steps = play_trials(family.make_env(tasks, trials), agent, episodes, gen(seed))
    return trial_returns(steps).reshape(-1).double()


def assert_same_mean(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """The paired difference of the two loops' totals on the same instances has mean 0
    within 3 standard errors (independent random streams); returns that tolerance."""
    diff = ours - reference
    tolerance = 3 * float(diff.std()) / math.sqrt(diff.numel())
    assert abs(float(diff.mean())) < tolerance, (float(ours.mean()), float(reference.mean()),
                                                 tolerance)
    return tolerance


# -- equivalence with the tables' own loops -------------------------------------------------
@pytest.mark.parametrize("name", sorted(BANDIT_METHODS))
def test_a_bandit_agent_with_one_trial_per_task_replays_run_bandit_bit_for_bit(name: str
                                                                               ) -> None:
    """One trial per task: the slots are run_bandit's rows and the env draws its reward
    uniforms where run_bandit does, so every algorithm pulls the same arms and earns the
    same rewards, pull by pull."""
    family = BanditBernoulli(num_arms=3, trial_length=8)
    tasks = family.sample(300, "test", gen(0))
    agent = classic_agent(family, name, {})
    assert isinstance(agent, ClassicBanditAgent)
    steps = play_trials(family.make_env(tasks, 1), agent, 8, gen(1))
    reference = run_bandit(agent.policy, tasks.params["p"], 8, gen(1))
    assert torch.equal(steps.rewards[:, :, 0].T, reference)
    assert float(reference.sum(1).std()) > 0  # rewards that differ between instances


@pytest.mark.parametrize("name", ["random", "greedy", "ucb1", "thompson"])
def test_bandit_agents_score_like_run_bandit_with_several_trials_per_task(name: str) -> None:
    """4 trials per task (2000 instances): another layout and random stream than
    run_bandit's, the same mean total reward."""
    family = BanditBernoulli(num_arms=5, trial_length=20)
    tasks = family.sample(500, "test", gen(2))
    policy = BANDIT_METHODS[name].make()
    ours = play(family, tasks, ClassicBanditAgent(policy), 20, 4, seed=3)
    reference = run_bandit(policy, tasks.params["p"].repeat_interleave(4, 0), 20,
                           gen(4)).sum(1).double()
    tolerance = assert_same_mean(ours, reference)
    assert tolerance < 0.3  # out of ~10-15 per trial: a tight check


@pytest.mark.parametrize("name", ["greedy", "psrl", "beb", "beb_per_step"])
def test_mdp_agents_score_like_run_mdp(name: str) -> None:
    """500 random MDPs x 4 trials of 5 episodes: the mean total reward of run_mdp, for a
    planner re-planned per episode, a posterior sampler and a per-step re-planner."""
    family = TabularMDP(num_states=10, num_actions=5, horizon=10, trial_length=5)
    tasks = family.sample(500, "test", gen(5))
    agent = MDP_METHODS[name].make()
    ours = play(family, tasks, ClassicMDPAgent(agent), 5, 4, seed=6)
    reference = run_mdp(agent, tasks.params["transitions"].repeat_interleave(4, 0),
                        tasks.params["reward_mean"].repeat_interleave(4, 0), 5,
                        gen(7)).sum(1).double()
    tolerance = assert_same_mean(ours, reference)
    random = run_mdp(RandomMDP(), tasks.params["transitions"].repeat_interleave(4, 0),
                     tasks.params["reward_mean"].repeat_interleave(4, 0), 5,
                     gen(7)).sum(1).double()
    assert float(ours.mean()) > float(random.mean()) + 5 * tolerance  # the check can fail


# -- known answers ---------------------------------------------------------------------------
def test_greedy_on_a_sure_and_a_dead_arm() -> None:
    """p = (0, 1). Greedy with the Beta(1, 1) prior picks an arm at random, then the sure arm
    for ever (a failure drops the dead arm to 1/3, a success lifts the sure one to 2/3): its
    per-episode return curve is 1/2 at episode 0 (up to sampling), exactly 1 after. With
    prior (0, 0) it tries both arms first: episodes 0 and 1 earn exactly 1 between them."""
    family = BanditBernoulli(num_arms=2, trial_length=6)
    tasks = Tasks({"p": torch.tensor([[0.0, 1.0]])})
    trials = 4000
    curve = adaptation_curve(family, ClassicBanditAgent(Greedy()), tasks, 5, trials, 0, CPU)
    assert curve.shape == (6, 1)
    assert abs(float(curve[0, 0]) - 0.5) < 3 * math.sqrt(0.25 / trials)
    assert torch.equal(curve[1:], torch.ones(5, 1))

    steps = play_trials(family.make_env(tasks, trials), ClassicBanditAgent(Greedy((0.0, 0.0))),
                        6, gen(1))
    returns = trial_episode_returns(steps, 6)[:, 0]  # [episodes, trials]
    assert torch.equal(returns[0] + returns[1], torch.ones(trials))
    assert torch.equal(returns[2:], torch.ones(4, trials))
    assert 0 < float(returns[0].mean()) < 1  # both orders happen


# -- the evaluation protocol scores them like RL² ----------------------------------------------
def test_adaptation_curves_score_a_classic_bandit_agent_in_one_call() -> None:
    """UCB1 (Auer et al. 2002) tries the 5 arms once (episodes 0-4 earn about 1/2), then
    exploits: its last episodes beat its first on average over held-out tasks."""
    family = BanditBernoulli(num_arms=5, trial_length=40)
    tasks = family.sample(200, "test", gen(8))
    curves = adaptation_curves(family, ClassicBanditAgent(UCB1()), tasks, 39, 4, 9, CPU)
    curve = curves["return"]
    assert set(curves) == {"return"} and curve.shape == (40, 200)
    first, last = float(curve[:5].mean()), float(curve[-10:].mean())
    assert abs(first - 0.5) < 0.05
    assert last > first + 0.15
    by_name = adaptation_curve(family, classic_agent(family, "ucb1", {}), tasks, 39, 4, 9, CPU)
    assert torch.equal(by_name, curve)  # the registry builds the same agent


def test_adaptation_curve_of_a_classic_mdp_agent_learns() -> None:
    family = TabularMDP(num_states=6, num_actions=3, horizon=5, trial_length=8)
    tasks = family.sample(100, "test", gen(10))
    curve = adaptation_curve(family, classic_agent(family, "psrl", {}), tasks, 7, 4, 11, CPU)
    assert curve.shape == (8, 100)
    assert float(curve[-3:].mean()) > float(curve[0].mean()) + 0.5


# -- the contract ---------------------------------------------------------------------------
@pytest.mark.parametrize("agent", [ClassicBanditAgent(UCB1()), ClassicMDPAgent(GreedyMDP())])
def test_classic_agents_declare_episodes_and_are_trial_actors(agent: Any) -> None:
    assert agent.unit == AdaptationUnit.EPISODES
    assert isinstance(agent, TrialActor) and isinstance(agent, Agent)


def test_classic_agent_by_name_is_sized_for_the_family() -> None:
    bandit = classic_agent(BanditBernoulli(num_arms=7), "epsilon_greedy", {"epsilon": 0.2})
    assert isinstance(bandit, ClassicBanditAgent) and bandit.num_arms == 7
    assert bandit.policy == BANDIT_METHODS["epsilon_greedy"].make(epsilon=0.2)
    mdp = classic_agent(TabularMDP(num_states=4, num_actions=3), "beb", {"beta": 0.5})
    assert isinstance(mdp, ClassicMDPAgent) and (mdp.num_states, mdp.num_actions) == (4, 3)
    with pytest.raises(UserError, match="must be one of"):
        classic_agent(BanditBernoulli(), "psrl", {})
    with pytest.raises(UserError, match="epsilon"):
        classic_agent(BanditBernoulli(), "epsilon_greedy", {"epsilon": 2.0})
    with pytest.raises(UserError, match="navigation"):
        classic_agent(Navigation2D(), "greedy", {})


def test_sizes_given_must_match_the_env() -> None:
    family = TabularMDP(num_states=4, num_actions=3, horizon=2)
    env = family.make_env(family.sample(2, "test", gen(0)), 1)
    with pytest.raises(ValueError, match="num_states = 5"):
        ClassicMDPAgent(GreedyMDP(), num_states=5).begin(env, 2)
    bandits = BanditBernoulli(num_arms=3)
    with pytest.raises(ValueError, match="num_arms = 2"):
        ClassicBanditAgent(Greedy(), num_arms=2).begin(
            bandits.make_env(bandits.sample(2, "test", gen(0)), 1), 2)
