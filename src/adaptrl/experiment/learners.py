"""Building meta-learners and baseline learners from an experiment config."""

from __future__ import annotations

from pathlib import Path

import torch

from adaptrl.algorithms.base import AlgorithmConfig, MetaLearner
from adaptrl.algorithms.registry import algorithm_spec
from adaptrl.experiment.checkpoints import load_checkpoint
from adaptrl.experiment.config import ConfigError, ExperimentConfig
from adaptrl.experiment.run_dir import RunDir
from adaptrl.experiment.seeding import seeded_init
from adaptrl.tasks import make
from adaptrl.tasks.base import TaskFamily
from adaptrl.tasks.wrappers import RescaledActions


def build_family(config: ExperimentConfig) -> TaskFamily:
    """The config's task family; a parameter the family refuses is a :class:`ConfigError`."""
    try:
        family = make(config.family.name, **config.family.params)
    except ValueError as err:
        raise ConfigError(f"family.params: {err}") from err
    if not config.family.rescale_actions:
        return family
    try:
        return RescaledActions(family)
    except ValueError as err:
        raise ConfigError(f"family.rescale_actions: {err}") from err


def build_learner(family: TaskFamily, algo_cfg: AlgorithmConfig, generator: torch.Generator,
                  device: torch.device, init_seed: int) -> MetaLearner:
    """Instantiate the registered meta-learner; its weights depend only on ``init_seed``.
    """
    spec = algorithm_spec(algo_cfg.name)
    with seeded_init(init_seed):
        learner = spec.build(family, algo_cfg, generator, device)
    return learner


def apply_init_from(learner: MetaLearner, algo_cfg: AlgorithmConfig) -> None:
    """Start ``learner`` from the policy named by ``algorithm.init_from``: a run directory
    (its best policy, ``checkpoints/best.pt``) or one checkpoint file of a run (e.g. its
    ``checkpoints/latest.pt``, where the run is evaluated at its last policy).

    Any run whose learner checkpoints a ``policy`` of the same architecture qualifies
    (typically an ``aggregation`` run, whose averaged policy is meant as an initialisation).
    The learner's ``load_initial_policy`` takes it (RL² with ``init_critic: false`` loads
    the actor and keeps its own critic; the gradient family loads the whole policy).
    """
    source = algo_cfg.init_from
    if not source:
        return
    path = Path(source) if Path(source).suffix == ".pt" else RunDir(Path(source)).best
    if not path.is_file():
        missing = (": no such checkpoint file" if path == Path(source)
                   else " has no checkpoints/best.pt")
        raise ConfigError(f"algorithm.init_from: {source}{missing}; give a trained run "
                          "directory or a checkpoint file (e.g. RUN/checkpoints/latest.pt)")
    policy = load_checkpoint(path)["learner"].get("policy")
    if policy is None:
        raise ConfigError(f"algorithm.init_from: the learner of {source} has no policy")
    try:
        learner.load_initial_policy(policy)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise ConfigError(f"algorithm.init_from: the policy of {source} does not fit this "
                          "run's policy (same policy architecture and family needed): "
                          f"{first}") from err


def meta_batch_size(algo_cfg: AlgorithmConfig) -> int:
    """Tasks sampled per meta-iteration."""
    return algo_cfg.meta_batch_size
