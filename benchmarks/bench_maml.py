"""Seconds per MAML-TRPO meta-iteration on ``navigation-2d`` at the reference setting.

The reference implementation's setting (pytorch-maml-rl, 2D navigation; see
shared/REFERENCES.md): meta-batch 20 tasks, 20 episodes per task, horizon 100, one
inner VPG step with lr 0.1, second order, TRPO max-KL 0.01, 10 CG iterations, damping
1e-5, line search 15 steps with ratio 0.8. It takes about 5 s per meta-iteration on a
2-core CPU (sampling 1.7 s + TRPO 2.0 s).

Every configuration runs in a fresh subprocess (so that its peak RSS, from
``resource.getrusage``, belongs to it alone): one warm-up iteration, then ``--iters``
timed ones; the table gives the best and the median, and for the best iteration the
split into sampling (rollouts), advantages (baseline fits + GAE, support and query),
the inner step (differentiable adaptation while sampling) and the outer TRPO step, the
latter split into conjugate gradient (Fisher-vector products and setting up the metric),
line search and the rest
(meta-gradient, surrogate set-up).

    python benchmarks/bench_maml.py              # every configuration, 5 timed iterations
    python benchmarks/bench_maml.py --quick      # a smoke run: one configuration, 1 iteration
    python benchmarks/bench_maml.py --threads 1  # on a loaded machine
    python benchmarks/bench_maml.py --device cuda  # on a GPU: totals are synchronised (the
                                                   # metrics are read back); the breakdown
                                                   # is host time, kernels may still be queued
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

# adaptrl's runtime settings, as the CLI applies them (adaptrl/runtime.py): idle OpenMP
# threads sleep instead of spinning (inherited by the subprocesses; on a shared 2-core
# machine spinning threads make 2-thread runs several times slower) and the allocator keeps
# large blocks. Export OMP_WAIT_POLICY=ACTIVE / ADAPTRL_MALLOC_TUNING=0 to measure without.
from adaptrl import runtime  # noqa: E402

runtime.configure()

POLICIES = {"2x64 tanh": {"hidden": [64, 64], "activation": "tanh"},
            "2x100 relu": {"hidden": [100, 100], "activation": "relu"}}


def _timed(fn: Callable[..., Any], bucket: dict[str, float], key: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            bucket[key] += time.perf_counter() - start
    return wrapper


def run_one(policy: str, first_order: bool, fisher_fraction: float | None, iters: int,
            threads: int, device_name: str = "cpu") -> dict[str, Any]:
    """Time ``iters`` meta-iterations of one configuration (in this process)."""
    import torch

    import adaptrl.adaptation.policy_gradient as pg
    import adaptrl.algorithms.common as common
    import adaptrl.algorithms.maml as maml
    import adaptrl.optim.trpo as trpo
    import adaptrl.rollouts.sampler as sampler
    from adaptrl.tasks import make

    if threads:
        torch.set_num_threads(threads)
    times: dict[str, float] = defaultdict(float)
    # wrap the pieces that exist (older versions of adaptrl lack some: they count in "rest")
    for owner, names, key in [(sampler, ["rollout"], "sampling"),
                              (common, ["rollout"], "sampling"),  # adaptrl before BatchSampler
                              (maml, ["advantages"], "adv_query"),
                              (pg, ["advantages"], "adv_support"),
                              (common.InnerLoop, ["sample"], "sample_and_adapt"),
                              (maml.MAML, ["_metric"], "metric"),
                              (trpo, ["_cg", "conjugate_gradient"], "cg"),
                              (trpo, ["backtracking_line_search"], "line_search")]:
        name = next((n for n in names if hasattr(owner, n)), None)
        if name is not None:
            setattr(owner, name, _timed(getattr(owner, name), times, key))

    trpo_cfg: dict[str, Any] = {}
    if fisher_fraction is not None:
        trpo_cfg["fisher_fraction"] = fisher_fraction
    cfg = maml.MAMLConfig(policy=POLICIES[policy], inner={"first_order": first_order},
                          trpo=trpo_cfg)
    family = make("navigation-2d")
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    device = torch.device(device_name)
    learner = maml.MAML(family, cfg, generator, device)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    records = []
    for i in range(iters + 1):
        tasks = family.sample(cfg.meta_batch_size, "train", generator)
        times.clear()
        steps_before = learner.env_steps
        start, cpu_start = time.perf_counter(), time.process_time()
        info = learner.meta_update(tasks)
        total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        if i == 0:
            continue  # warm-up
        t = defaultdict(float, times)
        r = {"total": total, "cpu": cpu, "sampling": t["sampling"],
             "advantages": t["adv_support"] + t["adv_query"],
             "inner": t["sample_and_adapt"] - t["sampling"] - t["adv_support"],
             "cg": t["cg"] + t["metric"], "line_search": t["line_search"],
             "env_steps": learner.env_steps - steps_before,
             "ls_backtracks": info.get("trpo/ls_backtracks", float("nan"))}
        r["other"] = total - sum(r[k] for k in ("sampling", "advantages", "inner", "cg",
                                                 "line_search"))
        records.append(r)
    best = min(records, key=lambda r: r["total"])
    return {"best": best, "median": statistics.median(r["total"] for r in records),
            "best_cpu": min(r["cpu"] for r in records),
            "fisher_fraction": cfg.trpo.fisher_fraction,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_before_mib": rss_before / 1024, "threads": torch.get_num_threads(),
            "mean_backtracks": statistics.mean(r["ls_backtracks"] for r in records),
            "peak_gpu_mib": (torch.cuda.max_memory_allocated(device) / 2**20
                             if device.type == "cuda" else 0.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one configuration, 1 iteration")
    parser.add_argument("--iters", type=int, default=5, help="timed meta-iterations")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--fisher-fractions", default="",
                        help="comma-separated trpo.fisher_fraction values (default: 1 and the "
                             "config default)")
    parser.add_argument("--policies", default=",".join(POLICIES),
                        help=f"comma-separated policies to time (default: all of {list(POLICIES)})")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child mode: JSON configuration
    args = parser.parse_args()
    if args.one:
        spec = json.loads(args.one)
        print(json.dumps(run_one(spec["policy"], spec["first_order"], spec["fisher_fraction"],
                                 spec["iters"], args.threads, args.device)))
        return

    from adaptrl.algorithms.maml import MAMLConfig

    default_ff = MAMLConfig().trpo.fisher_fraction
    fractions = ([float(x) for x in args.fisher_fractions.split(",")] if args.fisher_fractions
                 else sorted({1.0, default_ff}, reverse=True))
    configs = [(p, fo, ff) for p in POLICIES for fo in (False, True) for ff in fractions
               if p in args.policies.split(",")]
    iters = args.iters
    if args.quick:
        configs, iters = [("2x64 tanh", False, None)], 1
    tuning = "off" if os.environ.get("ADAPTRL_MALLOC_TUNING") == "0" else "on"
    print(f"MAML-TRPO on navigation-2d, reference setting | device {args.device} | OMP_WAIT_POLICY "
          f"{os.environ['OMP_WAIT_POLICY']} | allocator tuning {tuning} | "
          f"load average {os.getloadavg()[0]:.2f} | {iters} "
          f"timed iterations after 1 warm-up | default fisher_fraction {default_ff}")
    print("times in seconds; breakdown of the best iteration: sampling / advantages / inner "
          "step / TRPO (CG + line search + rest)")
    head = (f"{'policy':>10} {'order':>5} {'ff':>4} {'best':>6} {'median':>6} {'cpu':>6} | "
            f"{'sample':>6} "
            f"{'adv':>5} {'inner':>5} {'CG':>5} {'LS':>5} {'rest':>5} | {'steps/it':>8} "
            f"{'bt':>4} {'RSS MiB':>8}" + (f" {'GPU MiB':>8}" if args.device != "cpu" else ""))
    print(head)
    print("-" * len(head))
    for policy, fo, ff in configs:
        spec = json.dumps({"policy": policy, "first_order": fo, "fisher_fraction": ff,
                           "iters": iters})
        out = subprocess.run([sys.executable, __file__, "--one", spec,
                              "--threads", str(args.threads), "--device", args.device],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        b = r["best"]
        print(f"{policy:>10} {'1st' if fo else '2nd':>5} {r['fisher_fraction']:>4.2g} "
              f"{b['total']:6.3f} {r['median']:6.3f} {r['best_cpu']:6.3f} | {b['sampling']:6.3f} "
              f"{b['advantages']:5.3f} {b['inner']:5.3f} {b['cg']:5.3f} "
              f"{b['line_search']:5.3f} {b['other']:5.3f} | {b['env_steps']:8d} "
              f"{r['mean_backtracks']:4.1f} {r['peak_rss_mib']:8.0f}"
              + (f" {r['peak_gpu_mib']:8.0f}" if args.device != "cpu" else ""))
    print(f"threads {r['threads']}; cpu = best process CPU time per iteration (all threads); "
          f"bt = mean line-search backtracks; RSS = peak resident "
          f"memory of the whole process (ru_maxrss; {r['rss_before_mib']:.0f} MiB before the "
          f"first iteration); load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
