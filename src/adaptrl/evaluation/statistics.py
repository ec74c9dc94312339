"""Summary statistics for the evaluation protocol: means and 95% confidence intervals."""

from __future__ import annotations

import math

import torch
from scipy import stats


def mean_ci95(x: torch.Tensor, dim: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over ``dim`` and the half-width of its 95% Student-t confidence interval."""
    n = x.shape[dim]
    mean = x.mean(dim)
    if n < 2:
        return mean, torch.full_like(mean, math.nan)
    sem = x.std(dim, unbiased=True) / math.sqrt(n)
    return mean, sem * float(stats.t.ppf(0.975, n - 1))


def curve_summary(scores: torch.Tensor) -> dict[str, list[float]]:
    """``scores [units+1, tasks]`` -> ``{"steps", "mean", "ci95"}`` over tasks."""
    mean, ci = mean_ci95(scores.double(), dim=1)
    return {"steps": list(range(scores.shape[0])), "mean": mean.tolist(), "ci95": ci.tolist()}


def paired_difference(agent: torch.Tensor, baseline: torch.Tensor) -> dict[str, list[float]]:
    """Agent minus baseline, ``[units+1, tasks]`` each, paired over the same tasks.

    Both curves are scored on the same held-out tasks, so most of the spread of either
    mean is task difficulty that they share; the 95% CI of the per-task difference is the
    test of "the agent beats the baseline" (it does where ``mean - ci95 > 0``).
    """
    if agent.shape != baseline.shape:
        raise ValueError(f"paired_difference: shapes differ, {tuple(agent.shape)} vs "
                         f"{tuple(baseline.shape)} (the same tasks and units are needed)")
    return curve_summary(agent.double() - baseline.double())
