"""The skeleton every gradient-based meta-learner shares: sample support episodes, adapt.

MAML, first-order MAML, Meta-SGD, Reptile and model aggregation all run the same inner
loop and differ only in their outer update:

    phi_i^0 = theta                                       (shared initialisation)
    for k in 0..K-1:
        D_i^k ~ pi_{phi_i^k}        on task i             (support episodes)
        phi_i^{k+1} = U(phi_i^k; D_i^k)                   (inner update, e.g. one VPG step)
    [D'_i ~ pi_{phi_i^K}]                                 (query episodes, if the outer rule
                                                           needs them: MAML, Meta-SGD)

:class:`InnerLoop` does exactly this for all tasks at once (per-task parameters carry a
leading task dimension; no Python loop over tasks), either detached (Reptile,
aggregation) or differentiably while sampling (MAML, Meta-SGD: the graph from ``theta``
and the step size to ``phi^K`` is kept for the outer loss), and can replay the inner
updates on the stored support episodes from new parameters (TRPO's line search, PPO's
minibatches). The inner update ``U`` is an :class:`adaptrl.adaptation.InnerUpdate`: an
inner objective (REINFORCE, MAML's; or PPO's clipped surrogate) descended by an inner
optimizer (SGD; Meta-SGD's learned ``alpha``; Meta-Curvature's learned transform; Adam),
whose per-task state the loop carries from one inner step to the next.

The shared config fields (batch sizes, discounting, the policy) live in
:class:`GradientFamilyConfig`, so that the *pretrained* baseline and ``init_from`` work
the same for every member of the family.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from pydantic import Field

from adaptrl.adaptation.inner_optimizers import (
    SGD,
    InnerOptimizer,
    InnerState,
    ScheduledStep,
    StepJacobian,
)
from adaptrl.adaptation.inner_update import InnerUpdate
from adaptrl.adaptation.objectives import (
    AdvantageEstimator,
    ClippedPolicyGradientObjective,
    InnerObjective,
    PolicyGradientObjective,
)
from adaptrl.algorithms.base import AlgorithmConfig, GradientAgent
from adaptrl.models.functional import Params, detach_params, named_params
from adaptrl.models.policies import MLPPolicy, PolicyConfig
from adaptrl.optim.averaging import set_pseudo_gradient
from adaptrl.optim.ppo import load_optimizer_state, optimizer_state
from adaptrl.rollouts.sampler import BatchSampler, BatchUnit
from adaptrl.rollouts.trajectories import Trajectories
from adaptrl.schema import ConfigModel
from adaptrl.tasks.base import TaskFamily, Tasks

GRADIENT_FAMILY_BASELINES = ("pretrained", "pretrained_adam", "aggregation", "scratch")
"""The baselines every gradient-based meta-learner admits (:mod:`adaptrl.algorithms.baselines`)."""


class GradientFamilyConfig(AlgorithmConfig):
    """Fields every gradient-based meta-learner has (defaults: the MAML paper's navigation)."""

    episodes_per_task: int = Field(20, ge=1, description="episodes per task per update")
    batch_unit: BatchUnit = Field(
        "episodes", description="episodes: exactly episodes_per_task episodes per batch; "
        "steps: whole episodes up to episodes_per_task x horizon steps (rllab's batch_size, "
        "the MAML reference code: early-ending episodes give more of them); finished_steps: "
        "episodes_per_task workers until their finished episodes hold that many steps, the "
        "running ones dropped (rllab's VectorizedSampler)")
    gamma: float = Field(0.99, gt=0, le=1, description="discount")
    gae_lambda: float = Field(1.0, ge=0, le=1, description="GAE lambda")
    normalize_advantages: bool = True
    policy: PolicyConfig = Field(default_factory=PolicyConfig)


class TaskTrainingConfig(ConfigModel):
    """Per-task training from the shared initialisation (the inner loop of Reptile and
    model aggregation): ``steps`` updates, each on fresh episodes from the current policy."""

    steps: int = Field(3, ge=1, description="inner updates per task (Reptile's k)")
    lr: float = Field(0.1, gt=0, description="inner SGD step size alpha")
    rule: Literal["vpg", "ppo"] = Field(
        "vpg", description="vpg: one REINFORCE step per batch (MAML's inner step); "
                           "ppo: `epochs` SGD steps on the clipped surrogate per batch")
    epochs: int = Field(4, ge=1, description="SGD steps per batch when rule = ppo")
    clip: float = Field(0.2, gt=0, lt=1, description="PPO clip range when rule = ppo")


class AveragingConfig(GradientFamilyConfig):
    """Learners whose outer step moves theta toward a weighted mean of per-task policies
    (Reptile, model aggregation): per-task training, then the outer step."""

    inner: TaskTrainingConfig = Field(default_factory=TaskTrainingConfig)
    outer_optimizer: Literal["sgd", "adam"] = Field(
        "sgd", description="sgd: theta += eps (sum_i w_i phi_i - theta); "
                           "adam: Adam on the pseudo-gradient theta - sum_i w_i phi_i")
    outer_lr: float | None = Field(
        None, gt=0, description="outer step size eps (default: 1.0 for sgd, 1e-3 for adam)")

    def outer_step_size(self) -> float:
        if self.outer_lr is not None:
            return self.outer_lr
        return 1.0 if self.outer_optimizer == "sgd" else 1e-3


def make_inner_update(policy: MLPPolicy, config: GradientFamilyConfig,
                      optimizer: InnerOptimizer,
                      training: TaskTrainingConfig | None = None) -> InnerUpdate:
    """The inner update of the family: ``optimizer`` on MAML's REINFORCE loss (one step per
    support batch), or on PPO's clipped surrogate for ``training.epochs`` steps per batch
    if ``training`` asks for ``rule: ppo`` (Reptile, aggregation)."""
    estimator = AdvantageEstimator(config.gamma, config.gae_lambda, config.normalize_advantages)
    if training is not None and training.rule == "ppo":
        clipped = ClippedPolicyGradientObjective(policy, estimator, training.clip)
        return InnerUpdate(clipped, optimizer, training.epochs)
    objective: InnerObjective = PolicyGradientObjective(policy, estimator)
    return InnerUpdate(objective, optimizer)


@dataclass(frozen=True)
class Episodes:
    """What one pass of the inner loop sampled for a batch of tasks.

    ``supports[k] = (D^k, A^k)``: the support episodes of inner step ``k`` and the inner
    objective's data for them (advantages); ``query``: episodes of the fully adapted policy
    (``None`` if not asked for); ``params``: the adapted per-task parameters ``phi^K``
    (detached, ``[tasks, ...]``); ``starts[k]`` and ``states[k]``: the (detached) point and
    optimizer state inner step ``k`` started from. When sampled ``differentiable``:
    ``adapted`` is ``phi^K`` *with* its graph back to the initial parameters (and the inner
    optimizer's meta-parameters) and ``jacobians`` the inner steps' Jacobians in order (for
    the TRPO metric; ``None`` if the inner optimizer has no cheap one).
    """

    supports: list[tuple[Trajectories, torch.Tensor]]
    query: Trajectories | None
    params: Params
    adapted: Params | None = None
    starts: list[Params] = field(default_factory=list)
    states: list[InnerState] = field(default_factory=list)
    jacobians: list[StepJacobian] | None = field(default_factory=list)

    @property
    def num_steps(self) -> int:
        """Environment steps taken to sample all of it."""
        steps = sum(t.num_steps for t, _ in self.supports)
        return steps + (self.query.num_steps if self.query is not None else 0)

    def returns(self) -> list[float]:
        """Mean episode return of every batch, in order (supports, then the query)."""
        batches = [t for t, _ in self.supports] + ([self.query] if self.query else [])
        return [float(t.task_returns().mean()) for t in batches]


class InnerLoop:
    """Support/query sampling and the inner update, batched over tasks."""

    def __init__(self, family: TaskFamily, update: InnerUpdate, episodes_per_task: int,
                 generator: torch.Generator, device: torch.device,
                 batch_unit: BatchUnit = "episodes") -> None:
        self.family, self.update, self.policy = family, update, update.policy
        self.episodes_per_task, self.generator, self.device = episodes_per_task, generator, device
        self.batch_unit = batch_unit

    def adapt(self, params: Params, supports: list[tuple[Trajectories, torch.Tensor]], *,
              first_order: bool, differentiable: bool) -> Params:
        """Replay the inner updates on ``supports`` from ``params`` (the optimizer state
        starting afresh and carried from step to step, as when they were sampled).

        ``differentiable`` keeps the graph so an outer loss can back-propagate into
        ``params`` and the optimizer's meta-parameters; ``first_order`` drops the
        second-order terms (FOMAML).
        """
        if not supports:
            return params
        state = self.update.init(params, supports[0][0].num_tasks)
        for traj, data in supports:
            params, state = self.update.step(params, traj, data, state,
                                             first_order=first_order or not differentiable,
                                             create_graph=differentiable)
        return params

    def jacobians(self, episodes: Episodes,
                  supports: list[tuple[Trajectories, torch.Tensor]] | None = None, *,
                  first_order: bool) -> list[StepJacobian]:
        """The Jacobians of the inner steps ``episodes`` recorded, at the points (and
        states) they started from, on ``supports`` (e.g. a subsample of every recorded batch;
        default: the recorded batches, whose Jacobians sampling kept)."""
        if supports is None:
            assert episodes.jacobians is not None
            return episodes.jacobians
        out: list[StepJacobian] = []
        for start, state, (traj, data) in zip(episodes.starts, episodes.states, supports):
            jac = self.update.step_with_jacobian(start, traj, data, state,
                                                 first_order=first_order)[2]
            assert jac is not None, "the inner optimizer has no step Jacobian"
            out.extend(jac)
        return out

    def sample(self, tasks: Tasks, params: Params, steps: int, *, query: bool = True,
               differentiable: bool = False, first_order: bool = False) -> Episodes:
        """Run ``steps`` inner updates per task from ``params`` on fresh support episodes.

        Every support batch is sampled with the current adapted parameters; with
        ``query`` one more batch is sampled with the final ones (MAML's Algorithm 3).
        With ``differentiable`` the inner steps are taken on the graph of ``params`` (and
        of the optimizer's meta-parameters) as the episodes come in, second-order unless
        ``first_order``, so that an outer loss can use ``Episodes.adapted`` without
        adapting again; otherwise nothing is differentiable (:meth:`adapt` replays the
        steps on the supports).
        """
        sampler = BatchSampler(self.family, tasks, self.episodes_per_task, self.device,
                               self.batch_unit)
        update = self.update if differentiable else self.update.detached()
        phi = params if differentiable else detach_params(params)
        state = update.init(phi, len(tasks))
        supports: list[tuple[Trajectories, torch.Tensor]] = []
        starts: list[Params] = []
        states: list[InnerState] = []
        jacobians: list[StepJacobian] | None = []
        for _ in range(steps):
            start = detach_params(phi)
            traj = sampler.sample(self.policy, start, self.generator)
            data = update.prepare(traj)
            supports.append((traj, data))
            starts.append(start)
            states.append(detach_params(state))
            if differentiable:
                phi, state, jac = update.step_with_jacobian(phi, traj, data, state,
                                                            first_order=first_order)
                jacobians = None if jacobians is None or jac is None else [*jacobians, *jac]
            else:
                phi, state = update.step(start, traj, data, state, first_order=True,
                                         create_graph=False)
                phi = detach_params(phi)
        final = detach_params(phi)
        batch = sampler.sample(self.policy, final, self.generator) if query else None
        return Episodes(supports, batch, final, phi if differentiable else None, starts,
                        states, jacobians if differentiable else [])


def gradient_agent(policy: MLPPolicy, update: InnerUpdate,
                   step_sizes: list[float] | None) -> GradientAgent:
    """The agent the evaluator scores: the current initialisation plus the inner update.

    ``step_sizes`` (the evaluation schedule: the step size of adaptation step ``k``, the
    last one repeating) replaces the step size of a hand-set inner optimizer (SGD, Adam);
    a meta-learned one (Meta-SGD's ``alpha``, a learned transform) adapts as learned, with
    no graph to its meta-parameters.
    """
    optimizer = update.optimizer
    if step_sizes and not optimizer.meta_parameters() and isinstance(optimizer, ScheduledStep):
        schedule = [optimizer.with_lr(s) for s in step_sizes]
    else:
        schedule = [optimizer.detached()]
    return GradientAgent(policy, named_params(policy), update.detached(), schedule)


class PolicyLearner:
    """``agent`` and checkpointing for a learner whose state is a policy (+ its optimiser).

    A learner using it sets ``policy``, ``update`` (its inner update, whose optimizer is
    the agent's when evaluation gives no step sizes), ``env_steps`` and ``optimizer`` (the
    outer optimiser, or ``None`` when it keeps no state).
    """

    policy: MLPPolicy
    update: InnerUpdate
    env_steps: int
    optimizer: torch.optim.Optimizer | None = None

    def agent(self, step_sizes: list[float] | None = None) -> GradientAgent:
        return gradient_agent(self.policy, self.update, step_sizes)

    def load_initial_policy(self, state: dict[str, torch.Tensor]) -> None:
        """``init_from``: the whole policy."""
        self.policy.load_state_dict(state)

    def state_dict(self) -> dict[str, Any]:
        state = {"policy": self.policy.state_dict(), "env_steps": self.env_steps}
        if self.optimizer is not None:
            state["optimizer"] = optimizer_state(self.optimizer)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.env_steps = int(state["env_steps"])
        if self.optimizer is not None:
            load_optimizer_state(self.optimizer, state["optimizer"])


class AveragingLearner(PolicyLearner):
    """The shared set-up of learners whose outer step moves theta toward per-task
    parameters (Reptile, model aggregation): policy, inner loop and the averaging optimiser.
    """

    optimizer: torch.optim.Optimizer

    def __init__(self, family: TaskFamily, config: Any, generator: torch.Generator,
                 device: torch.device) -> None:
        self.family, self.config, self.generator, self.device = family, config, generator, device
        self.policy = config.policy.build(family.observation_space, family.action_space).to(device)
        self.update = make_inner_update(self.policy, config, SGD(config.inner.lr), config.inner)
        self.inner = InnerLoop(family, self.update, config.episodes_per_task, generator, device,
                               config.batch_unit)
        self.optimizer = averaging_optimizer(self.policy, config)
        self.env_steps = 0


def averaging_optimizer(policy: MLPPolicy, config: AveragingConfig) -> torch.optim.Optimizer:
    """The outer optimiser of an averaging learner; SGD(eps) *is* the interpolation formula."""
    opt = torch.optim.SGD if config.outer_optimizer == "sgd" else torch.optim.Adam
    return opt(policy.parameters(), lr=config.outer_step_size())


def averaging_step(optimizer: torch.optim.Optimizer, theta: Params, per_task: Params,
                   weights: torch.Tensor) -> dict[str, float]:
    """One outer step on the pseudo-gradient ``theta - sum_i w_i phi_i``."""
    info = set_pseudo_gradient(theta, per_task, weights)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return info


def return_metrics(episodes: Episodes) -> dict[str, float]:
    """``return_pre`` (before adaptation) and ``return_post`` (after the most adaptation).

    ``return_post`` is the return of the last batch sampled: the query when there is one
    (MAML: after all ``K`` inner updates), else the last support batch (Reptile with ``k``
    updates: after ``k - 1``). It is absent when only one batch was sampled.
    """
    r = episodes.returns()
    out = {"return_pre": r[0]}
    if len(r) > 1:
        out["return_post"] = r[-1]
    return out
