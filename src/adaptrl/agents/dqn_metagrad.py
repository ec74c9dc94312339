"""DQN whose discount and learning rate adapt online by meta-gradients (Xu, van Hasselt,
Silver 2018, "Meta-gradient reinforcement learning"), per task, during learning.

:class:`MetaGradientDQN` wraps a :class:`~adaptrl.agents.dqn.DQNAgent` (composition: the
DQN's replay, epsilon schedule, step schedule and target network are used as they are) and
replaces its gradient step by (:mod:`adaptrl.adaptation.meta_gradient`)::

    tau  = a batch from the task's replay
    theta' = theta - lr(eta) * Adam_direction(grad TD_loss(tau, theta; gamma(eta)))     (f)
    z      = mu z + d theta'/d eta                                      (forward mode)
    tau' = the next batch from the replay
    J'     = TD_loss(tau', theta'; gamma_bar), its gradient g' = dJ'/d theta'
    eta    <- eta - Adam_meta(g' . z)

with ``eta = (logit gamma, log lr)`` per task, ``gamma = sigmoid``, ``lr = exp`` (§1.2), the
reference ``gamma_bar`` fixed (the paper's Atari agent: 0.995), ``mu`` the trace decay
(eq. 4). The TD target is ``r + gamma (1 - terminated) V_target(s')`` (1-step; Double
DQN's bootstrap value where ``dqn.double``), its target-network value held constant: eta
reaches the update through ``gamma`` in the target, the learning rate, and the Q-network's
conditioning input. The Q-network takes ``gamma`` as an input (``conditioned``: the
paper's networks take eta as an input, so that their estimates follow the discount as it
moves); in ``J'`` both the network and the target are conditioned on ``gamma_bar``, the
meta-objective being the value under the reference discount. Adam's moments carry over
from earlier updates as constants of the current one (the trace holds their history).
The DQN's own ``n_step`` must be 1 (the n-step return's discounts are baked into the
replay sample).

**lambda-returns** (the paper's second meta-parameter, ``meta.window = n >= 2``): the
target becomes the truncated lambda-return of an n-step window read from the replay with
every step's next observation (:func:`~adaptrl.agents.dqn.sample_window`,
:func:`~adaptrl.agents.dqn.lambda_returns`; Sutton & Barto 2018, eq. 12.9-12.10),
bootstrapped with the target network after every step of the window; ``eta`` gains a third
component ``logit lambda`` (learned when ``"lambda"`` is in ``meta.learn``, else fixed at
``meta.lambda_init``), the Q-network is conditioned on ``(gamma, lambda)``, and the
meta-objective's target is the lambda-return under the reference ``(gamma_bar,
lambda_bar)`` (default ``lambda_bar = 1``: the window's n-step return). ``dtheta'/d logit
lambda`` is a forward-mode tangent like gamma's.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import torch
from pydantic import Field, model_validator

from adaptrl.adaptation.inner_optimizers import Adam
from adaptrl.adaptation.meta_gradient import (
    Trace,
    accumulate_trace,
    discount,
    discount_logit,
    meta_gradient,
    shared_meta_gradient,
    step_size,
    update_with_tangents,
)
from adaptrl.agents.contract import AdaptationUnit
from adaptrl.agents.dqn import (
    DQNAgent,
    DQNConfig,
    DQNState,
    GreedyQActor,
    NStepBatch,
    WindowBatch,
    bootstrap_values,
    clip_per_task,
    lambda_returns,
    sample_window,
)
from adaptrl.models.functional import Params
from adaptrl.models.q_networks import QNetwork, make_q_network
from adaptrl.rollouts.trial_sampler import Step
from adaptrl.schema import ConfigModel
from adaptrl.tasks.base import BatchedEnv

Learnable = Literal["gamma", "lr", "lambda"]
LEARNABLE: tuple[Learnable, ...] = ("gamma", "lr", "lambda")
ETA: tuple[str, ...] = LEARNABLE
"""The components of ``eta``, in order (raw: ``logit gamma``, ``log lr``, and with
lambda-returns ``logit lambda``)."""


def _td_loss(q: torch.Tensor, target: torch.Tensor, huber_delta: float | None
             ) -> torch.Tensor:
    """:func:`~adaptrl.agents.dqn.td_loss` written with elementwise ops, which forward-mode
    differentiation supports (``F.huber_loss``'s backward has no forward-mode rule): the
    mean over the batch of ``x^2`` or of the Huber loss ``x^2 / 2`` (``|x| <= delta``),
    ``delta (|x| - delta / 2)`` beyond."""
    x = q - target
    if huber_delta is None:
        return x.square().mean(-1)
    a = x.abs()
    return torch.where(a <= huber_delta, 0.5 * x.square(),
                       huber_delta * (a - 0.5 * huber_delta)).mean(-1)


class MetaGradientConfig(ConfigModel):
    """The online meta-gradient's settings (Xu et al. 2018)."""

    learn: list[Learnable] = Field(
        default_factory=lambda: list(LEARNABLE[:2]), min_length=1,
        description="hyperparameters adapted by meta-gradients (the others stay fixed; "
        "lambda needs window >= 2)")
    gamma_bar: float = Field(0.995, gt=0, le=1, description="the reference discount of the "
                             "meta-objective (the paper's Atari agent: 0.995)")
    meta_lr: float = Field(1e-3, gt=0, description="Adam step size on eta")
    trace_decay: float = Field(0.0, ge=0, le=1, description="mu: z <- mu z + df/d eta")
    conditioned: bool = Field(True, description="the Q-network takes gamma as an input")
    meta_batch_size: int | None = Field(None, ge=1, description="transitions per task in "
                                        "the meta-objective's batch (null: dqn.batch_size)")
    share_eta: bool = Field(False, description="one eta for every task of the batch, its "
                            "meta-gradient the mean of the tasks' (the meta-objective the "
                            "mean of their J'): hyperparameters learned across tasks")
    window: int = Field(1, ge=1, description="n of the lambda-return's n-step window (1: "
                        "the one-step target, no lambda)")
    lambda_init: float = Field(0.5, gt=0, lt=1, description="lambda: eta's start when "
                               "learned, else fixed (window >= 2 only)")
    lambda_bar: float = Field(1.0, ge=0, le=1, description="the reference lambda of the "
                              "meta-objective (1: the window's n-step return)")

    @model_validator(mode="after")
    def _lambda_needs_a_window(self) -> MetaGradientConfig:
        if len(set(self.learn)) != len(self.learn):
            raise ValueError(f"learn: each hyperparameter once, got {self.learn}")
        if "lambda" in self.learn and self.window < 2:
            raise ValueError(f"learn: lambda is learned only with lambda-returns, window >= "
                             f"2, got window {self.window}")
        return self

    @property
    def eta_names(self) -> tuple[str, ...]:
        """The components of ``eta`` for these settings: ``gamma, lr`` (and ``lambda`` with
        lambda-returns)."""
        return ETA if self.window > 1 else ETA[:2]

    @property
    def conditioning(self) -> tuple[str, ...]:
        """What the Q-network takes as an input (``conditioned``): the return's
        hyperparameters, ``gamma`` (and ``lambda``)."""
        if not self.conditioned:
            return ()
        return ("gamma", "lambda") if self.window > 1 else ("gamma",)


class MetaGradientDQNConfig(ConfigModel):
    """The DQN (its ``gamma`` and ``lr``: eta's initial values) and the meta-gradient."""

    dqn: DQNConfig = Field(default_factory=DQNConfig)
    meta: MetaGradientConfig = Field(default_factory=MetaGradientConfig)

    @model_validator(mode="after")
    def _one_step(self) -> MetaGradientDQNConfig:
        if self.dqn.n_step != 1:
            raise ValueError(f"dqn.n_step: the meta-gradient DQN takes 1-step targets (its "
                             f"discount is learned), got {self.dqn.n_step}")
        if not self.dqn.gamma < 1 or not self.dqn.gamma > 0:
            raise ValueError(f"dqn.gamma: a learned discount starts in (0, 1), got "
                             f"{self.dqn.gamma}")
        return self


@dataclass
class MetaGradientDQNState:
    """The DQN's state, ``eta`` ``[tasks, 2]`` (raw), its Adam state and the trace ``z``."""

    dqn: DQNState
    eta: torch.Tensor
    eta_opt: dict[str, torch.Tensor]
    trace: Trace | None = None

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"dqn": self.dqn.state_dict(), "eta": self.eta.clone(),
                                 "eta_opt": {k: v.clone() for k, v in self.eta_opt.items()}}
        if self.trace is not None:
            state["trace"] = [{k: v.clone() for k, v in z.items()} for z in self.trace]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.dqn.load_state_dict(state["dqn"])
        self.eta = state["eta"].clone()
        self.eta_opt = {k: v.clone() for k, v in state["eta_opt"].items()}
        self.trace = ([{k: v.clone() for k, v in z.items()} for z in state["trace"]]
                      if "trace" in state else None)


class MetaGradientDQN:
    """Online DQN with meta-gradient-adapted discount and learning rate (module doc): an
    :class:`~adaptrl.rollouts.online.OnlineLearner` whose unit is ``env_steps``."""

    def __init__(self, config: MetaGradientDQNConfig, observation_space: gym.Space,
                 action_space: gym.Space, network: QNetwork | None = None) -> None:
        self.config = config
        c = config.dqn
        if network is None:
            network = make_q_network(observation_space, action_space, tuple(c.hidden),
                                     c.activation, c.dueling, c.init,
                                     eta_dim=len(config.meta.conditioning))
        self.dqn = DQNAgent(c, observation_space, action_space, network=network)
        self.network = self.dqn.network
        self.direction = Adam(1.0)  # Adam's step at lr 1; the learned lr scales it
        self.meta_optimizer = Adam(config.meta.meta_lr)
        self.names = config.meta.eta_names
        self.components = [self.names.index(name) for name in config.meta.learn]

    @classmethod
    def starting_from(cls, config: MetaGradientDQNConfig, observation_space: gym.Space,
                      action_space: gym.Space, network: QNetwork) -> MetaGradientDQN:
        """The agent starting from a copy of ``network`` (a plain Q-network's weights, e.g.
        a meta-learned ``theta`` or the same random initialisation as a fixed-hyperparameter
        DQN): conditioned, with zero weights on the gamma (and lambda) input
        (:func:`with_eta_input`)."""
        c = config.dqn
        if config.meta.conditioned:
            with torch.random.fork_rng(devices=[]):  # the fresh weights are overwritten
                fresh = make_q_network(observation_space, action_space, tuple(c.hidden),
                                       c.activation, c.dueling, c.init,
                                       eta_dim=len(config.meta.conditioning))
            net = with_eta_input(network, fresh.to(next(network.parameters()).device))
        else:
            net = copy.deepcopy(network)
        return cls(config, observation_space, action_space, network=net)

    @property
    def unit(self) -> AdaptationUnit:
        return AdaptationUnit.ENV_STEPS

    def state_dict(self) -> dict[str, Any]:
        return self.dqn.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.dqn.load_state_dict(state)

    # -- eta --
    def hyperparameters(self, state: MetaGradientDQNState) -> dict[str, torch.Tensor]:
        """The current ``gamma`` and ``lr`` (and ``lambda``) per task ``[tasks]``."""
        hp = {"gamma": discount(state.eta[:, 0]), "lr": step_size(state.eta[:, 1])}
        if self.lambda_returns:
            hp["lambda"] = discount(state.eta[:, 2])
        return hp

    @property
    def lambda_returns(self) -> bool:
        """Whether the targets are lambda-returns over ``meta.window`` steps."""
        return self.config.meta.window > 1

    def _condition(self, gamma: torch.Tensor, lam: torch.Tensor | None = None
                   ) -> torch.Tensor | None:
        """The Q-network's input ``[tasks, 1 or 2]``: ``gamma`` (and ``lambda``)."""
        if not self.config.meta.conditioned:
            return None
        if self.lambda_returns:
            if lam is None:
                raise ValueError("a lambda-return agent's network is conditioned on lambda")
            return torch.stack([gamma, lam], -1)
        return gamma.unsqueeze(-1)

    def _condition_on(self, eta: torch.Tensor) -> torch.Tensor | None:
        """:meth:`_condition` at the raw ``eta`` ``[tasks, k]``."""
        lam = discount(eta[:, 2]) if self.lambda_returns else None
        return self._condition(discount(eta[:, 0]), lam)

    # -- the online-learner contract --
    def begin(self, env: BatchedEnv) -> MetaGradientDQNState:
        dqn_state = self.dqn.begin(env)
        c = self.config.dqn
        dtype = next(iter(dqn_state.params.values())).dtype
        start = [discount_logit(c.gamma), torch.log(torch.tensor(c.lr, dtype=torch.float64))]
        if self.lambda_returns:
            start.append(discount_logit(self.config.meta.lambda_init))
        eta = torch.stack(start).to(dtype=dtype, device=env.device)
        eta = eta.expand(env.num_tasks, len(start)).clone()
        state = MetaGradientDQNState(dqn_state, eta, self.meta_optimizer.init({"eta": eta}))
        dqn_state.eta = self._condition_on(eta)
        return state

    def act(self, obs: torch.Tensor, state: MetaGradientDQNState, generator: torch.Generator
            ) -> tuple[torch.Tensor, MetaGradientDQNState]:
        action, _ = self.dqn.act(obs, state.dqn, generator)
        return action, state

    def observe(self, step: Step, state: MetaGradientDQNState) -> MetaGradientDQNState:
        self.dqn.observe(step, state.dqn, learn=lambda s, g: self.learn(state, g))
        return state

    def evaluation_actor(self, state: MetaGradientDQNState) -> GreedyQActor:
        return self.dqn.evaluation_actor(state.dqn)

    # -- learning --
    def _bootstrap(self, s: DQNState, next_obs: torch.Tensor, cond: torch.Tensor | None
                   ) -> torch.Tensor:
        with torch.no_grad():
            q_target = self.network(next_obs, s.target, cond)
            q_online = self.network(next_obs, s.params, cond) if self.config.dqn.double \
                else None
            return bootstrap_values(q_target, q_online)

    def sample(self, s: DQNState, generator: torch.Generator, batch_size: int | None = None
               ) -> NStepBatch | WindowBatch:
        """A batch per task from its replay: one-step transitions, or with lambda-returns
        ``meta.window``-step windows with every step kept."""
        if not self.lambda_returns:
            return self.dqn.sample(s, generator, batch_size)
        return sample_window(s.replay, s.slots, batch_size or self.config.dqn.batch_size,
                             self.config.meta.window, generator)

    def _targets(self, s: DQNState, batch: NStepBatch | WindowBatch,
                 cond: torch.Tensor | None
                 ) -> Callable[[torch.Tensor | float, torch.Tensor | float], torch.Tensor]:
        """``(gamma, lambda) -> y`` ``[tasks, batch]``: the TD targets of ``batch`` as a pure
        function of the discount and lambda (``[tasks, 1]`` or floats), the target network's
        bootstrap values taken once (no gradient), its network input ``cond``: the one-step
        ``r + gamma (1 - terminated) V(s')``, or the truncated lambda-return of a window."""
        if isinstance(batch, WindowBatch):
            values = self._bootstrap(s, batch.next_obs, cond)  # [tasks, batch, n]
            return lambda gamma, lam: lambda_returns(batch, values, gamma, lam)
        v_next = self._bootstrap(s, batch.next_obs, cond)
        alive = 1.0 - batch.terminated.to(v_next.dtype)
        return lambda gamma, lam: batch.returns + gamma * alive * v_next

    def inner_update(self, s: DQNState, batch: NStepBatch | WindowBatch, eta_now: torch.Tensor
                     ) -> Callable[[torch.Tensor], tuple[Params, dict[str, torch.Tensor]]]:
        """``eta -> (theta', Adam state)``: the DQN step on ``batch`` from ``s`` as a pure
        function of the raw ``eta`` (what :func:`update_with_tangents` differentiates);
        the target network's bootstrap values are taken once, conditioned on ``eta_now``."""
        c = self.config.dqn
        targets = self._targets(s, batch, self._condition_on(eta_now))
        action = batch.action.long().unsqueeze(-1)
        params, opt = s.params, s.opt

        def update(eta: torch.Tensor) -> tuple[Params, dict[str, torch.Tensor]]:
            gamma, lr = discount(eta[:, 0]), step_size(eta[:, 1])
            lam = discount(eta[:, 2]) if self.lambda_returns else None
            y = targets(gamma.unsqueeze(-1), 1.0 if lam is None else lam.unsqueeze(-1))
            cond = self._condition(gamma, lam)

            def loss(p: Params) -> torch.Tensor:
                q = self.network(batch.obs, p, cond).gather(-1, action).squeeze(-1)
                return _td_loss(q, y, c.huber_delta).sum()

            grads = torch.func.grad(loss)(params)
            if c.max_grad_norm is not None:
                grads, _ = clip_per_task(grads, c.max_grad_norm)
            stepped, new_opt = self.direction.step(params, grads, opt)
            new = {k: p + lr.view(-1, *([1] * (p.dim() - 1))) * (stepped[k] - p)
                   for k, p in params.items()}
            return new, new_opt

        return update

    def meta_objective_grads(self, s: DQNState, batch: NStepBatch | WindowBatch,
                             params: Params) -> tuple[Params, torch.Tensor]:
        """``dJ'/d theta'`` at ``params`` and ``J'`` per task ``[tasks]``: the TD loss of
        ``batch`` with the reference discount ``gamma_bar`` (and ``lambda_bar``; network
        and target conditioned on them)."""
        m, c = self.config.meta, self.config.dqn
        ref = next(iter(params.values()))
        tasks = batch.obs.shape[0]

        def full(x: float) -> torch.Tensor:
            return torch.full((tasks,), x, dtype=ref.dtype, device=ref.device)

        cond = self._condition(full(m.gamma_bar), full(m.lambda_bar))
        y = self._targets(s, batch, cond)(m.gamma_bar, m.lambda_bar)
        leaves = {k: v.detach().requires_grad_() for k, v in params.items()}
        with torch.enable_grad():
            q = self.network(batch.obs, leaves, cond).gather(
                -1, batch.action.long().unsqueeze(-1)).squeeze(-1)
            loss = _td_loss(q, y, c.huber_delta)
            grads = torch.autograd.grad(loss.sum(), list(leaves.values()))
        return dict(zip(leaves, grads, strict=True)), loss.detach()

    def learn(self, state: MetaGradientDQNState, generator: torch.Generator) -> torch.Tensor:
        """One meta-gradient DQN step for every task (module doc); returns ``J'`` per task.
        With ``meta.share_eta`` the tasks' meta-gradients are averaged
        (:func:`~adaptrl.adaptation.meta_gradient.shared_meta_gradient`): every row of
        ``eta`` starts equal and takes the same Adam step, so it stays one shared eta."""
        d_eta, loss = self.eta_gradient(state, generator)
        if self.config.meta.share_eta:
            d_eta = shared_meta_gradient(d_eta)
        new_eta, state.eta_opt = self.meta_optimizer.step({"eta": state.eta}, {"eta": d_eta},
                                                          state.eta_opt)
        state.eta = new_eta["eta"].detach()
        state.dqn.eta = self._condition_on(state.eta)
        return loss

    def eta_gradient(self, state: MetaGradientDQNState, generator: torch.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """The DQN step (``theta'`` and the trace stored in ``state``) and the per-task
        meta-gradient ``dJ'/d eta`` ``[tasks, k]`` (zero in the components not learned),
        with ``J'`` per task; ``eta`` itself is not changed here."""
        s = state.dqn
        batch = self.sample(s, generator)
        update = self.inner_update(s, batch, state.eta)
        # d theta'/d gamma (and d/d logit lambda) by forward mode; d theta'/d log lr = lr *
        # direction = theta' - theta exactly (the step is linear in lr), so that component
        # needs no extra pass
        jvp = [j for j in self.components if self.names[j] != "lr"]
        new, opt, tangents = update_with_tangents(update, state.eta, jvp)
        if "lr" in self.config.meta.learn:
            tangents.append({k: new[k] - s.params[k] for k in new})
            jvp.append(self.names.index("lr"))
        order = [jvp.index(j) for j in self.components]
        tangents = [tangents[i] for i in order]
        state.trace = accumulate_trace(state.trace, tangents, self.config.meta.trace_decay)
        s.params, s.opt = new, {k: v.detach() for k, v in opt.items()}
        s.updates += 1
        query = self.sample(s, generator, self.config.meta.meta_batch_size)
        grads, loss = self.meta_objective_grads(s, query, s.params)
        d_eta = torch.zeros_like(state.eta)
        d_eta[:, self.components] = meta_gradient(grads, state.trace).to(d_eta.dtype)
        return d_eta, loss


def with_eta_input(network: QNetwork, conditioned: QNetwork) -> QNetwork:
    """``conditioned`` (a Q-network with an ``eta`` input, ``eta_dim > 0``) set to
    ``network``'s weights (the same layers without that input), the first layer's weights
    on ``eta`` zero: ``Q(s, .; eta) = Q(s, .)`` for every ``eta`` until learning moves
    them, so that a meta-gradient DQN starts from exactly the plain DQN's initialisation
    (a paired comparison)."""
    source = network.state_dict()
    state = {}
    for k, v in conditioned.state_dict().items():
        w = source[k]
        if w.shape != v.shape:
            if w.shape[:-1] != v.shape[:-1] or w.shape[-1] + conditioned.eta_dim != v.shape[-1]:
                raise ValueError(f"{k}: shape {tuple(w.shape)} does not extend to "
                                 f"{tuple(v.shape)} by eta_dim {conditioned.eta_dim}")
            w = torch.cat([w, w.new_zeros(*w.shape[:-1], conditioned.eta_dim)], dim=-1)
        state[k] = w.clone()
    conditioned.load_state_dict(state)
    return conditioned
