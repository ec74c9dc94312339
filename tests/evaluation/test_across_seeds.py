"""Statistics across seeds (Agarwal et al. 2021, via rliable): known answers of the IQM,
the mean and the probability of improvement, CIs that hold the point estimate and shrink
with more runs, determinism under a seed, and the refusals."""

from __future__ import annotations

import numpy as np
import pytest
from rliable import metrics
from scipy import stats

from adaptrl.evaluation.across_seeds import (
    group_statistics,
    improvement_probability,
    probability_of_improvement,
    score_matrix,
)

REPS = 300  # enough for the properties tested; fast


def _random_scores(runs: int, tasks: int = 6, units: int = 2, seed: int = 0,
                   shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(shift, 1.0, size=(runs, tasks, units))


def test_score_matrix_is_runs_by_tasks_per_unit() -> None:
    # two runs' eval.json per_task: [units+1 = 2][tasks = 3]
    run_a = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    run_b = [[7.0, 8.0, 9.0], [10.0, 11.0, 12.0]]
    m = score_matrix([run_a, run_b])
    assert m.shape == (2, 3, 2)
    assert m[1, 2, 0] == 9.0 and m[0, 0, 1] == 4.0  # [run, task, unit]
    with pytest.raises(ValueError, match="same"):
        score_matrix([run_a, [[1.0, 2.0], [3.0, 4.0]]])  # another number of tasks
    with pytest.raises(ValueError, match="no runs"):
        score_matrix([])


def test_iqm_and_mean_known_answers() -> None:
    # unit 0: 1..8 over 4 runs x 2 tasks: IQM = mean(3, 4, 5, 6) = 4.5, mean 4.5;
    # unit 1: the same with one outlying run-task (1000): IQM still 4.5, the mean is not
    unit0 = np.arange(1.0, 9.0).reshape(4, 2)
    unit1 = unit0.copy()
    unit1[3, 1] = 1000.0
    scores = np.stack([unit0, unit1], axis=-1)
    result = group_statistics(scores, reps=REPS)
    assert result["iqm"].point == pytest.approx([4.5, 4.5])
    assert result["mean"].point == pytest.approx([4.5, (36.0 - 8.0 + 1000.0) / 8])

    # any matrix: scipy's 25%-trimmed mean of the flattened runs x tasks scores
    scores = _random_scores(runs=5, tasks=7, units=3, seed=1)
    result = group_statistics(scores, reps=REPS)
    for u in range(3):
        assert result["iqm"].point[u] == pytest.approx(
            stats.trim_mean(scores[..., u].ravel(), 0.25))
        assert result["mean"].point[u] == pytest.approx(scores[..., u].mean())


def test_probability_of_improvement_known_answers() -> None:
    x = _random_scores(runs=4, seed=2)
    same = probability_of_improvement(x, x.copy(), reps=REPS)
    assert same.point == pytest.approx([0.5, 0.5])
    assert all(lo <= 0.5 <= hi for lo, hi in zip(same.low, same.high))

    better = x + 100.0  # every run beats every run of x on every task
    dominating = probability_of_improvement(better, x, reps=REPS)
    assert dominating.point == [1.0, 1.0]
    assert dominating.low == [1.0, 1.0] and dominating.high == [1.0, 1.0]
    assert probability_of_improvement(x, better, reps=REPS).point == [0.0, 0.0]


def test_probability_matches_rliable_with_ties_and_unequal_runs() -> None:
    x = np.round(_random_scores(runs=3, tasks=5, units=3, seed=3))  # many ties
    y = np.round(_random_scores(runs=6, tasks=5, units=3, seed=4, shift=0.5))
    ours = improvement_probability(x, y)
    theirs = [metrics.probability_of_improvement(x[..., u], y[..., u]) for u in range(3)]
    assert ours == pytest.approx(theirs)
    assert ours[0] != pytest.approx(0.5)  # not a trivial case


def test_intervals_hold_the_point_and_shrink_with_more_runs() -> None:
    few = group_statistics(_random_scores(runs=4, seed=5), reps=REPS)
    many = group_statistics(_random_scores(runs=40, seed=5), reps=REPS)
    for result in (few, many):
        for interval in result.values():
            for p, lo, hi in zip(interval.point, interval.low, interval.high):
                assert lo <= p <= hi and lo < hi
    for stat in ("iqm", "mean"):
        width_few = np.subtract(few[stat].high, few[stat].low)
        width_many = np.subtract(many[stat].high, many[stat].low)
        assert (width_many < width_few / 2).all()  # ~sqrt(10) narrower

    poi_few = probability_of_improvement(_random_scores(4, seed=6, shift=0.3),
                                         _random_scores(4, seed=7), reps=REPS)
    poi_many = probability_of_improvement(_random_scores(40, seed=6, shift=0.3),
                                          _random_scores(40, seed=7), reps=REPS)
    assert all(lo <= p <= hi for p, lo, hi in zip(poi_few.point, poi_few.low, poi_few.high))
    assert (np.subtract(poi_many.high, poi_many.low)
            < np.subtract(poi_few.high, poi_few.low) / 2).all()


def test_deterministic_under_a_seed_and_leaves_numpy_as_it_was() -> None:
    scores = _random_scores(runs=5, seed=8)
    a = group_statistics(scores, reps=REPS, seed=11)
    np.random.seed(99)
    expected_next = np.random.rand()
    np.random.seed(99)
    b = group_statistics(scores, reps=REPS, seed=11)
    assert np.random.rand() == expected_next  # the caller's global stream is untouched
    assert a == b
    c = group_statistics(scores, reps=REPS, seed=12)
    assert c["iqm"].low != a["iqm"].low  # the seed is what fixes the resamples
    assert c["iqm"].point == a["iqm"].point
    y = _random_scores(runs=3, seed=9)
    assert probability_of_improvement(scores, y, REPS, 4) == \
        probability_of_improvement(scores, y, REPS, 4)


def test_refusals() -> None:
    with pytest.raises(ValueError, match="at least two runs"):
        group_statistics(_random_scores(runs=1))
    with pytest.raises(ValueError, match="at least two runs"):
        probability_of_improvement(_random_scores(runs=3), _random_scores(runs=1))
    with pytest.raises(ValueError, match="same tasks and units"):
        probability_of_improvement(_random_scores(runs=3, tasks=4), _random_scores(runs=3))
    with pytest.raises(ValueError, match=r"\[runs, tasks, units\]"):
        group_statistics(np.zeros((3, 4)))
