"""The committed RL² agents (artifacts/rl2/, actor weights only) load through
``algorithm.init_from`` and replay the README's n = 25 figure exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from adaptrl.algorithms.rl2 import RL2Config
from adaptrl.evaluation.classic_tables import run_generator, setting_instances
from adaptrl.experiment.learners import apply_init_from, build_learner
from adaptrl.tasks.tabular_mdp import TabularMDP

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_n25_agent_replays_its_table_figure() -> None:
    raw = yaml.safe_load((ROOT / "configs/rl2-mdp-n25-imitate-ppo.yaml").read_text())
    algo = {**raw["algorithm"], "init_from": str(ROOT / "artifacts/rl2/rl2-mdp-n25-imitate-ppo.pt")}
    cfg = RL2Config(**algo)
    family = TabularMDP(**raw["family"]["params"])
    learner = build_learner(family, cfg, torch.Generator().manual_seed(0), torch.device("cpu"), 0)
    apply_init_from(learner, cfg)
    tasks = setting_instances(family, (25,), 1000, 12345)  # the table's instances
    scores = learner.agent().trial_returns(family, tasks, 25, 1,
                                           run_generator(12345, (25,), "rl2"))
    assert float(scores.double().mean()) == pytest.approx(453.74, abs=0.01)
