"""Learned optimizers: meta-training cost per preset, and transfer to another family.

``cost``: seconds per meta-iteration (wall and process CPU time, one warm-up iteration,
then ``--iters`` timed ones) and env steps per iteration of every preset given, at its own
settings, built exactly as ``adaptrl train`` builds it::

    python benchmarks/bench_l2o.py cost configs/l2o-catch-grid.yaml \
        configs/l2o-catch-grid-tbptt.yaml

``transfer``: the learned optimizer of a trained run (its latest checkpoint) trains fresh
policies on the held-out tasks of *another* preset's family, beside Adam and RMSProp tuned
on that family's training tasks, under the one protocol (the same fresh policy, the same
updates and sampling seeds); prints the mean return after 0..N updates and the paired
differences with 95% CIs over tasks, and writes them as JSON::

    python benchmarks/bench_l2o.py transfer runs/l2o-catch-grid configs/l2o-navigation.yaml \
        --out runs/l2o-transfer-catch-to-nav.json

``fitness``: the training fitness of runs in equal env-step bins (ES against TBPTT at the
same samples)::

    python benchmarks/bench_l2o.py fitness runs/l2o-catch-grid runs/l2o-catch-grid-tbptt

``summary``: the headline table (mean return over updates 1..N and after N, and the paired
differences from the tuned baselines with 95% CIs over tasks) of trained runs and transfer
JSONs::

    python benchmarks/bench_l2o.py summary runs/l2o-navigation runs/l2o-catch-grid \
        runs/l2o-transfer-catch-to-nav.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from adaptrl.algorithms.baselines import baseline_config
from adaptrl.algorithms.learned_optimizer import L2OConfig, LearnedOptimizerLearner
from adaptrl.evaluation.protocol import adaptation_curve
from adaptrl.evaluation.statistics import curve_summary, mean_ci95, paired_difference
from adaptrl.experiment.checkpoints import read_run_checkpoint
from adaptrl.experiment.config import load_config
from adaptrl.experiment.learners import build_family, build_learner
from adaptrl.experiment.run_dir import RunDir
from adaptrl.experiment.seeding import make_generator


def cost(configs: list[str], iters: int, device: str) -> None:
    print("| preset | method | s / iteration (wall) | CPU s / iteration | env steps / iteration |")
    print("| --- | --- | ---: | ---: | ---: |")
    for path in configs:
        exp, algo = load_config(Path(path), [f"device={device}"])
        family = build_family(exp)
        learner = build_learner(family, algo, make_generator(exp.seed), torch.device(device),
                                init_seed=exp.seed)
        generator = torch.Generator().manual_seed(exp.seed)
        tasks = family.sample(algo.meta_batch_size, "train", generator)
        learner.meta_update(tasks)  # warm-up
        walls, cpus = [], []
        steps0 = learner.env_steps
        for _ in range(iters):
            tasks = family.sample(algo.meta_batch_size, "train", generator)
            t0, c0 = time.perf_counter(), time.process_time()
            learner.meta_update(tasks)
            if device != "cpu":
                torch.cuda.synchronize()
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        steps = (learner.env_steps - steps0) / iters
        method = getattr(algo, "method", "?")
        print(f"| {Path(path).name} | {method} | {sum(walls) / iters:.2f} | "
              f"{sum(cpus) / iters:.2f} | {steps:,.0f} |", flush=True)


def transfer(run_path: str, config_path: str, num_tasks: int | None, out: str | None) -> None:
    run = RunDir(Path(run_path))
    source_exp, source_algo = load_config(run.config)
    assert isinstance(source_algo, L2OConfig)
    exp, algo = load_config(Path(config_path))
    assert isinstance(algo, L2OConfig)
    algo = algo.model_copy(update={"optimizer": source_algo.optimizer})
    family = build_family(exp)
    device = torch.device(exp.device)
    learner = LearnedOptimizerLearner(family, algo, make_generator(exp.seed), device)
    state = read_run_checkpoint(run.latest)["learner"]
    learner.optimizer.load_state_dict(state["optimizer"])
    ev = exp.evaluation
    n = num_tasks or ev.num_tasks
    tasks = family.sample(n, "test", torch.Generator().manual_seed(ev.seed))
    agents: dict[str, Any] = {"learned": learner.agent()}
    for name in ("adam_tuned", "rmsprop_tuned"):
        base = build_learner(family, baseline_config(name, algo), make_generator(ev.seed),
                             device, init_seed=ev.seed)
        agents[name] = base.agent()
        print(f"{name}: lr {base.lr} (tuning table {base.table})", flush=True)  # type: ignore[attr-defined]
    scores = {name: adaptation_curve(family, agent, tasks, algo.inner.updates, ev.episodes,
                                     ev.seed, device) for name, agent in agents.items()}
    methods = {k: curve_summary(v) for k, v in scores.items()}
    diffs = {k: paired_difference(scores["learned"], v) for k, v in scores.items()
             if k != "learned"}
    result = {"source": str(run_path), "source_family": source_exp.family.name,
              "target_family": exp.family.name, "num_tasks": n,
              "methods": {k: {**v, "per_task": scores[k].tolist()} for k, v in methods.items()},
              "learned_minus": diffs}
    every = max(1, algo.inner.updates // 4)
    for name, summary in methods.items():
        cells = [f"{m:.2f} ± {c:.2f}" for m, c in zip(summary["mean"], summary["ci95"])]
        print(name, " | ".join(cells[::every]))
    for name, diff in diffs.items():
        cells = [f"{m:+.2f} ± {c:.2f}" for m, c in zip(diff["mean"], diff["ci95"])]
        print(f"learned - {name}", " | ".join(cells[::every]))
    if out:
        Path(out).write_text(json.dumps(result, indent=1))


def _per_task(path: Path) -> tuple[str, dict[str, torch.Tensor]]:
    """``(family, {method: scores [N + 1, tasks]})`` of a run's eval.json (its agent named
    ``learned``) or of a ``transfer`` JSON."""
    if path.is_dir():
        path = path / "eval.json"
    data = json.loads(path.read_text())
    family = data.get("family") or f"{data['source_family']} -> {data['target_family']}"
    scores = {("learned" if k == "agent" else k): torch.tensor(m["per_task"])
              for k, m in data["methods"].items() if "per_task" in m}
    return family, scores


def summary(paths: list[str]) -> None:
    """The headline table: per run, the learned optimizer's mean return over updates 1..N
    and after N, and its paired difference from each tuned baseline (95% CI over tasks)."""
    print("| run | family | learned: mean over updates 1..N | after N | learned - adam_tuned "
          "(1..N) | (after N) | learned - rmsprop_tuned (1..N) | (after N) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for p in paths:
        family, scores = _per_task(Path(p))
        auc = {k: v[1:].mean(0) for k, v in scores.items()}
        last = {k: v[-1] for k, v in scores.items()}

        def cell(x: torch.Tensor) -> str:
            m, c = mean_ci95(x)
            return f"{float(m):+.2f} ± {float(c):.2f}"

        row = [Path(p).name, family, cell(auc["learned"]), cell(last["learned"])]
        for base in ("adam_tuned", "rmsprop_tuned"):
            row += [cell(auc["learned"] - auc[base]), cell(last["learned"] - last[base])]
        print("| " + " | ".join(row) + " |")


def fitness_by_env_steps(paths: list[str], bins: int) -> None:
    """Mean training fitness (return over updates 1..N of the iteration's inner runs; ES: the
    population's mean) in equal env-step bins up to the smallest run's env steps, with 95%
    CIs over iterations: the two meta-training methods side by side at equal samples."""
    logs = {p: [json.loads(line) for line in (Path(p) / "metrics.jsonl").read_text().splitlines()]
            for p in paths}
    top = min(m[-1]["env_steps"] for m in logs.values())
    edges = torch.linspace(0, top, bins + 1).tolist()
    print("| env steps (M) | " + " | ".join(Path(p).name for p in paths) + " |")
    print("| --- |" + " ---: |" * len(paths))
    for lo, hi in zip(edges[:-1], edges[1:]):
        cells = []
        for p in paths:
            x = torch.tensor([m["fitness"] for m in logs[p] if lo < m["env_steps"] <= hi])
            mean, ci = mean_ci95(x)
            cells.append(f"{float(mean):.3f} ± {float(ci):.3f} ({len(x)} it.)")
        print(f"| {lo / 1e6:.1f}-{hi / 1e6:.1f} | " + " | ".join(cells) + " |")


def main() -> None:
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("cost", help="seconds per meta-iteration of presets")
    c.add_argument("configs", nargs="+")
    c.add_argument("--iters", type=int, default=5)
    c.add_argument("--device", default="cpu")
    t = sub.add_parser("transfer", help="a trained learned optimizer on another family")
    t.add_argument("run")
    t.add_argument("config")
    t.add_argument("--tasks", type=int, default=None)
    t.add_argument("--out", default=None)
    s = sub.add_parser("summary", help="the headline table of runs / transfer JSONs")
    s.add_argument("paths", nargs="+")
    f = sub.add_parser("fitness", help="training fitness of runs in equal env-step bins")
    f.add_argument("paths", nargs="+")
    f.add_argument("--bins", type=int, default=4)
    args = parser.parse_args()
    if args.command == "cost":
        cost(args.configs, args.iters, args.device)
    elif args.command == "summary":
        summary(args.paths)
    elif args.command == "fitness":
        fitness_by_env_steps(args.paths, args.bins)
    else:
        transfer(args.run, args.config, args.tasks, args.out)


if __name__ == "__main__":
    main()
