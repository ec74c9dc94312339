"""A run's sampler backend (config ``sampler``): the family as built, or one sampled on Ray.

``sampler.backend: ray`` wraps the run's family in
:class:`~adaptrl.rollouts.ray_sampler.RaySampling`, whose workers build the same family from
the run's config, so that every batch the gradient family's sampler asks for is sampled on
the workers, with the local sampler's exact results. The backend serves what samples
through :class:`~adaptrl.rollouts.sampler.BatchSampler` (the gradient family: MAML,
Meta-SGD, ANIL, Reptile, the pretrained / aggregation baselines, and validation scoring of
their checkpoints); a learner that steps its env itself (RL²'s trials, DQN's online steps)
is refused with the reason, not silently run locally.
"""

from __future__ import annotations

import functools
import weakref

from adaptrl.algorithms.base import AlgorithmConfig
from adaptrl.algorithms.common import GradientFamilyConfig
from adaptrl.errors import UserError
from adaptrl.experiment.config import ConfigError, ExperimentConfig
from adaptrl.experiment.learners import build_family
from adaptrl.rollouts.ray_sampler import RaySampler, RaySampling, check_ray_family, require_ray
from adaptrl.tasks.base import TaskFamily


def check_sampler(config: ExperimentConfig, algo_cfg: AlgorithmConfig) -> None:
    """Refuse a ``sampler`` section this run cannot use, with the field and the reason."""
    if config.sampler.backend == "local":
        return
    if not isinstance(algo_cfg, GradientFamilyConfig):
        raise ConfigError(
            f"sampler.backend: 'ray' samples the gradient family's episode batches (maml, "
            f"fomaml, metasgd, anil, reptile, ...); {algo_cfg.name!r} steps its env itself "
            "(trials or online steps, one policy call per step on the learner's state): use "
            "backend 'local'")
    try:
        require_ray()
    except UserError as err:
        raise ConfigError(str(err)) from None


def sampling_family(config: ExperimentConfig, family: TaskFamily) -> TaskFamily:
    """``family`` itself (backend ``local``), or ``family`` sampled on Ray workers that
    each build it from ``config`` (closed when the returned family is collected)."""
    cfg = config.sampler
    if cfg.backend == "local":
        return family
    try:
        check_ray_family(family)
    except UserError as err:
        raise ConfigError(str(err)) from None
    sampler = RaySampler(functools.partial(build_family, config), cfg.workers, cfg.address,
                         cfg.max_resamples)
    wrapped = RaySampling(family, sampler)
    weakref.finalize(wrapped, sampler.close)
    return wrapped
