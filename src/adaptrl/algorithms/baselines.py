"""The baselines scored beside a meta-learner under the one protocol (DESIGN.md).

Each baseline is a learner built from the meta-learner's own config, so that it shares
the policy architecture, batch sizes and discounting and differs only in what it learns:

* ``pretrained`` — multi-task TRPO: one policy trained on all training tasks without
  meta-learning (MAML with no inner step), then adapted with the same inner loop (Finn et
  al. 2017, §5.3: "pretrained");
* ``pretrained_adam`` — the MAML reference code's pretrained baseline (``use_maml=False``):
  multi-task policy gradient with one Adam step (lr 1e-3) per iteration (the paper's
  Figure 4);
* ``aggregation`` — model aggregation: per-task policies averaged with validation-return
  weights (:mod:`adaptrl.algorithms.aggregation`);
* ``scratch`` — the same architecture at a random initialisation, untrained, adapted with
  the same inner loop.

For a meta-learned DQN initialisation (unit ``env_steps``, :mod:`adaptrl.algorithms.dqn_init`):

* ``dqn_pretrained`` — one Q-network trained by online DQN (Mnih et al. 2015) on the
  training tasks pooled, then fine-tuned online at meta-test with the same DQN;
* ``dqn_scratch`` — the same Q-network at a random initialisation, the same online DQN;
* ``dqn_tuned`` — ``dqn_scratch`` with DQN hyperparameters tuned on the training tasks by a
  black-box search (the file ``algorithm.tuned``: :mod:`adaptrl.algorithms.dqn_hparams`);
* ``dqn_metatuned`` — ``dqn_tuned`` with ``gamma`` and ``lr`` meta-learned across the
  training tasks by meta-gradients (the file ``algorithm.metatuned``:
  :mod:`adaptrl.algorithms.dqn_meta_hparams`);
* ``dqn_metagrad`` — ``dqn_tuned``'s DQN adapting ``gamma`` and ``lr`` online by
  meta-gradients (Xu et al. 2018; :class:`~adaptrl.agents.dqn_metagrad.MetaGradientDQN`),
  from the same random initialisation (its gamma input's weights zero).

For a learned optimizer (:mod:`adaptrl.algorithms.learned_optimizer`):

* ``adam_tuned`` / ``rmsprop_tuned`` — the same fresh random policy trained by Adam or
  RMSProp, the step size tuned on the training tasks when built
  (:mod:`adaptrl.algorithms.tuned_optimizer`).

An algorithm's spec names the ones it admits (``AlgorithmSpec.baselines``); the gradient
family admits the first four (:data:`GRADIENT_FAMILY_BASELINES`), a DQN initialisation the
last two (:data:`~adaptrl.algorithms.dqn_init.DQN_FAMILY_BASELINES`). ``oracle`` is the
family's own task-aware policy and is not built here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from adaptrl.algorithms.aggregation import AggregationConfig
from adaptrl.algorithms.base import AlgorithmConfig
from adaptrl.algorithms.common import GRADIENT_FAMILY_BASELINES, GradientFamilyConfig
from adaptrl.algorithms.dqn_hparams import read_tuned, tuned_dqn_config
from adaptrl.algorithms.dqn_init import (
    DQN_FAMILY_BASELINES,
    DQNInitConfig,
    DQNPretrainedConfig,
    DQNReptileConfig,
)
from adaptrl.algorithms.dqn_meta_hparams import read_meta_tuned
from adaptrl.algorithms.grbal import MODEL_BASED_BASELINES
from adaptrl.algorithms.grbal_config import GrBALConfig, ModelInnerConfig
from adaptrl.algorithms.learned_optimizer import L2O_BASELINES, L2OConfig
from adaptrl.algorithms.maml import InnerLoopConfig, MAMLConfig
from adaptrl.algorithms.tuned_optimizer import tuned_config

_SHARED_FIELDS = ("meta_batch_size", "episodes_per_task", "batch_unit", "gamma", "gae_lambda",
                  "normalize_advantages", "policy")
"""What a baseline takes from the meta-learner's config (the same data per update)."""


def _shared(config: GradientFamilyConfig, *extra: str) -> dict[str, object]:
    return {k: getattr(config, k) for k in (*_SHARED_FIELDS, *extra)}


def pretrained_config(config: GradientFamilyConfig) -> MAMLConfig:
    """*pretrained*: multi-task TRPO (MAML with no inner step), same policy and budget; the
    meta-learner's TRPO settings where it has them."""
    extra = ("trpo",) if isinstance(config, MAMLConfig) else ()
    return MAMLConfig().model_copy(update={**_shared(config, *extra),
                                           "inner": InnerLoopConfig(steps=0)})


def pretrained_adam_config(config: GradientFamilyConfig) -> MAMLConfig:
    """*pretrained_adam*: :func:`pretrained_config` with one Adam step per iteration."""
    return pretrained_config(config).model_copy(update={"outer": "adam"})


def aggregation_config(config: GradientFamilyConfig) -> AggregationConfig:
    """*aggregation*: model aggregation (default settings) with the meta-learner's policy
    architecture, batch sizes and discounting."""
    return AggregationConfig(**_shared(config))


def dqn_pretrained_config(config: DQNInitConfig) -> DQNPretrainedConfig:
    """*dqn_pretrained*: multi-task online DQN on the training tasks pooled, with the
    meta-learner's DQN settings, batch of tasks and inner budget per iteration."""
    return DQNPretrainedConfig(meta_batch_size=config.meta_batch_size, dqn=config.dqn,
                               inner=config.inner)


def dqn_scratch_config(config: DQNInitConfig) -> DQNReptileConfig:
    """*dqn_scratch*: a DQN-initialisation learner left untrained (its agent: the
    meta-test DQN from a random initialisation)."""
    return DQNReptileConfig(meta_batch_size=config.meta_batch_size, dqn=config.dqn,
                            inner=config.inner)


def dqn_tuned_config(config: DQNInitConfig) -> DQNReptileConfig:
    """*dqn_tuned*: :func:`dqn_scratch_config` with the DQN hyperparameters of the file
    ``config.tuned`` (tuned on the training tasks)."""
    if config.tuned is None:
        raise ValueError("baseline 'dqn_tuned' needs algorithm.tuned: the file of DQN "
                         "hyperparameters tuned on the training tasks")
    dqn = tuned_dqn_config(config.dqn, read_tuned(config.tuned))
    return DQNReptileConfig(meta_batch_size=config.meta_batch_size, dqn=dqn,
                            inner=config.inner)


def dqn_metatuned_config(config: DQNInitConfig) -> DQNReptileConfig:
    """*dqn_metatuned*: :func:`dqn_scratch_config` with the DQN hyperparameters of the file
    ``config.metatuned`` (gamma and lr meta-learned across the training tasks, the others
    the black-box search's)."""
    if config.metatuned is None:
        raise ValueError("baseline 'dqn_metatuned' needs algorithm.metatuned: the file of "
                         "gamma and lr meta-learned on the training tasks (python -m "
                         "adaptrl.experiment.dqn_meta_tune)")
    dqn = tuned_dqn_config(config.dqn, read_meta_tuned(config.metatuned))
    return DQNReptileConfig(meta_batch_size=config.meta_batch_size, dqn=dqn,
                            inner=config.inner)


def dqn_metagrad_config(config: DQNInitConfig) -> DQNReptileConfig:
    """*dqn_metagrad*: :func:`dqn_tuned_config` (the preset's DQN where there is no
    ``tuned`` file) adapting gamma and lr online by meta-gradients
    (``config.metagrad``)."""
    base = config if config.tuned is None else dqn_tuned_config(config)
    return DQNReptileConfig(meta_batch_size=config.meta_batch_size, dqn=base.dqn,
                            inner=config.inner, metagrad=config.metagrad, adapt_online=True)


def _without_context(config: GrBALConfig) -> GrBALConfig:
    """GrBAL's config of the same model without ReBAL's recurrent context (ReBAL's
    baselines are GrBAL's); a GrBAL config as it is."""
    if config.dynamics.context == 0:
        return config
    data = config.model_dump()
    data["name"], data["dynamics"]["context"] = "grbal", 0
    return GrBALConfig.model_validate(data)


def mb_config(config: GrBALConfig) -> GrBALConfig:
    """*mb*: the same dynamics model, data collection and planner, trained on all training
    tasks without meta-learning (``inner.steps: 0``) and not adapted at test."""
    return _without_context(config).model_copy(update={
        "inner": ModelInnerConfig(steps=0), "adapt_at_test": False, "test_inner": None})


def mb_finetune_config(config: GrBALConfig) -> GrBALConfig:
    """*mb_finetune*: *mb*'s model (the same training), adapted online at test with the
    meta-learner's inner loop (GrBAL's "MB + DE", Nagabandi et al. 2019, §6; for ReBAL,
    whose update rule is its context, the gradient step of its ``inner``)."""
    return _without_context(config).model_copy(update={
        "inner": ModelInnerConfig(steps=0), "adapt_at_test": True,
        "test_inner": config.test_inner or config.inner})


def mpc_oracle_config(config: GrBALConfig) -> GrBALConfig:
    """*mpc_oracle*: the same planner on the simulator of each task (returns normalised so
    that it scores 1)."""
    return config.model_copy(update={"oracle": True})


@dataclass(frozen=True)
class Baseline:
    """How a baseline is built from the meta-learner's config (an instance of ``source``);
    ``trained`` ones are trained in ``RUN_DIR/baselines/<name>`` after the meta-learner,
    the scratch ones are only built."""

    name: str
    config: Callable[[Any], AlgorithmConfig]
    trained: bool
    description: str
    source: type[AlgorithmConfig] = GradientFamilyConfig


BASELINES: dict[str, Baseline] = {b.name: b for b in (
    Baseline("pretrained", pretrained_config, True,
             "multi-task TRPO on all training tasks, then the same inner loop"),
    Baseline("pretrained_adam", pretrained_adam_config, True,
             "multi-task policy gradient with Adam (the MAML reference code's baseline)"),
    Baseline("aggregation", aggregation_config, True,
             "per-task policies averaged with validation-return weights"),
    Baseline("scratch", pretrained_config, False,
             "a random initialisation of the same policy, the same inner loop"),
    Baseline("dqn_pretrained", dqn_pretrained_config, True,
             "one Q-network trained by online DQN on the training tasks pooled, then the "
             "same online DQN", DQNInitConfig),
    Baseline("dqn_scratch", dqn_scratch_config, False,
             "a random initialisation of the same Q-network, the same online DQN",
             DQNInitConfig),
    Baseline("dqn_tuned", dqn_tuned_config, False,
             "a random initialisation of the same Q-network, online DQN with "
             "hyperparameters tuned on the training tasks (algorithm.tuned)", DQNInitConfig),
    Baseline("dqn_metatuned", dqn_metatuned_config, False,
             "dqn_tuned with gamma and lr meta-learned across the training tasks by "
             "meta-gradients (algorithm.metatuned)", DQNInitConfig),
    Baseline("dqn_metagrad", dqn_metagrad_config, False,
             "dqn_tuned's DQN from the same initialisation, adapting gamma and lr online by "
             "meta-gradients (Xu et al. 2018; algorithm.metagrad)", DQNInitConfig),
    Baseline("adam_tuned", lambda c: tuned_config(c, "adam"), False,
             "Adam training the same fresh policy, its step size tuned on the training tasks",
             L2OConfig),
    Baseline("rmsprop_tuned", lambda c: tuned_config(c, "rmsprop"), False,
             "RMSProp training the same fresh policy, its step size tuned on the training "
             "tasks", L2OConfig),
    Baseline("mb", mb_config, True,
             "the same dynamics model trained on all training tasks without meta-learning, "
             "not adapted; the same MPC", GrBALConfig),
    Baseline("mb_finetune", mb_finetune_config, True,
             "mb's model adapted online at test with the meta-learner's inner loop",
             GrBALConfig),
    Baseline("mpc_oracle", mpc_oracle_config, False,
             "the same MPC planning with each task's simulator", GrBALConfig),
)}
assert set(BASELINES) == {*GRADIENT_FAMILY_BASELINES, *DQN_FAMILY_BASELINES, *L2O_BASELINES,
                          *MODEL_BASED_BASELINES}

TRAINED_BASELINES = tuple(name for name, b in BASELINES.items() if b.trained)
"""Baselines trained in ``RUN_DIR/baselines/<name>`` after the meta-learner, in order."""


def baseline_config(name: str, config: AlgorithmConfig) -> AlgorithmConfig:
    """The config of baseline ``name`` for a meta-learner configured by ``config``."""
    baseline = BASELINES[name]
    if not isinstance(config, baseline.source):
        what = ("a gradient-family meta-learner (its policy, batches and inner loop)"
                if baseline.source is GradientFamilyConfig else
                "a DQN-initialisation meta-learner (its Q-network and DQN settings)")
        raise ValueError(f"baseline {name!r} needs {what}, got {config.name!r}")
    return baseline.config(config)
