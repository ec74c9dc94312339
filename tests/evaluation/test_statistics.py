"""Means, t-intervals and paired differences of the evaluation protocol (known answers)."""

from __future__ import annotations

import pytest
import torch

from adaptrl.evaluation.statistics import curve_summary, mean_ci95, paired_difference


def test_mean_ci95_known_answer() -> None:
    mean, ci = mean_ci95(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    # sd = 1.2910, sem = 0.6455, t(0.975, 3) = 3.1824
    assert mean.item() == pytest.approx(2.5)
    assert ci.item() == pytest.approx(0.6455 * 3.1824, rel=1e-3)


def test_paired_difference_removes_shared_task_difficulty() -> None:
    difficulty = torch.tensor([-90.0, -10.0, -50.0, -30.0])
    baseline = torch.stack([difficulty, difficulty])
    agent = baseline + torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 1.2, 0.8, 1.0]])
    unpaired = curve_summary(agent)["ci95"][1]
    paired = paired_difference(agent, baseline)
    assert paired["mean"] == pytest.approx([0.0, 1.0])
    assert paired["ci95"][1] < 0.5 < 1.0 < unpaired  # significant paired, not unpaired


def test_paired_difference_needs_the_same_tasks() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        paired_difference(torch.zeros(2, 3), torch.zeros(2, 4))
