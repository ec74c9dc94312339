"""A learned optimizer for RL, meta-trained across tasks (OPEN, Goldie et al. 2024; Optim4RL,
Lan et al. 2024; the coordinate-wise form of Andrychowicz et al. 2016).

What is meta-learned is not an initialisation but the update rule: the coordinate-wise
network of :mod:`adaptrl.adaptation.learned_optimizer`. Every meta-iteration trains a
*fresh random* policy on training tasks with it and scores the training run:

    for each meta-iteration:
        sample training tasks T_1..T_M and a fresh random policy theta_0
        inner run (batched over tasks): for k in 0..N-1:
            D_k ~ pi_theta_k;  theta_{k+1} = theta_k - LO_w(grad L(theta_k; D_k), state)
        outer step on w, by one of
          es:    OpenES over w (population P, antithetic, centred ranks; all P x M inner
                 runs batched, the optimizer step vmapped over the population); fitness of a
                 member = its mean return over batches D_1..D_N (the area under its
                 training curve; D_0 does not depend on w)
          tbptt: Adam on the gradient of sum_k L_PG(theta_k(w); D_k) through the unrolled
                 inner run, truncated every ``tbptt.unroll`` updates (Optim4RL: 4): the
                 surrogate of a batch sampled at theta_k has the policy gradient at theta_k,
                 chained into w through the inner steps (first-order in the inner
                 gradient unless ``tbptt.second_order``)

``L`` is the family's inner objective (REINFORCE with the linear baseline, or PPO's
clipped surrogate for ``inner.epochs`` steps per batch: :func:`make_inner_update`), and
sampling is the gradient family's :class:`~adaptrl.algorithms.common.InnerLoop`.

Cost: ES runs P x M inner runs per iteration without any backward pass through them (its
cost is the population's sampling, P times TBPTT's per task); TBPTT runs M inner runs and
one backward pass per unroll through the sampled batches' policy calls. ES sees the true
return over the whole run (no truncation bias, any horizon, non-differentiable returns);
TBPTT's gradient is exact but myopic (``unroll`` updates) and noisier per sample. The
measurements are in docs/learned_optimizers.md.

The agent the protocol scores is a :class:`GradientAgent` whose initial parameters are a
fresh random policy (drawn from ``test_init_seed``, the same one the tuned-optimizer
baselines start from) and whose inner optimizer is the learned one, so the gradient
protocol (``gradient_curve``) scores its training curve on held-out tasks.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, field_validator, model_validator

from adaptrl.adaptation.inner_optimizers import InnerOptimizer
from adaptrl.adaptation.inner_update import InnerUpdate
from adaptrl.adaptation.learned_optimizer import LearnedOptimizer, LearnedOptimizerConfig
from adaptrl.agents.contract import AdaptationUnit
from adaptrl.algorithms.base import GradientAgent
from adaptrl.algorithms.common import (
    GradientFamilyConfig,
    InnerLoop,
    TaskTrainingConfig,
    make_inner_update,
)
from adaptrl.algorithms.registry import register_algorithm
from adaptrl.models.functional import Params, detach_params, named_params
from adaptrl.models.policies import MLPPolicy
from adaptrl.optim.es import OpenES, OpenESConfig
from adaptrl.optim.ppo import load_optimizer_state, optimizer_state
from adaptrl.rollouts.losses import importance_loss
from adaptrl.rollouts.sampler import BatchSampler, trajectory_distribution
from adaptrl.schema import ConfigModel, Seed
from adaptrl.tasks.base import TaskFamily, Tasks

L2O_BASELINES = ("adam_tuned", "rmsprop_tuned")
"""The baselines a learned optimizer is scored against: hand-designed optimizers whose
step size is tuned on the training tasks (:mod:`adaptrl.algorithms.tuned_optimizer`)."""


class InnerRunConfig(ConfigModel):
    """One inner training run: ``updates`` updates of a fresh policy, each on fresh episodes."""

    updates: int = Field(20, ge=1, description="policy updates per inner run (N)")
    rule: Literal["vpg", "ppo"] = Field(
        "vpg", description="vpg: one REINFORCE-with-baseline step per batch (A2C-style); "
                           "ppo: `epochs` steps on the clipped surrogate per batch")
    epochs: int = Field(4, ge=1, description="optimizer steps per batch when rule = ppo")
    clip: float = Field(0.2, gt=0, lt=1, description="PPO clip range when rule = ppo")

    def training(self) -> TaskTrainingConfig:
        """The gradient family's per-task training settings (its ``lr`` is unused here)."""
        return TaskTrainingConfig(steps=self.updates, rule=self.rule, epochs=self.epochs,
                                  clip=self.clip)


class TBPTTConfig(ConfigModel):
    """Truncated backpropagation through the unrolled inner run."""

    unroll: int = Field(4, ge=1, description="inner updates per truncation (Optim4RL: 4)")
    lr: float = Field(1e-3, gt=0, description="Adam step size on the optimizer's weights")
    max_grad_norm: float = Field(1.0, gt=0, description="meta-gradient clipped to this norm")
    second_order: bool = Field(False, description="differentiate the inner gradients too")


class TuningConfig(ConfigModel):
    """How the hand-designed baselines' step size is tuned on training tasks
    (:func:`adaptrl.algorithms.tuned_optimizer.tune_learning_rate`)."""

    lr_grid: list[float] = Field(
        default_factory=lambda: [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1],
        description="step sizes tried on the training tasks")
    tasks: int = Field(16, ge=1, description="training tasks of the tuning runs")
    seeds: int = Field(2, ge=1, description="fresh policies (and sampling seeds) per lr")
    seed: Seed = Field(777, description="seed of the tuning tasks, policies and sampling")

    @field_validator("lr_grid")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if not v or any(lr <= 0 for lr in v):
            raise ValueError(f"lr_grid must be a non-empty list of values > 0, got {v}")
        return v


class FreshPolicyConfig(GradientFamilyConfig):
    """What a learner that trains fresh random policies shares with its baselines: the
    inner run and the seed of the meta-test's initial policy."""

    inner: InnerRunConfig = Field(default_factory=InnerRunConfig)
    test_init_seed: Seed = Field(
        0, description="seed of the fresh random policy every scored agent starts from "
                       "(the learned optimizer's and its tuned baselines': paired runs)")
    tuning: TuningConfig = Field(
        default_factory=TuningConfig,
        description="the step-size tuning of the adam_tuned / rmsprop_tuned baselines")

    @model_validator(mode="after")
    def _no_initial_policy(self) -> FreshPolicyConfig:
        if self.init_from is not None:
            raise ValueError(f"init_from: {self.name!r} trains fresh random policies and "
                             f"takes no initial policy, got {self.init_from!r}; allowed: null")
        return self

    def fresh_policy(self, family: TaskFamily, seed: int) -> MLPPolicy:
        """A random policy drawn from ``seed`` alone (torch's global RNG left untouched)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.policy.build(family.observation_space, family.action_space)

    def agent(self, family: TaskFamily, optimizer: InnerOptimizer,
              device: torch.device) -> GradientAgent:
        """The scored agent: the fresh policy of ``test_init_seed``, trained by ``optimizer``."""
        policy = self.fresh_policy(family, self.test_init_seed).to(device)
        update = make_inner_update(policy, self, optimizer, self.inner.training())
        return GradientAgent(policy, named_params(policy), update.detached(),
                             [optimizer.detached()])


class L2OConfig(FreshPolicyConfig):
    """Learned-optimizer meta-training (``meta_batch_size``: tasks per inner run batch)."""

    name: Literal["l2o"] = "l2o"
    meta_batch_size: int = Field(4, ge=1, description="training tasks per meta-iteration")
    episodes_per_task: int = Field(16, ge=1, description="episodes per task per update")
    method: Literal["es", "tbptt"] = Field(
        "es", description="es: OpenES over the optimizer's weights; tbptt: truncated "
                          "backpropagation through the unrolled inner run")
    optimizer: LearnedOptimizerConfig = Field(
        default_factory=LearnedOptimizerConfig,
        description="the learned optimizer (its horizon is set to inner.updates)")
    es: OpenESConfig = Field(default_factory=lambda: OpenESConfig(population=16))
    tbptt: TBPTTConfig = Field(default_factory=TBPTTConfig)

    def optimizer_config(self) -> LearnedOptimizerConfig:
        return self.optimizer.model_copy(update={"horizon": self.inner.updates})


def fitness(scores: torch.Tensor) -> torch.Tensor:
    """An inner run's score per task: the mean return of batches ``1..N`` of ``scores
    [N + 1, tasks]`` (batch 0 is sampled before any update)."""
    return scores[1:].mean(0)


class LearnedOptimizerLearner:
    """Meta-trains a :class:`LearnedOptimizer` by OpenES or truncated backpropagation."""

    def __init__(self, family: TaskFamily, config: L2OConfig, generator: torch.Generator,
                 device: torch.device) -> None:
        self.family, self.config, self.generator, self.device = family, config, generator, device
        self.optimizer = LearnedOptimizer(config.optimizer_config()).to(device)
        self.es = OpenES(self.optimizer.flat(), config.es) if config.method == "es" else None
        self.meta_optimizer = (torch.optim.Adam(self.optimizer.parameters(), lr=config.tbptt.lr)
                               if config.method == "tbptt" else None)
        self._policy = config.fresh_policy(family, config.test_init_seed).to(device)
        self.env_steps = 0

    @property
    def policy(self) -> MLPPolicy:
        """The meta-test's initial policy (what is meta-learned is the optimizer)."""
        return self._policy

    def _fresh(self) -> tuple[MLPPolicy, Params]:
        """A fresh random policy for this iteration's inner runs (seed from the run's generator)."""
        seed = int(torch.randint(0, 2**62, (1,), generator=self.generator))
        policy = self.config.fresh_policy(self.family, seed).to(self.device)
        return policy, detach_params(named_params(policy))

    def _update(self, policy: MLPPolicy, optimizer: InnerOptimizer) -> InnerUpdate:
        return make_inner_update(policy, self.config, optimizer, self.config.inner.training())

    # -- one meta-iteration -----------------------------------------------------------------
    def meta_update(self, tasks: Tasks) -> dict[str, float]:
        return self._es_step(tasks) if self.es is not None else self._tbptt_step(tasks)

    def _es_step(self, tasks: Tasks) -> dict[str, float]:
        """OpenES: every member trains the same fresh policy on the same tasks (common random
        numbers), all ``P x M`` runs in one batch, the optimizer step vmapped over members."""
        assert self.es is not None
        cfg = self.config
        candidates = self.es.ask(self.generator)
        population = self.optimizer.population(candidates.vectors.to(self.device))
        members = population.size
        policy, theta = self._fresh()
        loop = InnerLoop(self.family, self._update(policy, population), cfg.episodes_per_task,
                         self.generator, self.device, cfg.batch_unit)
        episodes = loop.sample(Tasks.cat([tasks] * members), theta, cfg.inner.updates)
        self.env_steps += episodes.num_steps
        assert episodes.query is not None
        batches = [t for t, _ in episodes.supports] + [episodes.query]
        scores = torch.stack([t.task_returns() for t in batches])  # [N + 1, P M]
        member_fitness = fitness(scores).reshape(members, len(tasks)).mean(1)
        info = self.es.tell(candidates, member_fitness.cpu())
        self.optimizer.load_flat(self.es.mean.detach())
        return {"return_pre": float(scores[0].mean()), "return_post": float(scores[-1].mean()),
                "fitness": float(member_fitness.mean()), **info, **self.optimizer.summary()}

    def _tbptt_step(self, tasks: Tasks) -> dict[str, float]:
        """One inner run of ``N`` updates, a meta-gradient step every ``unroll`` updates."""
        assert self.meta_optimizer is not None
        cfg, tb = self.config, self.config.tbptt
        policy, phi = self._fresh()
        update = self._update(policy, self.optimizer)
        sampler = BatchSampler(self.family, tasks, cfg.episodes_per_task, self.device,
                               cfg.batch_unit)
        state = update.init(phi, len(tasks))
        traj = sampler.sample(policy, phi, self.generator)
        returns = [float(traj.task_returns().mean())]
        steps = traj.num_steps
        norms: list[float] = []
        done = 0
        while done < cfg.inner.updates:
            phi = {k: v.detach().requires_grad_(True) for k, v in phi.items()}
            state = detach_params(state)
            meta_loss = torch.zeros((), device=self.device)
            for _ in range(min(tb.unroll, cfg.inner.updates - done)):
                data = update.prepare(traj)
                phi, state = update.step(phi, traj, data, state,
                                         first_order=not tb.second_order, create_graph=True)
                traj = sampler.sample(policy, detach_params(phi), self.generator)
                returns.append(float(traj.task_returns().mean()))
                steps += traj.num_steps
                adv = update.prepare(traj)
                dist = trajectory_distribution(policy, traj, phi)
                meta_loss = meta_loss + importance_loss(dist, traj, adv).mean()
                done += 1
            self.meta_optimizer.zero_grad(set_to_none=True)
            meta_loss.backward(inputs=list(self.optimizer.parameters()))
            norms.append(float(torch.nn.utils.clip_grad_norm_(self.optimizer.parameters(),
                                                              tb.max_grad_norm)))
            self.meta_optimizer.step()
            phi = detach_params(phi)
        self.env_steps += steps
        return {"return_pre": returns[0], "return_post": returns[-1],
                "fitness": sum(returns[1:]) / len(returns[1:]),
                "tbptt/grad_norm": sum(norms) / len(norms), **self.optimizer.summary()}

    # -- agent and checkpoints --------------------------------------------------------------
    def agent(self, step_sizes: list[float] | None = None) -> GradientAgent:
        """A fresh random policy trained by the learned optimizer (step sizes: not used)."""
        return self.config.agent(self.family, self.optimizer.detached(), self.device)

    def load_initial_policy(self, state: dict[str, torch.Tensor]) -> None:
        raise ValueError("algorithm.init_from: a learned optimizer trains fresh random "
                         "policies; it takes no initial policy")

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"optimizer": self.optimizer.state_dict(),
                                 "env_steps": self.env_steps}
        if self.es is not None:
            state["es"] = self.es.state_dict()
        if self.meta_optimizer is not None:
            state["meta_optimizer"] = optimizer_state(self.meta_optimizer)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.env_steps = int(state["env_steps"])
        if self.es is not None:
            self.es.load_state_dict(state["es"])
        if self.meta_optimizer is not None:
            load_optimizer_state(self.meta_optimizer, state["meta_optimizer"])


register_algorithm("l2o", L2OConfig, LearnedOptimizerLearner,
                   "learned optimizer (OPEN / Optim4RL): a coordinate-wise update rule "
                   "meta-trained by OpenES or truncated backprop over training runs of fresh "
                   "policies", unit=AdaptationUnit.GRADIENT_STEPS, baselines=L2O_BASELINES)
