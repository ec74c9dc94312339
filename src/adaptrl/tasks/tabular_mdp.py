"""``tabular-mdp``: the random tabular MDPs of RL² (Duan et al. 2016, §4.2).

A task is an MDP with ``S`` states and ``A`` actions:

* transitions ``P[s, a, :] ~ Dirichlet(1, ..., 1)`` (flat), task parameter
  ``transitions`` of shape ``[n, S, A, S]``;
* mean rewards ``mu[s, a] ~ N(1, 1)``, task parameter ``reward_mean`` ``[n, S, A]``;
  the reward of a step is ``N(mu[s, a], 1)``.

Every episode starts in state 0 and is *truncated* after ``horizon`` steps (10 in the
paper); there are no terminal states. The observation is the one-hot state (float32,
shape ``(S,)``). A *trial* is ``trial_length`` episodes of the same MDP (``n`` in the
paper: 10, 25, 50, 75 or 100).

Next states are drawn by inverse CDF from one uniform per slot and step, rewards from one
normal per slot and step, both from the generator given to ``reset``: all
``tasks x episodes`` slots move at once.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from adaptrl.randomness import rand, randn
from adaptrl.tasks.base import Split, StepResult, Tasks
from adaptrl.tasks.common import EpisodeClock, check_int
from adaptrl.tasks.splits import sample_split


class TabularMDPEnv:
    """``tasks x episodes`` tabular MDPs stepped together; no autoreset."""

    def __init__(self, transitions: torch.Tensor, reward_mean: torch.Tensor,
                 episodes_per_task: int, horizon: int, device: torch.device) -> None:
        n, S, A, _ = transitions.shape
        self.device = device
        self.num_tasks, self.num_states, self.num_actions = n, S, A
        self.episodes_per_task = episodes_per_task
        self.horizon = horizon
        # [tasks, S * A, S]: row s * A + a is the CDF of the next state after (s, a).
        self.cdf = transitions.to(device, torch.float32).reshape(n, S * A, S).cumsum(-1)
        self.reward_mean = reward_mean.to(device, torch.float32).reshape(n, S * A)
        self.clock = EpisodeClock(n, episodes_per_task, horizon, device)
        self.state = torch.zeros(n, episodes_per_task, dtype=torch.long, device=device)
        self.generator: torch.Generator | None = None

    def _observe(self) -> torch.Tensor:
        return torch.nn.functional.one_hot(self.state, self.num_states).float()

    def reset(self, generator: torch.Generator | None = None) -> torch.Tensor:
        self.generator = generator
        self.clock.reset()
        self.state.zero_()
        return self._observe()

    def step(self, action: torch.Tensor) -> StepResult:
        live = self.clock.live
        shape = live.shape
        noise = randn(shape, self.generator, self.device)
        u = rand((*shape, 1), self.generator, self.device)
        row = self.state * self.num_actions + action.long()  # [tasks, episodes]
        reward = (self.reward_mean.gather(1, row) + noise) * live
        cdf = self.cdf.gather(1, row.unsqueeze(-1).expand(*shape, self.num_states))
        next_state = (cdf < u).sum(-1).clamp_max(self.num_states - 1)
        self.state = torch.where(live, next_state, self.state)
        terminated, truncated = self.clock.tick(live)
        return StepResult(self._observe(), reward, terminated, truncated)


class TabularMDP:
    """Task family ``tabular-mdp`` (RL² random MDPs).

    ``trial_length`` is the number of episodes in one RL² trial.
    """

    name = "tabular-mdp"

    def __init__(self, num_states: int = 10, num_actions: int = 5, horizon: int = 10,
                 trial_length: int = 10) -> None:
        self.num_states = check_int("num_states", num_states, 2)
        self.num_actions = check_int("num_actions", num_actions, 2)
        self.horizon = check_int("horizon", horizon, 1)
        self.trial_length = check_int("trial_length", trial_length, 1)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (num_states,), np.float32)
        self.action_space = gym.spaces.Discrete(num_actions)

    def _draw(self, n: int, generator: torch.Generator) -> Tasks:
        S, A = self.num_states, self.num_actions
        # A flat Dirichlet is a normalised vector of Exp(1) draws.
        expo = torch.empty(n, S, A, S).exponential_(1.0, generator=generator)
        transitions = expo / expo.sum(-1, keepdim=True)
        reward_mean = 1.0 + torch.randn(n, S, A, generator=generator)
        return Tasks({"transitions": transitions, "reward_mean": reward_mean})

    def sample(self, n: int, split: Split, generator: torch.Generator) -> Tasks:
        return sample_split(self._draw, n, split, generator)

    def make_env(self, tasks: Tasks, episodes_per_task: int,
                 device: torch.device | str = "cpu") -> TabularMDPEnv:
        return TabularMDPEnv(tasks.params["transitions"], tasks.params["reward_mean"],
                             episodes_per_task, self.horizon, torch.device(device))

    def optimal_q(self, tasks: Tasks) -> torch.Tensor:
        """Finite-horizon optimal action values ``Q*_t(s, a)``, ``[tasks, horizon, S, A]``.

        Backward induction on the known MDP: ``Q_t = mu + P V_{t+1}``, ``V_H = 0``.
        This is what an oracle that is told the task can earn.
        """
        P = tasks.params["transitions"].double()
        mu = tasks.params["reward_mean"].double()
        value = torch.zeros(P.shape[0], self.num_states, dtype=torch.float64)
        qs = []
        for _ in range(self.horizon):
            q = mu + torch.einsum("nsat,nt->nsa", P, value)
            qs.append(q)
            value = q.max(-1).values
        return torch.stack(qs[::-1], dim=1)

    def oracle_return(self, tasks: Tasks) -> torch.Tensor:
        """Expected return of one episode under the optimal policy (from state 0), ``[tasks]``."""
        return self.optimal_q(tasks)[:, 0, 0].max(-1).values
