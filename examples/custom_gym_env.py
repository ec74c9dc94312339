"""Bring your own Gymnasium env: a task family in a few lines, then MAML on it.

What a practitioner writes:

1. a Gymnasium env whose behaviour depends on a task (here a point mass that must find a
   *hidden* goal: the observation is only its own position);
2. a task sampler ``(n, generator) -> Tasks`` drawing task parameters from the prior,
   using only ``generator`` for randomness (reproducible under a seed);
3. how a task reaches the env: through ``reset(options={"task": params})`` (as here), or a
   setter ``apply_task(env, params)`` (shown in ``drifting_family`` below).

:class:`~adaptrl.tasks.adapters.GymnasiumFamily` does the rest: disjoint train / test
splits (by a hash of the parameters), ``tasks x episodes`` sub-envs stepped as one
``gymnasium.vector`` env behind adaptrl's batched-env contract (tensors ``[tasks,
episodes, ...]``, no autoreset: an ended episode stays frozen), seeding from the torch
generator. Every algorithm and the evaluation protocol then work on it unchanged.

Run:  python examples/custom_gym_env.py [--iterations 20]   (a minute or two on 2 cores,
      most of it in the TRPO meta-step)
"""

from __future__ import annotations

import argparse
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from adaptrl.algorithms.maml import MAML, MAMLConfig
from adaptrl.evaluation.protocol import adaptation_curve
from adaptrl.tasks import Tasks
from adaptrl.tasks.adapters import GymnasiumFamily
from adaptrl.tasks.checker import check_task_family


# 1. The env: an ordinary Gymnasium env. It reads its task in reset().
class HiddenGoalPoint(gym.Env):
    """A point in the plane moves by its (clipped) action; reward = -distance to the goal.

    The goal is the task: it arrives as ``reset(options={"task": {"goal": [x, y]}})`` and
    is not observed, so the agent must find it from rewards (what meta-RL adapts to).
    The start position is jittered with the env's own ``np_random`` (seeded by adaptrl).
    """

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Box(-0.1, 0.1, (2,), np.float32)

    def __init__(self) -> None:
        self.goal = np.zeros(2)
        self.position = np.zeros(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options and "task" in options:
            self.goal = np.asarray(options["task"]["goal"], dtype=np.float64)
        self.position = self.np_random.uniform(-0.01, 0.01, size=2)
        return self.position.astype(np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.position = self.position + np.clip(action, -0.1, 0.1)
        distance = float(np.linalg.norm(self.position - self.goal))
        reached = distance < 0.01
        return self.position.astype(np.float32), -distance, reached, False, {"success": reached}


# 2. The task sampler: the prior p(T), drawn from the generator it is given.
def sample_goals(n: int, generator: torch.Generator) -> Tasks:
    """Goals uniform in [-0.5, 0.5]^2 (as in MAML's 2D navigation)."""
    return Tasks({"goal": torch.rand(n, 2, generator=generator) - 0.5})


# 3. The family. horizon: episode length; track_info: keep the per-episode max of
#    info["success"] (read it as env.last_success after a rollout).
def goal_family() -> GymnasiumFamily:
    return GymnasiumFamily(HiddenGoalPoint, sample_goals, "reset", horizon=20,
                           name="hidden-goal-point", track_info=("success",))


# The same idea with a setter instead of reset options, on a registered Gymnasium env:
# Pendulum whose gravity is the task.
def drifting_family() -> GymnasiumFamily:
    def sample_gravity(n: int, generator: torch.Generator) -> Tasks:
        return Tasks({"gravity": 5.0 + 10.0 * torch.rand(n, generator=generator)})

    def set_gravity(env: gym.Env, task: dict[str, Any]) -> None:
        env.unwrapped.g = task["gravity"]

    return GymnasiumFamily("Pendulum-v1", sample_gravity, set_gravity, horizon=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=20, help="meta-iterations")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    family = goal_family()

    # Does it keep adaptrl's promises (shapes, splits, freezing, determinism)?
    check_task_family(family)
    check_task_family(drifting_family())
    print(f"{family.name}: obs {family.observation_space.shape}, "
          f"act {family.action_space.shape}, horizon {family.horizon} -- checker passed")

    # Step it by hand: 4 training tasks x 3 episodes each.
    generator = torch.Generator().manual_seed(args.seed)
    tasks = family.sample(4, "train", generator)
    env = family.make_env(tasks, episodes_per_task=3)
    obs = env.reset(generator)
    result = env.step(torch.zeros(4, 3, 2))
    print(f"reset -> {tuple(obs.shape)}, step -> reward {tuple(result.reward.shape)}, "
          f"terminated {tuple(result.terminated.shape)}")
    env.close()  # hands the sub-envs back to the family's pool

    # Meta-train MAML (TRPO outer loop, one policy-gradient inner step).
    config = MAMLConfig(meta_batch_size=10, episodes_per_task=10,
                        policy={"hidden": [32, 32], "activation": "tanh"})
    learner = MAML(family, config, generator, torch.device("cpu"))
    test_tasks = family.sample(10, "test", torch.Generator().manual_seed(1234))
    before = adaptation_curve(family, learner.agent(), test_tasks, 1, 10, 0,
                              torch.device("cpu")).mean(-1)
    for it in range(args.iterations):
        metrics = learner.meta_update(family.sample(config.meta_batch_size, "train", generator))
        if it % 10 == 0 or it == args.iterations - 1:
            print(f"iter {it:3d}  return before adaptation {metrics['return_pre']:8.2f}  "
                  f"after one step {metrics['return_post']:8.2f}")

    # Meta-test on held-out goals: return after 0 and 1 adaptation steps.
    after = adaptation_curve(family, learner.agent(), test_tasks, 1, 10, 0,
                             torch.device("cpu")).mean(-1)
    print(f"held-out tasks, return after 0 / 1 steps: before meta-training "
          f"{before[0]:.2f} / {before[1]:.2f}, after {after[0]:.2f} / {after[1]:.2f}")


if __name__ == "__main__":
    main()
