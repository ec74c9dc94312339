"""The Ray sampler against the local one: speed-up against workers, overhead at one worker.

One batch is what MAML samples per inner step: ``--tasks`` tasks x ``--episodes`` episodes
of a Gymnasium family at its horizon, with per-task (adapted) parameters of MAML's
policy (MLP 100-100). Each side samples ``--repeats`` batches (after one warm-up batch
that builds the sub-envs and starts the workers), alternating sides so that background
load hits them alike, and reports the median wall time per batch, env steps/s and the
speed-up over the local sampler; every Ray batch is also checked equal to the local one.
Wall time is inflated on a shared machine; CPU time is not: the local sampler's is the
driver's process time, a Ray batch's the sum of its workers' (measured in each worker
around its block), so the CPU overhead of the Ray path is measured even where the cores
are busy with other work.

``--block-cost`` instead measures, in this process and without Ray, what a worker's
exactness costs: the CPU time of sampling the first half of the tasks as a worker does
(the whole batch's draws, the policy on the whole batch, all ``horizon`` steps) against
sampling those tasks alone (best of ``--repeats``).

``--env-steps`` instead measures the step-by-step path of RL² and the value-based learners
(:class:`~adaptrl.rollouts.ray_env.RayBatchedEnv`): ``--tasks x --episodes`` slots reset and
stepped for the horizon with random actions, one driver round trip per step, locally and on
Ray at each worker count (``--repeats`` episodes each, after a warm-up episode; every Ray
step checked equal to the local one); env steps/s from the median wall time, and the CPU
time per episode: the driver's process time and the workers' (``SamplerWorker.cpu_time``).

``--maml-config CONFIG --iterations K`` instead trains CONFIG for ``K`` meta-iterations
with the local sampler and with the Ray sampler at each ``--workers`` count (no
evaluation, no baselines) and reports seconds per meta-iteration (the trainer's
``wall_time_s``), the driver's and the workers' CPU time, and that the metrics are equal.

    python benchmarks/bench_ray_sampler.py --family halfcheetah-vel --workers 1 2
    python benchmarks/bench_ray_sampler.py --family metaworld-ml1 --tasks 4 --episodes 5
    python benchmarks/bench_ray_sampler.py --env-steps --family halfcheetah-vel --tasks 8 \\
        --episodes 1 --workers 1 2
    python benchmarks/bench_ray_sampler.py --maml-config configs/maml-halfcheetah-dir.yaml \\
        --iterations 2 --workers 2
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from typing import Any

from adaptrl import runtime

runtime.configure()
import torch  # noqa: E402

from adaptrl.models.functional import named_params  # noqa: E402
from adaptrl.models.policies import make_policy  # noqa: E402
from adaptrl.rollouts.ray_sampler import RaySampler, RaySampling  # noqa: E402
from adaptrl.rollouts.sampler import BatchSampler  # noqa: E402
from adaptrl.tasks import make  # noqa: E402


def _same(a: Any, b: Any) -> bool:
    return all(torch.equal(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__
               if getattr(a, f) is not None)


def _timed(sampler: BatchSampler, policy: Any, params: Any, seed: int) -> tuple[float, Any]:
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    traj = sampler.sample(policy, params, generator)
    return time.perf_counter() - start, traj


class _CPU:
    """The workers' CPU time of every RaySampler (the trainer builds its own)."""

    total = 0.0

    @classmethod
    def install(cls) -> None:
        original = RaySampler.sample_episodes

        def counted(self: RaySampler, *args: Any, **kwargs: Any) -> Any:
            before = self.worker_cpu_s
            out = original(self, *args, **kwargs)
            cls.total += self.worker_cpu_s - before
            return out

        RaySampler.sample_episodes = counted  # type: ignore[method-assign]


def block_cost(family: Any, tasks: Any, policy: Any, params: Any, episodes: int,
               repeats: int) -> None:
    """CPU of the first half of the tasks sampled as a worker's block vs alone."""
    from adaptrl.rollouts.ray_sampler import BatchRequest, sample_slice
    from adaptrl.rollouts.sampler import rollout

    half = len(tasks) // 2

    def best(fn: Any) -> float:
        times = []
        for _ in range(repeats):
            start = time.process_time()
            fn()
            times.append(time.process_time() - start)
        return min(times)

    g = torch.Generator().manual_seed(1)
    request = BatchRequest(policy, params, tasks, episodes, g.get_state())
    alone = best(lambda: rollout(family.make_env(tasks[:half], episodes), policy,
                                 {k: v[:half] for k, v in params.items()}, g))
    block = best(lambda: sample_slice(family, request, 0, half))
    print(f"{half} of {len(tasks)} tasks x {episodes} episodes: alone {alone:.3f} s CPU, as a "
          f"worker's block {block:.3f} s ({100 * (block / alone - 1):+.1f} %), best of "
          f"{repeats}")


def _random_actions(space: Any, shape: tuple[int, ...], generator: torch.Generator
                    ) -> torch.Tensor:
    if hasattr(space, "n"):
        return torch.randint(0, int(space.n), shape, generator=generator)
    low, high = torch.as_tensor(space.low), torch.as_tensor(space.high)
    return low + (high - low) * torch.rand((*shape, *space.shape), generator=generator)


def env_step_rate(make_family: Any, tasks: Any, episodes: int, workers: list[int],
                  repeats: int, out: str | None) -> None:
    """Env steps/s of envs stepped on the driver's side, local vs Ray (see the module doc)."""
    import ray

    from adaptrl.rollouts.ray_env import RayBatchedEnv

    family = make_family()
    ray.init(num_cpus=sum(workers), include_dashboard=False, log_to_driver=False)
    samplers = {w: RaySampler(make_family, w) for w in workers}
    envs: dict[str, Any] = {"local": family.make_env(tasks, episodes)}
    envs.update({f"ray x{w}": RayBatchedEnv(s, tasks, episodes) for w, s in samplers.items()})
    horizon = envs["local"].horizon
    slots = len(tasks) * episodes

    def episode(env: Any, seed: int) -> list[torch.Tensor]:
        g, ga = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
        seen = [env.reset(g)]
        for _ in range(horizon):
            seen.append(env.step(_random_actions(family.action_space,
                                                 (len(tasks), episodes), ga)).observation)
        return seen

    def worker_cpu(w: int) -> float:
        return sum(ray.get([samplers[w].actor(i).cpu_time.remote() for i in range(w)]))

    for env in envs.values():
        episode(env, 0)  # warm-up: gymnasium's first-step checks, the workers' envs
    walls: dict[str, list[float]] = {name: [] for name in envs}
    driver: dict[str, list[float]] = {name: [] for name in envs}
    remote: dict[str, list[float]] = {name: [] for name in envs}
    for r in range(repeats):
        reference = None
        for name, env in envs.items():
            w = 0 if name == "local" else int(name.split("x")[1])
            before = worker_cpu(w) if w else 0.0
            cpu, start = time.process_time(), time.perf_counter()
            seen = episode(env, 100 + r)
            walls[name].append(time.perf_counter() - start)
            driver[name].append(time.process_time() - cpu)
            remote[name].append(worker_cpu(w) - before if w else 0.0)
            if reference is None:
                reference = seen
            elif not all(torch.equal(a, b) for a, b in zip(seen, reference)):
                raise SystemExit(f"{name}: steps differ from the local env's")
    for sampler in samplers.values():
        sampler.close()
    steps = slots * horizon
    rows = {name: {"wall_s": statistics.median(t),
                   "env_steps_per_s": steps / statistics.median(t),
                   "driver_cpu_s": statistics.median(driver[name]),
                   "worker_cpu_s": statistics.median(remote[name])} for name, t in walls.items()}
    print(f"{family.name}: {len(tasks)} tasks x {episodes} episodes stepped from the driver, "
          f"horizon {horizon} = {steps:,} env steps per episode; medians of {repeats} "
          f"episodes; every Ray step equal to the local one")
    print("| env | wall s / episode | env steps/s | driver CPU s | worker CPU s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, row in rows.items():
        print(f"| {name} | {row['wall_s']:.2f} | {row['env_steps_per_s']:,.0f} | "
              f"{row['driver_cpu_s']:.2f} | {row['worker_cpu_s']:.2f} |")
    if out:
        with open(out, "w") as f:
            json.dump({"family": family.name, "tasks": len(tasks), "episodes": episodes,
                       "steps_per_episode": steps, "rows": rows}, f, indent=2)


def maml_rate(config: str, iterations: int, workers: list[int], out: str | None) -> None:
    """Seconds per meta-iteration of ``config``: local, then Ray at each worker count."""
    import tempfile
    from pathlib import Path

    from adaptrl.experiment.config import load_config
    from adaptrl.experiment.run_dir import read_metrics
    from adaptrl.experiment.trainer import train

    _CPU.install()
    rows: dict[str, dict[str, Any]] = {}
    metrics: dict[str, list[dict[str, Any]]] = {}
    base = [f"iterations={iterations}", "evaluation.baselines=[]", "logging.tensorboard=false",
            "logging.progress=lines"]
    with tempfile.TemporaryDirectory() as tmp:
        for w in [0, *workers]:
            name = "local" if w == 0 else f"ray x{w}"
            extra = [] if w == 0 else ["sampler.backend=ray", f"sampler.workers={w}"]
            exp, algo = load_config(Path(config), [*base, *extra])
            cpu, worker_cpu = time.process_time(), _CPU.total
            start = time.perf_counter()
            train(exp, algo, Path(tmp) / name.replace(" ", ""), baselines=False)
            wall = time.perf_counter() - start
            rows_ = read_metrics(Path(tmp) / name.replace(" ", "") / "metrics.jsonl")
            per_iter = [r["wall_time_s"] - p for r, p in
                        zip(rows_, [0.0] + [r["wall_time_s"] for r in rows_[:-1]])]
            metrics[name] = [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows_]
            rows[name] = {"s_per_iteration": statistics.median(per_iter),
                          "per_iteration": per_iter, "total_wall_s": wall,
                          "driver_cpu_s": time.process_time() - cpu,
                          "worker_cpu_s": _CPU.total - worker_cpu,
                          "env_steps_per_iteration": rows_[-1]["env_steps"] / len(rows_)}
            import gc

            gc.collect()  # the run's Ray workers go with its family
    equal = all(m == metrics["local"] for m in metrics.values())
    print(f"{config}: {iterations} meta-iterations per sampler, metrics equal: {equal}")
    print("| sampler | s / meta-iteration (median) | driver CPU s | worker CPU s | "
          "env steps / iteration |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, row in rows.items():
        print(f"| {name} | {row['s_per_iteration']:.1f} | {row['driver_cpu_s']:.1f} | "
              f"{row['worker_cpu_s']:.1f} | {row['env_steps_per_iteration']:,.0f} |")
    if out:
        with open(out, "w") as f:
            json.dump({"config": config, "iterations": iterations, "rows": rows,
                       "metrics_equal": equal}, f, indent=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", default="halfcheetah-vel")
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--horizon", type=int, default=None, help="default: the family's")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--maml-config", default=None, help="time meta-iterations of this "
                        "config instead (see the module doc)")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--env-steps", action="store_true", help="env steps/s of envs "
                        "stepped from the driver (RL², DQN), see the module doc")
    parser.add_argument("--block-cost", action="store_true", help="a worker block's CPU "
                        "cost against its tasks alone, in-process (see the module doc)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.maml_config:
        import ray

        ray.init(num_cpus=max(args.workers), include_dashboard=False, log_to_driver=False)
        maml_rate(args.maml_config, args.iterations, args.workers, args.json)
        return
    kwargs = {} if args.horizon is None else {"horizon": args.horizon}
    make_family = functools.partial(make, args.family, **kwargs)
    family = make_family()
    tasks = family.sample(args.tasks, "train", torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    policy = make_policy(family.observation_space, family.action_space, (100, 100))
    g = torch.Generator().manual_seed(1)
    params = {k: v.detach().expand(args.tasks, *v.shape) +
              0.01 * torch.randn(args.tasks, *v.shape, generator=g)
              for k, v in named_params(policy).items()}
    if args.env_steps:
        env_step_rate(make_family, tasks, args.episodes, args.workers, args.repeats, args.json)
        return
    steps = args.tasks * args.episodes * family.horizon
    if args.block_cost:
        block_cost(family, tasks, policy, params, args.episodes, args.repeats)
        return
    local = BatchSampler(family, tasks, args.episodes)
    _timed(local, policy, params, 0)  # warm-up: gymnasium's first-step checks
    import ray

    # logical CPUs for every sampler's actors at once (they idle while another side runs)
    ray.init(num_cpus=sum(args.workers), include_dashboard=False, log_to_driver=False)
    sides: dict[str, BatchSampler] = {"local": local}
    samplers = {}
    for w in args.workers:
        samplers[w] = RaySampler(make_family, w)
        sides[f"ray x{w}"] = BatchSampler(RaySampling(family, samplers[w]), tasks,
                                          args.episodes)
        _timed(sides[f"ray x{w}"], policy, params, 0)  # warm-up: workers start, build envs
    times: dict[str, list[float]] = {name: [] for name in sides}
    cpus: dict[str, list[float]] = {name: [] for name in sides}
    for r in range(args.repeats):
        reference = None
        for name, sampler in sides.items():
            cpu = time.process_time()
            ray_cpu = {w: s.worker_cpu_s for w, s in samplers.items()}
            wall, traj = _timed(sampler, policy, params, 100 + r)
            if name == "local":
                cpus[name].append(time.process_time() - cpu)
                reference = traj
            else:
                w = int(name.split("x")[1])
                cpus[name].append(samplers[w].worker_cpu_s - ray_cpu[w])
                if not _same(traj, reference):
                    raise SystemExit(f"{name}: batch differs from the local sampler's")
            times[name].append(wall)
    for ray_sampler in samplers.values():
        ray_sampler.close()
    base = statistics.median(times["local"])
    base_cpu = statistics.median(cpus["local"])
    rows = {name: {"wall_s": statistics.median(t), "env_steps_per_s": steps / statistics.median(t),
                   "speedup": base / statistics.median(t),
                   "cpu_s": statistics.median(cpus[name]),
                   "cpu_overhead": statistics.median(cpus[name]) / base_cpu - 1}
            for name, t in times.items()}
    print(f"{args.family}: {args.tasks} tasks x {args.episodes} episodes x horizon "
          f"{family.horizon} = {steps:,} env steps per batch; medians of {args.repeats} "
          f"batches; every Ray batch equal to the local one")
    print("| sampler | wall s / batch | env steps/s | speed-up vs local | CPU s / batch | "
          "CPU vs local |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, row in rows.items():
        print(f"| {name} | {row['wall_s']:.2f} | {row['env_steps_per_s']:,.0f} | "
              f"{row['speedup']:.2f}x | {row['cpu_s']:.2f} | {100 * row['cpu_overhead']:+.0f} % |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "steps_per_batch": steps, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
