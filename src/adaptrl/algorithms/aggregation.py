"""Model aggregation ("RL-Meta"): train per-task policies, average them by validation return.

    for each round (meta-iteration):
        sample a batch of training tasks T_1..T_n
        phi_i <- theta; k per-task policy-gradient updates on T_i     (batched, as Reptile)
        R_i   <- mean return of pi_phi_i on m fresh *validation* tasks (training split)
        w     <- weights(R)                   (uniform | softmax | top-k; sum_i w_i = 1)
        theta <- theta + eps * (sum_i w_i phi_i - theta)             (eps = 1: the average)

A member is judged on tasks it was *not* trained on, because the aggregate is meant as
an initialisation for new tasks: a member that only fits its own task gets little
weight. ``softmax`` standardises the validation returns first (``z = (R - mean) / std``)
so that its ``temperature`` does not depend on the family's reward scale:
``w = softmax(z / temperature)``; ``topk`` averages the ``top_k`` best members uniformly.
With uniform weights a round is exactly a Reptile iteration: the two share the inner
loop and the outer step (``outer_optimizer: sgd`` with ``eps = outer_lr``, default 1, or
Adam on the pseudo-gradient ``theta - sum_i w_i phi_i``) and differ only in the weights.

The aggregated policy initialises other learners through ``init_from: RUN_DIR`` (MAML,
Meta-SGD, Reptile) and is scored like any gradient-based agent: held-out tasks, the same
inner VPG step.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator

from adaptrl.agents.contract import AdaptationUnit
from adaptrl.algorithms.common import (
    GRADIENT_FAMILY_BASELINES,
    AveragingConfig,
    AveragingLearner,
    TaskTrainingConfig,
    averaging_step,
    return_metrics,
)
from adaptrl.algorithms.registry import register_algorithm
from adaptrl.models.functional import Params, named_params
from adaptrl.rollouts.sampler import rollout
from adaptrl.tasks.base import Tasks

Weighting = Literal["uniform", "softmax", "topk"]


class AggregationConfig(AveragingConfig):
    """Model-aggregation settings: per-task training, validation and the weighting."""

    name: Literal["aggregation"] = "aggregation"
    inner: TaskTrainingConfig = Field(default_factory=lambda: TaskTrainingConfig(steps=4))
    weighting: Weighting = Field("softmax", description="how members are weighted")
    temperature: float = Field(1.0, gt=0, description="softmax temperature on z-scored returns")
    top_k: int = Field(5, ge=1, description="members averaged when weighting = topk")
    validation_tasks: int = Field(4, ge=1, description="fresh training tasks per round that "
                                                      "every member is validated on")
    validation_episodes: int = Field(2, ge=1, description="episodes per member and task")

    @model_validator(mode="after")
    def _top_k_fits(self) -> AggregationConfig:
        if self.weighting == "topk" and self.top_k > self.meta_batch_size:
            raise ValueError(f"top_k must be <= meta_batch_size ({self.meta_batch_size}), "
                             f"got {self.top_k}")
        return self


def aggregation_weights(returns: torch.Tensor, weighting: Weighting, temperature: float = 1.0,
                        top_k: int = 1) -> torch.Tensor:
    """Non-negative weights summing to one from the members' validation returns ``[n]``."""
    n = returns.shape[0]
    if weighting == "uniform":
        return torch.full((n,), 1.0 / n)
    if weighting == "softmax":
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        r = returns.double()
        z = (r - r.mean()) / r.std(unbiased=False).clamp_min(1e-8) if n > 1 else r * 0
        return torch.softmax(z / temperature, 0).float()
    if weighting == "topk":
        if not 1 <= top_k <= n:
            raise ValueError(f"top_k must be in [1, {n}], got {top_k}")
        w = torch.zeros(n)
        w[torch.topk(returns, top_k).indices] = 1.0 / top_k
        return w
    raise ValueError(f"weighting must be one of ['uniform', 'softmax', 'topk'], got {weighting!r}")


class Aggregation(AveragingLearner):
    """Per-task policies from a common init, averaged with validation-return weights."""

    def _validate(self, members: Params) -> torch.Tensor:
        """Mean return of every member ``[n]`` on the same fresh validation tasks."""
        cfg = self.config
        n = next(iter(members.values())).shape[0]
        m = cfg.validation_tasks
        val = self.family.sample(m, "train", self.generator)
        env = self.family.make_env(val[torch.arange(m).repeat(n)], cfg.validation_episodes,
                                   self.device)
        params = {k: v.repeat_interleave(m, 0) for k, v in members.items()}
        traj = rollout(env, self.policy, params, self.generator)
        self.env_steps += traj.num_steps
        return traj.task_returns().reshape(n, m).mean(1).cpu()

    def meta_update(self, tasks: Tasks) -> dict[str, float]:
        cfg = self.config
        theta = named_params(self.policy)
        episodes = self.inner.sample(tasks, theta, cfg.inner.steps, query=False)
        self.env_steps += episodes.num_steps
        val = self._validate(episodes.params)
        w = aggregation_weights(val, cfg.weighting, cfg.temperature, cfg.top_k)
        info = averaging_step(self.optimizer, theta, episodes.params, w)
        return {**return_metrics(episodes), "return_validation": float(val.mean()),
                "weight_max": float(w.max()), **info}


register_algorithm("aggregation", AggregationConfig, Aggregation,
                   "model aggregation: per-task VPG/PPO policies averaged with "
                   "validation-return weights", unit=AdaptationUnit.GRADIENT_STEPS,
                   baselines=GRADIENT_FAMILY_BASELINES)
