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
Only ``n_step = 1`` is supported (the n-step return's discounts are baked into the replay
sample).
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
    bootstrap_values,
    clip_per_task,
)
from adaptrl.models.functional import Params
from adaptrl.models.q_networks import QNetwork, make_q_network
from adaptrl.rollouts.trial_sampler import Step
from adaptrl.schema import ConfigModel
from adaptrl.tasks.base import BatchedEnv

Learnable = Literal["gamma", "lr"]
LEARNABLE: tuple[Learnable, ...] = ("gamma", "lr")
ETA: tuple[str, ...] = LEARNABLE
"""The components of ``eta``, in order (raw: ``logit gamma``, ``log lr``)."""


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
        default_factory=lambda: list(LEARNABLE), min_length=1,
        description="hyperparameters adapted by meta-gradients (the others stay fixed)")
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
                                     eta_dim=1 if config.meta.conditioned else 0)
        self.dqn = DQNAgent(c, observation_space, action_space, network=network)
        self.network = self.dqn.network
        self.direction = Adam(1.0)  # Adam's step at lr 1; the learned lr scales it
        self.meta_optimizer = Adam(config.meta.meta_lr)
        self.components = [ETA.index(name) for name in config.meta.learn]

    @classmethod
    def starting_from(cls, config: MetaGradientDQNConfig, observation_space: gym.Space,
                      action_space: gym.Space, network: QNetwork) -> MetaGradientDQN:
        """The agent starting from a copy of ``network`` (a plain Q-network's weights, e.g.
        a meta-learned ``theta`` or the same random initialisation as a fixed-hyperparameter
        DQN): conditioned, with zero weights on the gamma input (:func:`with_eta_input`)."""
        c = config.dqn
        if config.meta.conditioned:
            with torch.random.fork_rng(devices=[]):  # the fresh weights are overwritten
                fresh = make_q_network(observation_space, action_space, tuple(c.hidden),
                                       c.activation, c.dueling, c.init, eta_dim=1)
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
        """The current ``gamma`` and ``lr`` per task ``[tasks]``."""
        return {"gamma": discount(state.eta[:, 0]), "lr": step_size(state.eta[:, 1])}

    def _condition(self, gamma: torch.Tensor) -> torch.Tensor | None:
        return gamma.unsqueeze(-1) if self.config.meta.conditioned else None

    # -- the online-learner contract --
    def begin(self, env: BatchedEnv) -> MetaGradientDQNState:
        dqn_state = self.dqn.begin(env)
        c = self.config.dqn
        dtype = next(iter(dqn_state.params.values())).dtype
        eta = torch.stack([discount_logit(c.gamma), torch.log(torch.tensor(c.lr,
                                                                           dtype=torch.float64))])
        eta = eta.to(dtype=dtype, device=env.device).expand(env.num_tasks, 2).clone()
        state = MetaGradientDQNState(dqn_state, eta, self.meta_optimizer.init({"eta": eta}))
        dqn_state.eta = self._condition(discount(eta[:, 0]))
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

    def inner_update(self, s: DQNState, batch: NStepBatch, eta_now: torch.Tensor
                     ) -> Callable[[torch.Tensor], tuple[Params, dict[str, torch.Tensor]]]:
        """``eta -> (theta', Adam state)``: the DQN step on ``batch`` from ``s`` as a pure
        function of the raw ``eta`` (what :func:`update_with_tangents` differentiates);
        the target network's bootstrap value is taken once, conditioned on ``eta_now``."""
        c = self.config.dqn
        cond_now = self._condition(discount(eta_now[:, 0]))
        v_next = self._bootstrap(s, batch.next_obs, cond_now)
        alive = 1.0 - batch.terminated.to(v_next.dtype)
        action = batch.action.long().unsqueeze(-1)
        params, opt = s.params, s.opt

        def update(eta: torch.Tensor) -> tuple[Params, dict[str, torch.Tensor]]:
            gamma, lr = discount(eta[:, 0]), step_size(eta[:, 1])
            y = batch.returns + gamma.unsqueeze(-1) * alive * v_next
            cond = self._condition(gamma)

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

    def meta_objective_grads(self, s: DQNState, batch: NStepBatch, params: Params
                             ) -> tuple[Params, torch.Tensor]:
        """``dJ'/d theta'`` at ``params`` and ``J'`` per task ``[tasks]``: the TD loss of
        ``batch`` with the reference discount ``gamma_bar`` (network and target conditioned
        on it)."""
        m, c = self.config.meta, self.config.dqn
        tasks = batch.obs.shape[0]
        gamma_bar = torch.full((tasks,), m.gamma_bar, dtype=batch.returns.dtype,
                               device=batch.returns.device)
        cond = self._condition(gamma_bar)
        v_next = self._bootstrap(s, batch.next_obs, cond)
        y = batch.returns + m.gamma_bar * (1.0 - batch.terminated.to(v_next.dtype)) * v_next
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
        state.dqn.eta = self._condition(discount(state.eta[:, 0]))
        return loss

    def eta_gradient(self, state: MetaGradientDQNState, generator: torch.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """The DQN step (``theta'`` and the trace stored in ``state``) and the per-task
        meta-gradient ``dJ'/d eta`` ``[tasks, 2]`` (zero in the components not learned),
        with ``J'`` per task; ``eta`` itself is not changed here."""
        s = state.dqn
        batch = self.dqn.sample(s, generator)
        update = self.inner_update(s, batch, state.eta)
        # d theta'/d gamma by forward mode; d theta'/d log lr = lr * direction = theta' - theta
        # exactly (the step is linear in lr), so that component needs no extra pass
        jvp = [j for j in self.components if ETA[j] == "gamma"]
        new, opt, tangents = update_with_tangents(update, state.eta, jvp)
        if "lr" in self.config.meta.learn:
            tangents.append({k: new[k] - s.params[k] for k in new})
            jvp.append(ETA.index("lr"))
        order = [jvp.index(j) for j in self.components]
        tangents = [tangents[i] for i in order]
        state.trace = accumulate_trace(state.trace, tangents, self.config.meta.trace_decay)
        s.params, s.opt = new, {k: v.detach() for k, v in opt.items()}
        s.updates += 1
        query = self.dqn.sample(s, generator, self.config.meta.meta_batch_size)
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
