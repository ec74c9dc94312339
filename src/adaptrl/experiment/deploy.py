"""A trained run as an agent in a practitioner's hands: load it, adapt it to a task, act.

::

    import adaptrl
    agent = adaptrl.load_agent("runs/nav")            # the best checkpoint, on the CPU
    task = agent.family.sample(1, "test", torch.Generator().manual_seed(0))
    agent.adapt_on(task, steps=2)                     # adapt with the run's own protocol
    action = agent.act(obs)                           # in the env's own action space

One API for both kinds of meta-learner; what *adapting* means depends on the agent's
adaptation unit (:attr:`DeployedAgent.unit`, the unit the evaluation protocol scores it in):

* **gradient steps** (MAML, first-order MAML, Meta-SGD, Reptile, the baselines): the agent
  is a policy at its meta-learned parameters; :meth:`~DeployedAgent.adapt` takes one inner
  gradient step on episodes of ONE task (:meth:`GradientAgent.adapt
  <adaptrl.algorithms.base.GradientAgent.adapt>`, with the run's evaluation step sizes),
  :meth:`~DeployedAgent.adapt_on` samples those episodes itself, step after step, as the
  protocol does. :meth:`~DeployedAgent.observe` does nothing: the policy is feed-forward.
* **episodes** (RL²): the agent adapts in its memory, the GRU's hidden state carried over
  the episodes of a trial. :meth:`~DeployedAgent.reset` starts a trial; then
  :meth:`~DeployedAgent.act` and :meth:`~DeployedAgent.observe` (the reward and done flag
  of the step just taken) at every step, which is all adapting is. :meth:`adapt` feeds
  recorded episodes through the memory; :meth:`adapt_on` plays episodes on a task.

Actions come out in the env's own action space: for a run with ``family.rescale_actions``
the policy's ``[-1, 1]^d`` action is mapped onto the family's box
(:class:`~adaptrl.tasks.wrappers.RescaledActions`), and not clipped (the built-in envs clip;
pass ``clip=True`` to :meth:`~DeployedAgent.act` for an env that does not).
:func:`adaptrl.experiment.export.export_agent` writes the same action function as a
TorchScript / ONNX file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from torch.nn import functional as F

from adaptrl.agents.contract import AdaptationUnit
from adaptrl.algorithms.base import GradientAgent, MetaLearner
from adaptrl.errors import UserError
from adaptrl.experiment.config import ConfigError, ExperimentConfig, read_yaml, validate_config
from adaptrl.experiment.evaluate import restore_run
from adaptrl.experiment.learners import build_family
from adaptrl.experiment.run_dir import RunDir
from adaptrl.models.functional import Params, expand_params
from adaptrl.rollouts.sampler import BatchSampler
from adaptrl.rollouts.sampler import act as policy_action
from adaptrl.rollouts.trajectories import Trajectories
from adaptrl.rollouts.trial_sampler import RecurrentActor, RecurrentState, Step
from adaptrl.tasks.base import BatchedEnv, TaskFamily, Tasks
from adaptrl.tasks.wrappers import RescaledActions

DEPLOY_CHECKPOINTS = ("best", "latest")
"""The checkpoints an agent is loaded from: the run's best, or its latest."""


class DeployedAgent(ABC):
    """A trained agent: :meth:`reset`, :meth:`adapt` / :meth:`adapt_on`, :meth:`act`,
    :meth:`observe` (the module docstring says what adapting means for each kind).

    ``family`` is the run's task family as the agent sees it (with ``rescale_actions``,
    the wrapped one acting in ``[-1, 1]^d``); ``config`` the run's config; ``learner`` the
    restored meta-learner; ``iteration`` the (0-based) iteration the checkpoint holds.
    Observations are those of the family's envs, ``[*batch, *obs]``; actions the env's.
    """

    unit: AdaptationUnit

    def __init__(self, family: TaskFamily, config: ExperimentConfig, learner: MetaLearner,
                 device: torch.device, seed: int = 0) -> None:
        self.family, self.config, self.learner, self.device = family, config, learner, device
        self.policy = learner.policy
        self.generator = torch.Generator().manual_seed(seed)  # as the protocol's
        self.iteration = -1

    # -- the API -------------------------------------------------------------------------
    @abstractmethod
    def reset(self) -> None:
        """Forget the task: back to the meta-learned parameters (gradient agents) or to an
        empty memory at the start of a new trial (RL²)."""

    @abstractmethod
    def adapt(self, experience: Trajectories) -> None:
        """Adapt on recorded episodes of ONE task (``[T, 1, episodes, ...]``, actions in the
        policy's units, as adaptrl's samplers on :attr:`family` record them).

        Gradient agents: one more inner gradient step on these episodes. RL²: the episodes
        (columns, in order; a trial of several episodes one after the other in time, as
        :func:`~adaptrl.rollouts.trial_sampler.play_trials` records it, is split at the
        horizon) are fed through the memory, as if the agent had lived them.
        """

    @abstractmethod
    def adapt_on(self, task: Tasks, steps: int = 1, episodes: int | None = None,
                 generator: torch.Generator | None = None) -> list[float]:
        """Adapt to ``task`` (one task of :attr:`family`) for ``steps`` adaptation units,
        collecting the experience itself; returns the mean return of each unit's episodes.

        Gradient agents: ``steps`` inner steps, each on ``episodes`` (default: the run's
        ``evaluation.episodes``) fresh episodes sampled with the current parameters, as the
        evaluation protocol does. RL²: ``steps`` more episodes of the trial, played with
        the run's ``test_actions`` (``episodes`` is not used).
        """

    def act(self, obs: Any, deterministic: bool = True, clip: bool = False) -> Any:
        """The action for ``obs`` in the env's own action space: the policy's most likely
        action, or a sample with ``deterministic=False``. ``obs`` is ``[*batch, *obs]``, a
        tensor or an array (a Discrete observation one-hot, as the family's envs give it, or
        a raw Gymnasium env's integer state). A tensor in gives a tensor out, anything else
        a numpy array. ``clip`` clips a Box action into the space's bounds."""
        obs_t = self._as_obs(obs)
        action = self._agent_action(obs_t, deterministic)
        out = self.to_env_action(action, clip)
        return out if isinstance(obs, torch.Tensor) else out.cpu().numpy()

    def observe(self, reward: Any, done: Any, action: Any = None) -> None:
        """Tell the agent what its last action earned: ``reward`` and whether the episode
        ended (``done``: terminated or truncated), scalars or ``[*batch]``. ``action``: the
        action the env actually took, in the env's units, if not the one :meth:`act` gave.
        RL² folds it into its memory; a gradient agent ignores it."""
        return None

    # -- action units ---------------------------------------------------------------------
    @property
    def rescaled(self) -> bool:
        """Whether the policy acts in ``[-1, 1]^d`` mapped onto the family's action box."""
        return isinstance(self.family, RescaledActions)

    def to_env_action(self, action: torch.Tensor, clip: bool = False) -> torch.Tensor:
        """The env's action for the policy's ``action``."""
        if isinstance(self.family, RescaledActions):
            action = self.family.to_family_action(action)
        if clip and action.is_floating_point():
            space = self.env_action_space
            low, high = (torch.as_tensor(b, dtype=action.dtype, device=action.device)
                         for b in (space.low, space.high))
            action = torch.clamp(action, low, high)
        return action

    def to_agent_action(self, action: torch.Tensor) -> torch.Tensor:
        """The policy's action for the env's ``action`` (the inverse of :meth:`to_env_action`)."""
        if isinstance(self.family, RescaledActions):
            return self.family.from_family_action(action)
        return action

    @property
    def env_action_space(self) -> Any:
        """The env's own action space (the family's, before any rescaling)."""
        inner = self.family.family if isinstance(self.family, RescaledActions) else self.family
        return inner.action_space

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """The shape of one observation as the policy reads it (a Discrete space one-hot)."""
        space = self.family.observation_space
        if isinstance(space, gym.spaces.Discrete):
            return (int(space.n),)
        return tuple(space.shape or ())

    def _as_obs(self, obs: Any) -> torch.Tensor:
        x = _tensor(obs, self.device)
        space = self.family.observation_space
        if isinstance(space, gym.spaces.Discrete) and not x.is_floating_point():
            x = F.one_hot(x.long() - int(space.start), int(space.n))  # a raw env's index
        shape = self.obs_shape
        if x.dim() < len(shape) or tuple(x.shape[x.dim() - len(shape):]) != shape:
            raise ValueError(f"observation of shape {tuple(x.shape)}; the agent takes "
                             f"[*batch, {', '.join(map(str, shape))}]")
        return x.to(torch.float32)

    @abstractmethod
    def _agent_action(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        """The policy's action for ``obs``, in its own units."""


class GradientDeployment(DeployedAgent):
    """A gradient-adapted agent (MAML family): a policy at the meta-learned parameters,
    moved by inner gradient steps on episodes of one task."""

    unit = AdaptationUnit.GRADIENT_STEPS

    def __init__(self, family: TaskFamily, config: ExperimentConfig, learner: MetaLearner,
                 agent: GradientAgent, device: torch.device, seed: int = 0) -> None:
        super().__init__(family, config, learner, device, seed)
        self.agent = agent
        self.reset()

    @property
    def params(self) -> Params:
        """The current parameters (meta-learned, or adapted by :attr:`steps` inner steps)."""
        return {k: v[0] for k, v in self._params.items()}

    def reset(self) -> None:
        self._params = expand_params(self.agent.initial_params(), 1)  # one task
        self.steps = 0

    def adapt(self, experience: Trajectories) -> None:
        if experience.num_tasks != 1:
            raise ValueError(f"adapt takes episodes of one task ([T, 1, episodes, ...]), got "
                             f"{experience.num_tasks} tasks")
        with torch.enable_grad():  # an inner gradient step, even under no_grad
            self._params = self.agent.adapt(self._params, experience.to(self.device),
                                            self.steps)
        self.steps += 1

    def adapt_on(self, task: Tasks, steps: int = 1, episodes: int | None = None,
                 generator: torch.Generator | None = None) -> list[float]:
        _one_task(task)
        ev = self.config.evaluation
        sampler = BatchSampler(self.family, task, episodes or ev.episodes, self.device,
                               ev.batch_unit)
        returns = []
        for _ in range(steps):
            traj = sampler.sample(self.agent.policy, self._params,
                                  generator or self.generator)
            returns.append(float(traj.task_returns()[0]))
            self.adapt(traj)
        return returns

    @torch.no_grad()
    def _agent_action(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        return policy_action(self.agent.policy, obs, self.params, self.generator,
                             deterministic)[0]


@dataclass(frozen=True)
class _Slots:
    """The shape of the memory a :class:`RecurrentActor` begins: ``batch`` slots of one
    trial each (what its ``begin`` reads of an env)."""

    num_tasks: int
    episodes_per_task: int
    horizon: int
    device: torch.device


class MemoryDeployment(DeployedAgent):
    """An agent that adapts in memory (RL²): a GRU policy whose hidden state, carried
    across the episodes of a trial by :class:`RecurrentActor`'s ``begin`` / ``act`` /
    ``observe``, is what it has learned about the task.

    A trial lasts ``episodes_per_trial`` episodes (default: the protocol's trial,
    ``evaluation.steps + 1``; :meth:`reset` takes another) of at most the family's horizon;
    the slots of a batch play their episodes in step (they end together), as in training.
    """

    unit = AdaptationUnit.EPISODES

    def __init__(self, family: TaskFamily, config: ExperimentConfig, learner: MetaLearner,
                 actor: RecurrentActor, episodes_per_trial: int, device: torch.device,
                 seed: int = 0) -> None:
        super().__init__(family, config, learner, device, seed)
        self.actor = actor  # deterministic as the protocol plays it (test_actions)
        self.episodes_per_trial = episodes_per_trial
        self.reset()

    def reset(self, episodes: int | None = None) -> None:
        """Start a new trial of ``episodes`` episodes (default: :attr:`episodes_per_trial`):
        the memory is emptied. The trial's length matters only to a policy with
        ``clock_input``, which reads how far into its trial it is."""
        self._trial = episodes or self.episodes_per_trial
        self._state: RecurrentState | None = None
        self._batch: tuple[int, ...] = ()
        self.episode = 0  # the episode of the trial the agent is in
        self._episode_started = False
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None  # obs and action

    @property
    def hidden_state(self) -> torch.Tensor | None:
        """The GRU's hidden state ``[*batch, hidden]`` (``None`` before the first act)."""
        return None if self._state is None else self._state.h.reshape(*self._batch, -1)

    def _begin(self, obs: torch.Tensor) -> RecurrentState:
        """The memory for ``obs``'s batch: begun at the trial's first act, the next episode
        begun after a done."""
        obs_dims = len(self.obs_shape)
        batch = tuple(obs.shape[:obs.dim() - obs_dims])
        n = int(np.prod(batch)) if batch else 1
        if self._state is None:
            slots = _Slots(n, 1, self.family.horizon, self.device)
            self._state = self.actor.begin(cast(BatchedEnv, slots), self._trial)
            self._batch = batch
        elif batch != self._batch:
            raise ValueError(f"observation batch {batch} differs from the trial's {self._batch};"
                             " call reset() to start a trial with another batch")
        if not self._episode_started:
            if self.episode >= self._trial:
                raise ValueError(f"the trial's {self._trial} episodes are over; call reset() "
                                 "(or reset(episodes=N) for longer trials)")
            self._state = self.actor.begin_episode(self._state, self.episode)
            self._episode_started = True
        if self._state.t >= (self.episode + 1) * self._state.horizon:
            raise ValueError(f"episode {self.episode} is longer than the family's horizon "
                             f"({self.family.horizon}); end it with observe(reward, done=True)")
        return self._state

    def _slots(self, x: torch.Tensor) -> torch.Tensor:
        """``[*batch, ...]`` as the actor's ``[n, 1, ...]``."""
        return x.reshape(-1, 1, *x.shape[len(self._batch):])

    @torch.no_grad()
    def _agent_action(self, obs: torch.Tensor, deterministic: bool,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        state = self._begin(obs)
        actor = replace(self.actor, deterministic=deterministic)
        slots = self._slots(obs)
        action, self._state = actor.act(slots, state, generator or self.generator)
        self._last = (slots, action)
        return action.reshape((*self._batch, *action.shape[2:]))

    @torch.no_grad()
    def observe(self, reward: Any, done: Any, action: Any = None) -> None:
        if self._state is None or self._last is None or self._state.h_new is None:
            raise ValueError("observe(reward, done) follows act(obs)")
        obs, taken = self._last
        if action is not None:
            env_action = _tensor(action, self.device).to(taken.dtype)
            taken = self._slots(self.to_agent_action(env_action))
        shape = (taken.shape[0], 1)
        r = _tensor(reward, self.device).float().expand(self._batch).reshape(shape)
        d = _tensor(done, self.device).bool().expand(self._batch).reshape(shape)
        if bool(d.any()) != bool(d.all()):
            raise ValueError("the slots of a batch must end their episodes together (as in "
                             "training); use one agent per env otherwise")
        alive = torch.ones(shape, dtype=torch.bool, device=self.device)
        step = Step(obs, taken, r, d, torch.zeros_like(d), obs, alive)
        self._state = self.actor.observe(step, self._state)
        self._last = None
        if bool(d.all()):
            self._end_episode()

    def _end_episode(self) -> None:
        self.episode += 1
        self._episode_started = False

    def adapt(self, experience: Trajectories) -> None:
        if experience.num_tasks != 1:
            raise ValueError(f"adapt takes episodes of one task ([T, 1, episodes, ...]), got "
                             f"{experience.num_tasks} tasks")
        exp = experience.to(self.device)
        ends = exp.terminated if exp.truncated is None else exp.terminated | exp.truncated
        H = self.family.horizon
        for column in range(exp.episodes_per_task):
            for start in range(0, exp.horizon, H):  # a trial's episodes follow one another
                live = torch.nonzero(exp.masks[start:start + H, 0, column] > 0).flatten()
                for i, t in enumerate((start + live).tolist()):
                    self._agent_action(exp.observations[t, 0, column], True)
                    assert self._last is not None
                    # the memory takes the action recorded, not the one it would have taken
                    self._last = (self._last[0],
                                  exp.actions[t, 0, column].reshape(self._last[1].shape))
                    self.observe(exp.rewards[t, 0, column],
                                 bool(ends[t, 0, column]) or i == len(live) - 1)

    def adapt_on(self, task: Tasks, steps: int = 1, episodes: int | None = None,
                 generator: torch.Generator | None = None) -> list[float]:
        _one_task(task)
        gen = generator or self.generator
        env = self.family.make_env(task, 1, self.device)
        returns = []
        for _ in range(steps):  # as play_trials plays them, one slot
            obs = env.reset(gen)[0, 0]
            total = 0.0
            for _ in range(self.family.horizon):
                action = self._agent_action(obs, self.actor.deterministic, gen)
                res = env.step(action.reshape(1, 1, *action.shape))
                total += float(res.reward.sum())
                done = bool((res.terminated | res.truncated).any())
                self.observe(res.reward.reshape(()), done)
                obs = res.observation[0, 0]
                if done:
                    break
            if self._episode_started:  # the horizon passed without a done flag
                self._end_episode()
            returns.append(total)
        return returns


def _tensor(x: Any, device: torch.device) -> torch.Tensor:
    """``x`` (a tensor, an array, a number) as a tensor on ``device``."""
    return torch.as_tensor(x if isinstance(x, torch.Tensor) else np.asarray(x), device=device)


def _one_task(task: Tasks) -> None:
    if len(task) != 1:
        raise ValueError(f"adapt_on takes one task (e.g. tasks[i]), got {len(task)}")


def load_agent(run_dir: str | Path, checkpoint: str = "best", device: str = "cpu",
               seed: int = 0) -> DeployedAgent:
    """The agent of the run in ``run_dir`` at its ``best`` or ``latest`` checkpoint, on
    ``device`` (default the CPU, whatever device it trained on), ready to adapt to a task
    and act (:class:`DeployedAgent`). ``seed`` seeds its sampling (``act(...,
    deterministic=False)``, :meth:`~DeployedAgent.adapt_on`). Gradient agents adapt with the
    run's ``evaluation.step_sizes``; RL² plays its ``test_actions`` while adapting."""
    if checkpoint not in DEPLOY_CHECKPOINTS:
        raise ConfigError(f"checkpoint must be one of {list(DEPLOY_CHECKPOINTS)}, "
                          f"got {checkpoint!r}")
    run = RunDir(Path(run_dir))
    if not run.path.is_dir() or not run.config.is_file():
        why = "it does not exist" if not run.path.exists() else "no config.yaml"
        raise ConfigError(f"{run.path} is not a run directory ({why}; `adaptrl train` makes "
                          "one)")
    data = read_yaml(run.config)
    data["device"] = device  # validated: an unavailable device is a one-line error
    config, algo_cfg = validate_config(data)
    dev = torch.device(config.device)
    family = build_family(config)
    restored = restore_run(run, config, algo_cfg, checkpoint)
    learner = restored.learner
    learner.policy.eval()
    agent = learner.agent(config.evaluation.step_sizes)
    deployed: DeployedAgent
    if isinstance(agent, GradientAgent):
        deployed = GradientDeployment(family, config, learner, agent, dev, seed)
    elif isinstance(agent, RecurrentActor):
        trial = config.evaluation.steps + 1  # the protocol's trial: K units after the first
        deployed = MemoryDeployment(family, config, learner, agent, trial, dev, seed)
    else:
        raise UserError(f"{run.path}: its agent adapts in {agent.unit}, which load_agent "
                        "does not deploy (gradient steps and episodes only)")
    deployed.iteration = restored.iteration
    return deployed
