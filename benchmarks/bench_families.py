"""Environment steps per second of every built-in task family.

For each family and batch size (tasks x episodes), random actions for ``--steps`` steps
are generated up front (so only the env is timed), the env is reset and warmed up with
one step, then ``--steps`` calls of ``step`` are timed. Every slot is stepped each call
(built-in envs compute all slots and freeze the ended ones, so frozen steps cost the
same); steps/s = tasks x episodes x steps / seconds.

    python benchmarks/bench_families.py                  # CPU, batches 1k and 100k
    python benchmarks/bench_families.py --threads 1      # on a shared / loaded machine
    python benchmarks/bench_families.py --device cuda --repeats 5
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym

from adaptrl import runtime  # the CLI's runtime settings (adaptrl/runtime.py)

runtime.configure()
import torch  # noqa: E402

from adaptrl.tasks import make, registered

BATCHES = {"1k": (100, 10), "100k": (1000, 100)}  # (tasks, episodes per task)


def random_actions(space: gym.Space, shape: tuple[int, ...], generator: torch.Generator,
                   device: torch.device) -> torch.Tensor:
    """Uniform random actions ``[*shape, *action]`` for a Box or Discrete space."""
    if isinstance(space, gym.spaces.Discrete):
        return torch.randint(int(space.n), shape, generator=generator).to(device)
    low = torch.as_tensor(space.low)
    high = torch.as_tensor(space.high)
    u = torch.rand(*shape, *space.shape, generator=generator)
    return (low + (high - low) * u).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def steps_per_second(name: str, tasks: int, episodes: int, steps: int,
                     device: torch.device, repeats: int) -> float:
    """Best of ``repeats`` timings of ``steps`` env steps over ``tasks x episodes`` slots."""
    family = make(name)
    generator = torch.Generator().manual_seed(0)
    env = family.make_env(family.sample(tasks, "train", generator), episodes, device)
    actions = random_actions(family.action_space, (steps + 1, tasks, episodes), generator,
                             device)
    env_gen = torch.Generator(device=device).manual_seed(0)
    best = float("inf")
    for _ in range(repeats):
        env.reset(env_gen)
        env.step(actions[0])  # warm-up
        _sync(device)
        start = time.perf_counter()
        for t in range(1, steps + 1):
            env.step(actions[t])
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return tasks * episodes * steps / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's choice); on a "
                             "loaded machine 1 avoids OpenMP spin contention")
    parser.add_argument("--families", nargs="*", default=None,
                        help="family names (default: every built-in family)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = args.families or [n for n, spec in registered().items() if spec.extra is None]
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"steps={args.steps} best of {args.repeats}")
    header = f"{'family':<20}" + "".join(f"{'steps/s @ ' + b:>20}" for b in BATCHES)
    print(header)
    print("-" * len(header))
    for name in names:
        row = [steps_per_second(name, n, e, args.steps, device, args.repeats)
               for n, e in BATCHES.values()]
        print(f"{name:<20}" + "".join(f"{r:>20,.0f}" for r in row), flush=True)


if __name__ == "__main__":
    main()
