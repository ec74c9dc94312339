"""Classic Bernoulli-bandit algorithms, batched over bandit instances.

These are the hand-designed baselines the RL² paper (Duan et al. 2016, §4.1, Table 1)
compares its recurrent agent against on ``k``-armed Bernoulli bandits whose arm
probabilities are drawn ``p_i ~ U[0, 1]``; a *trial* is ``n`` pulls and its score the total
reward. A pull is a one-step episode in the paper's vocabulary.

A policy is a small frozen dataclass whose ``__call__(state, generator)`` returns one arm
per instance. :func:`run_bandit` simulates ``N`` instances at once in torch: one Python
iteration per pull, never per instance.

Every mean-based policy (greedy, epsilon-greedy, UCB1) reads the arm means through a
Beta pseudo-count ``prior=(a0, b0)``: the estimate is ``(s + a0) / (n + a0 + b0)`` for an
arm with ``s`` successes in ``n`` pulls. ``prior=(1, 1)`` is the posterior mean under the
task prior ``U[0, 1] = Beta(1, 1)`` (an untried arm is worth 0.5); ``prior=(0, 0)`` is the
plain empirical mean, and an untried arm then gets an infinite estimate, i.e. every arm
is pulled once first (the initialisation of Auer et al. 2002).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch

from adaptrl.agents.classic._common import (
    check_nonnegative,
    check_probability,
    random_argmax,
    sample_beta,
)
from adaptrl.randomness import rand, randint
from adaptrl.tasks.common import check_int

Prior = tuple[float, float]


@dataclass
class BanditState:
    """What a bandit algorithm knows after ``t`` pulls of each of ``N`` instances.

    ``successes`` and ``pulls`` are ``[N, k]`` float counts; ``horizon`` is the trial length
    ``n`` (index policies such as the finite-horizon Gittins index need the pulls left).
    """

    successes: torch.Tensor
    pulls: torch.Tensor
    t: int
    horizon: int

    @classmethod
    def empty(cls, num: int, arms: int, horizon: int,
              device: torch.device | str = "cpu") -> BanditState:
        zeros = torch.zeros(num, arms, device=device)
        return cls(zeros, zeros.clone(), 0, horizon)

    @property
    def failures(self) -> torch.Tensor:
        return self.pulls - self.successes

    @property
    def remaining(self) -> int:
        """Pulls left in the trial, including the one being chosen now."""
        return self.horizon - self.t

    def posterior(self, prior: Prior = (1.0, 1.0)) -> tuple[torch.Tensor, torch.Tensor]:
        """Beta posterior ``(alpha, beta)`` per arm: ``Beta(a0 + s, b0 + n - s)``."""
        return prior[0] + self.successes, prior[1] + self.failures

    def mean(self, prior: Prior) -> torch.Tensor:
        """``(s + a0) / (n + a0 + b0)``; ``+inf`` for an arm with no pulls and no pseudo-counts."""
        total = self.pulls + (prior[0] + prior[1])
        mean = (self.successes + prior[0]) / total.clamp(min=1e-12)
        return torch.where(total > 0, mean, torch.inf)

    def update(self, arm: torch.Tensor, reward: torch.Tensor,
               live: torch.Tensor | None = None) -> None:
        """Record one pull of ``arm`` ([N] int64) with ``reward`` ([N] 0/1 floats); with
        ``live`` (``[N]`` bool) only in the instances where it is set."""
        weight = torch.ones_like(reward) if live is None else live.to(reward.dtype)
        self.successes.scatter_add_(1, arm[:, None], (reward * weight)[:, None])
        self.pulls.scatter_add_(1, arm[:, None], weight[:, None])
        self.t += 1


class BanditPolicy(Protocol):
    """Chooses one arm per instance: ``policy(state, generator) -> [N] int64``."""

    def __call__(self, state: BanditState, generator: torch.Generator) -> torch.Tensor: ...


def check_prior(prior: Prior) -> Prior:
    """A Beta pseudo-count pair ``(a0, b0)`` with both entries >= 0."""
    if len(prior) != 2:
        raise ValueError(f"prior must be a pair (a0, b0) of pseudo-counts >= 0, got {prior!r}")
    return check_nonnegative("prior[0]", prior[0]), check_nonnegative("prior[1]", prior[1])


def _uniform_arm(state: BanditState, generator: torch.Generator) -> torch.Tensor:
    num, arms = state.pulls.shape
    return randint(arms, (num,), generator, state.pulls.device)


@dataclass(frozen=True)
class RandomBandit:
    """Pulls an arm uniformly at random: the floor, ``n / 2`` expected reward."""

    def __call__(self, state: BanditState, generator: torch.Generator) -> torch.Tensor:
        return _uniform_arm(state, generator)


@dataclass(frozen=True)
class Greedy:
    """Pulls the arm with the highest estimated mean (ties at random); never explores.

    With the default ``prior=(1, 1)`` this is the posterior-mean greedy rule: a failure
    drops an arm below the 0.5 of untried arms, so it behaves like win-stay / lose-shift
    until all arms are tried. ``prior=(0, 0)`` pulls every arm once first.
    """

    prior: Prior = (1.0, 1.0)

    def __post_init__(self) -> None:
        check_prior(self.prior)

    def __call__(self, state: BanditState, generator: torch.Generator) -> torch.Tensor:
        return random_argmax(state.mean(self.prior), generator)


@dataclass(frozen=True)
class EpsilonGreedy:
    """With probability ``epsilon`` a uniform arm, else :class:`Greedy` (Sutton & Barto §2.2)."""

    epsilon: float = 0.1
    prior: Prior = (1.0, 1.0)

    def __post_init__(self) -> None:
        check_probability("epsilon", self.epsilon)
        check_prior(self.prior)

    def __call__(self, state: BanditState, generator: torch.Generator) -> torch.Tensor:
        greedy = random_argmax(state.mean(self.prior), generator)
        explore = rand(greedy.shape, generator, greedy.device)
        return torch.where(explore < self.epsilon, _uniform_arm(state, generator), greedy)


@dataclass(frozen=True)
class UCB1:
    """UCB1 (Auer, Cesa-Bianchi & Fischer 2002, Fig. 1): ``mean_i + c sqrt(2 ln t / n_i)``.

    ``t`` is the number of pulls so far and ``n_i`` those of arm ``i``; with the default
    ``prior=(0, 0)`` an untried arm has an infinite index, so each arm is pulled once first
    (exactly Auer et al.'s initialisation, ties among untried arms at random). ``c = 1`` is
    the paper's constant; smaller ``c`` explores less, which pays on short trials. A
    non-zero ``prior`` adds ``a0 + b0`` pseudo-pulls to every arm (and ``k (a0 + b0)`` to
    ``t``) so that short trials with many arms need not pull every arm once.
    """

    c: float = 1.0
    prior: Prior = (0.0, 0.0)

    def __post_init__(self) -> None:
        check_nonnegative("c", self.c)
        check_prior(self.prior)

    def __call__(self, state: BanditState, generator: torch.Generator) -> torch.Tensor:
        pseudo = self.prior[0] + self.prior[1]
        pulls = state.pulls + pseudo
        t = max(state.t + pulls.shape[1] * pseudo, 1.0)
        width = self.c * torch.sqrt(2.0 * math.log(t) / pulls.clamp(min=1e-12))
        bonus = torch.where(pulls > 0, width, torch.inf)  # an untried arm comes first
        return random_argmax(state.mean(self.prior) + bonus, generator)


@dataclass(frozen=True)
class Thompson:
    """Thompson sampling (Thompson 1933): pull ``argmax_i theta_i``, with ``theta_i ~
    Beta(a0 + s_i, b0 + f_i)`` one posterior draw per arm.

    The default ``Beta(1, 1)`` prior is the task prior ``U[0, 1]``, so the posterior is exact.
    Every Thompson variant below scores the arms by :meth:`index` and pulls the best
    (ties at random); plain Thompson's index is the posterior draw itself.
    """

    prior: Prior = (1.0, 1.0)

    def __post_init__(self) -> None:
        check_prior(self.prior)
        if min(self.prior) <= 0:
            raise ValueError(f"prior must be a pair of pseudo-counts > 0 for Thompson "
                             f"sampling (a Beta needs them), got {self.prior!r}")

    def sample(self, state: BanditState, generator: torch.Generator) -> torch.Tensor:
        """One posterior draw per arm, ``[N, k]``."""
        alpha, beta = state.posterior(self.prior)
        return sample_beta(alpha, beta, generator)

    def index(self, state: BanditState, generator: torch.Generator) -> torch.Tensor:
        """The score ``[N, k]`` the arm is chosen by: here one posterior draw per arm."""
        return self.sample(state, generator)

    def __call__(self, state: BanditState, generator: torch.Generator) -> torch.Tensor:
        return random_argmax(self.index(state, generator), generator)


@dataclass(frozen=True)
class OptimisticThompson(Thompson):
    """Optimistic Thompson sampling: the optimistic Bayesian sampling (OBS) index of May,
    Korda, Lee & Leslie, "Optimistic Bayesian sampling in contextual-bandit problems"
    (JMLR 13, 2012).

    The index of arm ``i`` is ``q_i = max(theta_i, mu_i)`` with ``theta_i ~ Beta(alpha_i,
    beta_i)`` one posterior draw and ``mu_i = alpha_i / (alpha_i + beta_i)`` the posterior
    mean; pull ``argmax_i q_i``. A draw below the mean is replaced by the mean, so
    uncertainty can only raise an arm's score: exploration is kept, pessimistic draws no
    longer waste pulls. Chapelle & Li (2011) discuss it as *optimistic Thompson sampling*.
    No hyperparameter; one draw per arm and pull, like :class:`Thompson`.

    This is *not* what the RL² paper's "OTS" column measured: its authors' script ran
    :class:`MostProbableThompson` (see there, and ``docs/classic-baselines.md``).
    """

    def index(self, state: BanditState, generator: torch.Generator) -> torch.Tensor:
        alpha, beta = state.posterior(self.prior)
        return torch.maximum(self.sample(state, generator), alpha / (alpha + beta))


def beta_log_density(x: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """``log Beta(x; alpha, beta)`` elementwise, finite at ``x`` in {0, 1} where the density is
    (``alpha = 1`` or ``beta = 1``: ``0 * log 0`` is taken as 0)."""
    log_norm = torch.lgamma(alpha) + torch.lgamma(beta) - torch.lgamma(alpha + beta)
    return torch.xlogy(alpha - 1, x) + torch.xlogy(beta - 1, 1 - x) - log_norm


@dataclass(frozen=True)
class MostProbableThompson(Thompson):
    """The rule the RL² authors' baseline script ran as "optimistic Thompson sampling".

    Each pull: draw ``num_samples`` posterior vectors ``theta^(j) ~ prod_i Beta(alpha_i,
    beta_i)``, keep the one with the largest joint log-density ``sum_i log Beta(theta^(j)_i;
    alpha_i, beta_i)`` and pull ``argmax_i theta^(j*)_i``. This is
    ``evaluate_optimistic_thompson_once`` in the RL² authors' rllab sandbox
    (``sandbox/rocky/neural_learner/scripts/bandits/evaluate_bandits.py``, public in the
    ``florensacc/rllab-curriculum`` repository), whose CSV ``gen_bandits_table.py`` turns
    into the paper's Table 1; there ``n_samples`` was tuned over 1..20 on the very 1000
    seeds reported. Despite the name it is the opposite of optimism: the kept draw
    lies near the posterior mode, so the rule is Thompson sampling pulled towards greedy,
    which pays on the paper's short trials. ``num_samples = 1`` is :class:`Thompson`.
    """

    num_samples: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("num_samples", self.num_samples, 1)

    def index(self, state: BanditState, generator: torch.Generator) -> torch.Tensor:
        alpha, beta = state.posterior(self.prior)
        shape = (alpha.shape[0], self.num_samples, alpha.shape[1])
        alpha, beta = alpha.unsqueeze(1).expand(shape), beta.unsqueeze(1).expand(shape)
        draws = sample_beta(alpha.contiguous(), beta.contiguous(), generator)  # [N, m, k]
        best = beta_log_density(draws, alpha, beta).sum(dim=-1).argmax(dim=1)  # [N]
        return draws[torch.arange(shape[0], device=draws.device), best]


def run_bandit(policy: BanditPolicy, p: torch.Tensor, num_pulls: int,
               generator: torch.Generator) -> torch.Tensor:
    """Play one trial of ``num_pulls`` pulls on each of the ``N`` instances ``p`` ``[N, k]``.

    Rewards are Bernoulli(``p[arm]``). Returns the rewards ``[N, num_pulls]`` (sum over the
    last dim for the trial score). Policy and environment draw from ``generator``, so a
    seeded generator fixes the whole trial.
    """
    if p.dim() != 2 or p.shape[1] < 1:
        raise ValueError(f"p must be a [N, k] tensor of arm probabilities, got shape "
                         f"{tuple(p.shape)}")
    check_int("num_pulls", num_pulls, 1)
    state = BanditState.empty(p.shape[0], p.shape[1], num_pulls, p.device)
    rewards = torch.empty(p.shape[0], num_pulls, device=p.device)
    for t in range(num_pulls):
        arm = policy(state, generator)
        u = rand((p.shape[0],), generator, p.device)
        reward = (u < p.gather(1, arm[:, None]).squeeze(1)).to(rewards.dtype)
        state.update(arm, reward)
        rewards[:, t] = reward
    return rewards
