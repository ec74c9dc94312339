"""Statistics across seeds: interquartile mean, mean and probability of improvement, each
with a stratified-bootstrap 95% confidence interval over runs.

Following Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of the Statistical
Precipice" (NeurIPS), through their ``rliable`` package: a *group* is the runs of one
config that differ only in seed, and its scores are a ``runs x tasks`` matrix per
adaptation unit (every run scored on the same held-out tasks). For each unit:

* **IQM**: the mean of the middle 50% of the ``runs x tasks`` scores
  (:func:`rliable.metrics.aggregate_iqm`, ``scipy.stats.trim_mean(..., 0.25)`` of the
  flattened matrix), robust to an outlying run or task; **mean**: the mean over runs of
  the mean over tasks (:func:`rliable.metrics.aggregate_mean`).
* **Probability of improvement** of group X over group Y: ``P(X > Y)`` on a task (the
  Mann-Whitney U statistic over the two groups' runs divided by ``n_x n_y``, ties counted
  half), averaged over tasks; 0.5 is a tie, 1.0 every run of X beats every run of Y.
* **Confidence intervals**: :func:`rliable.library.get_interval_estimates`, percentile
  method; the stratified bootstrap resamples runs with replacement within each task
  (``task_bootstrap=False``: the tasks are the fixed held-out set, the runs the sample).
  For the probability of improvement the two groups are resampled independently.

Scores are the raw average returns of the evaluation protocol, **not** normalised (no
random/expert score to normalise by exists for these task families); the statistics are in
the task family's return units. A CI of a handful of runs is wide: that is the point.

Reproducibility: rliable's bootstraps draw their indices from numpy's *global* generator
(``np.random.choice``; the ``random_state`` argument of ``get_interval_estimates`` does
not reach those draws). Every estimate here therefore runs under :func:`seeded_numpy`,
which seeds the global generator with ``seed`` and restores its previous state afterwards:
the same scores, ``reps`` and ``seed`` give the same intervals, and the caller's numpy
random stream is left as it was (not thread-safe, as numpy's global state is not).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

BOOTSTRAP_REPS = 2000
"""Bootstrap replications per estimate (the number Agarwal et al. 2021 use for the
probability of improvement)."""
BOOTSTRAP_SEED = 0
"""Seed of numpy's global generator while bootstrapping (see the module docstring)."""
CONFIDENCE = 0.95
METHOD = "percentile"
SCORES = "raw average returns (not normalised)"


@dataclass(frozen=True)
class Interval:
    """A statistic at each adaptation unit: point estimate and 95% CI bounds."""

    point: list[float]
    low: list[float]
    high: list[float]

    def as_dict(self) -> dict[str, list[float]]:
        return asdict(self)


def score_matrix(per_task_by_run: Sequence[Any]) -> np.ndarray:
    """``[runs][units+1][tasks]`` (each run's ``per_task`` of eval.json) -> an array
    ``[runs, tasks, units+1]``: rliable's ``runs x tasks`` layout, one slice per unit.

    Raises ``ValueError`` when the runs differ in shape (other tasks or units) or hold no
    scores."""
    runs = [np.asarray(r, dtype=np.float64) for r in per_task_by_run]
    if not runs:
        raise ValueError("score_matrix: no runs")
    shapes = {r.shape for r in runs}
    if len(shapes) != 1 or runs[0].ndim != 2 or 0 in runs[0].shape:
        raise ValueError(f"score_matrix: each run needs the same [units+1, tasks] scores, "
                         f"got shapes {sorted(shapes)}")
    return np.stack(runs).transpose(0, 2, 1)


@contextmanager
def seeded_numpy(seed: int) -> Iterator[None]:
    """Seed numpy's global generator for the block, then put its previous state back."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _per_unit_aggregates(scores: np.ndarray) -> np.ndarray:
    """``[runs, tasks, units]`` -> ``[IQM per unit..., mean per unit...]``."""
    from rliable import metrics

    iqm = [metrics.aggregate_iqm(scores[..., u]) for u in range(scores.shape[-1])]
    return np.concatenate([np.asarray(iqm, dtype=np.float64),
                           np.asarray(metrics.aggregate_mean(scores), dtype=np.float64)])


def improvement_probability(scores_x: np.ndarray, scores_y: np.ndarray) -> np.ndarray:
    """P(X > Y) per unit of ``[runs_x, tasks, units]`` and ``[runs_y, tasks, units]``.

    The statistic of :func:`rliable.metrics.probability_of_improvement` (the Mann-Whitney U
    of X's runs against Y's on each task over ``n_x n_y``, ties half, averaged over tasks),
    applied to every unit at once: rliable's calls ``scipy.stats.mannwhitneyu`` once per
    task (about 0.4 ms), which times tasks, units and 2000 replications is minutes; this
    counts the same pairs in one array operation (tests check the two agree)."""
    x, y = scores_x[:, None], scores_y[None, :]  # [runs_x, runs_y, tasks, units]
    wins = (x > y).mean(axis=(0, 1)) + 0.5 * (x == y).mean(axis=(0, 1))
    return np.asarray(wins.mean(axis=0), dtype=np.float64)


def _interval(data: np.ndarray | list[np.ndarray], func: Any, reps: int,
              seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Point estimate and ``[2, ...]`` CI bounds of ``func`` by rliable's stratified
    bootstrap (one array: :class:`~rliable.library.StratifiedBootstrap`; a list: each array
    resampled independently)."""
    from rliable import library

    if reps < 1:
        raise ValueError(f"bootstrap reps must be >= 1, got {reps}")
    with seeded_numpy(seed):
        point, bounds = library.get_interval_estimates(
            {"g": data}, func, method=METHOD, reps=reps, confidence_interval_size=CONFIDENCE)
    return np.asarray(point["g"], dtype=np.float64), np.asarray(bounds["g"], dtype=np.float64)


def _check_runs(scores: np.ndarray, what: str) -> None:
    if scores.ndim != 3:
        raise ValueError(f"{what}: scores must be [runs, tasks, units], got shape "
                         f"{scores.shape}")
    if scores.shape[0] < 2:
        raise ValueError(f"{what}: a bootstrap CI over runs needs at least two runs "
                         f"(seeds), got {scores.shape[0]}")


def group_statistics(scores: np.ndarray, reps: int = BOOTSTRAP_REPS,
                     seed: int = BOOTSTRAP_SEED) -> dict[str, Interval]:
    """IQM and mean of a group's ``[runs, tasks, units]`` scores at each unit, with
    stratified-bootstrap 95% CIs over runs (Agarwal et al. 2021); ``{"iqm", "mean"}``."""
    _check_runs(scores, "group_statistics")
    units = scores.shape[-1]
    point, bounds = _interval(scores, _per_unit_aggregates, reps, seed)

    def part(i: int) -> Interval:
        s = slice(i * units, (i + 1) * units)
        return Interval(point[s].tolist(), bounds[0, s].tolist(), bounds[1, s].tolist())

    return {"iqm": part(0), "mean": part(1)}


def probability_of_improvement(scores_x: np.ndarray, scores_y: np.ndarray,
                               reps: int = BOOTSTRAP_REPS,
                               seed: int = BOOTSTRAP_SEED) -> Interval:
    """P(X > Y) at each unit with its 95% CI, the two groups' runs resampled independently
    within each task (Agarwal et al. 2021); the groups may differ in their number of runs,
    not in tasks or units."""
    _check_runs(scores_x, "probability_of_improvement (X)")
    _check_runs(scores_y, "probability_of_improvement (Y)")
    if scores_x.shape[1:] != scores_y.shape[1:]:
        raise ValueError(f"probability_of_improvement: X has [tasks, units] "
                         f"{scores_x.shape[1:]}, Y {scores_y.shape[1:]}; the same tasks and "
                         "units are needed")
    point, bounds = _interval([scores_x, scores_y], improvement_probability, reps, seed)
    return Interval(point.tolist(), bounds[0].tolist(), bounds[1].tolist())


def bootstrap_settings(reps: int = BOOTSTRAP_REPS, seed: int = BOOTSTRAP_SEED
                       ) -> dict[str, Any]:
    """How the intervals were made, for a results file."""
    return {"method": f"stratified bootstrap over runs ({METHOD}), rliable",
            "reference": "Agarwal et al. 2021, NeurIPS", "reps": reps, "seed": seed,
            "confidence": CONFIDENCE, "scores": SCORES}
