"""adaptrl's DQN learns Gymnasium's CartPole-v1 with CleanRL's defaults (slow: ~1 min).

The full side-by-side comparison with CleanRL's ``dqn.py`` (5 seeds x 500k steps) is
``benchmarks/bench_dqn_cleanrl.py``; this is its smallest check: one seed, 100k steps
(epsilon 1 -> 0.05 over the first 50k), through the Gymnasium adapter, one task, one env.
Seed 1 measured a mean return of 420 over the training episodes of the last 20k steps
(CleanRL's ``dqn.py`` at the same setting, seed 1: 230); a working DQN is clearly above
150 there, a broken one (no learning) stays near 10-30.
"""

from __future__ import annotations

import pytest
import torch

from adaptrl.agents.dqn import DQNAgent, DQNConfig
from adaptrl.rollouts.online import play_online
from adaptrl.tasks.adapters import GymnasiumFamily
from adaptrl.tasks.base import Tasks


@pytest.mark.slow
def test_dqn_learns_cartpole_v1_with_cleanrl_defaults() -> None:
    steps, seed = 100_000, 1
    family = GymnasiumFamily("CartPole-v1", lambda n, g: Tasks({"none": torch.zeros(n)}),
                             lambda env, task: None, splits="shared")
    tasks = family.sample(1, "train", torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)
    # CleanRL's dqn.py: DQNConfig's defaults, its init (nn.Linear's), this run's length
    agent = DQNAgent(DQNConfig(total_steps=steps, init="torch"), family.observation_space,
                     family.action_space)
    run = play_online(family.make_env(tasks, 1), agent, steps,
                      torch.Generator().manual_seed(seed))
    end, returns = run.episodes.of_task(0)
    late = returns[end > steps - 20_000]
    assert len(late) > 0 and float(returns[end <= 20_000].mean()) < 50  # random at first
    assert float(late.mean()) > 150, f"mean return over the last 20k steps {late.mean():.1f}"
