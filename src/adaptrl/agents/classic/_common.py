"""Pieces shared by the classic bandit and tabular-MDP baselines.

Random draws (uniform tie-breaking, categorical, Beta and Dirichlet samples) all take an
explicit ``torch.Generator`` so that every baseline is reproducible under a seed; they are
drawn on the generator's device (:mod:`adaptrl.randomness`), so a baseline whose tensors
live on a GPU plays from the run's CPU generator as well as from a CUDA one; and the
hyperparameter grid search used to tune the baselines the way the RL² paper did
(Duan et al. 2016, §4: "we tuned the hyperparameters of every baseline") lives here once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from adaptrl.randomness import dirichlet, inverse_cdf, rand, standard_gamma

Params = Mapping[str, Any]


def check_probability(name: str, value: float) -> float:
    """``value`` as a float in ``[0, 1]``, or a ValueError naming ``name``."""
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def check_nonnegative(name: str, value: float) -> float:
    """``value`` as a finite float ``>= 0``, or a ValueError naming ``name``."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def random_argmax(values: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Index of the largest entry along the last dim, ties broken uniformly at random.

    Exact ties are common for these baselines (untried arms share a prior mean, unvisited
    state-action pairs share a posterior-mean value); ``argmax`` would always pick the
    first one, a systematic bias.
    """
    best = values.amax(dim=-1, keepdim=True)
    noise = rand(values.shape, generator, values.device)
    return torch.where(values == best, noise, -1.0).argmax(dim=-1)


def sample_categorical(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One index per row of ``probs`` (rows sum to 1 along the last dim), by inverse CDF."""
    u = rand(probs.shape[:-1], generator, probs.device)
    return inverse_cdf(probs, u)


def sample_beta(alpha: torch.Tensor, beta: torch.Tensor,
                generator: torch.Generator) -> torch.Tensor:
    """``Beta(alpha, beta)`` draws as ``X / (X + Y)`` with ``X ~ Gamma(alpha), Y ~ Gamma(beta)``."""
    x = standard_gamma(alpha, generator)
    y = standard_gamma(beta, generator)
    return x / (x + y)


def sample_dirichlet(concentration: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``Dirichlet(concentration)`` draws along the last dim."""
    return dirichlet(concentration, generator)


def grid_search(evaluate: Callable[[Params], float], grid: Iterable[Params]
                ) -> tuple[dict[str, Any], list[tuple[dict[str, Any], float]]]:
    """The hyperparameters in ``grid`` with the highest ``evaluate`` score.

    ``evaluate`` should score on instances *separate* from the ones the tuned baseline is
    finally reported on, so the reported number is not inflated by the selection. Returns
    ``(best, [(params, score), ...])``; ties keep the first in grid order.
    """
    scores = [(dict(params), float(evaluate(params))) for params in grid]
    if not scores:
        raise ValueError("grid must contain at least one hyperparameter setting")
    best = max(scores, key=lambda item: item[1])  # max keeps the first of equal scores
    return best[0], scores


def grid(**axes: Iterable[Any]) -> list[dict[str, Any]]:
    """The Cartesian product of hyperparameter axes: ``grid(c=[1, 2], d=[3])``."""
    combos: list[dict[str, Any]] = [{}]
    for key, values in axes.items():
        combos = [{**combo, key: value} for combo in combos for value in values]
    return combos
