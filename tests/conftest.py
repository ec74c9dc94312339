"""Shared fixtures: a tiny MAML config that trains in a second or two."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

# The suite's tensors are small: one intra-op thread is as fast, and it stays fast when
# other processes share the 2 cores (OpenMP threads contending for cores slow small ops
# down 10-100x).
torch.set_num_threads(1)

TINY: dict[str, Any] = {
    "name": "tiny",
    "seed": 3,
    "iterations": 2,
    "checkpoint_every": 1,
    "family": {"name": "navigation-2d", "params": {"horizon": 15}},
    "algorithm": {"name": "maml", "meta_batch_size": 3, "episodes_per_task": 3,
                  "policy": {"hidden": [8, 8], "activation": "tanh"}},
    "evaluation": {"num_tasks": 3, "steps": 2, "episodes": 3},
    "logging": {"tensorboard": False, "progress": False},
}


@pytest.fixture
def tiny_config() -> dict[str, Any]:
    return copy.deepcopy(TINY)


@pytest.fixture
def tiny_config_file(tmp_path: Path, tiny_config: dict[str, Any]) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    return path
