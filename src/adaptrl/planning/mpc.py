"""Model-predictive control: random shooting, CEM and MPPI, batched over tasks x candidates.

A planner looks ``horizon`` steps ahead from the current observation of every task (or env
slot) with a *dynamics function* and the family's *reward function* of ``(s, a, s')``, and
returns the best action sequence it found; MPC executes its first action and plans again at
the next step (the receding horizon of GrBAL, Nagabandi et al. 2019, §4.2, and of CaDM,
Lee et al. 2020). Everything is one tensor program over ``[tasks, candidates, ...]`` per
step of the horizon, on whatever device the observations live on; random numbers come
only from the generator passed in, so a seed fixes the plan.

* :func:`random_shooting` — ``candidates`` sequences drawn uniformly, the best kept
  (GrBAL's code: 500 sequences of horizon 10).
* :func:`cem` — the cross-entropy method: a diagonal Gaussian (or, for discrete actions, a
  categorical per step) refitted to the top ``elite_fraction`` for ``iterations`` rounds,
  ``smoothing`` of the old distribution kept (GrBAL's code: 5 iterations, top 10 %,
  smoothing 0.1; CaDM: 200 candidates, horizon 30). De Boer et al. 2005.
* :func:`mppi` — model-predictive path integral control: Gaussian perturbations of a
  nominal sequence weighted by ``exp((R - max R) / temperature)`` (Williams et al. 2017,
  eq. 11, as used in GrBAL's simulated experiments). Continuous actions only.

The functions (all batched, ``n`` leading "task" rows):

* ``dynamics(obs [n, C, *obs], action [n, C, *act]) -> next_obs [n, C, *obs]`` — a
  learned model with per-task parameters, or the true simulator (the MPC oracle);
* ``reward(obs, action, next_obs) -> [n, C]`` — the family's reward
  (:class:`adaptrl.tasks.base.ModelBasedFamily`);
* ``terminal(next_obs) -> [n, C]`` bool (optional) — rewards after a terminal state of the
  imagined rollout are not counted, as the env counts none after an episode ends.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import gymnasium as gym
import torch
from pydantic import Field

from adaptrl.randomness import rand, randint, randn
from adaptrl.schema import ConfigModel

Dynamics = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Reward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Terminal = Callable[[torch.Tensor], torch.Tensor]
PlannerName = Literal["random_shooting", "cem", "mppi"]



@dataclass(frozen=True)
class ActionDomain:
    """What a planner may choose: a box ``[low, high]`` (``[*act]``) or ``choices`` discrete
    actions (``low`` / ``high`` then ``None``)."""

    low: torch.Tensor | None = None
    high: torch.Tensor | None = None
    choices: int | None = None

    def __post_init__(self) -> None:
        if (self.choices is None) == (self.low is None or self.high is None):
            raise ValueError("an action domain is a box (low and high) or discrete (choices)")
        if self.choices is not None and self.choices < 2:
            raise ValueError(f"choices must be >= 2, got {self.choices}")

    @property
    def discrete(self) -> bool:
        return self.choices is not None

    @property
    def shape(self) -> tuple[int, ...]:
        """One action's shape (``()`` for a discrete action)."""
        return () if self.low is None else tuple(self.low.shape)

    def to(self, device: torch.device | str) -> ActionDomain:
        if self.low is None or self.high is None:
            return self
        return ActionDomain(self.low.to(device), self.high.to(device))

    @staticmethod
    def of(space: gym.Space) -> ActionDomain:
        """The domain of a Gymnasium ``Box`` or ``Discrete`` action space."""
        if isinstance(space, gym.spaces.Discrete):
            return ActionDomain(choices=int(space.n))
        if isinstance(space, gym.spaces.Box):
            return ActionDomain(torch.as_tensor(space.low, dtype=torch.float32),
                                torch.as_tensor(space.high, dtype=torch.float32))
        raise ValueError(f"MPC plans over Box or Discrete actions, got {space}")


@dataclass(frozen=True)
class Plan:
    """The planner's answer per task: the best sequence ``actions [n, H, *act]`` found, its
    predicted return ``value [n]``, and ``mean [n, H, *act]`` (or ``probs [n, H, K]`` for
    discrete actions): the final sampling distribution, which warm-starts the next plan."""

    actions: torch.Tensor
    value: torch.Tensor
    mean: torch.Tensor | None = None


def predicted_returns(obs: torch.Tensor, actions: torch.Tensor, dynamics: Dynamics,
                      reward: Reward, terminal: Terminal | None = None) -> torch.Tensor:
    """Undiscounted predicted return ``[n, C]`` of every candidate sequence
    ``actions [n, C, H, *act]`` from ``obs [n, *obs]``: ``H`` batched model steps."""
    n, C, H = actions.shape[:3]
    s = obs.unsqueeze(1).expand(n, C, *obs.shape[1:])
    dtype = obs.dtype if obs.is_floating_point() else torch.float32
    total = torch.zeros(n, C, dtype=dtype, device=obs.device)
    alive = torch.ones(n, C, dtype=torch.bool, device=obs.device)
    for h in range(H):
        a = actions[:, :, h]
        s_next = dynamics(s, a)
        total = total + reward(s, a, s_next).to(total.dtype) * alive
        if terminal is not None:
            alive = alive & ~terminal(s_next)
        s = s_next
    return total


def _best(actions: torch.Tensor, returns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    value, index = returns.max(dim=1)
    rows = torch.arange(actions.shape[0], device=actions.device)
    return actions[rows, index], value


def _uniform_sequences(n: int, C: int, H: int, domain: ActionDomain,
                       generator: torch.Generator, device: torch.device) -> torch.Tensor:
    if domain.choices is not None:
        return randint(domain.choices, (n, C, H), generator, device)
    assert domain.low is not None and domain.high is not None
    u = rand((n, C, H, *domain.shape), generator, device)
    return domain.low + (domain.high - domain.low) * u


def random_shooting(obs: torch.Tensor, dynamics: Dynamics, reward: Reward,
                    domain: ActionDomain, generator: torch.Generator, *, horizon: int = 10,
                    candidates: int = 500, terminal: Terminal | None = None) -> Plan:
    """Random shooting (Nagabandi et al. 2018, §IV-C): the best of ``candidates`` uniformly
    drawn sequences."""
    seqs = _uniform_sequences(obs.shape[0], candidates, horizon, domain, generator, obs.device)
    actions, value = _best(seqs, predicted_returns(obs, seqs, dynamics, reward, terminal))
    return Plan(actions, value)


def _elites(seqs: torch.Tensor, returns: torch.Tensor, count: int) -> torch.Tensor:
    index = returns.topk(count, dim=1).indices  # [n, count]
    index = index.reshape(*index.shape, *([1] * (seqs.dim() - 2)))
    return seqs.gather(1, index.expand(-1, -1, *seqs.shape[2:]))


def cem(obs: torch.Tensor, dynamics: Dynamics, reward: Reward, domain: ActionDomain,
        generator: torch.Generator, *, horizon: int = 10, candidates: int = 500,
        iterations: int = 5, elite_fraction: float = 0.1, smoothing: float = 0.1,
        init_mean: torch.Tensor | None = None, terminal: Terminal | None = None) -> Plan:
    """The cross-entropy method (De Boer et al. 2005; GrBAL's planner option).

    Box actions: a diagonal Gaussian per step, starting at ``init_mean`` (the middle of the
    box by default) with standard deviation a quarter of the box width; draws are clipped to
    the box; each round refits mean and std to the elites, keeping ``smoothing`` of the old
    ones. Discrete actions: a categorical per step, uniform at first (or ``init_mean``, the
    previous probabilities), refitted to the elites' action frequencies the same way. The
    best sequence evaluated in any round is returned.
    """
    n, dev = obs.shape[0], obs.device
    elite = max(1, int(round(elite_fraction * candidates)))
    best_actions: torch.Tensor | None = None
    best_value = torch.full((n,), -math.inf, device=dev)
    if domain.choices is not None:
        probs = (torch.full((n, horizon, domain.choices), 1.0 / domain.choices, device=dev)
                 if init_mean is None else init_mean)
        dist = probs
    else:
        assert domain.low is not None and domain.high is not None
        low, high = domain.low, domain.high
        mean = ((low + high) / 2).expand(n, horizon, *domain.shape) if init_mean is None \
            else init_mean
        std = ((high - low) / 4).expand(n, horizon, *domain.shape)
        dist = mean
    for _ in range(iterations):
        if domain.choices is not None:
            flat = probs.unsqueeze(1).expand(n, candidates, horizon, domain.choices)
            u = rand((n, candidates, horizon, 1), generator, dev)
            # inverse-CDF draw: one uniform per step, deterministic under the generator
            seqs = (u > flat.cumsum(-1)).sum(-1).clamp_(max=domain.choices - 1)
        else:
            noise = randn((n, candidates, horizon, *domain.shape), generator, dev)
            seqs = torch.maximum(torch.minimum(mean.unsqueeze(1) + std.unsqueeze(1) * noise,
                                               high), low)
        returns = predicted_returns(obs, seqs, dynamics, reward, terminal)
        top, value = _best(seqs, returns)
        better = value > best_value
        if best_actions is None:
            best_actions = top
        else:
            keep = better.reshape(n, *([1] * (top.dim() - 1)))
            best_actions = torch.where(keep, top, best_actions)
        best_value = torch.where(better, value, best_value)
        elites = _elites(seqs, returns, elite)
        if domain.choices is not None:
            freq = torch.nn.functional.one_hot(elites, domain.choices).float().mean(1)
            probs = smoothing * probs + (1 - smoothing) * freq
            dist = probs
        else:
            mean = smoothing * mean + (1 - smoothing) * elites.mean(1)
            std = smoothing * std + (1 - smoothing) * elites.std(1, unbiased=False)
            dist = mean
    assert best_actions is not None
    return Plan(best_actions, best_value, dist)


def mppi(obs: torch.Tensor, dynamics: Dynamics, reward: Reward, domain: ActionDomain,
         generator: torch.Generator, *, horizon: int = 10, candidates: int = 500,
         iterations: int = 1, temperature: float = 1.0, noise: float = 0.5,
         init_mean: torch.Tensor | None = None, terminal: Terminal | None = None) -> Plan:
    """Model-predictive path integral control (Williams et al. 2017, eq. 11): perturb the
    nominal sequence (``init_mean``, the middle of the box by default) by Gaussian noise of
    std ``noise`` x half the box width, weight every candidate by
    ``softmax(R / temperature)`` and move the nominal to the weighted mean, ``iterations``
    times. Returns the final nominal sequence (clipped to the box) and its predicted
    return. Continuous actions only."""
    if domain.discrete:
        raise ValueError("mppi plans over Box actions; for Discrete ones use "
                         "random_shooting or cem")
    assert domain.low is not None and domain.high is not None
    low, high = domain.low, domain.high
    n, dev = obs.shape[0], obs.device
    mean = ((low + high) / 2).expand(n, horizon, *domain.shape) if init_mean is None \
        else init_mean
    scale = noise * (high - low) / 2
    for _ in range(iterations):
        eps = randn((n, candidates, horizon, *domain.shape), generator, dev)
        seqs = torch.maximum(torch.minimum(mean.unsqueeze(1) + scale * eps, high), low)
        returns = predicted_returns(obs, seqs, dynamics, reward, terminal)
        weights = torch.softmax(returns / temperature, dim=1)
        weights = weights.reshape(*weights.shape, *([1] * (seqs.dim() - 2)))
        mean = (weights * seqs).sum(1)
    mean = torch.maximum(torch.minimum(mean, high), low)
    value = predicted_returns(obs, mean.unsqueeze(1), dynamics, reward, terminal)[:, 0]
    return Plan(mean, value, mean)


class PlannerSettings(ConfigModel):
    """One planner and its budget; a config section (``algorithm.planner``)."""

    name: PlannerName = Field("cem", description="random_shooting | cem | mppi (Box only)")
    horizon: int = Field(15, ge=1, description="steps planned ahead")
    candidates: int = Field(200, ge=1, description="action sequences per round per slot")
    iterations: int = Field(3, ge=1, description="CEM / MPPI refinement rounds")
    elite_fraction: float = Field(0.1, gt=0, le=1, description="CEM: the elites' share")
    smoothing: float = Field(0.1, ge=0, lt=1, description="CEM: old distribution kept")
    temperature: float = Field(1.0, gt=0, description="MPPI: softmax temperature of returns")
    noise: float = Field(0.5, gt=0, description="MPPI: perturbation std / half box width")

    def plan(self, obs: torch.Tensor, dynamics: Dynamics, reward: Reward,
             domain: ActionDomain, generator: torch.Generator,
             terminal: Terminal | None = None, warm: torch.Tensor | None = None) -> Plan:
        """Plan from ``obs [n, *obs]``; ``warm`` is the previous plan's :attr:`Plan.mean`
        shifted by :func:`shift_warm_start` (CEM and MPPI start from it)."""
        H, C = self.horizon, self.candidates
        if self.name == "random_shooting":
            return random_shooting(obs, dynamics, reward, domain, generator, horizon=H,
                                   candidates=C, terminal=terminal)
        if self.name == "cem":
            return cem(obs, dynamics, reward, domain, generator, horizon=H, candidates=C,
                       iterations=self.iterations, elite_fraction=self.elite_fraction,
                       smoothing=self.smoothing, init_mean=warm, terminal=terminal)
        return mppi(obs, dynamics, reward, domain, generator, horizon=H, candidates=C,
                    iterations=self.iterations, temperature=self.temperature,
                    noise=self.noise, init_mean=warm, terminal=terminal)


def shift_warm_start(mean: torch.Tensor | None, domain: ActionDomain) -> torch.Tensor | None:
    """The next step's starting distribution: the plan's ``mean [n, H, ...]`` advanced by one
    step, its last step refilled with the uninformed one (the middle of the box, or uniform
    probabilities)."""
    if mean is None:
        return None
    if domain.choices is not None:
        fill = torch.full_like(mean[:, :1], 1.0 / domain.choices)
    else:
        assert domain.low is not None and domain.high is not None
        fill = ((domain.low + domain.high) / 2).expand_as(mean[:, :1])
    return torch.cat([mean[:, 1:], fill], dim=1)
