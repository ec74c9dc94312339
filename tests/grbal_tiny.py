"""The tiny GrBAL / ReBAL the model-based tests share (tests/algorithms/test_grbal*.py,
test_rebal.py): settings that run an iteration in well under a second on CaDM's pendulum,
and the learner built the way the trainer builds it (the initialisation seeded first)."""

from __future__ import annotations

from typing import Any

import torch

from adaptrl.algorithms.grbal import GrBAL
from adaptrl.algorithms.grbal_config import GrBALConfig
from adaptrl.tasks import PendulumPhysics
from adaptrl.tasks.base import Split, Tasks
from adaptrl.tasks.pendulum import CADM_PARAMS

TINY: dict[str, Any] = {
    "meta_batch_size": 3, "past": 4, "future": 3, "outer_steps": 3, "batch_windows": 5,
    "dynamics": {"hidden": [16]},
    "planner": {"name": "cem", "horizon": 4, "candidates": 8, "iterations": 2}}
REBAL_TINY: dict[str, Any] = {**TINY, "dynamics": {"hidden": [16], "context": 6}}
"""ReBAL's: the same with a 6-unit recurrent context."""


def pendulum(horizon: int = 12) -> PendulumPhysics:
    """CaDM's pendulum with short episodes."""
    return PendulumPhysics(**{**CADM_PARAMS, "horizon": horizon})


def tasks(seed: int = 1, n: int = 3, split: Split = "train", horizon: int = 12) -> Tasks:
    return pendulum(horizon).sample(n, split, torch.Generator().manual_seed(seed))


def build(config: GrBALConfig, seed: int = 0, family: Any = None) -> GrBAL:
    """The learner as the trainer builds it: the initialisation seeded, then the learner."""
    torch.manual_seed(seed)
    return GrBAL(family or pendulum(), config, torch.Generator().manual_seed(seed),
                 torch.device("cpu"))


def learner(family: Any = None, config: type[GrBALConfig] = GrBALConfig,
            trained: bool = True, **settings: Any) -> GrBAL:
    """``config(**TINY, **settings)`` built with seed 0, after one (random-action) iteration
    on three training tasks when ``trained`` (the buffer filled, the normaliser fitted)."""
    family = family or pendulum()
    built = build(config(**{**TINY, **settings}), family=family)
    if trained:
        built.meta_update(family.sample(3, "train", torch.Generator().manual_seed(1)))
    return built
