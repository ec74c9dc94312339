"""MAML for reinforcement learning (Finn, Abbeel, Levine, ICML 2017, Algorithm 3).

    for each meta-iteration:
        sample a batch of training tasks T_i
        for each task (all at once, batched):
            sample support episodes D_i with pi_theta, K times:           (inner loop)
                phi_i <- phi_i - alpha * grad L_Ti(phi_i; D_i)              eq. 1
            sample query episodes D'_i with pi_phi_i
        theta <- TRPO step on sum_i L_Ti(phi_i(theta); D'_i)               (outer loop)

The inner loss is REINFORCE with the per-task linear baseline; the outer step is TRPO
(KL bound, conjugate gradient, backtracking line search) whose surrogate and KL are
functions of theta *through* the inner update: second-order by default, first-order
(FOMAML) with ``inner.first_order``. With ``inner.steps = 0`` the same learner is plain
multi-task TRPO: the paper's *pretrained* baseline.

Cost (see ``benchmarks/bench_maml.py``): the inner steps are taken differentiably while
sampling and their graphs reused by the outer loss; TRPO's metric, the KL Hessian through
the inner loop, is applied as ``J^T F J`` (exact at theta_old, no third derivatives), on
``trpo.fisher_fraction`` of the episodes.

``outer: ppo`` replaces TRPO by PPO's clipped surrogate (Schulman et al. 2017, eq. 7) on
the query episodes, maximised by ``ppo.epochs`` Adam passes over minibatches of tasks;
each minibatch re-adapts its tasks from the current theta through the recorded support
episodes, so the PPO gradient is a meta-gradient too. A learned step size (Meta-SGD,
``algorithms/metasgd.py``) joins theta in the outer update.

Sampling and the inner step are the family's shared ones
(:class:`adaptrl.algorithms.common.InnerLoop`), as Reptile and aggregation use them.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.distributions import Distribution

from adaptrl.adaptation.learned_step import (GradientTransformName, PerParameterStepSize,
                                             make_gradient_transform)
from adaptrl.adaptation.policy_gradient import PolicyGradientAdapter
from adaptrl.adaptation.sgd import StepJacobian, StepSize
from adaptrl.algorithms.base import GradientAgent
from adaptrl.algorithms.common import (GRADIENT_FAMILY_BASELINES, Episodes, GradientFamilyConfig,
                                       InnerLoop, PolicyLearner)
from adaptrl.agents.contract import AdaptationUnit
from adaptrl.algorithms.registry import register_algorithm
from adaptrl.models.functional import Params, detach_params, named_params
from adaptrl.optim.fisher import KLHessian, flat_product, pullback_metric
from adaptrl.optim.ppo import PPOConfig, make_optimizer, ppo_update
from adaptrl.optim.trpo import TRPOConfig, trpo_step
from adaptrl.rollouts.baselines import advantages
from adaptrl.rollouts.losses import detached, importance_loss, mean_kl
from adaptrl.rollouts.sampler import trajectory_distribution
from adaptrl.rollouts.trajectories import Trajectories
from adaptrl.tasks.base import TaskFamily, Tasks

Support = tuple[Trajectories, torch.Tensor]
"""Support episodes of one inner step and their advantages."""


class InnerLoopConfig(BaseModel):
    """The inner (adaptation) loop used during meta-training."""

    model_config = ConfigDict(extra="forbid")
    steps: int = Field(1, ge=0, description="inner gradient steps (0 = no adaptation)")
    lr: float = Field(0.1, gt=0, description="inner step size alpha")
    first_order: bool = Field(False, description="drop second-order terms (FOMAML)")


class MAMLConfig(GradientFamilyConfig):
    """MAML settings; defaults are the MAML paper's 2D-navigation setting (TRPO outer loop)."""

    name: Literal["maml"] = "maml"
    inner: InnerLoopConfig = Field(default_factory=InnerLoopConfig)
    outer: Literal["trpo", "ppo", "adam"] = Field(
        "trpo", description="outer update: trpo (the paper), ppo (clipped surrogate, Adam) or "
        "adam (one Adam step of size adam_lr on the outer policy-gradient loss per iteration)")
    adam_lr: float = Field(
        1e-3, gt=0, description="Adam step size when outer = adam (rllab's FirstOrderOptimizer "
        "default, which the MAML reference code trains its pretrained baseline with)")
    trpo: TRPOConfig = Field(default_factory=TRPOConfig)
    ppo: PPOConfig = Field(
        default_factory=lambda: PPOConfig(entropy_coef=0.0),
        description="used when outer = ppo; value_coef is unused (the advantages come from "
                    "the per-task linear baseline, there is no value network)")


class MAML(PolicyLearner):
    """MAML with a policy-gradient inner loop and a TRPO (or PPO) outer loop.

    ``learned_step_size``: if given, the inner step size is a learned per-parameter
    ``alpha`` starting at that value (Meta-SGD), meta-learned with theta.
    ``gradient_transform``: ``"kronecker"`` puts a learned linear map of the gradient
    before ``alpha`` (Meta-Curvature; needs ``learned_step_size``); it is part of the
    learned step size, so it is meta-learned, checkpointed and evaluated with ``alpha``.
    """

    def __init__(self, family: TaskFamily, config: MAMLConfig, generator: torch.Generator,
                 device: torch.device, learned_step_size: float | None = None,
                 gradient_transform: GradientTransformName = "none") -> None:
        self.family, self.config, self.generator, self.device = family, config, generator, device
        self.policy = config.policy.build(family.observation_space, family.action_space).to(device)
        self.adapter = PolicyGradientAdapter(self.policy, config.gamma, config.gae_lambda,
                                             config.normalize_advantages)
        self.inner = InnerLoop(family, self.policy, self.adapter, config.episodes_per_task,
                               generator, device, config.batch_unit)
        self.step_size: PerParameterStepSize | None = None
        transform = make_gradient_transform(gradient_transform, named_params(self.policy))
        if transform is not None and learned_step_size is None:
            raise ValueError("gradient_transform needs a learned step size (learned_step_size, "
                             f"i.e. algorithm metasgd); got {gradient_transform!r} without one")
        if learned_step_size is not None:
            self.step_size = PerParameterStepSize(named_params(self.policy), learned_step_size,
                                                  transform).to(device)
        self.optimizer: torch.optim.Optimizer | None = None
        if config.outer == "ppo":
            self.optimizer = make_optimizer(self.meta_parameters(), config.ppo)
        elif config.outer == "adam":
            self.optimizer = torch.optim.Adam(self.meta_parameters(), lr=config.adam_lr)
        self.env_steps = 0

    def meta_parameters(self) -> list[nn.Parameter]:
        """What the outer loop updates: theta, and alpha when the step size is learned."""
        extra = list(self.step_size.parameters()) if self.step_size is not None else []
        return list(self.policy.parameters()) + extra

    @property
    def inner_lr(self) -> StepSize:  # type: ignore[override]
        """The inner step size: ``inner.lr``, or the learned ``alpha`` (with its graph)."""
        return self.config.inner.lr if self.step_size is None else self.step_size()

    # -- the inner loop --------------------------------------------------------------
    def _adapt(self, params: Params, supports: list[Support], differentiable: bool) -> Params:
        """``phi(params)``: the inner steps on the recorded support episodes."""
        return self.inner.adapt(params, supports, self.inner_lr,
                                first_order=self.config.inner.first_order,
                                differentiable=differentiable)

    # -- the outer loop --------------------------------------------------------------
    def meta_update(self, tasks: Tasks) -> dict[str, float]:
        cfg = self.config
        episodes = self.inner.sample(tasks, named_params(self.policy), cfg.inner.steps,
                                     self.inner_lr, differentiable=cfg.outer != "ppo",
                                     first_order=cfg.inner.first_order)
        self.env_steps += episodes.num_steps
        supports, query = episodes.supports, episodes.query
        assert query is not None
        q_adv = advantages(query, cfg.gamma, cfg.gae_lambda, cfg.normalize_advantages)
        pre = supports[0][0] if supports else query
        metrics = {"return_pre": float(pre.task_returns().mean()),
                   "return_post": float(query.task_returns().mean())}
        if self.step_size is not None:
            metrics.update(self.step_size.summary())
        if cfg.outer == "ppo":
            info = self._ppo_step(supports, query, q_adv)
            return {**metrics, **{f"ppo/{k}": v for k, v in info.items()}}
        # the outer loss at theta_old reuses the graphs of the inner steps taken while
        # sampling, and its forward pass gives pi_old
        assert episodes.adapted is not None
        dist = trajectory_distribution(self.policy, query, episodes.adapted)
        loss = importance_loss(dist, query, q_adv).mean()
        if cfg.outer == "adam":
            return {**metrics, **self._adam_step(loss)}
        info = self._trpo_step(episodes, q_adv, dist, loss)
        return {**metrics, **{f"trpo/{k}": v for k, v in info.items()}}

    def _trpo_step(self, episodes: Episodes, q_adv: torch.Tensor, dist: Distribution,
                   loss: torch.Tensor) -> dict[str, float]:
        """TRPO on the outer surrogate through the inner loop; ``dist`` and ``loss`` are the
        query's policy and surrogate at theta_old (``dist`` gives pi_old)."""
        supports, query = episodes.supports, episodes.query
        assert query is not None and episodes.adapted is not None
        old_dist = detached(dist)

        def surrogate(differentiable: bool) -> tuple[torch.Tensor, torch.Tensor]:
            with torch.enable_grad():
                phi = self._adapt(named_params(self.policy), supports, differentiable)
            with torch.set_grad_enabled(differentiable):
                dist = trajectory_distribution(self.policy, query, phi)
                loss = importance_loss(dist, query, q_adv).mean()
                kl = mean_kl(old_dist, dist, query.masks).mean()
            return loss, kl

        # the pulled-back metric J^T F J covers theta; with a learned alpha (and transform)
        # the metric is the Hessian of a KL through the inner step w.r.t. all of them,
        # taken by trpo_step, on the same episode subsample
        cfg = self.config
        if self.step_size is None:
            metric = self._metric(supports, episodes.starts, episodes.jacobians, query,
                                  detach_params(episodes.adapted), old_dist)
            return trpo_step(self.meta_parameters(), surrogate, cfg.trpo, loss=loss,
                             fisher_product=metric)
        return trpo_step(self.meta_parameters(), surrogate, cfg.trpo, loss=loss,
                         fisher_kl=lambda: self._subsample_kl(supports, query))

    def _ppo_step(self, supports: list[Support], query: Trajectories,
                  q_adv: torch.Tensor) -> dict[str, float]:
        """PPO epochs on the query episodes; every minibatch of tasks re-adapts from theta."""
        def evaluate(rows: torch.Tensor) -> tuple[Any, torch.Tensor]:
            sub = [(traj.select_tasks(rows), adv[:, rows]) for traj, adv in supports]
            phi = self._adapt(named_params(self.policy), sub, differentiable=True)
            batch = query.select_tasks(rows)
            values = torch.zeros_like(batch.rewards)
            return trajectory_distribution(self.policy, batch, phi), values

        assert self.optimizer is not None
        no_values = torch.zeros_like(q_adv)  # no value network: the value loss is 0
        return ppo_update(self.meta_parameters(), self.optimizer, query, q_adv, no_values,
                          evaluate, self.config.ppo, self.generator)

    def _adam_step(self, loss: torch.Tensor) -> dict[str, float]:
        """``outer = adam``: one Adam step on the outer loss, the mean over tasks of the
        per-task policy-gradient surrogate at ``theta_old`` (its gradient is the
        (meta-)policy gradient). With no inner step this is the MAML reference code's
        *pretrained* baseline (``use_maml=False``: rllab's FirstOrderOptimizer, one Adam
        step of 1e-3 per iteration on the multi-task VPG loss)."""
        assert self.optimizer is not None
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.get_total_norm(
            [p.grad for p in self.meta_parameters() if p.grad is not None])
        self.optimizer.step()
        return {"adam/loss": float(loss.detach()), "adam/grad_norm": float(grad_norm)}

    def _metric_episodes(self) -> slice | None:
        """The episodes (the first ``m`` of every task) the TRPO metric is estimated on,
        ``None`` for all of them (``trpo.fisher_fraction``)."""
        e = self.config.episodes_per_task
        m = max(1, round(self.config.trpo.fisher_fraction * e))
        return slice(0, m) if m < e else None

    def _metric_data(self, supports: list[Support], query: Trajectories
                     ) -> tuple[list[Support], Trajectories, bool]:
        """The support and query episodes the metric is estimated on, and whether they are
        a subsample (the first ``m`` episodes of every task)."""
        sub = self._metric_episodes()
        if sub is None:
            return supports, query, False
        return ([(traj.select_episodes(sub), adv[:, :, sub]) for traj, adv in supports],
                query.select_episodes(sub), True)

    def _subsample_kl(self, supports: list[Support], query: Trajectories) -> torch.Tensor:
        """A KL whose Hessian at the current meta-parameters is the TRPO metric through the
        inner loop, for learned step sizes: the inner steps replayed on the metric's support
        episodes, ``KL(pi_phi_old || pi_phi)`` on its query episodes, minimal (zero, with a
        zero gradient) at the current point as a trust-region metric must be."""
        supports, query, _ = self._metric_data(supports, query)
        with torch.enable_grad():
            phi = self._adapt(named_params(self.policy), supports, differentiable=True)
            dist = trajectory_distribution(self.policy, query, phi)
            return mean_kl(detached(dist), dist, query.masks).mean()

    def _metric(self, supports: list[Support], points: list[Params],
                jacobians: list[StepJacobian], query: Trajectories, phi_old: Params,
                old_dist: Distribution) -> Callable[[torch.Tensor], torch.Tensor]:
        """The TRPO metric: the Hessian of the mean KL through the inner loop, at theta_old.

        Exactly ``J^T F J`` (:func:`adaptrl.optim.fisher.pullback_metric`): ``F`` is the
        Fisher of the adapted policies on the query episodes, ``J`` the inner steps'
        Jacobians (identity for first-order MAML). With ``trpo.fisher_fraction < 1`` both
        are estimated on the first ``m`` episodes of every task (a uniform subsample, as
        episodes are i.i.d.): the inner-loss Hessians on the support subsets, taken at the
        same points as the full inner steps, and ``F`` on the query subset at ``phi_old``.
        """
        cfg = self.config
        supports, query, subsampled = self._metric_data(supports, query)
        if subsampled:
            jacobians = [
                self.adapter.step_with_jacobian(start, traj, adv, cfg.inner.lr,
                                                first_order=cfg.inner.first_order)[1]
                for start, (traj, adv) in zip(points, supports)]
            with torch.no_grad():
                old_dist = trajectory_distribution(self.policy, query, phi_old)
        leaf = {k: v.detach().requires_grad_(True) for k, v in phi_old.items()}
        with torch.enable_grad():
            kl = mean_kl(old_dist, trajectory_distribution(self.policy, query, leaf),
                         query.masks)
            fisher = KLHessian(kl.mean(), leaf)
        theta = named_params(self.policy)
        product = pullback_metric(fisher, jacobians, query.num_tasks if supports else None)
        return flat_product(product, theta)

    # -- evaluation and checkpoints ---------------------------------------------------
    def agent(self, step_sizes: list[float] | None = None) -> GradientAgent:
        """The evaluated agent; a learned step size is used as learned (the evaluation's
        ``step_sizes`` schedule applies only to a fixed step size)."""
        if self.step_size is None:
            return super().agent(step_sizes)
        return GradientAgent(self.policy, named_params(self.policy), self.adapter,
                             [self.step_size.detached()])

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.step_size is not None:
            state["step_size"] = self.step_size.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if self.step_size is not None:
            self.step_size.load_state_dict(state["step_size"])

register_algorithm("maml", MAMLConfig, MAML,
                   "MAML (Finn et al. 2017): VPG inner loop, TRPO or PPO outer loop, "
                   "1st/2nd order", unit=AdaptationUnit.GRADIENT_STEPS,
                   baselines=GRADIENT_FAMILY_BASELINES)
