"""Hand-designed optimizers with a step size tuned on the training tasks: the baselines a
learned optimizer must beat (Optim4RL, Lan et al. 2024, and OPEN, Goldie et al. 2024,
compare against tuned Adam and RMSProp).

The tuning is a function, not a number typed into a config (:func:`tune_learning_rate`):
every step size of ``tuning.lr_grid`` trains the same fresh random policies
(``tuning.seeds`` of them) on the same ``tuning.tasks`` training tasks for
``inner.updates`` updates, with the same inner rule, episodes and sampling seeds, and the
step size with the highest mean return over batches ``1..N`` wins (the learned
optimizer's ES fitness, :func:`adaptrl.algorithms.learned_optimizer.fitness`). It depends
only on the config and the family, so the baseline is reproducible and is rebuilt, not
trained, at evaluation.

The scored agent is the same fresh random policy the learned optimizer's agent starts from
(``test_init_seed``), trained by Adam or RMSProp at the tuned step size: paired runs.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from adaptrl.adaptation.inner_optimizers import Adam, RMSProp
from adaptrl.agents.contract import AdaptationUnit
from adaptrl.algorithms.base import GradientAgent
from adaptrl.algorithms.common import InnerLoop, make_inner_update
from adaptrl.algorithms.learned_optimizer import (
    L2O_BASELINES,
    FreshPolicyConfig,
    L2OConfig,
    fitness,
)
from adaptrl.algorithms.registry import register_algorithm
from adaptrl.models.functional import detach_params, named_params
from adaptrl.models.policies import MLPPolicy
from adaptrl.tasks.base import TaskFamily, Tasks

HandSet = Literal["adam", "rmsprop"]


def hand_set_optimizer(name: HandSet, lr: float) -> Adam | RMSProp:
    """Adam (Kingma & Ba 2015) or RMSProp (torch's defaults) at step size ``lr``."""
    return Adam(lr) if name == "adam" else RMSProp(lr)


class TunedOptimizerConfig(FreshPolicyConfig):
    """A hand-designed optimizer and how its step size is tuned on training tasks."""

    name: Literal["tuned-optimizer"] = "tuned-optimizer"
    optimizer: HandSet = Field("adam", description="adam or rmsprop")


def run_scores(family: TaskFamily, config: FreshPolicyConfig, policy: MLPPolicy,
               optimizer: Any, tasks: Tasks, seed: int, device: torch.device) -> torch.Tensor:
    """Returns ``[N + 1, tasks]`` of one inner run of ``policy`` trained by ``optimizer``
    on ``tasks``, sampling from a generator seeded ``seed``."""
    update = make_inner_update(policy, config, optimizer, config.inner.training())
    loop = InnerLoop(family, update, config.episodes_per_task,
                     torch.Generator().manual_seed(seed), device, config.batch_unit)
    episodes = loop.sample(tasks, detach_params(named_params(policy)), config.inner.updates)
    assert episodes.query is not None
    batches = [t for t, _ in episodes.supports] + [episodes.query]
    return torch.stack([t.task_returns() for t in batches])


def tune_learning_rate(family: TaskFamily, config: TunedOptimizerConfig,
                       device: torch.device) -> tuple[float, dict[float, float]]:
    """The best step size of ``config.lr_grid`` on training tasks and every one's score
    (module docstring)."""
    tuning = config.tuning
    tasks = family.sample(tuning.tasks, "train", torch.Generator().manual_seed(tuning.seed))
    table: dict[float, float] = {}
    for lr in tuning.lr_grid:
        total = 0.0
        for r in range(tuning.seeds):
            seed = tuning.seed + 1 + r
            policy = config.fresh_policy(family, seed).to(device)
            scores = run_scores(family, config, policy, hand_set_optimizer(config.optimizer, lr),
                                tasks, seed, device)
            total += float(fitness(scores).mean())
        table[lr] = total / tuning.seeds
    best = max(table, key=lambda lr: table[lr])
    return best, table


class TunedOptimizer:
    """Adam or RMSProp at the step size tuned when built; nothing to meta-train."""

    def __init__(self, family: TaskFamily, config: TunedOptimizerConfig,
                 generator: torch.Generator, device: torch.device) -> None:
        self.family, self.config, self.device = family, config, device
        self.lr, self.table = tune_learning_rate(family, config, device)
        self._policy = config.fresh_policy(family, config.test_init_seed).to(device)
        self.env_steps = 0

    @property
    def policy(self) -> MLPPolicy:
        return self._policy

    def meta_update(self, tasks: Tasks) -> dict[str, float]:
        """Nothing is learned across tasks: the tuned step size is reported."""
        return {"lr": self.lr}

    def agent(self, step_sizes: list[float] | None = None) -> GradientAgent:
        """The fresh policy of ``test_init_seed`` trained at the tuned step size."""
        optimizer = hand_set_optimizer(self.config.optimizer, self.lr)
        return self.config.agent(self.family, optimizer, self.device)

    def load_initial_policy(self, state: dict[str, torch.Tensor]) -> None:
        raise ValueError("algorithm.init_from: a tuned optimizer trains fresh random policies")

    def state_dict(self) -> dict[str, Any]:
        return {"env_steps": self.env_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env_steps = int(state["env_steps"])


def tuned_config(config: L2OConfig, optimizer: HandSet) -> TunedOptimizerConfig:
    """The tuned baseline of a learned-optimizer run: its policy, inner run, batches and
    test policy, with ``optimizer``'s step size tuned on its family's training tasks."""
    shared = {k: getattr(config, k) for k in FreshPolicyConfig.model_fields if k != "name"}
    return TunedOptimizerConfig(**shared, optimizer=optimizer)


assert L2O_BASELINES == ("adam_tuned", "rmsprop_tuned")

register_algorithm("tuned-optimizer", TunedOptimizerConfig, TunedOptimizer,
                   "Adam or RMSProp training fresh random policies, step size tuned on the "
                   "training tasks (the learned optimizer's baseline)",
                   unit=AdaptationUnit.GRADIENT_STEPS)
