"""Building meta-learners and baseline learners from an experiment config."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from pydantic import BaseModel

from adaptrl.algorithms.base import AlgorithmConfig, MetaLearner
from adaptrl.algorithms.registry import algorithm_spec
from adaptrl.algorithms.rl2_config import RL2Config
from adaptrl.evaluation.classic.tables import MDP_METHODS
from adaptrl.evaluation.classic.tabular import MDPTeacher
from adaptrl.experiment.checkpoints import load_checkpoint
from adaptrl.experiment.config import ConfigError, ExperimentConfig
from adaptrl.experiment.run_dir import RunDir
from adaptrl.experiment.seeding import seeded_init
from adaptrl.tasks import make
from adaptrl.tasks.base import TaskFamily
from adaptrl.tasks.tabular_mdp import TabularMDP
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
    A learner configured to imitate (RL²'s ``imitation``) gets its teacher attached."""
    spec = algorithm_spec(algo_cfg.name)
    with seeded_init(init_seed):
        learner = spec.build(family, algo_cfg, generator, device)
    if isinstance(algo_cfg, RL2Config) and algo_cfg.imitation is not None:
        imitation = algo_cfg.imitation
        learner.teacher = build_teacher(  # type: ignore[attr-defined]
            family, imitation.teacher, imitation.params)
    return learner


def build_teacher(family: TaskFamily, name: str, params: dict[str, Any]) -> MDPTeacher:
    """A classic algorithm of ``family`` (its comparison table's, by name) as a teacher for
    imitation (:mod:`adaptrl.rollouts.imitation`). Teachers exist for ``tabular-mdp``."""
    if not isinstance(family, TabularMDP):
        raise ConfigError("algorithm.imitation: teachers exist for the tabular-mdp family "
                          f"(its classic algorithms), got family {getattr(family, 'name', family)!r}")
    if name not in MDP_METHODS:
        raise ConfigError(f"algorithm.imitation.teacher: must be one of {sorted(MDP_METHODS)}, "
                          f"got {name!r}")
    try:
        agent = MDP_METHODS[name].make(**params)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"algorithm.imitation.params: {name}: {err}") from err
    return MDPTeacher(agent, family.num_states, family.num_actions, family.horizon)


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
