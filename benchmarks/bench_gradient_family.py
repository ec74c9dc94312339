"""Cost of the gradient-based meta-learners: time, env steps and peak memory per iteration.

Two tables, each row measured in a *fresh subprocess* (so that the peak resident set
size, ``ru_maxrss``, belongs to that row alone), single-threaded, after one warm-up
meta-iteration:

* ``--configs A.yaml B.yaml ...``: one row per config (any registered gradient-family
  learner: maml, metasgd, reptile, aggregation), at the config's own settings;
* ``--inner-steps 1 2 3``: the first config with ``algorithm.inner.steps = K`` for each
  K. Second-order MAML keeps the graph of every inner step alive until the outer update,
  so its memory grows with K; first-order learners (FOMAML, Reptile) do not.

Columns: CPU seconds per meta-iteration (this process's CPU time: robust to other
processes on a shared machine), wall seconds, env steps per iteration, peak RSS and its
growth over the process's state before the first timed iteration.

    python benchmarks/bench_gradient_family.py --configs configs/maml-navigation.yaml \
        configs/reptile-navigation.yaml --set algorithm.meta_batch_size=10
    python benchmarks/bench_gradient_family.py --configs configs/maml-navigation.yaml \
        --inner-steps 1 2 3
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(config: str, iterations: int, overrides: list[str]) -> dict[str, float | str]:
    """Build the config's learner and time ``iterations`` meta-updates after a warm-up."""
    import torch

    from adaptrl.experiment.config import load_config
    from adaptrl.experiment.learners import build_family, build_learner, meta_batch_size

    torch.set_num_threads(1)
    exp, algo = load_config(Path(config), overrides)
    family = build_family(exp)
    generator = torch.Generator().manual_seed(exp.seed)
    learner = build_learner(family, algo, generator, torch.device(exp.device), exp.seed)
    n = meta_batch_size(algo)
    learner.meta_update(family.sample(n, "train", generator))  # warm-up
    base, steps = _rss_mib(), learner.env_steps
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(iterations):
        learner.meta_update(family.sample(n, "train", generator))
    return {"algorithm": algo.name, "cpu_s": (time.process_time() - cpu) / iterations,
            "wall_s": (time.perf_counter() - wall) / iterations,
            "env_steps": (learner.env_steps - steps) / iterations,
            "peak_rss_mib": _rss_mib(), "rss_growth_mib": _rss_mib() - base}


def _run(config: str, iterations: int, overrides: list[str]) -> dict[str, float | str]:
    cmd = [sys.executable, __file__, "--single", config, "--iterations", str(iterations)]
    for o in overrides:
        cmd += ["--set", o]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _row(label: str, r: dict[str, float | str]) -> str:
    return (f"| {label} | {r['algorithm']} | {r['cpu_s']:.2f} | {r['wall_s']:.2f} | "
            f"{r['env_steps']:.0f} | {r['peak_rss_mib']:.0f} | {r['rss_growth_mib']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["configs/maml-navigation.yaml"])
    parser.add_argument("--inner-steps", type=int, nargs="*", default=[],
                        help="K values for the first config (a table against K)")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="config override KEY=VALUE applied to every row (repeatable)")
    parser.add_argument("--single", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single is not None:
        print(json.dumps(measure(args.single, args.iterations, args.overrides)))
        return
    print(f"{args.iterations} timed meta-iterations per row after one warm-up; one thread; "
          f"overrides: {' '.join(args.overrides) or 'none'}\n")
    head = ("| {} | algorithm | CPU s/iter | wall s/iter | env steps/iter | peak RSS MiB "
            "| RSS growth MiB |\n|---|---|---:|---:|---:|---:|---:|")
    if args.inner_steps:
        print(f"{args.configs[0]} against the number of inner steps K\n")
        print(head.format("K"))
        for k in args.inner_steps:
            r = _run(args.configs[0], args.iterations,
                     [*args.overrides, f"algorithm.inner.steps={k}"])
            print(_row(str(k), r), flush=True)
        return
    print(head.format("config"))
    for config in args.configs:
        print(_row(Path(config).stem, _run(config, args.iterations, args.overrides)), flush=True)


if __name__ == "__main__":
    main()
