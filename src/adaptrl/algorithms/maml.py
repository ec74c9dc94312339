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
episodes, so the PPO gradient is a meta-gradient too.

The inner update is a composition (:mod:`adaptrl.adaptation`): the REINFORCE objective
descended by an inner optimizer, SGD(``inner.lr``) here. Meta-SGD and Meta-Curvature are
this learner with a learned inner optimizer (``algorithms/metasgd.py``), whose
meta-parameters join theta in the outer update. Sampling and the inner steps are the
family's shared ones (:class:`adaptrl.algorithms.common.InnerLoop`), TRPO through the
inner loop is :class:`adaptrl.optim.meta_trpo.MetaTRPO`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from torch import nn

from adaptrl.adaptation.inner_optimizers import SGD, Adam, InnerOptimizer, StepJacobian
from adaptrl.adaptation.learned_optimizer import LearnedOptimizerConfig, learned_inner_optimizer
from adaptrl.agents.contract import AdaptationUnit
from adaptrl.algorithms.common import (
    GRADIENT_FAMILY_BASELINES,
    Episodes,
    GradientFamilyConfig,
    InnerLoop,
    PolicyLearner,
    make_inner_update,
)
from adaptrl.algorithms.registry import register_algorithm
from adaptrl.models.functional import Params, detach_params, named_params
from adaptrl.optim.meta_trpo import InnerJacobians, MetaTRPO
from adaptrl.optim.ppo import PPOConfig, make_optimizer, ppo_update
from adaptrl.optim.trpo import TRPOConfig
from adaptrl.rollouts.baselines import advantages
from adaptrl.rollouts.losses import importance_loss
from adaptrl.rollouts.sampler import trajectory_distribution
from adaptrl.rollouts.trajectories import Trajectories
from adaptrl.schema import ConfigModel
from adaptrl.tasks.base import TaskFamily, Tasks

Support = tuple[Trajectories, torch.Tensor]
"""Support episodes of one inner step and their advantages."""

InnerOptimizerFactory = Callable[[Params], InnerOptimizer]
"""``policy parameters -> inner optimizer`` (a learned one takes their shapes)."""

Beta = Annotated[float, Field(ge=0, lt=1)]
"""An Adam decay rate."""


class InnerLoopConfig(ConfigModel):
    """The inner (adaptation) loop used during meta-training."""

    steps: int = Field(1, ge=0, description="inner gradient steps (0 = no adaptation)")
    lr: float = Field(0.1, gt=0, description="inner step size alpha")
    first_order: bool = Field(False, description="drop second-order terms (FOMAML)")
    optimizer: Literal["sgd", "adam", "learned"] = Field(
        "sgd", description="inner optimizer: sgd (MAML's step) or adam (per-task moments, "
                           "step size lr; Kingma & Ba 2015), or learned (a coordinate-wise "
                           "learned optimizer meta-learned with theta by the outer step: "
                           "adaptation/learned_optimizer.py, settings in `learned`)")
    adam_betas: tuple[Beta, Beta] = Field(
        (0.9, 0.999), description="Adam's (beta1, beta2) when optimizer = adam")
    learned: LearnedOptimizerConfig = Field(
        default_factory=LearnedOptimizerConfig,
        description="the learned optimizer when optimizer = learned (its lr: the initial "
                    "base step; its progress input counts to `steps`)")


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


def hand_set(inner: InnerLoopConfig) -> SGD | Adam:
    """The inner optimizer ``inner`` names: SGD (Finn et al. 2017, eq. 1) or Adam (Kingma &
    Ba 2015, Algorithm 1), with step size ``inner.lr``."""
    if inner.optimizer == "adam":
        return Adam(inner.lr, inner.adam_betas)
    return SGD(inner.lr)


class MAML(PolicyLearner):
    """MAML: REINFORCE descended by an inner optimizer, and a TRPO, PPO or Adam outer step.

    ``inner_optimizer`` builds the inner optimizer for the policy's parameters; by default
    SGD with step size ``inner.lr`` (MAML; FOMAML with ``inner.first_order``). A learned
    one (Meta-SGD, Meta-Curvature) is meta-learned, checkpointed and evaluated with theta.
    """

    def __init__(self, family: TaskFamily, config: MAMLConfig, generator: torch.Generator,
                 device: torch.device, inner_optimizer: InnerOptimizerFactory | None = None
                 ) -> None:
        self.family, self.config, self.generator, self.device = family, config, generator, device
        self.policy = config.policy.build(family.observation_space, family.action_space).to(device)
        params = named_params(self.policy)
        if inner_optimizer is None and config.inner.optimizer == "learned":
            inner_optimizer = learned_inner_optimizer(config.inner.learned, config.inner.steps)
        optimizer = inner_optimizer(params) if inner_optimizer else hand_set(config.inner)
        self.update = make_inner_update(self.policy, config, optimizer)
        self.inner = InnerLoop(family, self.update, config.episodes_per_task, generator, device,
                               config.batch_unit)
        self.trpo = MetaTRPO(self.policy, config.trpo, config.episodes_per_task)
        self.optimizer: torch.optim.Optimizer | None = None
        if config.outer == "ppo":
            self.optimizer = make_optimizer(self.meta_parameters(), config.ppo)
        elif config.outer == "adam":
            self.optimizer = torch.optim.Adam(self.meta_parameters(), lr=config.adam_lr)
        self.env_steps = 0

    def meta_parameters(self) -> list[nn.Parameter]:
        """What the outer loop updates: theta, and the inner optimizer's meta-parameters."""
        return list(self.policy.parameters()) + self.update.optimizer.meta_parameters()

    def replay(self, supports: list[Support], differentiable: bool) -> Params:
        """``phi(theta)`` at the current meta-parameters: the inner steps on ``supports``."""
        return self.inner.adapt(named_params(self.policy), supports,
                                first_order=self.config.inner.first_order,
                                differentiable=differentiable)

    # -- Algorithm 3 ------------------------------------------------------------------
    def meta_update(self, tasks: Tasks) -> dict[str, float]:
        cfg = self.config
        episodes = self.inner.sample(tasks, named_params(self.policy), cfg.inner.steps,
                                     differentiable=cfg.outer != "ppo",
                                     first_order=cfg.inner.first_order)
        self.env_steps += episodes.num_steps
        supports, query = episodes.supports, episodes.query
        assert query is not None
        q_adv = advantages(query, cfg.gamma, cfg.gae_lambda, cfg.normalize_advantages)
        pre = supports[0][0] if supports else query
        metrics = {"return_pre": float(pre.task_returns().mean()),
                   "return_post": float(query.task_returns().mean()),
                   **self.update.optimizer.summary()}
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
        info = self.trpo.step(self.meta_parameters(), self.replay, supports, query, q_adv, dist,
                              loss, detach_params(episodes.adapted), self._jacobians(episodes))
        return {**metrics, **{f"trpo/{k}": v for k, v in info.items()}}

    # -- outer steps ------------------------------------------------------------------
    def _jacobians(self, episodes: Episodes) -> InnerJacobians | None:
        """The inner steps' Jacobians for TRPO's cheap pulled-back metric ``J^T F J``, which
        covers theta alone: offered when the inner optimizer has them and no meta-parameters
        of its own (else TRPO takes the KL Hessian through the inner loop by autograd)."""
        if self.update.optimizer.meta_parameters() or episodes.jacobians is None:
            return None
        first_order = self.config.inner.first_order

        def jacobians(supports: list[Support] | None) -> list[StepJacobian]:
            return self.inner.jacobians(episodes, supports, first_order=first_order)
        return jacobians

    def _ppo_step(self, supports: list[Support], query: Trajectories,
                  q_adv: torch.Tensor) -> dict[str, float]:
        """PPO epochs on the query episodes; every minibatch of tasks re-adapts from theta."""
        def evaluate(rows: torch.Tensor) -> tuple[Any, torch.Tensor]:
            sub = [(traj.select_tasks(rows), adv[:, rows]) for traj, adv in supports]
            phi = self.replay(sub, differentiable=True)
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

    # -- checkpoints --------------------------------------------------------------------
    def _learned(self) -> nn.Module | None:
        """The inner optimizer when it is meta-learned (its state is checkpointed)."""
        optimizer = self.update.optimizer
        return optimizer if isinstance(optimizer, nn.Module) else None

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        learned = self._learned()
        if learned is not None:  # under the key of the first learned optimizer, Meta-SGD's
            state["step_size"] = learned.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        learned = self._learned()
        if learned is not None:
            learned.load_state_dict(state["step_size"])

register_algorithm("maml", MAMLConfig, MAML,
                   "MAML (Finn et al. 2017): VPG inner loop, TRPO or PPO outer loop, "
                   "1st/2nd order", unit=AdaptationUnit.GRADIENT_STEPS,
                   baselines=GRADIENT_FAMILY_BASELINES)
