"""A run's sampler backend (config ``sampler``): the family as built, or one sampled on Ray.

``sampler.backend: ray`` wraps the run's family in
:class:`~adaptrl.rollouts.ray_sampler.RaySampling`, whose workers build the same family from
the run's config. The gradient family (MAML, Meta-SGD, ANIL, Reptile, the pretrained /
aggregation baselines, and validation scoring of their checkpoints) samples through
:class:`~adaptrl.rollouts.sampler.BatchSampler`: every batch it asks for is sampled on the
workers. The learners that act step by step (RL²'s trials, the value-based learners' online
DQN steps) get their envs from the workers instead
(:class:`~adaptrl.rollouts.ray_env.RayBatchedEnv`: the driver acts, the workers step their
task blocks). Both give the local backend's exact results. Other learners (GrBAL) are
refused with the reason, not silently run locally.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from adaptrl.algorithms.base import AlgorithmConfig
from adaptrl.algorithms.common import GradientFamilyConfig
from adaptrl.algorithms.dqn_init import DQNInitConfig
from adaptrl.algorithms.dqn_mer import StreamDQNConfig
from adaptrl.algorithms.rl2_config import RL2Config
from adaptrl.errors import UserError
from adaptrl.experiment.config import ConfigError, ExperimentConfig
from adaptrl.experiment.learners import build_family
from adaptrl.rollouts.ray_sampler import RaySampler, RaySampling, check_ray_family, require_ray
from adaptrl.tasks.base import TaskFamily


def check_sampler(config: ExperimentConfig, algo_cfg: AlgorithmConfig) -> None:
    """Refuse a ``sampler`` section this run cannot use, with the field and the reason."""
    if config.sampler.backend == "local":
        return
    if not isinstance(algo_cfg, (GradientFamilyConfig, *STEPPING)):
        raise ConfigError(
            f"sampler.backend: 'ray' runs the gradient family (maml, fomaml, metasgd, anil, "
            f"reptile, ...), rl2 and the value-based learners (dqn-reptile, dqn-fomaml, "
            f"dqn-pretrained, dqn-stream, dqn-er, dqn-mer); {algo_cfg.name!r} is none of "
            "them: use backend 'local'")
    try:
        require_ray()
    except UserError as err:
        raise ConfigError(str(err)) from None


STEPPING: tuple[type[AlgorithmConfig], ...] = (RL2Config, DQNInitConfig, StreamDQNConfig)
"""Learners that act step by step: on Ray their envs are stepped by the workers."""

_scope: list[RaySampler] | None = None  # the samplers started inside sampler_scope()


@contextmanager
def sampler_scope() -> Iterator[None]:
    """Stop the Ray workers a run started when the run ends (finished, failed or
    interrupted), so that the next run in the process (``train --seeds``) finds the
    cluster's CPUs free."""
    global _scope
    outer, _scope = _scope, []
    try:
        yield
    finally:
        started, _scope = _scope, outer
        for sampler in started:
            sampler.close()


def sampling_family(config: ExperimentConfig, family: TaskFamily) -> TaskFamily:
    """``family`` itself (backend ``local``), or ``family`` sampled on Ray workers that
    each build it from ``config``, its envs stepped there too when the learner acts step
    by step (:data:`STEPPING`) (stopped at the end of the :func:`sampler_scope`, or
    when the returned family is collected)."""
    cfg = config.sampler
    if cfg.backend == "local":
        return family
    try:
        check_ray_family(family)
    except UserError as err:
        raise ConfigError(str(err)) from None
    sampler = RaySampler(functools.partial(build_family, config), cfg.workers, cfg.address,
                         cfg.max_resamples)
    stepping = isinstance(config.algorithm_config(), STEPPING)
    wrapped = RaySampling(family, sampler, remote_envs=stepping)
    weakref.finalize(wrapped, sampler.close)
    if _scope is not None:
        _scope.append(sampler)
    return wrapped
