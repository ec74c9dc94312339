"""The value-based acceptance measurement (issue 28): on held-out tasks, in env steps of
online learning, a meta-learned DQN initialisation and the online meta-gradient DQN against
DQN from scratch with hyperparameters tuned on the training tasks.

Per preset (``configs/dqn-reptile-*.yaml``) and seed ``s``:

1. meta-train the preset with ``seed: s`` (``adaptrl.experiment.trainer.train``: the
   meta-learner, then the ``dqn_pretrained`` baseline) into ``OUT/<name>/s<s>``, timing
   both (wall and CPU: ``time.process_time``);
2. score under the protocol (:func:`~adaptrl.evaluation.protocol.online_curve`: greedy
   return after every ``evaluation.env_steps_per_unit`` env steps, up to
   ``evaluation.steps`` units) on the preset's held-out tasks (its ``evaluation.seed``:
   the same tasks for every seed), every agent from a generator seeded ``s`` and the same
   evaluation episodes (common random numbers, so differences are paired by task and
   seed): the meta-learned initialisation (``agent``), ``dqn_scratch`` (the preset's DQN
   settings), ``dqn_tuned`` (the tuned file's), ``dqn_pretrained`` (fine-tuned), and
   ``dqn_metagrad``: :class:`~adaptrl.agents.dqn_metagrad.MetaGradientDQN` starting from
   the tuned hyperparameters (the learned ``gamma`` and ``lr`` start at the tuned values);
   and the family's oracle where it has one.

Curves are written after every agent (``curves.json`` per seed) and reused by a later call,
so an interrupted measurement resumes. ``--summary`` prints the tables: mean ± 95% CI over
tasks (each task's score averaged over seeds) at the checkpoints of ``--at``; the paired
differences against ``dqn_tuned``; and the claim "reaches the tuned scratch DQN's final
return in <= 1/4 of its env steps" (the first checkpoint whose mean reaches ``dqn_tuned``'s
mean at the last one).

    python benchmarks/bench_dqn_meta.py configs/dqn-reptile-catcher.yaml --seeds 1 2 3
    python benchmarks/bench_dqn_meta.py configs/dqn-reptile-catcher.yaml --seeds 1 2 3 --summary
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from adaptrl.agents.dqn_metagrad import (
    MetaGradientConfig,
    MetaGradientDQN,
    MetaGradientDQNConfig,
)
from adaptrl.algorithms.dqn_hparams import read_tuned, tuned_dqn_config
from adaptrl.algorithms.dqn_init import DQNInitConfig
from adaptrl.evaluation.protocol import online_curve, oracle_curve
from adaptrl.evaluation.statistics import mean_ci95
from adaptrl.experiment.atomic import atomic_write_json
from adaptrl.experiment.config import load_config
from adaptrl.experiment.evaluate import baseline_agents, restore_run
from adaptrl.experiment.learners import build_family
from adaptrl.experiment.run_dir import RunDir
from adaptrl.experiment.seeding import seeded_init
from adaptrl.experiment.trainer import train

AGENTS = ("agent", "dqn_scratch", "dqn_tuned", "dqn_pretrained", "dqn_metagrad")


def measure_seed(preset: Path, seed: int, out: Path, meta: MetaGradientConfig,
                 agents: tuple[str, ...]) -> dict[str, Any]:
    config, algo_cfg = load_config(preset, [f"seed={seed}"])
    assert isinstance(algo_cfg, DQNInitConfig)
    run_path = out / config.name / f"s{seed}"
    result_file = run_path / "curves.json"
    result: dict[str, Any] = (json.loads(result_file.read_text()) if result_file.exists()
                              else {"curves": {}, "timing": {}})
    if "train" not in result["timing"]:
        resume = RunDir(run_path).latest.exists()  # an interrupted measurement continues
        start, cpu = time.time(), time.process_time()
        train(config, algo_cfg, run_path, resume=resume, baselines=False)
        meta_t = {"wall_s": time.time() - start, "cpu_s": time.process_time() - cpu,
                  "resumed": resume}
        start, cpu = time.time(), time.process_time()
        train(config, algo_cfg, run_path, resume=True, baselines=True)
        base_t = {"wall_s": time.time() - start, "cpu_s": time.process_time() - cpu}
        result["timing"]["train"] = {"meta": meta_t, "dqn_pretrained": base_t}
        atomic_write_json(result_file, result)
    run = RunDir(run_path)
    family = build_family(config)
    device = torch.device(config.device)
    ev = config.evaluation
    tasks = family.sample(ev.num_tasks, "test", torch.Generator().manual_seed(ev.seed))
    eval_seed = 10_000 + seed
    for name in agents:
        if name in result["curves"]:
            continue
        if name == "agent":
            learner = restore_run(run, config, algo_cfg, ev.checkpoint).learner
            agent: Any = learner.agent([])
        elif name == "dqn_metagrad":
            dqn = tuned_dqn_config(algo_cfg.dqn, read_tuned(algo_cfg.tuned or ""))
            with seeded_init(seed):
                agent = MetaGradientDQN(MetaGradientDQNConfig(dqn=dqn, meta=meta),
                                        family.observation_space, family.action_space)
        else:
            agent = baseline_agents(run, config, algo_cfg, [], seed)[name]
        start, cpu = time.time(), time.process_time()
        curve = online_curve(family, agent, tasks, ev.steps, ev.episodes,
                             ev.env_steps_per_unit, torch.Generator().manual_seed(seed),
                             eval_seed, device)
        result["curves"][name] = curve.tolist()
        result["timing"][name] = {"wall_s": time.time() - start,
                                  "cpu_s": time.process_time() - cpu}
        atomic_write_json(result_file, result)
        print(f"{config.name} s{seed} {name}: {[round(float(x), 2) for x in curve.mean(1)]}",
              flush=True)
    if "oracle" not in result["curves"]:
        oracle = oracle_curve(family, tasks, ev.steps, ev.episodes, device)
        if oracle is not None:
            result["curves"]["oracle"] = oracle.tolist()
            atomic_write_json(result_file, result)
    return result


def _steps(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 and n else str(n)


def _cell(mean: float, ci: float) -> str:
    return f"{mean:.2f} ± {ci:.2f}" if math.isfinite(ci) else f"{mean:.2f}"


def summary(preset: Path, seeds: list[int], out: Path, at: list[int]) -> str:
    config, _ = load_config(preset)
    unit = config.evaluation.env_steps_per_unit
    results = [json.loads((out / config.name / f"s{s}" / "curves.json").read_text())
               for s in seeds]
    names = [n for n in (*AGENTS, "oracle") if all(n in r["curves"] for r in results)]
    # [seeds, units+1, tasks] -> each task's score averaged over seeds: [units+1, tasks]
    curves = {n: torch.tensor([r["curves"][n] for r in results]).double().mean(0)
              for n in names}
    lines = [f"### {config.name}: seeds {seeds}, {curves[names[0]].shape[1]} held-out tasks",
             "", "| method | " + " | ".join(_steps(k * unit) for k in at) + " |",
             "| --- |" + " ---: |" * len(at)]
    for n in names:
        mean, ci = mean_ci95(curves[n][at], dim=1)
        lines.append(f"| `{n}` | " + " | ".join(_cell(float(m), float(c))
                                                for m, c in zip(mean, ci)) + " |")
    if "dqn_tuned" in curves:
        lines += ["", "paired (same tasks and seeds), method − `dqn_tuned`:", "",
                  "| method | " + " | ".join(_steps(k * unit) for k in at) + " |",
                  "| --- |" + " ---: |" * len(at)]
        for n in names:
            if n in ("dqn_tuned", "oracle"):
                continue
            mean, ci = mean_ci95((curves[n] - curves["dqn_tuned"])[at], dim=1)
            lines.append(f"| `{n}` | " + " | ".join(_cell(float(m), float(c))
                                                    for m, c in zip(mean, ci)) + " |")
        final = float(curves["dqn_tuned"][-1].mean())
        last = curves["dqn_tuned"].shape[0] - 1
        lines += ["", f"`dqn_tuned`'s final return (after {last * unit} env steps): "
                  f"{final:.2f}; first checkpoint whose mean reaches it "
                  f"(claim: <= {last * unit // 4} env steps):", ""]
        for n in names:
            if n == "oracle":
                continue
            means = curves[n].mean(1)
            hit = [k for k in range(len(means)) if float(means[k]) >= final]
            when = f"{hit[0] * unit} env steps" if hit else "never"
            verdict = "holds" if hit and hit[0] * unit * 4 <= last * unit else "does not hold"
            lines.append(f"- `{n}`: {when} ({verdict})")
    timing = [r["timing"] for r in results]
    lines += ["", "time per seed (wall s / CPU s, 2 shared cores): " + "; ".join(
        f"{k}: " + ", ".join(f"{t[k]['wall_s']:.0f}/{t[k]['cpu_s']:.0f}" for t in timing
                            if k in t) for k in names if k in timing[0])]
    tr = [t["train"] for t in timing]
    lines.append("meta-train (wall s / CPU s): " + ", ".join(
        f"{t['meta']['wall_s']:.0f}/{t['meta']['cpu_s']:.0f}" for t in tr)
        + "; dqn_pretrained: " + ", ".join(
        f"{t['dqn_pretrained']['wall_s']:.0f}/{t['dqn_pretrained']['cpu_s']:.0f}" for t in tr))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("presets", type=Path, nargs="+")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", type=Path, default=Path("/tmp/dqn_meta"))
    parser.add_argument("--agents", nargs="+", default=list(AGENTS), choices=AGENTS)
    parser.add_argument("--at", type=int, nargs="+", default=[0, 1, 2, 5, 10, 20],
                        help="units shown in the summary tables")
    parser.add_argument("--meta-lr", type=float, default=1e-3)
    parser.add_argument("--gamma-bar", type=float, default=0.995)
    parser.add_argument("--summary", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    meta = MetaGradientConfig(meta_lr=args.meta_lr, gamma_bar=args.gamma_bar)
    if args.summary:
        for preset in args.presets:
            print(summary(preset, args.seeds, args.out, args.at))
        return
    for seed in args.seeds:  # every preset's first seed before any second one
        for preset in args.presets:
            measure_seed(preset, seed, args.out, meta, tuple(args.agents))


if __name__ == "__main__":
    main()
