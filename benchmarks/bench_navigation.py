"""``navigation-2d`` throughput: env steps per second, env alone and with a policy sampling.

For each batch size (tasks x episodes) the env is reset and stepped ``steps`` times with
actions drawn up front (so only ``env.step`` is timed); steps/s = batch x steps / seconds,
best of ``--repeats``. The rollout column times :func:`adaptrl.rollouts.rollout` (a full
episode of horizon 100, 2 x 64 tanh Gaussian policy, sampling + log-probabilities +
buffers) at the batch sizes where it fits in memory.

    python benchmarks/bench_navigation.py            # batches 400 .. 1M
    python benchmarks/bench_navigation.py --quick    # a smoke run (small batches, 1 repeat)
    python benchmarks/bench_navigation.py --threads 1
    python benchmarks/bench_navigation.py --device cuda   # on a GPU (synchronised timings)

The machine's load average is printed: on a shared machine, compare best-of-N figures
taken at a similar load.
"""

from __future__ import annotations

import argparse
import os
import time

# adaptrl's runtime settings before torch loads, as the CLI applies them (adaptrl/runtime.py):
# idle OpenMP threads sleep instead of spinning, which on a shared 2-core machine makes
# 2-thread rollouts at batch 400 about 100x faster. Export OMP_WAIT_POLICY=ACTIVE to measure
# torch's default.
from adaptrl import runtime

runtime.configure()

import torch  # noqa: E402

from adaptrl.models.functional import detach_params, named_params  # noqa: E402
from adaptrl.models.policies import make_policy  # noqa: E402
from adaptrl.rollouts.sampler import rollout  # noqa: E402
from adaptrl.tasks import Navigation2D  # noqa: E402

BATCHES: dict[str, tuple[int, int]] = {  # name: (tasks, episodes per task)
    "400": (20, 20), "4k": (40, 100), "40k": (200, 200), "400k": (400, 1000),
    "1M": (1000, 1000),
}
ROLLOUT_MAX = {"cpu": 40_000, "cuda": 400_000}  # largest batch for the rollout column
                                                # (a full horizon of buffers)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def env_steps_per_second(tasks: int, episodes: int, steps: int, repeats: int,
                         device: torch.device) -> float:
    """Best of ``repeats`` timings of ``steps`` calls of ``NavigationEnv.step``."""
    family = Navigation2D()
    g = torch.Generator().manual_seed(0)
    env = family.make_env(family.sample(tasks, "train", g), episodes, device)
    actions = 0.15 * (2 * torch.rand(steps, tasks, episodes, 2, generator=g) - 1)
    actions = actions.to(device)
    best = float("inf")
    for _ in range(repeats + (device.type == "cuda")):  # on a GPU a first, untimed warm-up
        env.reset()
        _sync(device)
        start = time.perf_counter()
        for t in range(steps):
            env.step(actions[t])
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return tasks * episodes * steps / best


def rollout_steps_per_second(tasks: int, episodes: int, repeats: int,
                             device: torch.device) -> float:
    """Best of ``repeats`` timings of one full rollout (horizon 100) with a 2x64 tanh policy."""
    family = Navigation2D()
    g = torch.Generator().manual_seed(0)
    env = family.make_env(family.sample(tasks, "train", g), episodes, device)
    policy = make_policy(family.observation_space, family.action_space, (64, 64), "tanh")
    params = detach_params(named_params(policy.to(device)))
    best = float("inf")
    steps = 0
    for _ in range(repeats + (device.type == "cuda")):
        _sync(device)
        start = time.perf_counter()
        traj = rollout(env, policy, params, g)
        _sync(device)
        best = min(best, time.perf_counter() - start)
        steps = tasks * episodes * traj.horizon
    return steps / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small batches, one repeat")
    parser.add_argument("--repeats", type=int, default=5, help="timings per figure (best kept)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = {k: BATCHES[k] for k in ("400", "4k")} if args.quick else BATCHES
    repeats = 1 if args.quick else args.repeats
    print(f"navigation-2d throughput | device {device} | torch {torch.__version__} | threads "
          f"{torch.get_num_threads()} | OMP_WAIT_POLICY {os.environ['OMP_WAIT_POLICY']} | "
          f"load average {os.getloadavg()[0]:.2f} | best of {repeats}")
    print(f"{'batch':>6} {'tasks x episodes':>17} {'env steps/s':>14} {'rollout steps/s':>16}")
    for name, (tasks, episodes) in batches.items():
        batch = tasks * episodes
        steps = 100 if batch <= 40_000 else 20
        env_rate = env_steps_per_second(tasks, episodes, steps, repeats, device)
        roll = (f"{rollout_steps_per_second(tasks, episodes, repeats, device):16,.0f}"
                if batch <= ROLLOUT_MAX.get(device.type, 40_000) else f"{'-':>16}")
        print(f"{name:>6} {f'{tasks} x {episodes}':>17} {env_rate:14,.0f} {roll}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
