"""Recurrent (GRU) policy with a value head: the agent of RL² (Duan et al. 2016, §2.2).

At every step the GRU reads ``x_t = [o_t, a_{t-1}, r_{t-1}, d_{t-1}]``: the observation,
the previous action (one-hot for a Discrete space; for a bounded Box the action as the
env applies it, clipped and rescaled to ``[-1, 1]``), the previous reward and the flag
"the previous step ended an episode", and optionally (``clock_input``) a clock
``c_t = [t_episode / H, t_trial / T]``: how far into its episode and into its trial the
step is (not in the paper's input; a GRU can count, but reading the clock spares it that,
and both the value of a state and how much exploring still pays depend on the time left).
With ``transition_input`` it also reads the previous transition as outer-product features
``p_t = [1, o_{t-1}] (x) a_{t-1}`` and ``r_{t-1} p_t`` (not in the paper's input either):
the reward ``r_{t-1}`` belongs to the pair ``(o_{t-1}, a_{t-1})``, and with one-hot states and
actions these features give every (state, action) its own input unit (the leading 1 adds one
per action, which is all a bandit's constant observation leaves), so a GRU can keep a
running sum per pair through its linear input map. From the plain input it would have to
hold ``o_{t-1}`` in memory for one step and form the three-way conjunction itself, which
it does not learn in our budgets (``benchmarks/bench_rl2_memory.py``; the README's RL²
section).
The hidden state is carried across the episodes of
one *trial* and reset to zeros between trials, so what the agent learns about the task
lives in its activations (the "fast" RL of the paper's title).

Layout: ``GRU -> features -> action head`` (a :func:`make_policy` head: categorical
logits for Discrete, Gaussian mean with a learned state-independent log-std for Box) and
``features -> value head`` (an :class:`MLP` to one output). The value head shares the GRU
trunk by default (``value_trunk="shared"``: one recurrent pass serves both, the usual
recurrent-PPO layout, and the value loss shapes the memory too); ``"separate"`` gives the
critic its own GRU so that the value loss never pulls on the policy's memory, at twice
the recurrent compute in the update (sampling only ever runs the policy GRU). A separate
critic may also read a *privileged* context at every step (``critic_context_dim``, e.g.
the task's parameters): an asymmetric actor-critic (Pinto et al. 2018). Its value
``V(h_t, task)`` depends on the history and the task, not on the action, so it is still a
valid baseline, and it need not infer the task; the policy never sees the context.

Like every model in adaptrl, the policy can be called *functionally*: ``params`` is a
dict as returned by ``named_params(policy)``; the GRU runs through
:func:`torch.func.functional_call`. Per-task (leading task dim) parameters are not
supported: RL² adapts in its hidden state, not in its weights.
"""

from __future__ import annotations

from typing import Literal

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Distribution
from torch.func import functional_call
from torch.nn import functional as F

from adaptrl.models.functional import MLP, Params
from adaptrl.models.policies import make_policy, space_dims

ValueTrunk = Literal["shared", "separate"]
CLOCK_DIM = 2
"""Width of the optional clock input: fraction of the episode and of the trial elapsed."""


def sub_params(params: Params | None, prefix: str) -> Params | None:
    """The entries of ``params`` under ``prefix`` with the prefix stripped (``None`` stays)."""
    if params is None:
        return None
    n = len(prefix)
    return {k[n:]: v for k, v in params.items() if k.startswith(prefix)}


class RecurrentPolicy(nn.Module):
    """GRU policy over trials: ``step`` for sampling, ``sequence`` for the update.

    Shapes: ``x`` is ``[*batch, input_dim]`` in :meth:`step` and ``[T, *batch, input_dim]``
    in :meth:`sequence` (time-major, like :class:`~adaptrl.rollouts.Trajectories`); the
    hidden state is ``[*batch, hidden_size]``; any number of batch dims (tasks, trials).
    """

    act_low: torch.Tensor  # buffers of a bounded Box action space (the feedback's scaling)
    act_high: torch.Tensor

    def __init__(self, observation_space: gym.Space, action_space: gym.Space,
                 hidden_size: int = 128, head_hidden: tuple[int, ...] = (),
                 activation: str = "tanh", init_std: float = 1.0,
                 value_trunk: ValueTrunk = "shared", clock_input: bool = False,
                 transition_input: bool = False, critic_context_dim: int = 0) -> None:
        super().__init__()
        if hidden_size < 1:
            raise ValueError(f"hidden_size must be >= 1, got {hidden_size}")
        if value_trunk not in ("shared", "separate"):
            raise ValueError(f"value_trunk must be 'shared' or 'separate', got {value_trunk!r}")
        if critic_context_dim < 0 or (critic_context_dim and value_trunk != "separate"):
            raise ValueError("critic_context_dim (a privileged critic input) must be >= 0 and "
                             "needs value_trunk='separate': the actor must not read it; got "
                             f"{critic_context_dim} with value_trunk={value_trunk!r}")
        self.obs_dim = space_dims(observation_space)
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.act_dim = space_dims(action_space)
        if not self.discrete:
            box: gym.spaces.Box = action_space  # type: ignore[assignment]
            low, high = (torch.as_tensor(np.asarray(b, np.float32)).flatten()
                         for b in (box.low, box.high))
            bounded = bool(torch.isfinite(low).all() and torch.isfinite(high).all())
            self.register_buffer("act_low", low if bounded else torch.full_like(low, -1e9))
            self.register_buffer("act_high", high if bounded else torch.full_like(high, 1e9))
            self.act_scaled = bounded
        self.clock_input = clock_input
        self.transition_input = transition_input
        self.input_dim = (self.obs_dim + self.act_dim + 2 + (CLOCK_DIM if clock_input else 0)
                          + (2 * (1 + self.obs_dim) * self.act_dim if transition_input else 0))
        self.hidden_size = hidden_size
        self.value_trunk = value_trunk
        self.critic_context_dim = critic_context_dim
        self.gru = nn.GRU(self.input_dim, hidden_size)
        if value_trunk == "separate":
            self.value_gru = nn.GRU(self.input_dim + critic_context_dim, hidden_size)
        features = gym.spaces.Box(-1.0, 1.0, (hidden_size,), np.float32)
        self.head = make_policy(features, action_space, head_hidden, activation, init_std)
        self.value = MLP(hidden_size, 1, head_hidden, activation)

    # -- actor and critic --------------------------------------------------------------
    CRITIC_PREFIXES = ("value.", "value_gru.")
    """Parameter names of the critic: the value head, and its own GRU when separate."""

    def critic_parameters(self) -> list[nn.Parameter]:
        """The parameters only the value loss trains: the value head (and ``value_gru``).

        With a shared trunk the GRU belongs to the actor: fitting the critic alone must not
        move it, or the policy would change too.
        """
        return [p for name, p in self.named_parameters() if name.startswith(self.CRITIC_PREFIXES)]

    def actor_parameters(self) -> list[nn.Parameter]:
        """Everything but the critic: the policy GRU and the action head."""
        return [p for name, p in self.named_parameters()
                if not name.startswith(self.CRITIC_PREFIXES)]

    def load_actor_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load the actor (GRU and action head) from ``state`` and keep this critic.

        ``state`` may come from a policy with another critic (e.g. a shared trunk where this
        one has a separate critic GRU); the actors must match exactly.
        """
        actor = {k: v for k, v in state.items() if not k.startswith(self.CRITIC_PREFIXES)}
        missing, unexpected = self.load_state_dict(actor, strict=False)
        missing = [k for k in missing if not k.startswith(self.CRITIC_PREFIXES)]
        if missing or unexpected:
            raise RuntimeError(f"actor parameters do not match: missing {missing}, "
                               f"unexpected {list(unexpected)}")

    # -- inputs and state ------------------------------------------------------------
    def encode(self, obs: torch.Tensor, prev_action: torch.Tensor, prev_reward: torch.Tensor,
               prev_done: torch.Tensor, clock: torch.Tensor | None = None,
               prev_obs: torch.Tensor | None = None) -> torch.Tensor:
        """``[o_t, a_{t-1}, r_{t-1}, d_{t-1}(, c_t)(, p_t, r_{t-1} p_t)]`` as one vector per
        batch entry, ``p_t = [1, o_{t-1}] (x) a_{t-1}`` (flattened outer product).

        ``obs [*batch, *obs]``; ``prev_action`` int ``[*batch]`` (Discrete, ``-1`` = none) or float
        ``[*batch, act]`` (Box); ``prev_reward``, ``prev_done`` ``[*batch]``. At the first
        step of a trial pass zeros (:meth:`initial_feedback`). ``clock`` (``[CLOCK_DIM]`` or
        ``[*batch, CLOCK_DIM]``: episode and trial fractions elapsed) is required with
        ``clock_input`` and ignored without; ``prev_obs`` (``[*batch, *obs]``: the observation
        at which ``prev_action`` was taken, zeros at the first step of a trial) likewise with
        ``transition_input``.
        """
        batch = prev_reward.shape
        if self.discrete:  # a negative action (no previous action) encodes as all zeros
            a = prev_action.long()
            act = F.one_hot(a.clamp_min(0), self.act_dim).to(obs.dtype)
            act = act * (a >= 0).unsqueeze(-1).to(obs.dtype)
        elif self.act_scaled:
            mid, half = (self.act_high + self.act_low) / 2, (self.act_high - self.act_low) / 2
            act = (prev_action.clamp(self.act_low, self.act_high) - mid) / half
        else:
            act = prev_action
        reward = prev_reward.unsqueeze(-1).to(obs.dtype)
        parts = [obs.reshape(*batch, self.obs_dim), act.reshape(*batch, self.act_dim),
                 reward, prev_done.unsqueeze(-1).to(obs.dtype)]
        if self.clock_input:
            if clock is None:
                raise ValueError("clock must be given to a policy with clock_input=True "
                                 f"(a [{CLOCK_DIM}] or [*batch, {CLOCK_DIM}] tensor)")
            parts.append(clock.to(obs.dtype).expand(*batch, CLOCK_DIM))
        if self.transition_input:
            if prev_obs is None:
                raise ValueError("prev_obs must be given to a policy with transition_input=True "
                                 "(the observation at which prev_action was taken)")
            key = torch.cat([torch.ones(*batch, 1, dtype=obs.dtype, device=obs.device),
                             prev_obs.reshape(*batch, self.obs_dim).to(obs.dtype)], dim=-1)
            pair = (key.unsqueeze(-1) * act.reshape(*batch, 1, self.act_dim)).flatten(-2)
            parts += [pair, pair * reward]
        return torch.cat(parts, dim=-1)

    def initial_feedback(self, batch: tuple[int, ...], device: torch.device
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(a_{-1}, r_{-1}, d_{-1})`` at the start of a trial: encoded as all zeros.

        A Discrete "no action" is ``-1`` (its one-hot would otherwise claim action 0).
        """
        action = (torch.full(batch, -1, dtype=torch.long, device=device) if self.discrete
                  else torch.zeros(*batch, self.act_dim, device=device))
        return action, torch.zeros(batch, device=device), torch.zeros(batch, device=device)

    def initial_state(self, batch: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """The hidden state at the start of every trial: zeros ``[*batch, hidden]``."""
        return torch.zeros(*batch, self.hidden_size, device=device)

    # -- forward ---------------------------------------------------------------------
    def _run_gru(self, name: str, x: torch.Tensor, h0: torch.Tensor | None,
                 params: Params | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Run GRU ``name`` over ``x [T, *batch, in]``; returns outputs and the last state."""
        T, batch = x.shape[0], x.shape[1:-1]
        flat = x.reshape(T, -1, x.shape[-1])
        h = None if h0 is None else h0.reshape(1, -1, self.hidden_size)
        gru = getattr(self, name)
        sub = sub_params(params, f"{name}.")
        out, h_last = gru(flat, h) if sub is None else functional_call(gru, sub, (flat, h))
        return (out.reshape(T, *batch, self.hidden_size),
                h_last.reshape(*batch, self.hidden_size))

    def _distribution(self, features: torch.Tensor, params: Params | None) -> Distribution:
        return self.head.distribution(features, sub_params(params, "head."))

    def step(self, x: torch.Tensor, h: torch.Tensor, params: Params | None = None
             ) -> tuple[Distribution, torch.Tensor]:
        """One step of the policy: ``pi(.|x_t, h_{t-1})`` and the new hidden state ``h_t``."""
        out, h_new = self._run_gru("gru", x.unsqueeze(0), h, params)
        return self._distribution(out[0], params), h_new

    def sequence(self, x: torch.Tensor, params: Params | None = None,
                 critic_context: torch.Tensor | None = None
                 ) -> tuple[Distribution, torch.Tensor]:
        """Action distributions ``[T, *batch]`` and values ``[T, *batch]`` for whole trials.

        Every sequence starts from the zero state (the start of a trial) and must have
        its padding (steps after the env froze) only at the end, where it cannot affect
        the live steps: see :meth:`adaptrl.rollouts.trial_sampler.Trials.compact`. Then
        the result equals :meth:`step` applied step by step, which is how the trial was
        sampled. ``critic_context [*batch, critic_context_dim]`` (required when that is
        positive, ignored otherwise) is read by the critic GRU at every step, beside ``x``.
        """
        features, _ = self._run_gru("gru", x, None, params)
        if self.value_trunk == "separate":
            value_features, _ = self._run_gru("value_gru", self._critic_input(x, critic_context),
                                              None, params)
        else:
            value_features = features
        values = self.value(value_features, sub_params(params, "value.")).squeeze(-1)
        return self._distribution(features, params), values

    def action_distribution(self, x: torch.Tensor, params: Params | None = None) -> Distribution:
        """The action distributions ``[T, *batch]`` of whole trials, the actor alone (what
        imitation trains; :meth:`sequence` also runs the critic)."""
        features, _ = self._run_gru("gru", x, None, params)
        return self._distribution(features, params)

    def _critic_input(self, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        """``x`` with the privileged context appended at every step (``x`` alone without)."""
        if not self.critic_context_dim:
            return x
        expected = (*x.shape[1:-1], self.critic_context_dim)
        if context is None or tuple(context.shape) != expected:
            got = None if context is None else tuple(context.shape)
            raise ValueError(f"critic_context must be a {list(expected)} tensor for a critic "
                             f"with critic_context_dim={self.critic_context_dim}, got {got}")
        return torch.cat([x, context.to(x.dtype).expand(x.shape[0], *expected)], dim=-1)

    def sample(self, dist: Distribution, generator: torch.Generator) -> torch.Tensor:
        """Draw an action from ``dist`` with ``generator`` (the head's sampler)."""
        return self.head.sample(dist, generator)

    @staticmethod
    def mode(dist: Distribution) -> torch.Tensor:
        """The most likely action: arg-max of the logits, or the Gaussian mean."""
        probs = getattr(dist, "probs", None)
        return probs.argmax(-1) if probs is not None else dist.mean
