"""GrBAL's test-time adaptation settings (``test_inner``, ``test_past``): the agent adapts
with them, on exactly the last ``test_past`` transitions; the mb_finetune baseline adapts
the same way, mb not at all; training is untouched; a bad window is named."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from grbal_tiny import TINY
from grbal_tiny import learner as tiny_learner

from adaptrl.algorithms.baselines import baseline_config
from adaptrl.algorithms.grbal import GrBAL
from adaptrl.algorithms.grbal_config import GrBALConfig, ModelInnerConfig
from adaptrl.evaluation.protocol import adaptation_curves
from adaptrl.planning.controller import Window


def _learner(**settings: Any) -> GrBAL:
    return tiny_learner(trained=False, **settings)


def test_agent_adapts_with_the_test_settings_on_the_last_test_past() -> None:
    plain = _learner().agent()
    assert plain.memory == 4 and plain.inner.lr == 0.01
    learner = _learner(test_past=7, test_inner={"steps": 1, "lr": 0.002})
    learner.meta_update(learner.family.sample(3, "train", torch.Generator().manual_seed(1)))
    agent = learner.agent()
    assert agent.memory == 7 and agent.inner.lr == 0.002 and agent.adapt
    assert learner.windows(2)[0].obs.shape[1] == 4  # training keeps M = past
    tasks = learner.family.sample(2, "test", torch.Generator().manual_seed(2))
    seen: list[int] = []
    actor = agent.actor(tasks)
    original = actor.dynamics

    def spy(window: Window | None, slots: int) -> Any:
        if window is not None:
            seen.append(int(window.mask.sum(1).max()))
        return original(window, slots)
    object.__setattr__(actor, "dynamics", spy)
    object.__setattr__(agent, "actor", lambda t: actor)
    adaptation_curves(learner.family, agent, tasks, 0, 1, 0, torch.device("cpu"))
    assert seen == [min(t, 7) for t in range(1, 12)]  # fills up to test_past, never past it


def test_baselines_inherit_the_test_settings() -> None:
    cfg = GrBALConfig(**TINY, test_past=9, test_inner=ModelInnerConfig(steps=1, lr=0.005))
    finetune = baseline_config("mb_finetune", cfg)
    assert isinstance(finetune, GrBALConfig)
    assert finetune.test_past == 9 and finetune.test_inner == cfg.test_inner
    assert finetune.inner.steps == 0 and finetune.adapt_at_test
    mb = baseline_config("mb", cfg)
    assert isinstance(mb, GrBALConfig)
    assert not mb.adapt_at_test and mb.inner.steps == 0
    assert GrBALConfig().test_past is None
    with pytest.raises(ValueError, match="test_past"):
        GrBALConfig(test_past=0)


def test_test_settings_leave_training_alone() -> None:
    """Meta-training collects with the adaptation it trains (inner on the last past): two
    runs that differ only in test_inner / test_past train the same model on the same data."""
    runs = [_learner(), _learner(test_past=7, test_inner={"steps": 2, "lr": 0.05})]
    for learner in runs:
        for seed in (1, 2):  # the second iteration collects with MPC, adapting online
            learner.meta_update(learner.family.sample(3, "train",
                                                      torch.Generator().manual_seed(seed)))
    a, b = (r.state_dict() for r in runs)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key])
    for key, value in a["buffer"]["rows"].items():
        assert torch.equal(value, b["buffer"]["rows"][key]), key
    # and the test settings did change the agent that would be scored
    assert runs[1].agent().memory == 7 and runs[0].agent().memory == 4
