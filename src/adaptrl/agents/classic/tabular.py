"""Classic exploration algorithms for random tabular MDPs, batched over MDP instances.

These are the baselines of the RL² paper (Duan et al. 2016, §4.2, Table 2) on random MDPs
with ``S = 10`` states and ``A = 5`` actions: rewards ``r ~ N(mu(s, a), 1)`` with
``mu ~ N(1, 1)``, transition rows from a flat Dirichlet, episodes of ``H = 10`` steps that
all start in state 0; a trial is ``n`` episodes and its score the total reward.

An *agent* is a frozen dataclass; at the start of every episode ``agent(counts, generator)``
returns a (possibly stochastic) non-stationary Markov policy ``[N, H, S, A]`` of action
probabilities, which :func:`run_mdp` then follows for the episode. All model-based agents
re-plan each episode by finite-horizon value iteration (:func:`plan`) on some MDP built
from the experience in :class:`MDPCounts`:

* ``GreedyMDP``: the posterior-mean MDP;
* ``EpsilonGreedyMDP``: the same, then a uniform action with probability epsilon;
* ``MyopicGreedyMDP``: greedy on the posterior-mean reward alone (no planning; a diagnostic);
* ``PSRL``: one posterior sample (Osband, Russo & Van Roy 2013);
* ``OptimisticPSRL``: ``K`` posterior samples, the max of their optimal Q functions
  (TabulaRL's optimistic envelope);
* ``UCRL2``: the most optimistic MDP in L1 confidence sets (Jaksch, Ortner & Auer 2010);
* ``BEB``: the posterior mean plus a bonus ``beta / (1 + n(s, a))`` (Kolter & Ng 2009).

The Bayesian agents use the task prior itself (:class:`MDPPrior`): Dirichlet(1)
transitions and a Normal ``N(1, 1)`` prior on each mean reward with known noise variance 1,
so the posteriors are exact for this task family. (The RL² authors' baseline scripts ran
the TabulaRL agents with their default prior, mean reward 0: under it an untried action
looks worse than a tried one, so greedy and epsilon-greedy explore much less there than
here.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import torch

from adaptrl.agents.classic._common import (
    check_nonnegative,
    check_probability,
    random_argmax,
    sample_categorical,
    sample_dirichlet,
)
from adaptrl.planning.value_iteration import (
    plan,
    value_iteration,
)
from adaptrl.randomness import randn
from adaptrl.tasks.base import StepResult
from adaptrl.tasks.common import check_int, check_positive


@dataclass(frozen=True)
class MDPPrior:
    """Conjugate prior of the random-MDP family (RL² §4.2).

    Transitions: ``Dirichlet(dirichlet * 1)`` per ``(s, a)``. Mean reward:
    ``N(reward_mean, 1 / reward_precision)``; observed rewards ``N(mu, 1 / noise_precision)``.
    """

    dirichlet: float = 1.0
    reward_mean: float = 1.0
    reward_precision: float = 1.0
    noise_precision: float = 1.0

    def __post_init__(self) -> None:
        for name in ("dirichlet", "reward_precision", "noise_precision"):
            check_positive(name, getattr(self, name))


TABULARL_PRIOR = MDPPrior(reward_mean=0.0)
"""TabulaRL's default prior (``FiniteHorizonTabularAgent``: ``alpha0 = 1, mu0 = 0, tau0 = 1,
tau = 1``), with which the RL² authors' baseline scripts ran PSRL, optimistic PSRL and BEB:
the task's prior but for the mean reward, 0 instead of 1."""


@dataclass
class MDPCounts:
    """Sufficient statistics of the experience so far in ``N`` MDP instances.

    ``visits[n, s, a]`` counts tries of ``a`` in ``s``; ``transitions[n, s, a, s']`` counts
    the next states; ``reward_sum[n, s, a]`` sums the rewards; ``steps`` is the number of
    steps taken per instance; ``horizon`` the episode length the agents plan for.
    """

    visits: torch.Tensor
    transitions: torch.Tensor
    reward_sum: torch.Tensor
    horizon: int
    steps: int = 0

    @classmethod
    def empty(cls, num: int, states: int, actions: int, horizon: int,
              device: torch.device | str = "cpu") -> MDPCounts:
        return cls(torch.zeros(num, states, actions, device=device),
                   torch.zeros(num, states, actions, states, device=device),
                   torch.zeros(num, states, actions, device=device), horizon)

    def update(self, state: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
               next_state: torch.Tensor, live: torch.Tensor | None = None) -> None:
        """Record one step ``(s, a, r, s')`` in every instance (``[N]`` tensors); with
        ``live`` (``[N]`` bool) only in the instances where it is set."""
        rows = torch.arange(state.shape[0], device=state.device)
        weight = (torch.ones_like(reward) if live is None else live.to(reward.dtype))
        self.visits[rows, state, action] += weight
        self.transitions[rows, state, action, next_state] += weight
        self.reward_sum[rows, state, action] += reward * weight
        self.steps += 1

    def posterior_transitions(self, prior: MDPPrior) -> torch.Tensor:
        """Dirichlet posterior concentrations ``[N, S, A, S]``."""
        return self.transitions + prior.dirichlet

    def posterior_rewards(self, prior: MDPPrior) -> tuple[torch.Tensor, torch.Tensor]:
        """Normal posterior over each mean reward: ``(mean, precision)``, both ``[N, S, A]``."""
        precision = prior.reward_precision + prior.noise_precision * self.visits
        mean = (prior.reward_precision * prior.reward_mean
                + prior.noise_precision * self.reward_sum) / precision
        return mean, precision

    def posterior_mean_mdp(self, prior: MDPPrior) -> tuple[torch.Tensor, torch.Tensor]:
        """``(transitions [N, S, A, S], rewards [N, S, A])`` of the posterior-mean MDP."""
        alpha = self.posterior_transitions(prior)
        return alpha / alpha.sum(dim=-1, keepdim=True), self.posterior_rewards(prior)[0]


class MDPAgent(Protocol):
    """``agent(counts, generator) -> [N, H, S, A]`` action probabilities for the next episode."""

    def __call__(self, counts: MDPCounts, generator: torch.Generator) -> torch.Tensor: ...


# ----------------------------------------------------------------------------- planning

def greedy_policy(q: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One-hot action probabilities ``[..., A]`` of ``argmax_a q`` (ties at random)."""
    best = random_argmax(q, generator)
    return torch.nn.functional.one_hot(best, q.shape[-1]).to(q.dtype)


def mix_uniform(probs: torch.Tensor, epsilon: float) -> torch.Tensor:
    """``(1 - epsilon) probs + epsilon * uniform``: the epsilon-greedy version of a policy."""
    return (1.0 - epsilon) * probs + epsilon / probs.shape[-1]


# ----------------------------------------------------------------------------- agents

def tie_uniform(q: torch.Tensor) -> torch.Tensor:
    """Action probabilities ``[..., A]`` uniform over the maximisers of ``q`` (exact ties:
    untried pairs share a value): the distribution of :func:`greedy_policy`'s action."""
    best = (q == q.amax(dim=-1, keepdim=True)).to(q.dtype)
    return best / best.sum(dim=-1, keepdim=True)


class PlansGreedily:
    """An agent that acts greedily on ``action_values(counts, generator) -> Q [N, H, S, A]``
    (ties at random); a teacher reads the values themselves (:class:`MDPTeacher`)."""

    def action_values(self, counts: MDPCounts, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, counts: MDPCounts, generator: torch.Generator) -> torch.Tensor:
        return greedy_policy(self.action_values(counts, generator), generator)


def _counts_shape(counts: MDPCounts) -> tuple[int, int, int]:
    num, states, actions = counts.visits.shape
    return num, states, actions


@dataclass(frozen=True)
class RandomMDP:
    """Uniformly random actions: the floor, about ``n H E[mu] = 10 n`` total reward."""

    def __call__(self, counts: MDPCounts, generator: torch.Generator) -> torch.Tensor:
        num, states, actions = _counts_shape(counts)
        return torch.full((num, counts.horizon, states, actions), 1.0 / actions,
                          device=counts.visits.device)


@dataclass(frozen=True)
class GreedyMDP(PlansGreedily):
    """Optimal policy of the posterior-mean MDP, re-planned every episode; never explores.

    An untried ``(s, a)`` is valued at the prior mean reward (1) with uniform transitions;
    a tried pair whose rewards came out low falls below that, so untried actions still
    get taken: under this prior, greedy is not as myopic as an empirical-mean greedy.
    """

    prior: MDPPrior = field(default_factory=MDPPrior)

    def action_values(self, counts: MDPCounts, generator: torch.Generator) -> torch.Tensor:
        transitions, rewards = counts.posterior_mean_mdp(self.prior)
        return value_iteration(transitions, rewards, counts.horizon)


@dataclass(frozen=True)
class MyopicGreedyMDP(PlansGreedily):
    """Greedy on the posterior-mean *reward* of the current state's actions; ignores the
    transitions (a bandit per state). Not in the paper's table: it measures how much of
    greedy's score needs planning at all. On the RL² MDPs almost none does (on the MDP
    table's 1000 instances at seed 0, n = 10: 154.5 ± 1.6 against greedy's 155.8 and BEB's
    156.4; n = 25: 436.9 against 435.8 and 453.7; at the evaluation seed 12345, n = 10:
    155.4 against 154.8 and 156.2), so a memory of the mean reward of each
    (state, action) is all an agent needs to come within ~2 of the best baseline at n = 10.
    """

    prior: MDPPrior = field(default_factory=MDPPrior)

    def action_values(self, counts: MDPCounts, generator: torch.Generator) -> torch.Tensor:
        rewards = counts.posterior_rewards(self.prior)[0]  # [N, S, A]
        return rewards.unsqueeze(1).expand(-1, counts.horizon, -1, -1)


@dataclass(frozen=True)
class EpsilonGreedyMDP:
    """:class:`GreedyMDP`, taking a uniform action with probability ``epsilon`` at every step."""

    epsilon: float = 0.1
    prior: MDPPrior = field(default_factory=MDPPrior)

    def __post_init__(self) -> None:
        check_probability("epsilon", self.epsilon)

    def __call__(self, counts: MDPCounts, generator: torch.Generator) -> torch.Tensor:
        return mix_uniform(GreedyMDP(self.prior)(counts, generator), self.epsilon)


def _sample_mdps(counts: MDPCounts, prior: MDPPrior, samples: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``samples`` posterior MDPs: ``([N, K, S, A, S], [N, K, S, A])``."""
    alpha = counts.posterior_transitions(prior).unsqueeze(1)
    alpha = alpha.expand(-1, samples, -1, -1, -1).contiguous()
    mean, precision = counts.posterior_rewards(prior)
    noise = randn((mean.shape[0], samples, *mean.shape[1:]), generator, mean.device)
    rewards = mean.unsqueeze(1) + noise / precision.sqrt().unsqueeze(1)
    return sample_dirichlet(alpha, generator), rewards


@dataclass(frozen=True)
class PSRL(PlansGreedily):
    """Posterior sampling for RL (Osband, Russo & Van Roy 2013, Alg. 1).

    Each episode: draw one MDP from the posterior (Dirichlet transitions, Normal mean
    rewards with known noise variance) and follow its optimal finite-horizon policy.
    """

    prior: MDPPrior = field(default_factory=MDPPrior)

    def action_values(self, counts: MDPCounts, generator: torch.Generator) -> torch.Tensor:
        transitions, rewards = _sample_mdps(counts, self.prior, 1, generator)
        return value_iteration(transitions[:, 0], rewards[:, 0], counts.horizon)


def optimistic_envelope(q: torch.Tensor) -> torch.Tensor:
    """``max_k Q^k``: the pointwise largest of the sample dim 1 of ``q [N, K, H, S, A]``."""
    return q.amax(dim=1)


@dataclass(frozen=True)
class OptimisticPSRL(PlansGreedily):
    """Optimistic PSRL as TabulaRL implements it (Osband, ``finite_tabular_agents.py``,
    ``OptimisticPSRL.update_policy``), the agent behind the RL² paper's "OPSRL" column.

    Each episode: draw ``K = num_samples`` MDPs ``(P^k, r^k)`` independently from the
    posterior (as :class:`PSRL` draws one), solve each by finite-horizon value iteration,
    ``Q^k_h(s, a) = r^k(s, a) + sum_s' P^k(s' | s, a) max_a' Q^k_{h+1}(s', a')`` with
    ``Q^k_H = 0``, and act greedily on the *optimistic envelope*

        ``Q_h(s, a) = max_{k = 1..K} Q^k_h(s, a)``

    (the max is taken after each sample is solved on its own, not inside the backups).
    ``K = 10`` is TabulaRL's default; ``K = 1`` is :class:`PSRL`. This is not "one sample
    with each reward clipped at its posterior mean" (the bandit rule of
    :class:`~adaptrl.agents.classic.bandits.OptimisticThompson` carried to MDPs): that
    is a different, much less optimistic agent: with one step left, an untried pair's value
    exceeds its posterior mean by ``E max(Z, 0) = 0.40`` posterior sds there and by
    ``E max_k Z_k = 1.54`` here (``K = 10``; tests/evaluation/test_classic_tabular.py).

    The RL² authors ran it with TabulaRL's default prior (:data:`TABULARL_PRIOR`: mean
    reward 0, not the task's 1), tuning ``nSamp`` over 1..20. Under that prior the envelope
    is what makes untried pairs attractive again and pays (n = 25 episodes: 409.5 at
    ``K = 1``, 426.6 at ``K = 20``); under the exact task prior, the default here, it adds
    little (405.5 and 411.1; ``docs/classic-baselines.md``). The table tunes both.
    """

    num_samples: int = 10
    prior: MDPPrior = field(default_factory=MDPPrior)

    def __post_init__(self) -> None:
        check_int("num_samples", self.num_samples, 1)

    def action_values(self, counts: MDPCounts, generator: torch.Generator) -> torch.Tensor:
        transitions, rewards = _sample_mdps(counts, self.prior, self.num_samples, generator)
        return optimistic_envelope(value_iteration(transitions, rewards, counts.horizon))


@dataclass(frozen=True)
class BEB(PlansGreedily):
    """Bayesian exploration bonus (Kolter & Ng 2009, Alg. 1).

    Plans on the posterior-mean MDP with rewards ``r(s, a) + beta / (1 + n(s, a))``.
    Two variants not in the RL² paper's table: ``every_step`` re-plans before every step
    from the counts so far (:attr:`every_step`, honoured by :func:`run_mdp` and
    :class:`MDPTeacher`; Kolter & Ng act on the current posterior at every step, the
    paper's episodic TabulaRL agents re-plan per episode), and ``myopic`` drops the
    planning: ``Q(s, a) = r(s, a) + bonus`` (a bandit per state, as :class:`MyopicGreedyMDP`).
    On the paper table's n = 25 MDPs (1000, evaluation seed 12345, beta tuned: 1 for all
    three) per-episode planning scores 450.5, per-step 461.9 and per-step myopic 458.4
    (the table's ``beb``, ``beb_per_step``, ``myopic_beb_per_step``;
    ``benchmarks/bench_classic.py`` prints them).
    """

    beta: float = 1.0
    prior: MDPPrior = field(default_factory=MDPPrior)
    every_step: bool = False
    myopic: bool = False

    def __post_init__(self) -> None:
        check_nonnegative("beta", self.beta)

    def action_values(self, counts: MDPCounts, generator: torch.Generator) -> torch.Tensor:
        transitions, rewards = counts.posterior_mean_mdp(self.prior)
        augmented = rewards + self.beta / (1.0 + counts.visits)
        if self.myopic:
            return augmented.unsqueeze(1).expand(-1, counts.horizon, -1, -1)
        return value_iteration(transitions, augmented, counts.horizon)


def optimistic_expectation(p_hat: torch.Tensor, radius: torch.Tensor,
                           value: torch.Tensor) -> torch.Tensor:
    """``max { p . V : ||p - p_hat||_1 <= radius }`` over distributions ``p``.

    The inner problem of extended value iteration (Jaksch et al. 2010, Fig. 2): move up to
    ``radius / 2`` mass onto the best next state, taking it from the worst ones first.
    ``p_hat`` is ``[N, S, A, S]``, ``radius`` ``[N, S, A]``, ``value`` ``[N, S]``.
    """
    order = value.argsort(dim=-1)  # worst first, best last
    sorted_value = value.gather(-1, order)
    index = order[:, None, None, :].expand_as(p_hat)
    p = p_hat.gather(-1, index)
    best = (p[..., -1] + radius / 2).clamp(max=1.0)
    excess = best - p[..., -1]
    kept = (p[..., :-1].cumsum(dim=-1) - excess[..., None]).clamp(min=0.0)
    others = torch.diff(kept, dim=-1, prepend=torch.zeros_like(kept[..., :1]))
    return (others * sorted_value[:, None, None, :-1]).sum(dim=-1) + best * sorted_value[
        :, None, None, -1]


@dataclass(frozen=True)
class UCRL2(PlansGreedily):
    """UCRL2 (Jaksch, Ortner & Auer 2010, Fig. 1), adapted to fixed-horizon episodes.

    Each episode it plans by *extended value iteration*: optimistic rewards
    ``r_hat + scale sqrt(3.5 ln(2 S A t / delta) / max(1, n))`` and, inside every backup, the
    most favourable transition vector in the L1 ball of radius
    ``scale sqrt(14 S ln(2 A t / delta) / max(1, n))`` around the empirical one. Adaptations:
    episodes are the environment's (H steps, not count doubling); value iteration runs H
    backward steps instead of to an average-reward tolerance; and because rewards here are
    unbounded Gaussians rather than in ``[0, 1]``, the confidence widths carry a tunable
    ``scale`` (``scale = 1`` is the paper's).
    """

    scale: float = 1.0
    delta: float = 0.1

    def __post_init__(self) -> None:
        check_nonnegative("scale", self.scale)
        if not 0 < self.delta < 1:
            raise ValueError(f"delta must lie in (0, 1), got {self.delta!r}")

    def action_values(self, counts: MDPCounts, generator: torch.Generator) -> torch.Tensor:
        num, states, actions = _counts_shape(counts)
        n = counts.visits.clamp(min=1.0)
        t = max(counts.steps, 1)
        reward_width = self.scale * torch.sqrt(
            3.5 * math.log(2 * states * actions * t / self.delta) / n)
        radius = self.scale * torch.sqrt(14 * states * math.log(2 * actions * t / self.delta) / n)
        seen = counts.visits[..., None] > 0
        p_hat = torch.where(seen, counts.transitions / n[..., None], 1.0 / states)
        rewards = counts.reward_sum / n + reward_width
        return plan(lambda value: rewards + optimistic_expectation(p_hat, radius, value),
                    (num, states), counts.horizon, rewards.device)


# ----------------------------------------------------------------------------- simulation

def replans_every_step(agent: MDPAgent) -> bool:
    """Whether ``agent`` re-plans before every step (an ``every_step`` attribute set), not
    only at the start of every episode."""
    return bool(getattr(agent, "every_step", False))


def run_mdp(agent: MDPAgent, transitions: torch.Tensor, reward_mean: torch.Tensor,
            num_episodes: int, generator: torch.Generator, horizon: int = 10,
            start_state: int = 0) -> torch.Tensor:
    """Play one trial of ``num_episodes`` episodes in each of ``N`` MDP instances.

    ``transitions`` is ``[N, S, A, S]``, ``reward_mean`` ``[N, S, A]``; a step in ``(s, a)``
    pays ``N(reward_mean[s, a], 1)``. Every episode starts in ``start_state`` and lasts
    ``horizon`` steps. Returns the episode returns ``[N, num_episodes]``; agent and
    environment both draw from ``generator``. An agent with ``every_step`` set
    (:func:`replans_every_step`) is asked again before every step, not only at episode starts.
    """
    if transitions.dim() != 4 or transitions.shape[1] != transitions.shape[3]:
        raise ValueError(f"transitions must be [N, S, A, S], got {tuple(transitions.shape)}")
    if reward_mean.shape != transitions.shape[:3]:
        raise ValueError(f"reward_mean must be [N, S, A] = {tuple(transitions.shape[:3])}, "
                         f"got {tuple(reward_mean.shape)}")
    check_int("num_episodes", num_episodes, 1)
    check_int("horizon", horizon, 1)
    num, states, actions, _ = transitions.shape
    if not 0 <= start_state < states:
        raise ValueError(f"start_state must lie in [0, {states - 1}], got {start_state}")
    device = transitions.device
    rows = torch.arange(num, device=device)
    counts = MDPCounts.empty(num, states, actions, horizon, device)
    returns = torch.zeros(num, num_episodes, device=device)
    every_step = replans_every_step(agent)
    for episode in range(num_episodes):
        policy = agent(counts, generator)
        state = torch.full((num,), start_state, dtype=torch.long, device=device)
        for h in range(horizon):
            if every_step and h > 0:
                policy = agent(counts, generator)
            action = sample_categorical(policy[rows, h, state], generator)
            next_state = sample_categorical(transitions[rows, state, action], generator)
            reward = reward_mean[rows, state, action] + randn((num,), generator, device)
            counts.update(state, action, reward, next_state)
            returns[:, episode] += reward
            state = next_state
    return returns


# ----------------------------------------------------------------------------- following a trial

@dataclass
class MDPTrialMemory:
    """An :class:`MDPAgent` following a ``tabular-mdp`` trial in ``[tasks, trials]`` slots.

    The one implementation behind :class:`MDPTeacher` (labels for imitation) and
    :class:`~adaptrl.agents.classic.trial_agents.ClassicMDPAgent` (the agent acting in a
    trial). It reads the slots' states from their one-hot observations, keeps the trial's
    :class:`MDPCounts` (one row per slot), re-plans at every episode start exactly as
    :func:`run_mdp` does (and before every step for an agent that
    :func:`replans_every_step`), and gives the plan's action probabilities in each slot's
    current state and step of the episode: for a greedy planner (:class:`PlansGreedily`)
    uniform over its tied best actions, which is the distribution of :func:`run_mdp`'s
    action (a state is met at most once per step of an episode, so a tie broken per visit
    is a tie broken per plan).
    """

    agent: MDPAgent
    counts: MDPCounts
    shape: tuple[int, int]
    policy: torch.Tensor | None = None  # [N, H, S, A] for the current episode (or step)

    @classmethod
    def empty(cls, agent: MDPAgent, num_tasks: int, trials: int, num_states: int,
              num_actions: int, horizon: int, device: torch.device) -> MDPTrialMemory:
        """Fresh memory for a trial in ``num_tasks x trials`` slots."""
        counts = MDPCounts.empty(num_tasks * trials, num_states, num_actions, horizon, device)
        return cls(agent, counts, (num_tasks, trials))

    @property
    def num_states(self) -> int:
        return self.counts.visits.shape[1]

    @property
    def num_actions(self) -> int:
        return self.counts.visits.shape[2]

    def begin_episode(self) -> None:
        """A new episode: the plan is made afresh (by :meth:`plan`, or on first use)."""
        self.policy = None

    def plan(self, generator: torch.Generator) -> None:
        """Plan from the counts so far: the agent's action probabilities ``[N, H, S, A]``."""
        values = getattr(self.agent, "action_values", None)
        self.policy = (tie_uniform(values(self.counts, generator)) if values is not None
                       else self.agent(self.counts, generator))

    def states(self, obs: torch.Tensor) -> torch.Tensor:
        """The slots' states ``[N]`` from one-hot observations ``[tasks, trials, S]``."""
        if obs.shape[-1] != self.num_states:
            raise ValueError(f"expected one-hot observations of {self.num_states} states, "
                             f"got shape {tuple(obs.shape)}")
        return obs.reshape(-1, self.num_states).argmax(-1)

    def action_probs(self, obs: torch.Tensor, step: int,
                     generator: torch.Generator) -> torch.Tensor:
        """Action probabilities ``[tasks, trials, A]`` at step ``step`` of the episode in
        the observed states; plans first if the episode has no plan yet, or at every step
        ``> 0`` for an agent that re-plans every step."""
        if self.policy is None or (step > 0 and replans_every_step(self.agent)):
            self.plan(generator)
        assert self.policy is not None
        rows = torch.arange(self.policy.shape[0], device=self.policy.device)
        probs = self.policy[rows, step, self.states(obs)]
        return probs.reshape(*self.shape, self.num_actions)

    def observe(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
                next_obs: torch.Tensor, live: torch.Tensor) -> None:
        """Count one step ``(s, a, r, s')`` of every slot where ``live`` (``[tasks, trials]``)."""
        self.counts.update(self.states(obs), action.reshape(-1).long(), reward.reshape(-1),
                           self.states(next_obs), live.reshape(-1))


# ----------------------------------------------------------------------------- teaching

@dataclass
class MDPTeacher:
    """Any :class:`MDPAgent` as a teacher for imitation (:mod:`adaptrl.rollouts.imitation`).

    It follows a ``tabular-mdp`` trial with an :class:`MDPTrialMemory` (the trial's
    :class:`MDPCounts` per ``[task, trial]`` slot, a plan made at every episode start as in
    :func:`run_mdp`, or before every step for an agent that :func:`replans_every_step`) and
    gives its action probabilities in the slot's current state and step of the episode:
    for a greedy planner (:class:`PlansGreedily`) uniform over its tied best actions, so a
    label never names one tie at random. Whatever acted (the learner, or the teacher), the
    counts are those of the trial actually played: DAgger's labels.
    """

    agent: MDPAgent
    num_states: int
    num_actions: int
    horizon: int
    memory: MDPTrialMemory | None = None
    generator: torch.Generator | None = None

    @property
    def counts(self) -> MDPCounts | None:
        """The counts of the trial being followed (``None`` before :meth:`begin_trial`)."""
        return None if self.memory is None else self.memory.counts

    def begin_trial(self, num_tasks: int, trials: int, device: torch.device) -> None:
        self.memory = MDPTrialMemory.empty(self.agent, num_tasks, trials, self.num_states,
                                           self.num_actions, self.horizon, device)

    def begin_episode(self, obs: torch.Tensor, generator: torch.Generator | None) -> None:
        if self.memory is None:
            raise RuntimeError("MDPTeacher.begin_episode before begin_trial")
        if generator is None:
            raise ValueError("MDPTeacher needs the trial's generator (ties, posterior samples)")
        self.generator = generator
        self.memory.begin_episode()
        self.memory.plan(generator)

    def action_probs(self, obs: torch.Tensor, step: int) -> torch.Tensor:
        if self.memory is None or self.memory.policy is None or self.generator is None:
            raise RuntimeError("MDPTeacher.action_probs before begin_episode")
        return self.memory.action_probs(obs, step, self.generator)

    def observe(self, obs: torch.Tensor, action: torch.Tensor, result: StepResult,
                live: torch.Tensor) -> None:
        if self.memory is None:
            raise RuntimeError("MDPTeacher.observe before begin_trial")
        self.memory.observe(obs, action, result.reward, result.observation, live)
