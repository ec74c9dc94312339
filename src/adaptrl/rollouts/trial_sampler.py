"""Trial sampling for memory-based meta-RL (RL², Duan et al. 2016, §2.2).

A *trial* is ``E`` consecutive episodes of the same task, played by a recurrent policy
whose hidden state is carried from one episode to the next and reset (to zeros) only
between trials. The env's ``episodes`` dimension holds independent trials: an env made
with ``episodes_per_task = m`` runs ``m`` trials of every task side by side, and the
``E`` episodes of a trial are played one after the other with ``env.reset()`` between
them (the built-in envs never autoreset).

All ``tasks x trials`` slots move together: one policy step and one env step per time
step, no Python loop over tasks or trials. A slot whose episode has ended (the env froze
it) does not advance its hidden state or its "previous transition" feedback, so the
padding steps are invisible to the agent; they carry ``masks = 0``.

Every episode of a trial keeps its own end: ``steps.truncated`` and
``steps.next_observations`` are filled as by :func:`~adaptrl.rollouts.sampler.rollout`,
block by block, so the observation after an episode's last step is its true final
observation, never the next episode's reset observation (see
:func:`~adaptrl.rollouts.trajectories.episode_ends`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch
from torch.distributions import Distribution

from adaptrl.models.functional import Params
from adaptrl.rollouts.trajectories import Trajectories, episode_ends, last_live
from adaptrl.tasks.base import BatchedEnv


class RecurrentPolicy(Protocol):
    """What the trial sampler needs of a policy.

    See :class:`adaptrl.models.recurrent.RecurrentPolicy`.
    """

    @property
    def input_dim(self) -> int: ...

    def encode(self, obs: torch.Tensor, prev_action: torch.Tensor, prev_reward: torch.Tensor,
               prev_done: torch.Tensor, clock: torch.Tensor | None = None,
               prev_obs: torch.Tensor | None = None) -> torch.Tensor: ...

    def initial_feedback(self, batch: tuple[int, ...], device: torch.device
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...

    def initial_state(self, batch: tuple[int, ...], device: torch.device) -> torch.Tensor: ...

    def step(self, x: torch.Tensor, h: torch.Tensor, params: Params | None = None
             ) -> tuple[Distribution, torch.Tensor]: ...

    def sample(self, dist: Distribution, generator: torch.Generator) -> torch.Tensor: ...

    def mode(self, dist: Distribution) -> torch.Tensor: ...


@dataclass(frozen=True)
class Trials:
    """Sampled trials: per-step data plus the recurrent inputs the policy saw.

    ``steps`` is a :class:`Trajectories` shaped ``[T, tasks, trials, ...]`` with
    ``T = episodes * horizon``: episode ``k`` of a trial occupies time steps
    ``[k * horizon, (k + 1) * horizon)``. ``inputs [T, tasks, trials, input_dim]`` are the
    GRU inputs ``x_t`` (zeros on padding), so the update can re-run the policy over the
    whole trial without rebuilding them.
    """

    steps: Trajectories
    inputs: torch.Tensor
    episodes: int

    @property
    def num_steps(self) -> int:
        """Environment steps actually taken (live transitions)."""
        return self.steps.num_steps

    def by_episode(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step ``x [T, ...]`` split by episode of the trial: ``[episodes, horizon, ...]``."""
        return x.reshape(self.episodes, -1, *x.shape[1:])

    def episode_returns(self) -> torch.Tensor:
        """Undiscounted return of episode ``k`` of every trial: ``[episodes, tasks, trials]``."""
        return trial_episode_returns(self.steps, self.episodes)

    def final_observations(self) -> torch.Tensor:
        """True final observation of episode ``k`` of every trial:
        ``[episodes, tasks, trials, *obs]`` (call before :meth:`compact`)."""
        nxt = self.steps._require_next()
        return last_live(self.by_episode(nxt).transpose(0, 1),
                         self.by_episode(self.steps.masks).transpose(0, 1))

    def trial_returns(self) -> torch.Tensor:
        """Total undiscounted reward of every trial, ``[tasks, trials]``."""
        return trial_returns(self.steps)

    def flatten(self) -> Trials:
        """Every trial as its own row: shapes ``[T, tasks * trials, 1, ...]``."""
        rows = flatten_trials
        return Trials(self.steps.map(rows), rows(self.inputs), self.episodes)

    def compact(self) -> Trials:
        """Reorder time so that every trial's live steps come first, padding last.

        A trial whose episodes ended early (a terminal state before the horizon) has
        padding *between* its episodes; a GRU run over the whole sequence would step
        through it. After this stable reorder (live steps keep their order) each trial is
        one contiguous sequence of live steps followed by padding, which a sequence model
        can run in one call, and the next live step is always at ``t + 1`` (what GAE over
        a whole trial needs). The episode layout of :meth:`episode_returns` is lost, so
        compute per-episode statistics before. Without padding this is the identity.
        """
        return self.compact_with()[0]

    def compact_with(self, *extra: torch.Tensor) -> tuple[Trials, tuple[torch.Tensor, ...]]:
        """:meth:`compact`, applying the same reorder of time to ``extra`` per-step tensors
        (``[T, tasks, trials, ...]`` like the steps, e.g. a teacher's labels)."""
        masks = self.steps.masks
        if bool((masks > 0).all()):
            return self, extra
        order = torch.argsort((masks <= 0).to(torch.int8), dim=0, stable=True)

        def take(x: torch.Tensor) -> torch.Tensor:
            index = order.reshape(*order.shape, *([1] * (x.dim() - order.dim())))
            return x.gather(0, index.expand_as(x))
        return (Trials(self.steps.map(take), take(self.inputs), self.episodes),
                tuple(take(x) for x in extra))


def trial_episode_returns(steps: Trajectories, episodes: int) -> torch.Tensor:
    """Undiscounted return of episode ``k`` of every trial of ``steps`` (played by
    :func:`play_trials`): ``[episodes, tasks, trials]``."""
    x = steps.rewards * steps.masks
    return x.reshape(episodes, -1, *x.shape[1:]).sum(1)


def trial_returns(steps: Trajectories) -> torch.Tensor:
    """Total undiscounted reward of every trial of ``steps``: ``[tasks, trials]``."""
    return (steps.rewards * steps.masks).sum(0)


def flatten_trials(x: torch.Tensor) -> torch.Tensor:
    """A per-step ``[T, tasks, trials, ...]`` tensor laid out as :meth:`Trials.flatten`
    lays out the steps: ``[T, tasks * trials, 1, ...]``."""
    return x.reshape(x.shape[0], -1, 1, *x.shape[3:])


def _keep(alive: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``new`` where ``alive`` (``[n, m]``), else ``old`` (trailing dims broadcast)."""
    mask = alive.reshape(*alive.shape, *([1] * (new.dim() - alive.dim())))
    return torch.where(mask, new, old)


@dataclass(frozen=True)
class Step:
    """One env step of a trial as an agent observes it (all ``[tasks, trials, ...]``).

    ``obs`` is the observation the agent acted on, ``action`` what it did, the rest the
    env's :class:`~adaptrl.tasks.base.StepResult`; ``alive`` marks the slots whose episode
    was live at this step (an ended slot is frozen by the env and its step is padding).
    """

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    next_obs: torch.Tensor
    alive: torch.Tensor


S = TypeVar("S")


@runtime_checkable
class TrialActor(Protocol[S]):
    """The step-level contract of an agent that adapts within a trial (memory-based).

    :func:`play_trials` drives it: ``begin`` once per trial, ``begin_episode`` before each
    of its episodes, then per step ``act`` and ``observe``. The agent's memory is the state
    ``S`` it returns (a GRU's hidden state and feedback, a classic algorithm's counts).
    """

    def begin(self, env: BatchedEnv, episodes: int) -> S:
        """Fresh memory for a trial of ``episodes`` episodes in every slot of ``env``."""
        ...

    def begin_episode(self, state: S, episode: int) -> S:
        """Episode ``episode`` of the trial starts (the env was just reset)."""
        ...

    def act(self, obs: torch.Tensor, state: S, generator: torch.Generator
            ) -> tuple[torch.Tensor, S]:
        """One action per slot."""
        ...

    def observe(self, step: Step, state: S) -> S:
        """Fold one step's outcome into the memory."""
        ...


@dataclass(frozen=True)
class RecurrentState:
    """A recurrent policy's memory in a trial (:class:`RecurrentActor`).

    ``h``: the hidden state; ``prev_*``: the feedback the next input reports (the last live
    transition); ``t``: the time step in the trial (``k * horizon + step`` in episode
    ``k``); after :meth:`RecurrentActor.act`, ``x``, ``dist`` and ``h_new`` hold the input,
    action distribution and hidden state of that step until :meth:`~RecurrentActor.observe`
    keeps them where the slot was live.
    """

    h: torch.Tensor
    prev_action: torch.Tensor
    prev_reward: torch.Tensor
    prev_done: torch.Tensor
    prev_obs: torch.Tensor | None
    clocks: torch.Tensor
    horizon: int
    t: int = 0
    x: torch.Tensor | None = None
    dist: Distribution | None = None
    h_new: torch.Tensor | None = None


@dataclass(frozen=True)
class RecurrentActor:
    """A recurrent policy playing trials (RL², Duan et al. 2016, §2.2) as a :class:`TrialActor`.

    The hidden state starts at zeros, is carried across the episodes and only advances on
    live steps; the first input of episode ``k > 0`` reports the last action and reward of
    episode ``k - 1`` with the done flag set. The policy is also offered the clock
    ``[t_episode / H, t_trial / T]``, used only by a policy built with ``clock_input``, and
    the observation at which the previous action was taken (zeros at the start of the
    trial), used only by one built with ``transition_input``. ``deterministic`` takes the
    most likely action instead of sampling.
    """

    policy: RecurrentPolicy
    params: Params | None = None
    deterministic: bool = False

    def begin(self, env: BatchedEnv, episodes: int) -> RecurrentState:
        batch, dev, H = (env.num_tasks, env.episodes_per_task), env.device, env.horizon
        step = torch.arange(episodes * H, device=dev, dtype=torch.float32)
        clocks = torch.stack([(step % H) / H, step / (episodes * H)], dim=-1)
        return RecurrentState(self.policy.initial_state(batch, dev),
                              *self.policy.initial_feedback(batch, dev), None, clocks, H)

    def begin_episode(self, state: RecurrentState, episode: int) -> RecurrentState:
        return replace(state, t=episode * state.horizon)

    def act(self, obs: torch.Tensor, state: RecurrentState, generator: torch.Generator
            ) -> tuple[torch.Tensor, RecurrentState]:
        s = state if state.prev_obs is not None else replace(state,
                                                             prev_obs=torch.zeros_like(obs))
        x = self.policy.encode(obs, s.prev_action, s.prev_reward, s.prev_done,
                               s.clocks[s.t], s.prev_obs)
        dist, h_new = self.policy.step(x, s.h, self.params)
        act = self.policy.mode(dist) if self.deterministic else self.policy.sample(dist,
                                                                                  generator)
        return act, replace(s, x=x, dist=dist, h_new=h_new)

    def observe(self, step: Step, state: RecurrentState) -> RecurrentState:
        assert state.h_new is not None and state.prev_obs is not None, "observe before act"
        alive = step.alive
        done = step.terminated | step.truncated
        return replace(
            state, h=_keep(alive, state.h_new, state.h),
            prev_action=_keep(alive, step.action, state.prev_action),
            prev_reward=_keep(alive, step.reward, state.prev_reward),
            prev_done=_keep(alive, done.to(state.prev_done.dtype), state.prev_done),
            prev_obs=_keep(alive, step.obs, state.prev_obs), t=state.t + 1,
            x=None, dist=None, h_new=None)


StepHook = Callable[[int, Step, Any], None]
"""``hook(t, step, state_after_act)``: called by :func:`play_trials` at every time step run."""


@torch.no_grad()
def play_trials(env: BatchedEnv, actor: TrialActor[Any], episodes: int,
                generator: torch.Generator, hook: StepHook | None = None) -> Trajectories:
    """Play one trial of ``episodes`` episodes in every ``[task, trial]`` slot of ``env``.

    The one trial loop of adaptrl: ``env.reset(generator)`` before each episode, then per
    time step ``actor.act``, ``env.step``, ``actor.observe``, until every slot's episode
    has ended or the horizon is reached. The result is ``[T, tasks, trials, ...]`` with
    ``T = episodes * horizon`` (episode ``k`` in ``[k H, (k + 1) H)``), padding masked;
    ``log_probs`` are zeros (a :class:`RecurrentActor`'s are filled by
    :func:`sample_trials` through ``hook``).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    H = env.horizon
    n, m, dev = env.num_tasks, env.episodes_per_task, env.device
    T = episodes * H
    rewards = torch.zeros(T, n, m, device=dev)
    masks = torch.zeros(T, n, m, device=dev)
    terminated = torch.zeros(T, n, m, dtype=torch.bool, device=dev)
    observations: torch.Tensor | None = None
    actions: torch.Tensor | None = None
    finals: list[torch.Tensor] = []  # the observation after each episode's last step run
    ran: list[int] = []  # steps run in each episode's block
    state = actor.begin(env, episodes)
    for k in range(episodes):
        obs = env.reset(generator)
        state = actor.begin_episode(state, k)
        if observations is None:
            observations = torch.zeros(T, *obs.shape, device=dev, dtype=obs.dtype)
        alive = torch.ones(n, m, dtype=torch.bool, device=dev)
        for t in range(k * H, (k + 1) * H):
            act, state = actor.act(obs, state, generator)
            if actions is None:
                actions = torch.zeros(T, *act.shape, device=dev, dtype=act.dtype)
            res = env.step(act)
            observations[t], actions[t], masks[t] = obs, act, alive
            rewards[t] = res.reward * alive
            terminated[t] = res.terminated & alive
            step = Step(obs, act, res.reward, res.terminated, res.truncated, res.observation,
                        alive)
            if hook is not None:
                hook(t, step, state)
            state = actor.observe(step, state)
            alive = alive & ~(res.terminated | res.truncated)
            obs = res.observation
            if not bool(alive.any()):
                break
        finals.append(obs.clone())  # the env may reuse its buffer on the next reset
        ran.append(t + 1 - k * H)
    assert observations is not None and actions is not None
    truncated, next_observations = episode_ends(observations, masks, terminated,
                                                torch.stack(finals), ran)
    return Trajectories(observations, actions, rewards, masks, terminated,
                        torch.zeros_like(rewards), truncated, next_observations)


def sample_trials(env: BatchedEnv, policy: RecurrentPolicy, params: Params | None,
                  episodes: int, generator: torch.Generator,
                  deterministic: bool = False) -> Trials:
    """Play one trial per slot with a recurrent policy (:class:`RecurrentActor` under
    :func:`play_trials`), recording the GRU inputs and the log-probabilities of the
    actions taken, as RL²'s update needs them."""
    H, n, m = env.horizon, env.num_tasks, env.episodes_per_task
    inputs = torch.zeros(episodes * H, n, m, policy.input_dim, device=env.device)
    log_probs = torch.zeros(episodes * H, n, m, device=env.device)

    def record(t: int, step: Step, state: RecurrentState) -> None:
        assert state.dist is not None and state.x is not None
        inputs[t], log_probs[t] = state.x, state.dist.log_prob(step.action)

    steps = play_trials(env, RecurrentActor(policy, params, deterministic), episodes,
                        generator, record)
    keep = steps.masks.reshape(*steps.masks.shape, *([1] * (inputs.dim() - 3)))
    return Trials(replace(steps, log_probs=log_probs * steps.masks), inputs * keep, episodes)
