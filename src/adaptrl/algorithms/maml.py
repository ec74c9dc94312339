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
"""

from __future__ import annotations

from typing import Any, Callable, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from adaptrl.adaptation.policy_gradient import PolicyGradientAdapter
from adaptrl.algorithms.base import GradientAgent
from adaptrl.algorithms.registry import register_algorithm
from adaptrl.models.functional import Params, detach_params, named_params
from adaptrl.models.policies import PolicyConfig
from adaptrl.optim.trpo import TRPOConfig, trpo_step
from adaptrl.rollouts.baselines import advantages
from adaptrl.rollouts.losses import importance_loss, mean_kl
from adaptrl.rollouts.sampler import rollout, trajectory_distribution
from adaptrl.rollouts.trajectories import Trajectories
from adaptrl.tasks.base import TaskFamily, Tasks


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
    def _adapt(self, params: Params, supports: list[tuple[Trajectories, torch.Tensor]],
               differentiable: bool) -> Params:
        inner = self.config.inner
        for traj, adv in supports:
            params = self.adapter.step(params, traj, adv, inner.lr,
                                       first_order=inner.first_order or not differentiable,
                                       create_graph=differentiable)
        return params

    def _sample(self, tasks: Tasks) -> tuple[list[tuple[Trajectories, torch.Tensor]],
                                              Trajectories, Params]:
        """Support episodes for each inner step, then query episodes from the adapted policy."""
        env = self.family.make_env(tasks, self.config.episodes_per_task, self.device)
        phi = detach_params(named_params(self.policy))
        supports = []
        for _ in range(self.config.inner.steps):
            traj = rollout(env, self.policy, phi, self.generator)
            adv = self.adapter.advantages(traj)
            supports.append((traj, adv))
            phi = detach_params(self._adapt(phi, [(traj, adv)], differentiable=False))
        query = rollout(env, self.policy, phi, self.generator)
        self.env_steps += query.num_steps + sum(t.num_steps for t, _ in supports)
        return supports, query, phi

    # -- the outer loop --------------------------------------------------------------
    def meta_update(self, tasks: Tasks) -> dict[str, float]:
        cfg = self.config
        supports, query, phi_old = self._sample(tasks)
        q_adv = advantages(query, cfg.gamma, cfg.gae_lambda, cfg.normalize_advantages)
        with torch.no_grad():
            old_dist = trajectory_distribution(self.policy, query, phi_old)

        def surrogate(differentiable: bool) -> tuple[torch.Tensor, torch.Tensor]:
            with torch.enable_grad():
                phi = self._adapt(named_params(self.policy), supports, differentiable)
            if not differentiable:
                phi = detach_params(phi)
            dist = trajectory_distribution(self.policy, query, phi)
            loss = importance_loss(dist, query, q_adv).mean()
            kl = mean_kl(old_dist, dist, query.masks).mean()
            return loss, kl

        fisher_kl = None
        m = max(1, round(cfg.trpo.fisher_fraction * cfg.episodes_per_task))
        if m < cfg.episodes_per_task:
            fisher_kl = self._subsampled_kl(supports, query, slice(0, m))
        info = trpo_step(list(self.policy.parameters()), surrogate, cfg.trpo, fisher_kl)
        pre = supports[0][0] if supports else query
        return {"return_pre": float(pre.task_returns().mean()),
                "return_post": float(query.task_returns().mean()),
                **{f"trpo/{k}": v for k, v in info.items()}}

    def _subsampled_kl(self, supports: list[tuple[Trajectories, torch.Tensor]],
                       query: Trajectories, episodes: slice) -> Callable[[], torch.Tensor]:
        """The KL through the inner loop on a subset of every task's episodes.

        Episodes are i.i.d., so the first ``m`` of each task are a uniform subsample. Its
        Hessian at the current parameters is the TRPO metric ``J^T F J`` estimated on the
        subset (``J`` = Jacobian of the inner update, ``F`` = Fisher of the adapted policy).
        """
        sub_supports = [(t.select_episodes(episodes), a[:, :, episodes]) for t, a in supports]
        sub_query = query.select_episodes(episodes)

        def kl() -> torch.Tensor:
            phi = self._adapt(named_params(self.policy), sub_supports, differentiable=True)
            dist = trajectory_distribution(self.policy, sub_query, phi)
            old = trajectory_distribution(self.policy, sub_query, detach_params(phi))
            return mean_kl(old, dist, sub_query.masks).mean()

        return kl

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
