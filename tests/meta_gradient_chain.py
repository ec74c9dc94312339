"""The small problem the meta-gradient tests differentiate through (tests/adaptation and
tests/algorithms): transitions of a 4-state chain, and a float64 meta-gradient DQN whose
per-task parameters and target network are perturbed copies of one initialisation."""

from __future__ import annotations

import gymnasium as gym
import torch

from adaptrl.agents.dqn import NStepBatch
from adaptrl.agents.dqn_metagrad import MetaGradientDQN, MetaGradientDQNConfig
from adaptrl.models.functional import Params

STATES, ACTIONS, BATCH = 4, 2, 6


def chain_batch(g: torch.Generator, tasks: int) -> NStepBatch:
    """A 4-state chain per task (one-hot states; action 1 moves right, reward 1 and
    termination at the right end), a different random batch per task."""
    s = torch.randint(0, STATES - 1, (tasks, BATCH), generator=g)
    a = torch.randint(0, ACTIONS, (tasks, BATCH), generator=g)
    nxt = (s + a).clamp(max=STATES - 1)
    term = nxt == STATES - 1
    eye = torch.eye(STATES, dtype=torch.float64)
    return NStepBatch(eye[s], a, term.double(), torch.full((tasks, BATCH), 0.99,
                                                           dtype=torch.float64),
                      eye[nxt], term)


def chain_agent(cfg: MetaGradientDQNConfig, tasks: int
                ) -> tuple[MetaGradientDQN, Params, Params, torch.Generator]:
    """The agent (float64, weights from ``torch.manual_seed(0)``), its per-task parameters
    (the initialisation + 0.1 N(0, 1)) and target network (those + 0.05 N(0, 1)), and the
    generator that drew them, for the caller's further draws."""
    torch.manual_seed(0)
    agent = MetaGradientDQN(cfg, gym.spaces.Box(0, 1, (STATES,)), gym.spaces.Discrete(ACTIONS))
    agent.network.double()
    g = torch.Generator().manual_seed(1)
    params = {k: v.detach().double().expand(tasks, *v.shape).clone()
              + 0.1 * torch.randn(tasks, *v.shape, generator=g, dtype=torch.float64)
              for k, v in agent.network.named_parameters()}
    target = {k: v + 0.05 * torch.randn(v.shape, generator=g, dtype=torch.float64)
              for k, v in params.items()}
    return agent, params, target, g
