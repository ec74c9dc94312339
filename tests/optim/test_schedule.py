"""Known answers for the linear learning-rate annealing (adaptrl.optim.schedule)."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from adaptrl.optim.schedule import LinearAnneal, set_learning_rate


def test_factor_is_flat_then_linear_then_flat() -> None:
    anneal = LinearAnneal(start=10, end=20, final=0.2)
    assert [anneal.factor(i) for i in (0, 10)] == [1.0, 1.0]
    assert anneal.factor(15) == pytest.approx(0.6)
    assert anneal.factor(19) == pytest.approx(0.28)
    assert [anneal.factor(i) for i in (20, 500)] == [pytest.approx(0.2)] * 2


def test_default_decays_from_the_first_iteration_to_zero() -> None:
    anneal = LinearAnneal(end=4)
    assert [anneal.factor(i) for i in range(6)] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]


@pytest.mark.parametrize("fields, match", [({"start": 5, "end": 5}, "greater than start"),
                                           ({"end": 3, "final": 1.5}, "final"),
                                           ({"end": 3, "strat": 1}, "strat")])
def test_bad_fields_are_named(fields: dict[str, float], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        LinearAnneal(**fields)


def test_set_learning_rate_reaches_every_group() -> None:
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    set_learning_rate(opt, 0.03)
    assert [g["lr"] for g in opt.param_groups] == [0.03, 0.03]
