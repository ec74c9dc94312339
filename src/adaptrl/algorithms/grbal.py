"""GrBAL: a dynamics model meta-trained to adapt online from its last M transitions, with MPC
(Nagabandi, Clavera et al., "Learning to Adapt in Dynamic, Real-World Environments through
Meta-Reinforcement Learning", ICLR 2019, Algorithms 1 and 2; settings in REFERENCES.md).

Meta-training (Algorithm 1), one iteration per batch of training tasks::

    collect one episode per task with the current agent (random actions in the first
        `random_iterations` iterations) into a buffer of episodes
    repeat outer_steps times:
        draw `batch_windows` windows of M + K consecutive transitions of one episode each
        phi_j = theta - alpha grad L(theta; past M transitions of window j)   (k = inner.steps)
        theta <- Adam step on 1/B sum_j L(phi_j; next K transitions of window j)     (eq. 3)

with ``L`` the MSE of the normalised state change (:class:`~adaptrl.models.dynamics.DynamicsModel`).
The inner step is :class:`~adaptrl.adaptation.inner_optimizers.SGD`, differentiated through
(second order) unless ``inner.first_order``.

Meta-test (Algorithm 2): at every step, adapt from theta* on the slot's last M transitions
(``inner.steps`` SGD steps) and plan with MPC on the adapted model
(:class:`~adaptrl.planning.controller.MPCActor`). The agent adapts in *transitions*: the
protocol plays trials of consecutive episodes on each held-out task and scores every
episode (:func:`adaptrl.evaluation.protocol.transitions_curve`).

ReBAL (§4; ``name: rebal``, :class:`~adaptrl.algorithms.grbal_config.ReBALConfig`) is the same
learner with a recurrent update rule: the model's context is a GRU's state after reading
the past M (:meth:`~adaptrl.models.dynamics.DynamicsModel.encode`) instead of k gradient
steps, meta-trained on the same loss (:func:`adapt`).

The same learner, configured differently, gives the baselines
(:mod:`adaptrl.algorithms.baselines`): ``inner.steps: 0`` trains the model on all training
tasks without meta-learning (``mb``: not adapted at test; ``mb_finetune``: adapted online
with the same inner loop, the paper's "MB + DE"), and ``oracle: true`` plans with the
simulator (``mpc_oracle``, the return that normalisation maps to 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch

from adaptrl.adaptation.inner_optimizers import SGD, InnerOptimizer, MetaSGD
from adaptrl.agents.contract import AdaptationUnit
from adaptrl.algorithms.grbal_config import GrBALConfig, ModelInnerConfig, ReBALConfig
from adaptrl.algorithms.registry import register_algorithm
from adaptrl.models.dynamics import CONTEXT, DynamicsModel
from adaptrl.models.functional import Params, detach_params, expand_params, named_params
from adaptrl.optim.ppo import load_optimizer_state, optimizer_state
from adaptrl.planning.controller import MPCActor, RandomActor, Window
from adaptrl.planning.mpc import ActionDomain, Dynamics, PlannerSettings
from adaptrl.rollouts.replay import RingBuffer
from adaptrl.rollouts.trajectories import Trajectories
from adaptrl.rollouts.transitions import Transitions
from adaptrl.rollouts.trial_sampler import TrialActor, play_trials
from adaptrl.tasks.base import ModelBasedFamily, TaskFamily, Tasks

MODEL_BASED_BASELINES = ("mb", "mb_finetune", "mpc_oracle")
"""The baselines of a model-based learner (:mod:`adaptrl.algorithms.baselines`)."""


def adapt_model(model: DynamicsModel, params: Params, window: Window, inner: ModelInnerConfig,
                create_graph: bool, optimizer: InnerOptimizer | None = None) -> Params:
    """``inner.steps`` SGD steps per row of ``window`` from ``params`` (shared or per row) on
    its masked model loss: per-row adapted parameters ``[N, ...]`` (GrBAL's eq. 2).
    ``optimizer`` (default ``SGD(inner.lr)``) may be a learned one (``inner.learn_lr``)."""
    n = window.obs.shape[0]
    ref = dict(model.named_parameters())
    theta = {k: v if v.dim() == ref[k].dim() + 1 else expand_params({k: v}, n)[k]
             for k, v in params.items()}
    optimizer = optimizer or SGD(inner.lr)
    keys = list(theta)
    graph = create_graph and not inner.first_order
    with torch.enable_grad():
        for _ in range(inner.steps):
            theta = {k: v if v.requires_grad else v.detach().requires_grad_(True)
                     for k, v in theta.items()}
            loss = model.loss(theta, window.obs, window.action, window.next_obs, window.mask)
            grads = torch.autograd.grad(loss.sum(), [theta[k] for k in keys],
                                        create_graph=graph)
            g = {k: v if graph else v.detach() for k, v in zip(keys, grads)}
            theta, _ = optimizer.step(theta, g, {})
    return theta if create_graph else detach_params(theta)


def adapt(model: DynamicsModel, params: Params, window: Window | None, slots: int,
          inner: ModelInnerConfig, create_graph: bool, optimizer: InnerOptimizer | None = None
          ) -> Params:
    """The model's parameters for each of ``slots`` rows, adapted on the row's ``window``
    (``None``: nothing seen yet, or not adapting): ReBAL's recurrent context when the model
    has one (shared weights; a zero context for no transitions), else GrBAL's
    :func:`adapt_model` (``params`` given a row dimension for an empty window)."""
    if model.context:
        if window is None:
            ref = model.obs_mean
            context = torch.zeros(slots, model.context, dtype=ref.dtype, device=ref.device)
        else:
            context = model.encode(params, window.obs, window.action, window.next_obs,
                                   window.mask)
        return {**params, CONTEXT: context if create_graph else context.detach()}
    if window is None or not window.filled:
        return expand_params(params, slots)
    return adapt_model(model, params, window, inner, create_graph, optimizer)


def open_loop_loss(model: DynamicsModel, params: Params | None, window: Window
                   ) -> torch.Tensor:
    """Per-row loss ``[n]`` of the model rolled out open-loop along a window of T
    transitions (what an MPC planner asks of it), the mean over ``k`` of the model loss of
    predicting ``s_{k+1}`` from its own prediction ``s_hat_k`` (``s_hat_0 = s_0``) and
    ``a_k``: the squared error of ``s_hat_{k+1}`` in units of the normalised state change,
    differentiated through the rollout. With ``T = 1`` it is the one-step loss. (A
    multi-step loss is not GrBAL's, whose eq. 3 scores each future transition one step
    ahead; it is the fifth lever of docs/model_based.md's pendulum study.)"""
    s = window.obs[:, :1]
    steps = window.obs.shape[1]
    total = torch.zeros(window.obs.shape[0], dtype=window.obs.dtype, device=window.obs.device)
    for k in range(steps):
        action, target = window.action[:, k:k + 1], window.next_obs[:, k:k + 1]
        total = total + model.loss(params, s, action, target)
        if k + 1 < steps:
            s = model.predict(s, action, params)
    return total / steps


def episodes_as_rows(traj: Trajectories) -> Transitions:
    """Every slot's episode of a one-episode trial as one buffer row: fields
    ``[1, slots, T, ...]`` (so a :class:`RingBuffer` of one "task" keeps whole episodes)."""
    def rows(x: torch.Tensor) -> torch.Tensor:  # [T, n, m, ...] -> [1, n * m, T, ...]
        return x.movedim(0, 2).reshape(1, -1, x.shape[0], *x.shape[3:])
    assert traj.truncated is not None
    return Transitions(rows(traj.observations), rows(traj.actions), rows(traj.rewards),
                       rows(traj._require_next()), rows(traj.terminated), rows(traj.truncated))


def live_steps(episodes: Transitions) -> torch.Tensor:
    """``[1, E, T]`` bool: the steps of each stored episode before and at its end."""
    ends = (episodes.terminated | episodes.truncated).long()
    return (ends.cumsum(-1) - ends) == 0


@dataclass(frozen=True)
class ModelBasedAgent:
    """What the protocol adapts and scores (unit ``transitions``): ``actor(tasks)`` is an
    :class:`~adaptrl.planning.controller.MPCActor` planning with the model at ``params``
    (adapted on each slot's last ``inner``-configured window when ``adapt``), or with the
    simulator of ``tasks`` when ``oracle``."""

    family: TaskFamily
    model: DynamicsModel
    params: Params
    planner: PlannerSettings
    inner: ModelInnerConfig
    memory: int
    adapt: bool = True
    oracle: bool = False
    optimizer: InnerOptimizer | None = None  # a learned step size, detached (inner.learn_lr)
    unit: AdaptationUnit = AdaptationUnit.TRANSITIONS

    def actor(self, tasks: Tasks) -> MPCActor:
        family = cast(ModelBasedFamily, self.family)

        def dynamics(window: Window | None, slots: int) -> Dynamics:
            if self.oracle:
                rows = tasks.to(self.model.obs_mean.device)[
                    torch.arange(slots) // (slots // len(tasks))]
                return family.true_dynamics(rows, self.model.obs_mean.device)
            params = adapt(self.model, self.params, window if self.adapt else None, slots,
                           self.inner, False, self.optimizer)
            return lambda s, a: self.model.predict(s, a, params)
        return MPCActor(self.planner, ActionDomain.of(self.family.action_space),
                        family.reward, dynamics, family.terminal, self.memory)


class GrBAL:
    """GrBAL's learner (module docstring)."""

    def __init__(self, family: TaskFamily, config: GrBALConfig, generator: torch.Generator,
                 device: torch.device) -> None:
        if not isinstance(family, ModelBasedFamily):
            raise ValueError(f"family {family.name!r} has no reward function of (s, a, s') "
                             "(tasks.base.ModelBasedFamily): GrBAL cannot plan on it")
        self.family, self.config, self.generator, self.device = (family, config, generator,
                                                                 device)
        self.model = config.dynamics.build(family).to(device)  # the trainer seeds the init
        self.inner_optimizer = (MetaSGD(named_params(self.model), config.inner.lr).to(device)
                                if config.inner.learn_lr and config.inner.steps > 0 else None)
        meta = [] if self.inner_optimizer is None else self.inner_optimizer.meta_parameters()
        self.optimizer = torch.optim.Adam([*self.model.parameters(), *meta],
                                          lr=config.outer_lr)
        self.buffer = RingBuffer(1, config.buffer_episodes, device)
        self.env_steps, self.iterations, self.fitted = 0, 0, False

    @property
    def policy(self) -> DynamicsModel:
        return self.model

    def load_initial_policy(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)
        self.fitted = True

    def _planning_agent(self, inner: ModelInnerConfig, memory: int, adapt: bool,
                        optimizer: InnerOptimizer | None) -> ModelBasedAgent:
        """MPC with the current model, adapting online by ``inner`` on the last ``memory``
        transitions when ``adapt``."""
        cfg = self.config
        return ModelBasedAgent(self.family, self.model, detach_params(named_params(self.model)),
                               cfg.planner, inner, memory, adapt=adapt, oracle=cfg.oracle,
                               optimizer=optimizer)

    def agent(self, step_sizes: list[float] | None = None) -> ModelBasedAgent:
        """The meta-test agent (``step_sizes`` is ignored): it adapts with ``test_inner``
        (default ``inner``) on the last ``test_past`` (default ``past``) transitions."""
        cfg = self.config
        inner = cfg.test_inner or cfg.inner
        learned = None if self.inner_optimizer is None or cfg.test_inner is not None \
            else self.inner_optimizer.detached()
        return self._planning_agent(inner, cfg.test_past or cfg.past,
                                    cfg.adapt_at_test and self.adapts(inner), learned)

    def adapts(self, inner: ModelInnerConfig) -> bool:
        """Whether the model adapts at all: ReBAL's always does (its context), GrBAL's
        with inner steps."""
        return bool(self.model.context) or inner.steps > 0

    def meta_update(self, tasks: Tasks) -> dict[str, float]:
        cfg = self.config
        # collect with the current model, adapting online only if it is meta-learned (so
        # that mb and mb_finetune, which differ only at test, train the same model), and as
        # it is trained to adapt: inner on the last past (test_inner / test_past are meta-test
        # settings only)
        trained = None if self.inner_optimizer is None else self.inner_optimizer.detached()
        actor: TrialActor[Any] = (
            RandomActor(ActionDomain.of(self.family.action_space))
            if self.iterations < cfg.random_iterations or not self.fitted
            else self._planning_agent(cfg.inner, cfg.past, self.adapts(cfg.inner),
                                      trained).actor(tasks))
        traj = play_trials(self.family.make_env(tasks.to(self.device), cfg.episodes_per_task,
                                                self.device), actor, 1, self.generator)
        self.env_steps += traj.num_steps
        self.buffer.add(episodes_as_rows(traj))
        if not self.fitted:
            self._fit_normalizer()
        pre = post = 0.0
        for _ in range(cfg.outer_steps):
            past, future = self.windows(cfg.batch_windows)
            loss, before = self.meta_loss(named_params(self.model), past, future)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            pre += before / cfg.outer_steps
            post += float(loss.detach()) / cfg.outer_steps
        self.iterations += 1
        returns = (traj.rewards * traj.masks).sum(0).mean()
        learned = {} if self.inner_optimizer is None else {
            f"inner_lr/{k}": v for k, v in self.inner_optimizer.summary().items()}
        return {"return": float(returns), "model_loss_pre": pre, "model_loss_post": post,
                "env_steps_iteration": float(traj.num_steps), **learned}

    def meta_loss(self, params: Params, past: Window, future: Window
                  ) -> tuple[torch.Tensor, float]:
        """The outer loss (eq. 3): the mean over windows of the future K transitions' loss
        after the inner steps on the past M, and (detached) the same loss before them.
        Without inner steps it is the plain loss on all M + K transitions. ReBAL's is the
        future's loss given the context of the past (before: given no context). With
        ``outer_loss: open_loop`` the future's loss is :func:`open_loop_loss` (without
        inner steps: the mean of the past's and the future's)."""
        model, open_loop = self.model, self.config.outer_loss == "open_loop"

        def scored(p: Params, window: Window) -> torch.Tensor:
            if open_loop:
                return open_loop_loss(model, p, window)
            return model.loss(p, window.obs, window.action, window.next_obs)
        rows = past.obs.shape[0]
        with torch.no_grad():
            before = scored(adapt(model, params, None, rows, self.config.inner, False),
                            future).mean()
        if model.context:
            return scored(adapt(model, params, past, rows, self.config.inner, True),
                          future).mean(), float(before)
        if self.config.inner.steps == 0:
            if open_loop:  # each window rolled out, as long as GrBAL's future is
                return (scored(params, past) + scored(params, future)).mean() / 2, float(before)
            both = [torch.cat([getattr(past, f), getattr(future, f)], 1)
                    for f in ("obs", "action", "next_obs")]
            return model.loss(params, *both).mean(), float(before)
        phi = adapt_model(model, params, past, self.config.inner, True, self.inner_optimizer)
        return scored(phi, future).mean(), float(before)

    def windows(self, count: int) -> tuple[Window, Window]:
        """``count`` windows of ``M + K`` consecutive transitions, each inside one stored
        episode (episode uniform among those long enough, start uniform): the past M and
        the future K."""
        M, K = self.config.past, self.config.future
        data = self.buffer.data
        live = live_steps(data)[0] & data.valid[0, :, None]  # type: ignore[index]
        # [E] admissible starts, on the CPU: the draws below come from the run's CPU
        # generator (adaptrl.randomness); ``take`` moves the indices to the data's device
        starts = (live.sum(-1) - (M + K) + 1).clamp(min=0).cpu()
        usable = torch.nonzero(starts > 0).flatten()
        if len(usable) == 0:
            raise ValueError(f"no stored episode holds past + future = {M + K} transitions; "
                             "lower algorithm.past / algorithm.future")
        pick = usable[torch.randint(len(usable), (count,), generator=self.generator)]
        u = torch.rand(count, generator=self.generator, dtype=torch.float64)
        start = (u * starts[pick]).long()
        index = start[:, None] + torch.arange(M + K)  # [count, M + K]

        def take(x: torch.Tensor) -> torch.Tensor:
            rows = x[0, pick.to(x.device)]
            idx = index.to(x.device).reshape(count, M + K, *([1] * (rows.dim() - 2)))
            return rows.gather(1, idx.expand(-1, -1, *rows.shape[2:]))
        obs, act, nxt = take(data.obs), take(data.action), take(data.next_obs)
        ones = torch.ones(count, M + K, dtype=torch.bool, device=obs.device)
        return (Window(obs[:, :M], act[:, :M], nxt[:, :M], ones[:, :M]),
                Window(obs[:, M:], act[:, M:], nxt[:, M:], ones[:, M:]))

    def _fit_normalizer(self) -> None:
        data = self.buffer.data
        live = live_steps(data) & data.valid[..., None]  # type: ignore[index]
        self.model.fit_normalizer(data.obs[live], data.action[live], data.next_obs[live])
        self.fitted = True

    def state_dict(self) -> dict[str, Any]:
        learned = {} if self.inner_optimizer is None else {
            "inner_optimizer": self.inner_optimizer.state_dict()}
        return {**learned, "model": self.model.state_dict(),
                "optimizer": optimizer_state(self.optimizer),
                "buffer": self.buffer.state_dict(), "env_steps": self.env_steps,
                "iterations": self.iterations, "fitted": self.fitted}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        if self.inner_optimizer is not None:
            self.inner_optimizer.load_state_dict(state["inner_optimizer"])
        load_optimizer_state(self.optimizer, state["optimizer"])
        self.buffer.load_state_dict(state["buffer"])
        self.env_steps, self.iterations = int(state["env_steps"]), int(state["iterations"])
        self.fitted = bool(state["fitted"])


register_algorithm("rebal", ReBALConfig, GrBAL,
                   "ReBAL (Nagabandi et al. 2019): GrBAL's learner whose model adapts through "
                   "a recurrent context read from its last M transitions, planning with MPC",
                   unit=AdaptationUnit.TRANSITIONS, baselines=MODEL_BASED_BASELINES)
register_algorithm("grbal", GrBALConfig, GrBAL,
                   "GrBAL (Nagabandi et al. 2019): a dynamics model meta-trained to adapt "
                   "online from its last M transitions, planning with MPC",
                   unit=AdaptationUnit.TRANSITIONS, baselines=MODEL_BASED_BASELINES)
