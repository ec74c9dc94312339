"""DQN batched over tasks: the learner of adaptrl's value-based line (unit ``env_steps``).

Deep Q-learning (Mnih et al. 2015, "Human-level control through deep reinforcement
learning", Algorithm 1) run on a batch of tasks at once, each task with its own
Q-network, target network, replay and optimizer state, all stacked along a leading task
dimension so that acting, storing, sampling and the gradient step are a handful of tensor
ops with no Python loop over tasks:

* Q-network: :class:`~adaptrl.models.q_networks.QNetwork`, plain or dueling (Wang et al.
  2016), called with per-task parameters ``[tasks, ...]``; every task starts from the
  agent's initial parameters (what a meta-learner will learn);
* replay: one :class:`~adaptrl.rollouts.replay.RingBuffer` row per ``(task, slot)`` of the
  env, so each slot's transitions stay chronological and an n-step window is read at
  sample time by looking ahead in the slot's ring (:func:`sample_n_step`); a task's
  replay is the union of its slots' rings (``buffer_size`` split evenly over them), and a
  batch is drawn uniformly from it;
* targets: n-step returns (Sutton & Barto 2018, §7.1) from
  :func:`~adaptrl.rollouts.td.n_step_windows`, bootstrapped with the target network's
  value of the true state after the window — through a truncation, never a termination —
  (:func:`sample_window` reads the same windows with every step kept, for the truncated
  lambda-returns of :func:`lambda_returns`, Sutton & Barto 2018, §12.3) and with Double
  DQN (van Hasselt et al. 2016, "Deep reinforcement learning with double Q-learning",
  eq. 4) the bootstrap action is the online network's argmax, its value the
  target network's;
* loss: the Huber loss (``huber_delta``; Mnih et al. 2015 clip the TD error to [-1, 1],
  i.e. ``delta = 1``) or, with ``huber_delta: null``, the squared error (CleanRL's
  default), averaged over each task's batch;
* optimizer: Adam per task (:class:`~adaptrl.adaptation.inner_optimizers.Adam`, its
  moments stacked over tasks). The loss minimised is the *sum* of the per-task losses:
  task ``i``'s loss depends only on task ``i``'s parameters, so the gradient of the sum
  with respect to them is task ``i``'s own gradient and one backward pass serves all
  tasks. Gradient-norm clipping (``max_grad_norm``) is per task, each task's global norm
  over its own parameters (the rule of ``torch.nn.utils.clip_grad_norm_``);
* target network: every ``target_period`` env steps, ``target <- tau Q + (1 - tau)
  target``: ``tau = 1`` is the periodic copy of Mnih et al. 2015, ``target_period = 1``
  with a small ``tau`` is Polyak averaging (Lillicrap et al. 2016);
* exploration: epsilon-greedy with epsilon linear from ``epsilon_start`` to
  ``epsilon_end`` over ``exploration_fraction x total_steps`` env steps.

The defaults are CleanRL's ``dqn.py`` (Huang et al. 2022): lr 2.5e-4, buffer 10k, batch
128, gamma 0.99, target copied every 500 steps, a gradient step every 10 steps from step
10k, epsilon 1 -> 0.05 over half of 500k steps, a 120-84 ReLU MLP, squared-error loss,
no clipping, plain (not Double, not dueling) 1-step DQN.

Counting: the agent's clock (``DQNState.steps``) counts env steps of the batched env,
one per :meth:`DQNAgent.observe` (all of a task's slots step together: CleanRL's
``global_step`` with ``num_envs`` = slots); epsilon, ``learning_starts``,
``train_frequency`` and ``target_period`` read it. Step ``t`` (0-based) takes a gradient
step if ``t > learning_starts`` and ``t % train_frequency == 0``, and updates the target
if ``t > learning_starts`` and ``t % target_period == 0``, as CleanRL does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import torch
import torch.nn.functional as F
from pydantic import Field

from adaptrl.adaptation.inner_optimizers import Adam
from adaptrl.agents.contract import AdaptationUnit
from adaptrl.models.functional import Params, detach_params, named_params
from adaptrl.models.policies import LayerSizes
from adaptrl.models.q_networks import QNetwork, make_q_network
from adaptrl.randomness import rand
from adaptrl.rollouts.online import OnlineRun, play_online
from adaptrl.rollouts.replay import RingBuffer
from adaptrl.rollouts.td import n_step_windows, td_targets
from adaptrl.rollouts.transitions import Transitions
from adaptrl.rollouts.trial_sampler import Step
from adaptrl.schema import ConfigModel
from adaptrl.tasks.base import BatchedEnv, TaskFamily

_RANDOM_HIGH = 2 ** 62


class DQNConfig(ConfigModel):
    """DQN's settings; the defaults are CleanRL's ``dqn.py`` (see the module doc)."""

    lr: float = Field(2.5e-4, gt=0, description="Adam step size")
    buffer_size: int = Field(10_000, ge=1, description="replay capacity per task (split "
                             "evenly over the task's env slots)")
    batch_size: int = Field(128, ge=1, description="transitions per task per gradient step")
    gamma: float = Field(0.99, ge=0, le=1, description="discount")
    n_step: int = Field(1, ge=1, description="steps of reward before the bootstrap")
    target_period: int = Field(500, ge=1, description="env steps between target updates")
    tau: float = Field(1.0, gt=0, le=1, description="target <- tau Q + (1 - tau) target at "
                       "each update (1: a copy)")
    double: bool = Field(False, description="Double DQN: bootstrap action by the online net")
    dueling: bool = Field(False, description="dueling head (value + mean-free advantage)")
    hidden: LayerSizes = Field(default_factory=lambda: [120, 84],
                               description="hidden layer sizes of the Q-network")
    activation: Literal["relu", "tanh", "elu", "gelu", "silu"] = "relu"
    init: Literal["xavier", "torch"] = Field("xavier", description="Q-network "
                                             "initialisation: Glorot-uniform weights and "
                                             "zero biases, or nn.Linear's own (CleanRL's)")
    epsilon_start: float = Field(1.0, ge=0, le=1, description="initial exploration rate")
    epsilon_end: float = Field(0.05, ge=0, le=1, description="final exploration rate")
    exploration_fraction: float = Field(0.5, ge=0, le=1, description="fraction of "
                                        "total_steps over which epsilon decays")
    total_steps: int = Field(500_000, ge=1, description="the run's env steps (the epsilon "
                             "schedule's length)")
    learning_starts: int = Field(10_000, ge=0, description="env steps before learning")
    train_frequency: int = Field(10, ge=1, description="env steps per gradient step")
    max_grad_norm: float | None = Field(None, gt=0, description="per-task gradient-norm "
                                        "clip (null: none)")
    huber_delta: float | None = Field(None, gt=0, description="Huber loss threshold "
                                      "(null: squared error)")

    def epsilon(self, step: int) -> float:
        """The exploration rate at env step ``step`` (0-based): linear from
        ``epsilon_start`` to ``epsilon_end`` over ``exploration_fraction x total_steps``
        steps, then constant (CleanRL's ``linear_schedule``)."""
        duration = self.exploration_fraction * self.total_steps
        if duration <= 0:
            return self.epsilon_end
        slope = (self.epsilon_end - self.epsilon_start) / duration
        return max(slope * step + self.epsilon_start, self.epsilon_end)


@dataclass
class DQNState:
    """The learning state of a batch of tasks (mutable: ``observe`` updates it in place).

    ``params`` / ``target``: per-task Q-network and target parameters ``[tasks, ...]``;
    ``opt``: the per-task Adam state; ``replay``: one ring per ``(task, slot)``, row
    ``task * slots + slot``; ``steps``: env steps observed. ``generator`` is the one the
    last action was drawn from, which ``observe`` samples the replay with (``act`` always
    precedes ``observe``); it belongs to the caller and is not saved. ``eta``: the
    conditioning input ``[tasks, eta_dim]`` of a Q-network that takes one
    (:class:`~adaptrl.models.q_networks.QNetwork` ``eta_dim``; set by a wrapper that
    adapts hyperparameters, e.g. :mod:`adaptrl.agents.dqn_metagrad`), else ``None``.
    """

    params: Params
    target: Params
    opt: dict[str, torch.Tensor]
    replay: RingBuffer
    num_tasks: int
    slots: int
    steps: int = 0
    updates: int = 0
    generator: torch.Generator | None = field(default=None, repr=False)
    eta: torch.Tensor | None = None

    def state_dict(self) -> dict[str, Any]:
        """Everything learning depends on (tensors and ints; ``torch.load`` with
        ``weights_only=True`` reads it): parameters, target, optimizer, replay, clock."""
        state = {"params": _clone(self.params), "target": _clone(self.target),
                 "opt": _clone(self.opt), "replay": self.replay.state_dict(),
                 "num_tasks": self.num_tasks, "slots": self.slots, "steps": self.steps,
                 "updates": self.updates}
        if self.eta is not None:
            state["eta"] = self.eta.detach().clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` into a state made for the same tasks and slots."""
        if (state["num_tasks"], state["slots"]) != (self.num_tasks, self.slots):
            raise ValueError(f"state is for {state['num_tasks']} tasks x {state['slots']} "
                             f"slots, this one has {self.num_tasks} x {self.slots}")
        dev = self.replay.device
        self.params = {k: v.to(dev).clone() for k, v in state["params"].items()}
        self.target = {k: v.to(dev).clone() for k, v in state["target"].items()}
        self.opt = {k: v.clone() if v.dim() == 0 else v.to(dev).clone()
                    for k, v in state["opt"].items()}
        self.replay.load_state_dict(state["replay"])
        self.steps, self.updates = int(state["steps"]), int(state["updates"])
        self.eta = state["eta"].to(dev).clone() if "eta" in state else None


def _clone(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in params.items()}


@dataclass(frozen=True)
class NStepBatch:
    """A batch of n-step transitions per task, all ``[tasks, batch, ...]``: the target is
    ``returns + discount * (1 - terminated) * V(next_obs)``."""

    obs: torch.Tensor
    action: torch.Tensor
    returns: torch.Tensor  # sum_{k<m} gamma^k r_{t+k}
    discount: torch.Tensor  # gamma^m
    next_obs: torch.Tensor  # the true observation after the window's last step
    terminated: torch.Tensor  # the window's last step is terminal: no bootstrap


def step_transitions(step: Step) -> Transitions:
    """One env step as replay rows: ``[tasks * slots, 1, ...]`` (row ``task * slots +
    slot``), the slots that were not live marked invalid."""
    def rows(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1, 1, *x.shape[2:])
    alive = step.alive
    return Transitions(rows(step.obs), rows(step.action), rows(step.reward),
                       rows(step.next_obs), rows(step.terminated), rows(step.truncated),
                       valid=None if bool(alive.all()) else rows(alive))


def _draw_starts(replay: RingBuffer, slots: int, batch_size: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` transitions per task drawn uniformly with replacement from the union
    of the task's ``slots`` rings: their ring rows and positions, both ``[tasks, batch]``."""
    dev = replay.device
    tasks = replay.num_tasks // slots
    size = replay.size.view(tasks, slots)
    total = size.sum(-1, keepdim=True)
    if not bool((total > 0).all()):
        raise ValueError("cannot sample: some task's replay is empty")
    draw = torch.randint(0, _RANDOM_HIGH, (tasks, batch_size), generator=generator,
                         device=generator.device).to(dev) % total
    ends = size.cumsum(-1)
    slot = torch.searchsorted(ends, draw, right=True)  # first slot whose rows reach draw
    index = draw - (ends - size).gather(1, slot)
    row = slot + slots * torch.arange(tasks, device=dev).unsqueeze(1)
    return row, index


def _draw_windows(replay: RingBuffer, slots: int, batch_size: int, n: int,
                  generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """The drawn starts (:func:`_draw_starts`: ``row``, ``index``) and their ``n``-step
    windows in the ring: ``rows [tasks, B, 1]``, ring positions ``window [tasks, B, n]``
    (wrapping round the ring's end) and each row's newest position ``newest``."""
    cap = replay.capacity
    row, index = _draw_starts(replay, slots, batch_size, generator)
    window = (index.unsqueeze(-1) + torch.arange(n, device=replay.device)) % cap
    rows = row.unsqueeze(-1)
    return row, index, rows, window, ((replay.position - 1) % cap)[rows]


def sample_n_step(replay: RingBuffer, slots: int, batch_size: int, gamma: float, n: int,
                  generator: torch.Generator) -> NStepBatch:
    """``batch_size`` n-step transitions per task, drawn uniformly with replacement from
    the task's transitions (the union of its ``slots`` rings of ``replay``).

    The window of a drawn transition is read ahead in its slot's ring (chronological) and
    stops at the first step that ends an episode or at the ring's newest transition (the
    data so far ends there: bootstrap), so it never crosses a reset
    (:func:`~adaptrl.rollouts.td.n_step_windows`).
    """
    row, index, rows, window, newest = _draw_windows(replay, slots, batch_size, n, generator)
    data = replay.data
    w = n_step_windows(data.reward[rows, window], data.terminated[rows, window],
                       data.truncated[rows, window] | (window == newest), gamma, n, dim=2)
    last = window.gather(2, w.last[..., :1]).squeeze(-1)
    return NStepBatch(data.obs[row, index], data.action[row, index], w.returns[..., 0],
                      w.discount[..., 0], data.next_obs[row, last], w.terminated[..., 0])


@dataclass(frozen=True)
class WindowBatch:
    """A batch of n-step windows per task with every step of the window kept (what a
    lambda-return needs: the bootstrap value after *each* step, not only after the last).

    ``obs``, ``action``: the window's first step, ``[tasks, batch, ...]``; per step ``k`` of
    the window, ``[tasks, batch, n, ...]``: ``rewards`` (``r_{t+k}``, 0 outside the window),
    ``next_obs`` (``s_{t+k+1}``, the true observation after step ``k``), ``terminated``
    (step ``k`` is terminal: no bootstrap after it) and ``valid`` (step ``k`` belongs to
    the window: no earlier step of it ended an episode or was the ring's newest)."""

    obs: torch.Tensor
    action: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    valid: torch.Tensor

    @property
    def length(self) -> torch.Tensor:
        """Steps in each window ``[tasks, batch]`` (``m`` of Sutton & Barto's eq. 7.1)."""
        return self.valid.sum(-1)


def sample_window(replay: RingBuffer, slots: int, batch_size: int, n: int,
                  generator: torch.Generator) -> WindowBatch:
    """``batch_size`` n-step windows per task with every step's reward, flags and next
    observation (:class:`WindowBatch`), drawn as :func:`sample_n_step` draws (the same
    random numbers give the same starts).

    A window is read ahead in its slot's ring (chronological, wrapping round the ring's
    end) and stops at the first step that ends an episode (terminated or truncated) or at
    the ring's newest transition, as :func:`sample_n_step`'s does: it never crosses a reset
    and never wraps round to the oldest data; steps past its end are ``valid = False``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    row, index, rows, window, newest = _draw_windows(replay, slots, batch_size, n, generator)
    data = replay.data
    terminated = data.terminated[rows, window]
    ended = terminated | data.truncated[rows, window] | (window == newest)
    # step k is in the window when none of steps 0..k-1 ended it
    ended_before = torch.cat([torch.zeros_like(ended[..., :1]), ended[..., :-1]], -1)
    valid = ended_before.long().cumsum(-1) == 0
    rewards = data.reward[rows, window]
    return WindowBatch(data.obs[row, index], data.action[row, index],
                       torch.where(valid, rewards, torch.zeros_like(rewards)),
                       data.next_obs[rows, window], terminated & valid, valid)


def lambda_returns(window: WindowBatch, values: torch.Tensor, gamma: float | torch.Tensor,
                   lam: float | torch.Tensor) -> torch.Tensor:
    """The truncated lambda-return of every window's first step ``[tasks, batch]``
    (Sutton & Barto 2018, §12.3, eq. 12.9-12.10; the return of Peng's Q(lambda) without
    off-policy correction, as n-step DQN uses none), computed backwards over the window::

        G_k = r_k + gamma [(1 - lambda) v_k + lambda G_{k+1}]   (k before the window's last)
        G_k = r_k + gamma (1 - terminated_k) v_k                  (k its last step)

    ``values[..., k] = v(s_{t+k+1})``: the bootstrap value after step ``k`` (DQN: the target
    network's value, Double DQN's where the agent uses it), ``[tasks, batch, n]``;
    ``gamma`` and ``lam`` scalars or tensors broadcasting to ``[tasks, batch]`` (a learned,
    per-task ``[tasks, 1]``). Written with elementwise ops (forward-mode differentiable in
    ``gamma`` and ``lam``). ``lam = 1`` is the n-step return, ``lam = 0`` the one-step TD
    target; a window cut by a truncation or by the data's end bootstraps there, a
    terminated one does not.
    """
    valid = window.valid
    last = valid & ~torch.cat([valid[..., 1:], torch.zeros_like(valid[..., :1])], -1)
    alive = 1.0 - window.terminated.to(values.dtype)
    g = torch.zeros_like(values[..., 0])
    for k in reversed(range(values.shape[-1])):
        r, v = window.rewards[..., k].to(values.dtype), values[..., k]
        end = r + gamma * (alive[..., k] * v)
        inner = r + gamma * ((1 - lam) * v + lam * g)
        g = torch.where(last[..., k], end, torch.where(valid[..., k], inner,
                                                       torch.zeros_like(inner)))
    return g


def bootstrap_values(q_target: torch.Tensor, q_online: torch.Tensor | None = None
                     ) -> torch.Tensor:
    """``V(s')`` from the next state's action values ``[..., actions]``: the target
    network's max (DQN, Mnih et al. 2015), or with ``q_online`` the target network's value
    of the online network's argmax (Double DQN, van Hasselt et al. 2016, eq. 4)."""
    if q_online is None:
        return q_target.max(-1).values
    return q_target.gather(-1, q_online.argmax(-1, keepdim=True)).squeeze(-1)


def td_loss(q: torch.Tensor, target: torch.Tensor, huber_delta: float | None
            ) -> torch.Tensor:
    """Per-task loss ``[tasks]``: the mean over the batch (last dim) of the Huber loss with
    threshold ``huber_delta``, or of the squared error when it is ``None``."""
    if huber_delta is None:
        return (q - target).square().mean(-1)
    return F.huber_loss(q, target, reduction="none", delta=huber_delta).mean(-1)


def clip_per_task(grads: Params, max_norm: float) -> tuple[Params, torch.Tensor]:
    """Scale each task's gradient (leading dim) so that its global norm over all
    parameters is at most ``max_norm``; returns the clipped gradients and the norms
    ``[tasks]`` before clipping (``torch.nn.utils.clip_grad_norm_``'s rule, per task)."""
    norm = torch.stack([g.flatten(1).square().sum(1) for g in grads.values()]).sum(0).sqrt()
    coef = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    return {k: g * coef.view(-1, *([1] * (g.dim() - 1))) for k, g in grads.items()}, norm


def soft_update(target: Params, params: Params, tau: float) -> Params:
    """``tau params + (1 - tau) target`` (``tau = 1``: an exact copy)."""
    if tau == 1.0:
        return _clone(params)
    return {k: torch.lerp(target[k], params[k], tau) for k in target}


@dataclass(frozen=True)
class GreedyQActor:
    """Per-task Q-networks acting greedily, learning nothing: a
    :class:`~adaptrl.rollouts.trial_sampler.TrialActor` that
    :func:`~adaptrl.rollouts.trial_sampler.play_trials` can score."""

    network: QNetwork
    params: Params
    eta: torch.Tensor | None = None  # the network's conditioning input, if it takes one

    def begin(self, env: BatchedEnv, episodes: int) -> None:
        return None

    def begin_episode(self, state: None, episode: int) -> None:
        return state

    @torch.no_grad()
    def act(self, obs: torch.Tensor, state: None, generator: torch.Generator
            ) -> tuple[torch.Tensor, None]:
        return self.network(obs, self.params, self.eta).argmax(-1), state

    def observe(self, step: Step, state: None) -> None:
        return state


class DQNAgent:
    """DQN on a batch of tasks (see the module doc): an
    :class:`~adaptrl.rollouts.online.OnlineLearner` whose unit is ``env_steps``.

    The agent holds the config and the Q-network with its initial parameters (its
    :meth:`state_dict`); everything that learning changes lives in the :class:`DQNState`
    that :meth:`begin` makes and :meth:`act` / :meth:`observe` carry.
    """

    def __init__(self, config: DQNConfig, observation_space: gym.Space,
                 action_space: gym.Space, network: QNetwork | None = None) -> None:
        """``network``: the Q-network every task starts from (shared, not copied: a
        meta-learner's ``theta``); default a fresh one built from ``config``."""
        self.config = config
        self.network = network if network is not None else make_q_network(
            observation_space, action_space, tuple(config.hidden), config.activation,
            config.dueling, config.init)
        self.num_actions = self.network.num_actions
        self.optimizer = Adam(config.lr)

    @property
    def unit(self) -> AdaptationUnit:
        return AdaptationUnit.ENV_STEPS

    def initial_params(self) -> Params:
        """The parameters every task starts from (detached)."""
        return detach_params(named_params(self.network))

    def state_dict(self) -> dict[str, Any]:
        """The agent's own state: the Q-network's initial parameters."""
        return self.network.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state)

    # -- the online-learner contract --
    def begin(self, env: BatchedEnv) -> DQNState:
        """Fresh learning state for every task of ``env``: each task's Q-network and target
        are copies of the initial parameters, its replay is empty, its Adam moments zero."""
        n, m = env.num_tasks, env.episodes_per_task
        params = {k: v.to(env.device).expand(n, *v.shape).clone()
                  for k, v in self.initial_params().items()}
        replay = RingBuffer(n * m, max(1, self.config.buffer_size // m), env.device)
        return DQNState(params, _clone(params), self.optimizer.init(params), replay, n, m)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, state: DQNState, generator: torch.Generator
            ) -> tuple[torch.Tensor, DQNState]:
        """Epsilon-greedy actions ``[tasks, slots]`` (two uniforms per slot, drawn always)."""
        greedy = self.network(obs, state.params, state.eta).argmax(-1)
        eps = self.config.epsilon(state.steps)
        u = rand((2, *greedy.shape), generator, greedy.device)
        random = (u[1] * self.num_actions).long().clamp_(max=self.num_actions - 1)
        state.generator = generator
        return torch.where(u[0] < eps, random, greedy), state

    def observe(self, step: Step, state: DQNState,
                learn: Callable[[DQNState, torch.Generator], Any] | None = None) -> DQNState:
        """Store the live transitions; on schedule, a gradient step and a target update.

        ``learn``: what the gradient step is (default :meth:`learn`): a wrapper that
        changes the update (e.g. meta-gradient RL, :mod:`adaptrl.agents.dqn_metagrad`)
        keeps this schedule, replay and target network."""
        state.replay.add(step_transitions(step))
        t, c = state.steps, self.config
        state.steps += 1
        if t > c.learning_starts:
            if t % c.train_frequency == 0:
                if state.generator is None:
                    raise RuntimeError("observe before act: no generator to sample with")
                (learn or self.learn)(state, state.generator)
            if t % c.target_period == 0:
                state.target = soft_update(state.target, state.params, c.tau)
        return state

    def evaluation_actor(self, state: DQNState) -> GreedyQActor:
        """Greedy acting with the tasks' current Q-networks (epsilon = 0, no learning)."""
        eta = None if state.eta is None else state.eta.detach().clone()
        return GreedyQActor(self.network, _clone(state.params), eta)

    # -- learning --
    def targets(self, batch: NStepBatch, state: DQNState) -> torch.Tensor:
        """The (Double) DQN n-step targets of ``batch``, ``[tasks, batch]`` (no gradient)."""
        with torch.no_grad():
            q_target = self.network(batch.next_obs, state.target, state.eta)
            q_online = (self.network(batch.next_obs, state.params, state.eta)
                        if self.config.double else None)
            value = bootstrap_values(q_target, q_online)
            # returns + discount * (1 - terminated) * V: td_targets with the window's discount
            return td_targets(batch.returns, batch.discount * value, batch.terminated, 1.0)

    def sample(self, state: DQNState, generator: torch.Generator,
               batch_size: int | None = None) -> NStepBatch:
        """A batch of n-step transitions per task from its own replay (default size:
        ``config.batch_size``)."""
        c = self.config
        return sample_n_step(state.replay, state.slots, batch_size or c.batch_size, c.gamma,
                             c.n_step, generator)

    def td_gradients(self, state: DQNState, batch: NStepBatch, params: Params
                     ) -> tuple[Params, torch.Tensor]:
        """The gradient of each task's TD loss on ``batch`` at ``params`` ``[tasks, ...]``
        (targets from ``state``: its target network, no gradient through them) and the
        per-task losses ``[tasks]``."""
        y = self.targets(batch, state)
        leaves = {k: v.detach().requires_grad_() for k, v in params.items()}
        with torch.enable_grad():
            q = self.network(batch.obs, leaves, state.eta).gather(
                -1, batch.action.long().unsqueeze(-1)).squeeze(-1)
            loss = td_loss(q, y, self.config.huber_delta)
            # the tasks' losses are separable: d(sum)/d(params_i) = d(loss_i)/d(params_i)
            grads = dict(zip(leaves, torch.autograd.grad(loss.sum(), list(leaves.values())),
                             strict=True))
        return grads, loss.detach()

    def learn(self, state: DQNState, generator: torch.Generator) -> torch.Tensor:
        """One gradient step for every task on a batch from its own replay; returns the
        per-task loss ``[tasks]``."""
        c = self.config
        grads, loss = self.td_gradients(state, self.sample(state, generator), state.params)
        if c.max_grad_norm is not None:
            grads, _ = clip_per_task(grads, c.max_grad_norm)
        state.params, state.opt = self.optimizer.step(state.params, grads, state.opt)
        state.updates += 1
        return loss


def learn_one_task(family: TaskFamily, config: DQNConfig, steps: int, seed: int) -> OnlineRun:
    """Online DQN from scratch on one training task of ``family`` (one env) for ``steps``
    env steps, the task, the initial weights and every draw seeded by ``seed``: the
    single-env protocol of CleanRL's ``dqn.py`` (Mnih et al. 2015)."""
    tasks = family.sample(1, "train", torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)  # the Q-network's initial weights
    agent = DQNAgent(config, family.observation_space, family.action_space)
    return play_online(family.make_env(tasks, 1), agent, steps,
                       torch.Generator().manual_seed(seed))
