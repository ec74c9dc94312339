"""Building meta-learners and baseline learners from an experiment config."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel

from adaptrl.algorithms.maml import InnerLoopConfig, MAMLConfig
from adaptrl.algorithms.registry import algorithm_spec
from adaptrl.experiment.config import ExperimentConfig
from adaptrl.experiment.seeding import seeded_init
from adaptrl.tasks import make
from adaptrl.tasks.base import TaskFamily


def build_family(config: ExperimentConfig) -> TaskFamily:
    return make(config.family.name, **config.family.params)


def build_learner(family: TaskFamily, algo_cfg: BaseModel, generator: torch.Generator,
                  device: torch.device, init_seed: int) -> Any:
    """Instantiate the registered meta-learner; its weights depend only on ``init_seed``."""
    spec = algorithm_spec(algo_cfg.name)  # type: ignore[attr-defined]
    with seeded_init(init_seed):
        return spec.build(family, algo_cfg, generator, device)


def meta_batch_size(algo_cfg: BaseModel) -> int:
    """Tasks sampled per meta-iteration (every algorithm config names it ``meta_batch_size``)."""
    return int(getattr(algo_cfg, "meta_batch_size"))


def pretrained_config(algo_cfg: BaseModel) -> MAMLConfig:
    """The *pretrained* baseline: multi-task TRPO (MAML with no inner step), same policy/budget.

    It shares the meta-learner's policy architecture, batch sizes, discounting and TRPO
    settings where the meta-learner has them.
    """
    base = MAMLConfig()
    fields = {k: getattr(algo_cfg, k) for k in
              ("meta_batch_size", "episodes_per_task", "gamma", "gae_lambda",
               "normalize_advantages", "policy", "trpo") if hasattr(algo_cfg, k)}
    return base.model_copy(update={**fields, "inner": InnerLoopConfig(steps=0)})
