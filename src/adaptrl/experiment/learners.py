"""Building meta-learners and baseline learners from an experiment config."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from pydantic import BaseModel

from adaptrl.algorithms.aggregation import AggregationConfig
from adaptrl.algorithms.maml import InnerLoopConfig, MAMLConfig
from adaptrl.algorithms.registry import algorithm_spec
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


def build_learner(family: TaskFamily, algo_cfg: BaseModel, generator: torch.Generator,
                  device: torch.device, init_seed: int) -> Any:
    """Instantiate the registered meta-learner; its weights depend only on ``init_seed``.
    A learner configured to imitate (RL²'s ``imitation``) gets its teacher attached."""
    spec = algorithm_spec(algo_cfg.name)  # type: ignore[attr-defined]
    with seeded_init(init_seed):
        learner = spec.build(family, algo_cfg, generator, device)
    imitation = getattr(algo_cfg, "imitation", None)
    if imitation is not None:
        learner.teacher = build_teacher(family, imitation.teacher, imitation.params)
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


def apply_init_from(learner: Any, algo_cfg: BaseModel) -> None:
    """Start ``learner`` from the policy named by ``algorithm.init_from``: a run directory
    (its best policy, ``checkpoints/best.pt``) or one checkpoint file of a run (e.g. its
    ``checkpoints/latest.pt``, where the run is evaluated at its last policy).

    Any run whose learner checkpoints a ``policy`` of the same architecture qualifies
    (typically an ``aggregation`` run, whose averaged policy is meant as an initialisation).
    A learner that takes only part of it defines ``load_initial_policy(state)`` (RL² with
    ``init_critic: false`` loads the actor and keeps its own critic); the others load the
    whole policy.
    """
    source = getattr(algo_cfg, "init_from", None)
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
    load = getattr(learner, "load_initial_policy", learner.policy.load_state_dict)
    try:
        load(policy)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise ConfigError(f"algorithm.init_from: the policy of {source} does not fit this "
                          "run's policy (same policy architecture and family needed): "
                          f"{first}") from err


def meta_batch_size(algo_cfg: BaseModel) -> int:
    """Tasks sampled per meta-iteration (every algorithm config names it ``meta_batch_size``)."""
    return int(getattr(algo_cfg, "meta_batch_size"))


_SHARED_FIELDS = ("meta_batch_size", "episodes_per_task", "batch_unit", "gamma", "gae_lambda",
                  "normalize_advantages", "policy")
"""What a trained baseline takes from the meta-learner's config (the same data per update)."""


def pretrained_config(algo_cfg: BaseModel) -> MAMLConfig:
    """The *pretrained* baseline: multi-task TRPO (MAML with no inner step), same policy/budget.

    It shares the meta-learner's policy architecture, batch sizes, discounting and TRPO
    settings where the meta-learner has them.
    """
    base = MAMLConfig()
    fields = {k: getattr(algo_cfg, k) for k in (*_SHARED_FIELDS, "trpo") if hasattr(algo_cfg, k)}
    return base.model_copy(update={**fields, "inner": InnerLoopConfig(steps=0)})


def aggregation_config(algo_cfg: BaseModel) -> AggregationConfig:
    """The *aggregation* baseline: model aggregation (default settings) with the
    meta-learner's policy architecture, batch sizes and discounting."""
    fields = {k: getattr(algo_cfg, k) for k in _SHARED_FIELDS if hasattr(algo_cfg, k)}
    return AggregationConfig(**fields)


def pretrained_adam_config(algo_cfg: BaseModel) -> MAMLConfig:
    """*pretrained_adam*: the MAML reference code's pretrained baseline (``use_maml=False``),
    multi-task policy gradient with one Adam step (lr 1e-3) per iteration instead of TRPO;
    the baseline of the paper's Figure 4. Same policy, batches and budget as *pretrained*."""
    return pretrained_config(algo_cfg).model_copy(update={"outer": "adam"})


TRAINED_BASELINES: dict[str, Callable[[BaseModel], BaseModel]] = {
    "pretrained": pretrained_config,
    "pretrained_adam": pretrained_adam_config,
    "aggregation": aggregation_config,
}
"""Baselines trained in ``RUN_DIR/baselines/<name>`` after the meta-learner: name -> config."""
