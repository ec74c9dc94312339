"""DQN trained along a non-stationary task stream: plain, with reservoir replay, and with MER.

Riemer et al. (ICLR 2019, "Learning to Learn without Forgetting by Maximizing Transfer and
Minimizing Interference", §5.2) put Meta Experience Replay inside DQN (Mnih et al. 2015)
and train it on games that change over time — Catcher whose fruit falls faster, Flappy
Bird whose pipe gap narrows — against DQN with an ordinary and with a reservoir replay.
One Q-network learns online along the whole stream (the trainer's ``schedule: {kind:
stages}`` draws each iteration's tasks from the current stage); each meta-iteration plays
``env_steps`` env steps per slot on the iteration's tasks (pooled into one learner,
:class:`~adaptrl.tasks.wrappers.PooledTasks`), the learning state — parameters, target,
optimizer, memory, clock — kept from one iteration to the next and saved in checkpoints.
The three learners differ only in their memory and their update:

* ``dqn-stream`` — DQN: a ring of the ``buffer_size`` most recent transitions
  (:class:`~adaptrl.rollouts.replay.RingBuffer`), every ``train_frequency`` steps one Adam
  step on a uniform batch's mean TD loss (DQN's own update, ``agents/dqn.py``'s rules);
* ``dqn-er`` — the same update on a reservoir of ``buffer_size`` transitions
  (:class:`~adaptrl.rollouts.replay.ReservoirBuffer`, Vitter's Algorithm R): a uniform
  sample of everything seen, every stage kept in proportion to its length;
* ``dqn-mer`` — the reservoir and, in place of the Adam step, MER's update
  (:func:`~adaptrl.adaptation.mer.mer_update`, Algorithm 1): ``s`` batches of the current
  transition plus ``k`` memories, per-sample SGD (step ``mer.lr``) through each, the
  within-batch Reptile step with ``beta`` and the across-batch one with ``gamma``; the TD
  targets of all the batches are fixed from the target network when the update starts
  (as DQN fixes a batch's targets), the per-sample loss is DQN's (squared or Huber).

The "current example" of a MER update is the newest transition (the last env step's; with
several slots, one slot drawn uniformly each update, the others reach the update through
the memory; a slot that was not live contributes zero loss). All tasks' (here: the pooled
learner's) updates run under one :func:`torch.func.vmap`; the per-sample steps inside
are sequential by design (:mod:`adaptrl.adaptation.mer`).

The agent the stream is scored with (``agent()``) is the Q-network as trained so far,
acting greedily: with ``evaluation.steps: 0`` the protocol scores it without adapting
(:func:`~adaptrl.evaluation.protocol.online_curve`'s unit 0). Replay is one-step
(``dqn.n_step`` must be 1: a reservoir keeps no chronology to read n-step windows from).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import torch
from pydantic import Field, model_validator

from adaptrl.adaptation.inner_optimizers import Adam
from adaptrl.adaptation.mer import (
    Example,
    mer_batches,
    mer_one_big_batch,
    mer_update,
    over_learners,
    replay_sgd,
)
from adaptrl.agents.contract import AdaptationUnit
from adaptrl.agents.dqn import (
    DQNAgent,
    DQNConfig,
    GreedyQActor,
    bootstrap_values,
    clip_per_task,
    soft_update,
    td_loss,
)
from adaptrl.algorithms.base import AlgorithmConfig
from adaptrl.algorithms.dqn_init import online_metrics
from adaptrl.algorithms.registry import register_algorithm
from adaptrl.models.functional import Params, named_params
from adaptrl.models.q_networks import QNetwork
from adaptrl.randomness import rand
from adaptrl.rollouts.online import play_online
from adaptrl.rollouts.replay import ReservoirBuffer, RingBuffer
from adaptrl.rollouts.td import td_targets
from adaptrl.rollouts.transitions import Transitions
from adaptrl.rollouts.trial_sampler import Step
from adaptrl.schema import ConfigModel
from adaptrl.tasks.base import BatchedEnv, TaskFamily, Tasks
from adaptrl.tasks.wrappers import PooledTasks

Memory = RingBuffer | ReservoirBuffer


class MERConfig(ConfigModel):
    """MER's settings inside DQN (Riemer et al. 2019, Algorithm 1)."""

    lr: float = Field(0.01, gt=0, description="alpha: per-sample SGD step size")
    beta: float = Field(0.1, ge=0, le=1, description="within-batch Reptile rate")
    gamma: float = Field(1.0, ge=0, le=1, description="across-batch Reptile rate")
    memories: int = Field(15, ge=1, description="k: memories per batch")
    batches: int = Field(2, ge=1, description="s: batches per update")
    variant: Literal["algorithm-1", "one-big-batch", "replay-sgd"] = Field(
        "algorithm-1", description="algorithm-1: a Reptile step per batch; one-big-batch: "
        "one pass through the s batches and one Reptile step; replay-sgd: a control, one "
        "SGD step (lr) on each batch's mean loss (Riemer et al.'s ER baseline: no "
        "per-sample order, no Reptile steps)")


class StreamDQNConfig(AlgorithmConfig):
    """One Q-network learning online along a stream (module doc)."""

    meta_batch_size: int = Field(1, ge=1, description="tasks per iteration, played pooled "
                                 "(one slot each) by the one learner")
    env_steps: int = Field(1000, ge=1, description="env steps per slot per iteration")
    dqn: DQNConfig = Field(default_factory=DQNConfig, description="the DQN (dqn-mer uses "
                           "its memory, schedule, target and loss, not its Adam step)")
    mer: MERConfig = Field(default_factory=MERConfig, description="dqn-mer's update")

    @model_validator(mode="after")
    def _one_step(self) -> StreamDQNConfig:
        if self.dqn.n_step != 1:
            raise ValueError(f"dqn.n_step: {self.name} replays one-step transitions, got "
                             f"{self.dqn.n_step}; allowed: 1")
        return self

    @property
    def memory_kind(self) -> Literal["ring", "reservoir"]:
        return "ring" if self.name == "dqn-stream" else "reservoir"


class DQNStreamConfig(StreamDQNConfig):
    name: Literal["dqn-stream"] = "dqn-stream"


class DQNERConfig(StreamDQNConfig):
    name: Literal["dqn-er"] = "dqn-er"


class DQNMERConfig(StreamDQNConfig):
    name: Literal["dqn-mer"] = "dqn-mer"


@dataclass
class StreamDQNState:
    """The learning state (mutable, like :class:`~adaptrl.agents.dqn.DQNState`): per-task
    parameters and target ``[tasks, ...]``, Adam's state (unused by MER), the memory (one
    row per task, its slots' transitions together), the last step's transitions (MER's
    current example), the clock. ``generator``: the one the last action was drawn from."""

    params: Params
    target: Params
    opt: dict[str, torch.Tensor]
    memory: Memory
    latest: Transitions | None = None
    steps: int = 0
    updates: int = 0
    generator: torch.Generator | None = field(default=None, repr=False)

    def state_dict(self) -> dict[str, Any]:
        latest = None if self.latest is None else {
            **{k: v.clone() for k, v in self.latest.data().items()},
            "valid": None if self.latest.valid is None else self.latest.valid.clone()}
        return {"params": _clone(self.params), "target": _clone(self.target),
                "opt": _clone(self.opt), "memory": self.memory.state_dict(),
                "latest": latest, "steps": self.steps, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        dev = self.memory.device
        self.params = {k: v.to(dev).clone() for k, v in state["params"].items()}
        self.target = {k: v.to(dev).clone() for k, v in state["target"].items()}
        self.opt = {k: v.clone() if v.dim() == 0 else v.to(dev).clone()
                    for k, v in state["opt"].items()}
        self.memory.load_state_dict(state["memory"])
        latest = state["latest"]
        self.latest = None if latest is None else Transitions(
            **{k: latest[k].to(dev) for k in Transitions.DATA},
            valid=None if latest["valid"] is None else latest["valid"].to(dev))
        self.steps, self.updates = int(state["steps"]), int(state["updates"])


def _clone(x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in x.items()}


def step_rows(step: Step) -> Transitions:
    """One env step as memory rows ``[tasks, slots, ...]`` (a task's slots are its rows;
    slots that were not live are marked invalid)."""
    alive = step.alive
    return Transitions(step.obs, step.action, step.reward, step.next_obs, step.terminated,
                       step.truncated, valid=None if bool(alive.all()) else alive)


class StreamDQN:
    """The online learner (:class:`~adaptrl.rollouts.online.OnlineLearner`, unit
    ``env_steps``) of the three algorithms: DQN's acting, its schedule and targets, with
    the config's memory and update (module doc)."""

    def __init__(self, config: StreamDQNConfig, observation_space: gym.Space,
                 action_space: gym.Space, network: QNetwork) -> None:
        self.config = config
        self.dqn = DQNAgent(config.dqn, observation_space, action_space, network=network)
        self.network = network
        self.optimizer = Adam(config.dqn.lr)
        self.losses: list[float] = []

    @property
    def unit(self) -> AdaptationUnit:
        return AdaptationUnit.ENV_STEPS

    def begin(self, env: BatchedEnv) -> StreamDQNState:
        n, c = env.num_tasks, self.config.dqn
        params = {k: v.to(env.device).expand(n, *v.shape).clone()
                  for k, v in self.dqn.initial_params().items()}
        kind = ReservoirBuffer if self.config.memory_kind == "reservoir" else RingBuffer
        return StreamDQNState(params, _clone(params), self.optimizer.init(params),
                              kind(n, c.buffer_size, env.device))

    @torch.no_grad()
    def act(self, obs: torch.Tensor, state: StreamDQNState, generator: torch.Generator
            ) -> tuple[torch.Tensor, StreamDQNState]:
        """Epsilon-greedy, as :meth:`DQNAgent.act` (two uniforms per slot, drawn always)."""
        greedy = self.network(obs, state.params).argmax(-1)
        u = rand((2, *greedy.shape), generator, greedy.device)
        a = self.dqn.num_actions
        random = (u[1] * a).long().clamp_(max=a - 1)
        state.generator = generator
        return torch.where(u[0] < self.config.dqn.epsilon(state.steps), random, greedy), state

    def observe(self, step: Step, state: StreamDQNState) -> StreamDQNState:
        """Store the live transitions; on DQN's schedule a learning step and a target update."""
        if state.generator is None:
            raise RuntimeError("observe before act: no generator to draw with")
        rows = step_rows(step)
        if isinstance(state.memory, ReservoirBuffer):
            state.memory.add(rows, state.generator)
        else:
            state.memory.add(rows)
        state.latest = rows
        t, c = state.steps, self.config.dqn
        state.steps += 1
        if t > c.learning_starts:
            if t % c.train_frequency == 0:
                self.learn(state, state.generator)
            if t % c.target_period == 0:
                state.target = soft_update(state.target, state.params, c.tau)
        return state

    def evaluation_actor(self, state: StreamDQNState) -> GreedyQActor:
        return GreedyQActor(self.network, _clone(state.params))

    # -- learning --
    def targets(self, batch: Transitions, state: StreamDQNState) -> torch.Tensor:
        """One-step (Double) DQN targets ``r + gamma (1 - terminated) V(s')``, no gradient."""
        with torch.no_grad():
            q_target = self.network(batch.next_obs, state.target)
            q_online = self.network(batch.next_obs, state.params) if self.config.dqn.double \
                else None
            value = bootstrap_values(q_target, q_online)
            return td_targets(batch.reward, value, batch.terminated, self.config.dqn.gamma)

    def learn(self, state: StreamDQNState, generator: torch.Generator) -> None:
        if self.config.name == "dqn-mer":
            self.mer_learn(state, generator)
        else:
            self.adam_learn(state, generator)
        state.updates += 1

    def adam_learn(self, state: StreamDQNState, generator: torch.Generator) -> None:
        """DQN's step: Adam on the mean TD loss of a uniform batch from the memory."""
        c = self.config.dqn
        batch = state.memory.sample(c.batch_size, generator)
        y = self.targets(batch, state)
        leaves = {k: v.detach().requires_grad_() for k, v in state.params.items()}
        with torch.enable_grad():
            q = self.network(batch.obs, leaves).gather(
                -1, batch.action.long().unsqueeze(-1)).squeeze(-1)
            loss = td_loss(q, y, c.huber_delta)
            grads = dict(zip(leaves, torch.autograd.grad(loss.sum(), list(leaves.values())),
                             strict=True))
        if c.max_grad_norm is not None:
            grads, _ = clip_per_task(grads, c.max_grad_norm)
        state.params, state.opt = self.optimizer.step(state.params, grads, state.opt)
        self.losses.append(float(loss.detach().mean()))

    def mer_batches(self, state: StreamDQNState, generator: torch.Generator
                    ) -> dict[str, torch.Tensor]:
        """The ``s`` batches ``[tasks, s, k+1]`` of one MER update: ``obs``, ``action``,
        the fixed target ``y`` and a weight ``w`` (0 for a slot that was not live)."""
        m, latest = self.config.mer, state.latest
        assert latest is not None, "observe stores the step before it learns"
        tasks, slots = latest.reward.shape
        memories = state.memory.sample(m.batches * m.memories, generator)
        slot = torch.randint(0, slots, (tasks, 1), generator=generator,
                             device=generator.device).to(latest.reward.device)
        current = Transitions(**{k: v.gather(1, slot.view(tasks, 1, *([1] * (v.dim() - 2)))
                                            .expand(tasks, 1, *v.shape[2:]))
                                 for k, v in latest.data().items()})
        weight_now = torch.ones(tasks, 1, device=slot.device) if latest.valid is None \
            else latest.valid.gather(1, slot).float()
        both = Transitions(**{k: torch.cat([getattr(memories, k), getattr(current, k)], 1)
                              for k in Transitions.DATA})
        y = self.targets(both, state)
        w = torch.cat([torch.ones(tasks, memories.size, device=y.device),
                       weight_now.to(y.device)], 1)
        fields = {"obs": both.obs, "action": both.action.long(), "y": y, "w": w}
        s, k = m.batches, m.memories
        mem = {name: v[:, :-1].reshape(tasks, s, k, *v.shape[2:]) for name, v in fields.items()}
        now = {name: v[:, -1] for name, v in fields.items()}
        return mer_batches(now, mem, generator, learner_dims=1)

    def mer_learn(self, state: StreamDQNState, generator: torch.Generator) -> None:
        """MER's update of every task's parameters at once (vmap over tasks)."""
        m, huber = self.config.mer, self.config.dqn.huber_delta
        network = self.network

        def loss(params: Params, ex: Example) -> torch.Tensor:
            q = network(ex["obs"].unsqueeze(0), params)[0].gather(0, ex["action"].view(1))
            return ex["w"] * td_loss(q.view(1, 1), ex["y"].view(1, 1), huber)[0]

        batches = self.mer_batches(state, generator)
        rules: dict[str, Callable[..., Params]] = {
            "algorithm-1": mer_update, "one-big-batch": mer_one_big_batch,
            "replay-sgd": replay_sgd}
        rule = rules[m.variant]
        rates = {"lr": m.lr} if m.variant == "replay-sgd" else \
            {"lr": m.lr, "beta": m.beta, "gamma": m.gamma}
        before = state.params
        if next(iter(before.values())).shape[0] == 1:  # one learner: vmap would only cost
            one = rule({k: v[0] for k, v in before.items()}, loss,
                       {k: v[0] for k, v in batches.items()}, **rates)
            after = {k: v.unsqueeze(0) for k, v in one.items()}
        else:
            after = over_learners(rule, loss, **rates)(before, batches)
        state.params = {k: v.detach() for k, v in after.items()}
        with torch.no_grad():  # the TD loss of the batches before the update, for the log
            q = network(batches["obs"].flatten(1, 2), before).gather(
                -1, batches["action"].flatten(1, 2).unsqueeze(-1)).squeeze(-1)
            self.losses.append(float(td_loss(q, batches["y"].flatten(1, 2), huber).mean()))


class StreamDQNLearner:
    """The meta-learner the trainer drives: one :class:`StreamDQN` state carried along the
    stream (module doc); ``policy`` is its Q-network as trained so far."""

    def __init__(self, family: TaskFamily, config: StreamDQNConfig, generator: torch.Generator,
                 device: torch.device) -> None:
        self.family, self.config, self.generator, self.device = family, config, generator, device
        self.network: QNetwork = DQNAgent(config.dqn, family.observation_space,
                                          family.action_space).network.to(device)
        self.learner = StreamDQN(config, family.observation_space, family.action_space,
                                 self.network)
        self.state: StreamDQNState | None = None
        self.env_steps = 0

    @property
    def policy(self) -> QNetwork:
        return self.network

    def _env(self, tasks: Tasks) -> PooledTasks:
        return PooledTasks(self.family.make_env(tasks, 1, self.device))

    def _fresh_state(self) -> StreamDQNState:
        tasks = self.family.sample(self.config.meta_batch_size, "train",
                                   torch.Generator().manual_seed(0))  # shapes only
        return self.learner.begin(self._env(tasks))

    def meta_update(self, tasks: Tasks) -> dict[str, float]:
        if len(tasks) != self.config.meta_batch_size:
            raise ValueError(f"{self.config.name} pools meta_batch_size = "
                             f"{self.config.meta_batch_size} tasks, got {len(tasks)}")
        state = self.state if self.state is not None else self._fresh_state()
        self.learner.losses.clear()
        run = play_online(self._env(tasks), self.learner, self.config.env_steps,
                          self.generator, state=state)
        self.state = run.state
        self.env_steps += int(run.steps.sum())
        with torch.no_grad():
            for k, p in named_params(self.network).items():
                p.copy_(self.state.params[k][0])
        metrics = online_metrics(run, self.learner.losses)
        metrics.pop("return_pre", None)  # one pooled "task": first / last are not per task
        metrics.pop("return_post", None)
        metrics["epsilon"] = self.config.dqn.epsilon(self.state.steps)
        return metrics

    def agent(self, step_sizes: list[float] | None = None) -> DQNAgent:
        """The Q-network as trained so far, in a DQN that the protocol scores (greedy at
        unit 0; ``evaluation.steps > 0`` would fine-tune a copy with ``dqn``'s settings)."""
        return DQNAgent(self.config.dqn, self.family.observation_space,
                        self.family.action_space, network=copy.deepcopy(self.network))

    def load_initial_policy(self, state: dict[str, torch.Tensor]) -> None:
        self.network.load_state_dict(state)

    def state_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"policy": self.network.state_dict(), "env_steps": self.env_steps}
        if self.state is not None:
            out["stream_state"] = self.state.state_dict()
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["policy"])
        self.env_steps = int(state["env_steps"])
        self.state = None
        if "stream_state" in state:
            self.state = self._fresh_state()
            self.state.load_state_dict(state["stream_state"])


register_algorithm("dqn-stream", DQNStreamConfig, StreamDQNLearner,
                   "DQN (Mnih et al. 2015) trained online along a task stream: one Q-network, "
                   "a ring of recent transitions, Adam on the TD loss",
                   unit=AdaptationUnit.ENV_STEPS)
register_algorithm("dqn-er", DQNERConfig, StreamDQNLearner,
                   "DQN along a task stream with a reservoir replay (Vitter's Algorithm R): a "
                   "uniform sample of every stage seen",
                   unit=AdaptationUnit.ENV_STEPS)
register_algorithm("dqn-mer", DQNMERConfig, StreamDQNLearner,
                   "DQN-MER (Riemer et al. 2019): the reservoir replay and Meta Experience "
                   "Replay's update (per-sample SGD, within/across-batch Reptile steps)",
                   unit=AdaptationUnit.ENV_STEPS)
