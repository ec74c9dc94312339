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
"""

from __future__ import annotations

from typing import Any, Callable, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch.distributions import Distribution

from adaptrl.adaptation.policy_gradient import PolicyGradientAdapter
from adaptrl.adaptation.sgd import StepJacobian
from adaptrl.algorithms.base import GradientAgent
from adaptrl.algorithms.registry import register_algorithm
from adaptrl.models.functional import Params, detach_params, named_params
from adaptrl.models.policies import PolicyConfig
from adaptrl.optim.fisher import KLHessian, flat_product, pullback_metric
from adaptrl.optim.trpo import TRPOConfig, trpo_step
from adaptrl.rollouts.baselines import advantages
from adaptrl.rollouts.losses import importance_loss, mean_kl
from adaptrl.rollouts.sampler import rollout, trajectory_distribution
from adaptrl.rollouts.trajectories import Trajectories
from adaptrl.tasks.base import BatchedEnv, TaskFamily, Tasks

Support = tuple[Trajectories, torch.Tensor]
"""Support episodes of one inner step and their advantages."""


class InnerLoopConfig(BaseModel):
    """The inner (adaptation) loop used during meta-training."""

    model_config = ConfigDict(extra="forbid")
    steps: int = Field(1, ge=0, description="inner gradient steps (0 = no adaptation)")
    lr: float = Field(0.1, gt=0, description="inner step size alpha")
    first_order: bool = Field(False, description="drop second-order terms (FOMAML)")


class MAMLConfig(BaseModel):
    """MAML-TRPO settings; defaults are the MAML paper's 2D-navigation setting."""

    model_config = ConfigDict(extra="forbid")
    name: Literal["maml"] = "maml"
    meta_batch_size: int = Field(20, ge=1, description="tasks per meta-iteration")
    episodes_per_task: int = Field(20, ge=1, description="episodes per task per update")
    gamma: float = Field(0.99, gt=0, le=1, description="discount")
    gae_lambda: float = Field(1.0, ge=0, le=1, description="GAE lambda")
    normalize_advantages: bool = True
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    inner: InnerLoopConfig = Field(default_factory=InnerLoopConfig)
    trpo: TRPOConfig = Field(default_factory=TRPOConfig)


class MAML:
    """MAML with a policy-gradient inner loop and a TRPO outer loop."""

    def __init__(self, family: TaskFamily, config: MAMLConfig, generator: torch.Generator,
                 device: torch.device) -> None:
        self.family, self.config, self.generator, self.device = family, config, generator, device
        self.policy = config.policy.build(family.observation_space, family.action_space).to(device)
        self.adapter = PolicyGradientAdapter(self.policy, config.gamma, config.gae_lambda,
                                             config.normalize_advantages)
        self.env_steps = 0

    # -- the inner loop --------------------------------------------------------------
    def _adapt(self, params: Params, supports: list[Support], differentiable: bool) -> Params:
        """``phi(params)``: the inner steps on the recorded support episodes."""
        inner = self.config.inner
        for traj, adv in supports:
            params = self.adapter.step(params, traj, adv, inner.lr,
                                       first_order=inner.first_order or not differentiable,
                                       create_graph=differentiable)
        return params

    def _sample_and_adapt(self, env: BatchedEnv) -> tuple[list[Support], Params, list[Params],
                                                          list[StepJacobian], Trajectories]:
        """Algorithm 3's sampling: support episodes with the current adapted policy, one
        inner step on them, ..., then query episodes with the final adapted policy.

        The inner steps are taken *differentiably* (graphs kept, unless first-order) as
        the episodes come in, so the outer loss reuses them instead of adapting again.
        Returns the supports, ``phi(theta)`` with its graph, the points each inner step
        started from (detached), the steps' Jacobians and the query episodes.
        """
        inner = self.config.inner
        phi = named_params(self.policy)
        supports: list[Support] = []
        points: list[Params] = []
        jacobians: list[StepJacobian] = []
        for _ in range(inner.steps):
            start = detach_params(phi)
            traj = rollout(env, self.policy, start, self.generator)
            adv = self.adapter.advantages(traj)
            phi, jac = self.adapter.step_with_jacobian(phi, traj, adv, inner.lr,
                                                       first_order=inner.first_order)
            supports.append((traj, adv))
            points.append(start)
            jacobians.append(jac)
        query = rollout(env, self.policy, detach_params(phi), self.generator)
        self.env_steps += query.num_steps + sum(t.num_steps for t, _ in supports)
        return supports, phi, points, jacobians, query

    # -- the outer loop --------------------------------------------------------------
    def meta_update(self, tasks: Tasks) -> dict[str, float]:
        cfg = self.config
        env = self.family.make_env(tasks, cfg.episodes_per_task, self.device)
        supports, phi, points, jacobians, query = self._sample_and_adapt(env)
        q_adv = advantages(query, cfg.gamma, cfg.gae_lambda, cfg.normalize_advantages)
        phi_old = detach_params(phi)
        with torch.no_grad():
            old_dist = trajectory_distribution(self.policy, query, phi_old)

        def surrogate(differentiable: bool) -> tuple[torch.Tensor, torch.Tensor]:
            with torch.enable_grad():
                phi = self._adapt(named_params(self.policy), supports, differentiable)
            with torch.set_grad_enabled(differentiable):
                dist = trajectory_distribution(self.policy, query, phi)
                loss = importance_loss(dist, query, q_adv).mean()
                kl = mean_kl(old_dist, dist, query.masks).mean()
            return loss, kl

        # the outer loss at theta_old reuses the graphs of the inner steps taken while sampling
        loss = importance_loss(trajectory_distribution(self.policy, query, phi), query,
                               q_adv).mean()
        metric = self._metric(supports, points, jacobians, query, phi_old, old_dist)
        info = trpo_step(list(self.policy.parameters()), surrogate, cfg.trpo,
                         fisher_product=metric, loss=loss)
        pre = supports[0][0] if supports else query
        return {"return_pre": float(pre.task_returns().mean()),
                "return_post": float(query.task_returns().mean()),
                **{f"trpo/{k}": v for k, v in info.items()}}

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
        e = cfg.episodes_per_task
        m = max(1, round(cfg.trpo.fisher_fraction * e))
        if m < e:
            sub = slice(0, m)
            query = query.select_episodes(sub)
            jacobians = [
                self.adapter.step_with_jacobian(start, traj.select_episodes(sub), adv[:, :, sub],
                                                cfg.inner.lr, first_order=cfg.inner.first_order)[1]
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
        sizes: list[Any] = list(step_sizes) if step_sizes else [self.config.inner.lr]
        return GradientAgent(self.policy, named_params(self.policy), self.adapter, sizes)

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "env_steps": self.env_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.env_steps = int(state["env_steps"])


register_algorithm("maml", MAMLConfig, MAML,
                   "MAML (Finn et al. 2017): VPG inner loop, TRPO outer loop, 1st/2nd order")
