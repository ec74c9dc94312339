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

from adaptrl.agents.dqn import DQNConfig, learn_one_task
from adaptrl.tasks.adapters import single_env_family


@pytest.mark.slow
def test_dqn_learns_cartpole_v1_with_cleanrl_defaults() -> None:
    steps, seed = 100_000, 1
    # CleanRL's dqn.py: DQNConfig's defaults, its init (nn.Linear's), this run's length
    run = learn_one_task(single_env_family("CartPole-v1"),
                         DQNConfig(total_steps=steps, init="torch"), steps, seed)
    end, returns = run.episodes.of_task(0)
    late = returns[end > steps - 20_000]
    assert len(late) > 0 and float(returns[end <= 20_000].mean()) < 50  # random at first
    assert float(late.mean()) > 150, f"mean return over the last 20k steps {late.mean():.1f}"
