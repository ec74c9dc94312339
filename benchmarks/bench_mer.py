"""Meta Experience Replay on rotated 8 x 8 digits: the continual-learning table and MER's cost.

**The table.** Online SGD, EWC (Kirkpatrick et al. 2017; ``--ewc-lambda``), experience
replay (reservoir memory) and MER (Riemer et al. 2019, Algorithm 1) and its one-big-batch
variant learn the rotated-digits stream
(:class:`adaptrl.tasks.digit_stream.RotatedDigits`: 20 angles over [0, 180] degrees, each
task's examples seen once, in order) with an MLP (2 x 100 ReLU), one learner per seed, all
from :func:`adaptrl.experiment.supervised_stream.run_stream`. After every task each
learner is scored on the held-out test images of every task; the table gives retained
accuracy (mean over tasks at the end), learning accuracy, backward transfer and
forgetting (:mod:`adaptrl.evaluation.stream`), mean and 95% CI (Student t) over seeds.

**The paired comparison.** Seed ``i`` of every learner kind starts from the same weights
and sees the same examples in the same order (ER and MER also draw the same memories), so
the kinds are compared seed by seed: for MER − ER, ER − online (and the others present)
the table gives the per-seed difference of each metric, its mean ± 95% CI over seeds
(Student t), the paired t-test's two-sided p and the seeds on which the first is ahead.

**The cost.** MER's examples per second (wall and process CPU, all seeds together) with
the seeds' updates vectorised (``torch.func.vmap`` over a learner dimension) and as a
Python loop over seeds, on the first ``--speed-tasks`` tasks. Both give identical
numbers; only the time differs.

    OMP_NUM_THREADS=1 python benchmarks/bench_mer.py                  # the docs' table
    OMP_NUM_THREADS=1 python benchmarks/bench_mer.py --quick          # a smoke run
    python benchmarks/bench_mer.py --learners mer --lr 0.1 --beta 0.1 # one row, other rates

Results go to ``--out`` (JSON, one file per learner, reused by a later call unless
``--fresh``), so an interrupted measurement resumes.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from scipy import stats

from adaptrl.evaluation.statistics import mean_ci95
from adaptrl.experiment.atomic import atomic_write_json
from adaptrl.experiment.supervised_stream import (
    LEARNERS,
    SupervisedStreamConfig,
    result_row,
    run_stream,
)
from adaptrl.tasks.digit_stream import RotatedDigits


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--learners", nargs="+", default=list(LEARNERS), choices=LEARNERS)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--first-seed", type=int, default=1, help="seeds first..first+seeds-1 "
                   "(a replication on fresh seeds)")
    p.add_argument("--tasks", type=int, default=20, help="rotation angles over [0, 180]")
    p.add_argument("--examples-per-task", type=int, default=100)
    p.add_argument("--memory", type=int, default=500)
    p.add_argument("--k", type=int, default=10, help="memories per batch")
    p.add_argument("--s", type=int, default=10, help="batches per example")
    p.add_argument("--lr", type=float, default=0.03)
    p.add_argument("--beta", type=float, default=0.03)
    p.add_argument("--gamma", type=float, default=1.0)
    p.add_argument("--ewc-lambda", type=float, default=10.0, help="EWC's penalty strength "
                   "(its sweep: docs/continual.md)")
    p.add_argument("--speed-tasks", type=int, default=1, help="tasks timed with and "
                   "without vectorisation (0: skip)")
    p.add_argument("--speed-variants", nargs="+", default=["mer", "mer-big-batch"],
                   choices=["mer", "mer-big-batch"], help="the updates timed")
    p.add_argument("--quick", action="store_true", help="2 seeds, 4 tasks x 20 examples")
    p.add_argument("--out", type=Path, default=Path("/tmp/bench_mer"))
    p.add_argument("--fresh", action="store_true")
    return p.parse_args()


def fmt(metric: dict[str, float]) -> str:
    return f"{metric['mean']:.3f} ± {metric['ci95']:.3f}"


def main() -> None:
    torch.set_num_threads(1)
    a = parse()
    if a.quick:
        a.seeds, a.tasks, a.examples_per_task, a.memory = 2, 4, 20, 40
    stream = RotatedDigits.build(num_tasks=a.tasks, examples_per_task=a.examples_per_task)
    seeds = list(range(a.first_seed, a.first_seed + a.seeds))
    a.out.mkdir(parents=True, exist_ok=True)
    tag = (f"t{a.tasks}-n{a.examples_per_task}-m{a.memory}-k{a.k}-s{a.s}-lr{a.lr}"
           f"-b{a.beta}-g{a.gamma}-seeds{a.seeds}"
           + (f"-from{a.first_seed}" if a.first_seed != 1 else ""))
    rows: list[dict[str, Any]] = []
    for name in a.learners:
        path = a.out / f"{name}-{tag}{f'-lam{a.ewc_lambda}' if name == 'ewc' else ''}.json"
        if path.exists() and not a.fresh:
            rows.append(json.loads(path.read_text()))
            continue
        config = SupervisedStreamConfig(learner=name, lr=a.lr, beta=a.beta, gamma=a.gamma,
                                        memory=a.memory, batch_memories=a.k,
                                        batches_per_example=a.s, ewc_lambda=a.ewc_lambda)
        t0, c0 = time.perf_counter(), time.process_time()
        result = run_stream(stream, config, seeds)
        row = {**result_row(name, result), "total_s": time.perf_counter() - t0,
               "total_cpu_s": time.process_time() - c0,
               "matrix_seed_mean": _mean_matrix(result.records)}
        atomic_write_json(path, row)
        rows.append(row)
        print(f"{name}: {fmt(row['retained'])} retained, {row['total_s']:.0f} s", flush=True)
    print(f"\nrotated digits: {a.tasks} tasks x {a.examples_per_task} examples, memory "
          f"{a.memory}, k {a.k}, s {a.s}, lr {a.lr}, beta {a.beta}, gamma {a.gamma}, "
          f"{a.seeds} seeds (mean ± 95% CI over seeds)\n")
    print("| learner | retained acc. | learning acc. | backward transfer | forgetting | "
          "examples/s (all seeds, vmap) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['learner']} | {fmt(r['retained'])} | {fmt(r['learning'])} | "
              f"{fmt(r['backward_transfer'])} | {fmt(r['forgetting'])} | "
              f"{r['examples_per_s']:.1f} |")
    paired(rows)
    if a.speed_tasks > 0:
        speed(stream, a, seeds)


PAIRS = (("mer", "er"), ("er", "online"), ("mer", "online"), ("mer-big-batch", "er"),
         ("mer", "mer-big-batch"), ("er", "ewc"), ("ewc", "online"))


def paired(rows: list[dict[str, Any]]) -> None:
    """Per-seed differences between learner kinds (module doc), for every pair of
    :data:`PAIRS` whose rows both hold per-seed values of the same seeds."""
    by_name = {r["learner"]: r for r in rows if "per_seed" in r["retained"]}
    pairs = [(x, y) for x, y in PAIRS if x in by_name and y in by_name
             and by_name[x]["seeds"] == by_name[y]["seeds"]]
    if not pairs:
        return
    print(f"\npaired over seeds {by_name[pairs[0][0]]['seeds']} (difference: mean ± 95% CI "
          "over seeds, paired t-test two-sided p, seeds where the first is ahead)\n")
    print("| difference | metric | mean ± 95% CI | p | first ahead |")
    print("| --- | --- | ---: | ---: | ---: |")
    for x, y in pairs:
        for metric in ("retained", "learning", "backward_transfer", "forgetting"):
            d = (torch.tensor(by_name[x][metric]["per_seed"], dtype=torch.float64)
                 - torch.tensor(by_name[y][metric]["per_seed"], dtype=torch.float64))
            mean, ci = mean_ci95(d)
            p = float(stats.ttest_1samp(d.numpy(), 0.0).pvalue) if len(d) > 1 else math.nan
            ahead = int((d < 0).sum()) if metric == "forgetting" else int((d > 0).sum())
            print(f"| {x} − {y} | {metric} | {float(mean):+.4f} ± {float(ci):.4f} | "
                  f"{p:.3g} | {ahead}/{len(d)} |")


def speed(stream: RotatedDigits, a: argparse.Namespace, seeds: list[int]) -> None:
    """MER's examples/s with and without vectorising over the seeds."""
    print(f"\nMER's cost ({len(seeds)} seeds, first {a.speed_tasks} task(s) x "
          f"{a.examples_per_task} examples, s {a.s}, k {a.k}: "
          f"{a.s * (a.k + 1)} sequential SGD steps per example per seed)\n")
    print("| update | examples/s (wall) | examples/s (CPU) | same result |")
    print("| --- | ---: | ---: | --- |")
    for name in a.speed_variants:
        config = SupervisedStreamConfig(learner=name, lr=a.lr, beta=a.beta, gamma=a.gamma,
                                        memory=a.memory, batch_memories=a.k,
                                        batches_per_example=a.s)
        results = {vec: run_stream(stream, config, seeds, vectorise=vec, tasks=a.speed_tasks)
                   for vec in (True, False)}
        same = all(torch.equal(x.entry(0, 0), y.entry(0, 0))  # type: ignore[arg-type]
                   for x, y in zip(results[True].records, results[False].records, strict=True))
        for vec, r in results.items():
            n = r.examples * len(seeds)
            print(f"| {name}, {'vmap over seeds' if vec else 'loop over seeds'} | "
                  f"{n / r.update_s:.1f} | {n / r.update_cpu_s:.1f} | {same} |")


def _mean_matrix(records: Any) -> list[list[float | None]]:
    mats = [r.mean_matrix() for r in records]
    return [[None if mats[0][i][j] is None else
             sum(m[i][j] for m in mats) / len(mats) for j in range(len(mats[0]))]
            for i in range(len(mats[0]))]


if __name__ == "__main__":
    main()
