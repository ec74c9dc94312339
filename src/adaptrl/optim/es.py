"""OpenES: natural-evolution-strategy gradient ascent on a flat parameter vector
(Salimans et al. 2017, Algorithm 2 with mirrored sampling; the meta-trainer of OPEN,
Goldie et al. 2024).

For a fitness ``F`` and the Gaussian-smoothed objective ``J(mu) = E_eps F(mu + sigma eps)``,
``grad J(mu) = E[F(mu + sigma eps) eps] / sigma``. With antithetic (mirrored) pairs
``mu +- sigma eps_i``, ``i = 1..n`` (population ``P = 2n``), the estimate is

    g = 1 / (2 n sigma) sum_i (F(mu + sigma eps_i) - F(mu - sigma eps_i)) eps_i

(unbiased for ``grad J``; for a quadratic ``F`` exactly ``grad F(mu)`` in expectation).
Fitness shaping replaces ``F`` by its centred ranks in ``[-0.5, 0.5]`` (Salimans et al.
2017, §2.2; Wierstra et al. 2014): invariant to any monotone transform of the returns and
robust to outliers, at the price of an estimate of a different (rank-based) objective.
The ascent direction is handed to Adam or SGD (``.grad = -g``), as OpenES does.

State (the mean, the optimiser's moments, the iteration count) is plain tensors:
:meth:`OpenES.state_dict` / :meth:`OpenES.load_state_dict` resume exactly when the caller's
generator is restored too (the noise is drawn from the generator given to :meth:`ask`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import Field, field_validator
from torch import nn

from adaptrl.optim.ppo import load_optimizer_state, optimizer_state
from adaptrl.randomness import randn
from adaptrl.schema import ConfigModel


class OpenESConfig(ConfigModel):
    """OpenES settings (defaults: OPEN's, Goldie et al. 2024, App. C: population 64,
    sigma 0.03, lr 0.03, Adam)."""

    population: int = Field(64, ge=2, description="candidates per iteration (even: "
                            "antithetic pairs)")
    sigma: float = Field(0.03, gt=0, description="std of the search distribution")
    lr: float = Field(0.03, gt=0, description="step size of the optimiser on the estimate")
    optimizer: Literal["adam", "sgd"] = Field("adam", description="what follows the estimate")
    shaping: Literal["centered_rank", "none"] = Field(
        "centered_rank", description="fitness shaping: centred ranks in [-0.5, 0.5] or raw")
    weight_decay: float = Field(0.0, ge=0, description="L2 pull of the mean toward 0")

    @field_validator("population")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError(f"population must be even (antithetic pairs), got {v}")
        return v


def centered_ranks(fitness: torch.Tensor) -> torch.Tensor:
    """``fitness [P]`` replaced by its ranks scaled to ``[-0.5, 0.5]`` (ties broken by
    position), the shaping of Salimans et al. 2017."""
    n = fitness.numel()
    ranks = torch.empty(n, dtype=torch.float64)
    ranks[fitness.detach().cpu().argsort(stable=True)] = torch.arange(n, dtype=torch.float64)
    return (ranks / (n - 1) - 0.5).to(fitness.dtype) if n > 1 else torch.zeros_like(fitness)


def antithetic_gradient(noise: torch.Tensor, fitness: torch.Tensor, sigma: float
                        ) -> torch.Tensor:
    """``1 / (2 n sigma) sum_i (F_i^+ - F_i^-) eps_i`` for ``noise [n, D]`` and ``fitness
    [2n]`` ordered ``(F^+_1..F^+_n, F^-_1..F^-_n)``: the ascent direction of the smoothed
    objective (module docstring)."""
    n = noise.shape[0]
    if fitness.shape != (2 * n,):
        raise ValueError(f"fitness must be [{2 * n}] for {n} antithetic pairs, "
                         f"got {tuple(fitness.shape)}")
    diff = (fitness[:n] - fitness[n:]).to(noise.dtype)
    return diff @ noise / (2 * n * sigma)


@dataclass
class Candidates:
    """One iteration's population ``[P, D]`` (the ``+`` half, then the ``-`` half) and the
    noise ``[P / 2, D]`` it was made from."""

    vectors: torch.Tensor
    noise: torch.Tensor


class OpenES:
    """Maximises a fitness over a flat vector ``mean [D]``: :meth:`ask` for candidates,
    :meth:`tell` their fitness to step."""

    def __init__(self, initial: torch.Tensor, config: OpenESConfig) -> None:
        self.config = config
        self.mean = nn.Parameter(initial.detach().clone())
        opt = torch.optim.Adam if config.optimizer == "adam" else torch.optim.SGD
        self.optimizer = opt([self.mean], lr=config.lr)
        self.iteration = 0

    def ask(self, generator: torch.Generator) -> Candidates:
        """``P`` antithetic candidates ``mean +- sigma eps`` (``eps`` from ``generator``)."""
        half = self.config.population // 2
        noise = randn((half, self.mean.numel()), generator, self.mean.device, self.mean.dtype)
        mu = self.mean.detach()
        step = self.config.sigma * noise
        return Candidates(torch.cat([mu + step, mu - step]), noise)

    def tell(self, candidates: Candidates, fitness: torch.Tensor) -> dict[str, float]:
        """One optimiser step along the (shaped) estimate; returns diagnostics."""
        shaped = centered_ranks(fitness) if self.config.shaping == "centered_rank" else fitness
        grad = antithetic_gradient(candidates.noise, shaped.to(self.mean), self.config.sigma)
        if self.config.weight_decay:
            grad = grad - self.config.weight_decay * self.mean.detach()
        self.optimizer.zero_grad(set_to_none=True)
        self.mean.grad = -grad
        self.optimizer.step()
        self.iteration += 1
        return {"es/fitness_mean": float(fitness.mean()),
                "es/fitness_max": float(fitness.max()), "es/grad_norm": float(grad.norm()),
                "es/mean_norm": float(self.mean.detach().norm())}

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.detach().clone(), "iteration": self.iteration,
                "optimizer": optimizer_state(self.optimizer)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.mean.copy_(state["mean"])
        self.iteration = int(state["iteration"])
        load_optimizer_state(self.optimizer, state["optimizer"])
