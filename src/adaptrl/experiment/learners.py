"""Building meta-learners and baseline learners from an experiment config."""

from __future__ import annotations

from pathlib import Path

import torch

from adaptrl.algorithms.base import AlgorithmConfig, MetaLearner
from adaptrl.algorithms.registry import algorithm_spec
from adaptrl.experiment.checkpoints import load_checkpoint
from adaptrl.experiment.config import ConfigError, ExperimentConfig, FamilyConfig
from adaptrl.experiment.run_dir import RunDir
from adaptrl.experiment.seeding import seeded_init
from adaptrl.tasks import make
from adaptrl.tasks.base import TaskFamily
from adaptrl.tasks.wrappers import RescaledActions


def build_family(config: ExperimentConfig) -> TaskFamily:
    """The config's task family (registered, or made by ``family.entry_point``); a parameter
    the family refuses, or an entry point that fails, is a :class:`ConfigError`."""
    if config.family.entry_point is not None:
        family = _entry_point_family(config.family)
    else:
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


def _entry_point_family(cfg: FamilyConfig) -> TaskFamily:
    """``cfg.entry_point``'s factory called with ``cfg.params``: whatever it raises, or a
    result that is not a task family, is a one-line :class:`ConfigError` naming it."""
    try:
        factory = cfg.factory()
    except ValueError as err:
        raise ConfigError(f"family.entry_point: {cfg.entry_point}: {err}") from err
    try:
        family = factory(**cfg.params)
    except Exception as err:  # noqa: BLE001 - the user's factory: any failure is reported
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise ConfigError(f"family.entry_point: {cfg.entry_point}(**family.params) raised "
                          f"{type(err).__name__}: {first}") from err
    if not isinstance(family, TaskFamily):
        raise ConfigError(f"family.entry_point: {cfg.entry_point} returned a "
                          f"{type(family).__name__}, not a task family (it needs name, "
                          "observation_space, action_space, horizon, sample, make_env: "
                          "adaptrl.tasks.base.TaskFamily)")
    return family


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
