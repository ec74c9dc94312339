"""The value-based acceptance measurement (issue 28): on held-out tasks, in env steps of
online learning, a meta-learned DQN initialisation and the online meta-gradient DQN against
DQN from scratch with hyperparameters tuned on the training tasks.

Per preset (``configs/dqn-reptile-*.yaml``) and seed ``s``:

1. meta-train the preset with ``seed: s`` (``adaptrl.experiment.trainer.train``: the
   meta-learner, then the ``dqn_pretrained`` baseline) into ``OUT/<name>/s<s>/run``, timing
   both (wall and CPU: ``time.process_time``);
2. score under the protocol (:func:`~adaptrl.evaluation.protocol.online_curve`: greedy
   return after every ``evaluation.env_steps_per_unit`` env steps, up to
   ``evaluation.steps`` units) on the preset's held-out tasks (its ``evaluation.seed``:
   the same tasks for every seed), every agent from a generator seeded ``s`` and the same
   evaluation episodes (common random numbers, so differences are paired by task and
   seed): the meta-learned initialisation (``agent``), ``dqn_scratch`` (the preset's DQN
   settings), ``dqn_tuned`` (the tuned file's), ``dqn_pretrained`` (fine-tuned),
   ``dqn_metatuned`` (the tuned file's DQN with ``gamma`` and ``lr`` meta-learned across the
   training tasks: the file ``algorithm.metatuned``, written by
   ``python -m adaptrl.experiment.dqn_meta_tune``), and ``dqn_metagrad``:
   :class:`~adaptrl.agents.dqn_metagrad.MetaGradientDQN` starting from the tuned
   hyperparameters (the learned ``gamma`` and ``lr`` start at the tuned values) and from
   ``dqn_tuned``'s own initial weights (its gamma input's weights zero), settings
   ``algorithm.metagrad``; and the family's oracle where it has one. The baselines are
   built as ``adaptrl evaluate`` builds them
   (:func:`~adaptrl.experiment.evaluate.baseline_agents`).

Curves are written after every agent (``curves.json`` per seed) and reused by a later call,
so an interrupted measurement resumes. ``--summary`` prints the tables: mean ± 95% CI over
tasks (each task's score averaged over seeds) at the checkpoints of ``--at``; the paired
differences against ``dqn_tuned``; and the claim "reaches the tuned scratch DQN's final
return in <= 1/4 of its env steps" (the first checkpoint whose mean reaches ``dqn_tuned``'s
mean at the last one).

    python benchmarks/bench_dqn_meta.py configs/dqn-reptile-catcher.yaml --seeds 1 2 3
    python benchmarks/bench_dqn_meta.py configs/dqn-reptile-catcher.yaml --seeds 1 2 3 --summary

A variant of a method (other settings, e.g. the meta-gradient DQN with lambda-returns) is
measured beside it with ``--set KEY=VALUE`` (config overrides) and ``--label NAME``: its
curves are ``curves/<agent>@NAME.json``, paired with every other method by the summary::

    python benchmarks/bench_dqn_meta.py configs/dqn-reptile-catcher.yaml --seeds 1 2 3 \
        --agents dqn_metagrad --label lambda --set algorithm.metagrad.window=5 \
        --set "algorithm.metagrad.learn=[gamma, lr, lambda]"
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from adaptrl.agents.dqn_metagrad import MetaGradientDQN
from adaptrl.algorithms.dqn_hparams import read_tuned, tuned_dqn_config
from adaptrl.algorithms.dqn_init import DQN_FAMILY_BASELINES, DQNInitConfig
from adaptrl.algorithms.dqn_meta_hparams import read_meta_tuned
from adaptrl.evaluation.protocol import online_curve, oracle_curve
from adaptrl.evaluation.statistics import mean_ci95
from adaptrl.experiment.atomic import atomic_write_json
from adaptrl.experiment.config import load_config
from adaptrl.experiment.evaluate import baseline_agents, restore_run
from adaptrl.experiment.learners import build_family
from adaptrl.experiment.run_dir import RunDir
from adaptrl.experiment.trainer import train

AGENTS = ("agent", "dqn_scratch", "dqn_tuned", "dqn_pretrained", "dqn_metatuned",
          "dqn_metagrad")


class LastEvaluated:
    """A meta-gradient DQN that remembers the learning state its last ``evaluation_actor``
    was made from (the protocol keeps the state to itself): the eta a curve ended with, and
    the hyperparameters (mean over tasks) at every checkpoint of the curve."""

    def __init__(self, agent: MetaGradientDQN) -> None:
        self.agent = agent
        self.state: Any = None
        self.trajectory: list[dict[str, float]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.agent, name)

    def evaluation_actor(self, state: Any) -> Any:
        self.state = state
        self.trajectory.append({k: float(v.double().mean()) for k, v in
                                self.agent.hyperparameters(state).items()})
        return self.agent.evaluation_actor(state)


def measure_seed(preset: Path, seed: int, out: Path, overrides: list[str],
                 agents: tuple[str, ...], label: str | None = None) -> None:
    """Train (where an agent needs it) and score ``agents`` for one preset and seed; each
    result is its own file (``curves/<agent>.json``, ``curves/<agent>@<label>.json`` for a
    labelled variant), so that several processes may measure different agents of the
    same seed at once."""
    config, algo_cfg = load_config(preset, [*overrides, f"seed={seed}"])
    assert isinstance(algo_cfg, DQNInitConfig)
    seed_path = out / config.name / f"s{seed}"
    run_path = seed_path / "run"  # the meta-training run directory
    train_file = seed_path / "train_time.json"
    if {"agent", "dqn_pretrained"} & set(agents) and not train_file.exists():
        resume = RunDir(run_path).latest.exists()  # an interrupted measurement continues
        start, cpu = time.time(), time.process_time()
        train(config, algo_cfg, run_path, resume=resume, baselines=False)
        meta_t = {"wall_s": time.time() - start, "cpu_s": time.process_time() - cpu,
                  "resumed": resume}
        start, cpu = time.time(), time.process_time()
        train(config, algo_cfg, run_path, resume=True, baselines=True)
        base_t = {"wall_s": time.time() - start, "cpu_s": time.process_time() - cpu}
        atomic_write_json(train_file, {"meta": meta_t, "dqn_pretrained": base_t})
    run = RunDir(run_path)
    family = build_family(config)
    device = torch.device(config.device)
    ev = config.evaluation
    tasks = family.sample(ev.num_tasks, "test", torch.Generator().manual_seed(ev.seed))
    eval_seed = 10_000 + seed
    for name in agents:
        curve_file = seed_path / "curves" / f"{name}{'@' + label if label else ''}.json"
        if curve_file.exists():
            continue
        scratch_file = seed_path / "curves" / "dqn_scratch.json"
        if name == "dqn_tuned" and not label and scratch_file.exists() \
                and algo_cfg.tuned is not None \
                and tuned_dqn_config(algo_cfg.dqn, read_tuned(algo_cfg.tuned)) == algo_cfg.dqn:
            # the search kept the preset's own values: the same agent, the same numbers
            atomic_write_json(curve_file, {**json.loads(scratch_file.read_text()),
                                           "same_as": "dqn_scratch"})
            continue
        if name == "agent":
            learner = restore_run(run, config, algo_cfg, ev.checkpoint).learner
            agent: Any = learner.agent([])
        else:
            # this baseline alone, whichever the preset's evaluation lists
            assert name in DQN_FAMILY_BASELINES
            only = config.model_copy(update={"evaluation": ev.model_copy(
                update={"baselines": [name]})})
            agent = baseline_agents(run, only, algo_cfg, [], seed)[name]
        if isinstance(agent, MetaGradientDQN):
            agent = LastEvaluated(agent)
        start, cpu = time.time(), time.process_time()
        curve = online_curve(family, agent, tasks, ev.steps, ev.episodes,
                             ev.env_steps_per_unit, torch.Generator().manual_seed(seed),
                             eval_seed, device)
        record: dict[str, Any] = {"curve": curve.tolist(), "wall_s": time.time() - start,
                                  "cpu_s": time.process_time() - cpu}
        if isinstance(agent, LastEvaluated):
            assert agent.state is not None
            record["final_eta"] = {k: v.tolist() for k, v in
                                   agent.agent.hyperparameters(agent.state).items()}
            record["eta_trajectory"] = agent.trajectory  # after 0, 1, ..., K units
        curve_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(curve_file, record)
        print(f"{config.name} s{seed} {name}: {[round(float(x), 2) for x in curve.mean(1)]}",
              flush=True)
    oracle_file = seed_path / "curves" / "oracle.json"
    if not oracle_file.exists():
        oracle = oracle_curve(family, tasks, ev.steps, ev.episodes, device)
        if oracle is not None:
            oracle_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(oracle_file, {"curve": oracle.tolist(), "wall_s": 0.0,
                                            "cpu_s": 0.0})


def variants(dirs: list[Path]) -> list[str]:
    """The labelled variants (``<agent>@<label>``) with curves in the first of ``dirs``."""
    if not dirs or not (dirs[0] / "curves").is_dir():
        return []
    return sorted(f.stem for f in (dirs[0] / "curves").glob("*@*.json"))


def _steps(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 and n else str(n)


def _cell(mean: float, ci: float) -> str:
    return f"{mean:.2f} ± {ci:.2f}" if math.isfinite(ci) else f"{mean:.2f}"


def summary(preset: Path, seeds: list[int], out: Path, at: list[int],
            references: tuple[str, ...] = ("dqn_tuned",)) -> str:
    config, _ = load_config(preset)
    unit = config.evaluation.env_steps_per_unit
    dirs = [out / config.name / f"s{s}" for s in seeds]
    names = [n for n in (*AGENTS, *variants(dirs), "oracle")
             if all((d / "curves" / f"{n}.json").exists() for d in dirs)]
    records = {n: [json.loads((d / "curves" / f"{n}.json").read_text()) for d in dirs]
               for n in names}
    # [seeds, units+1, tasks] -> each task's score averaged over seeds: [units+1, tasks]
    curves = {n: torch.tensor([r["curve"] for r in records[n]]).double().mean(0)
              for n in names}
    lines = [f"### {config.name}: seeds {seeds}, {curves[names[0]].shape[1]} held-out tasks",
             "", "| method | " + " | ".join(_steps(k * unit) for k in at) + " |",
             "| --- |" + " ---: |" * len(at)]
    for n in names:
        mean, ci = mean_ci95(curves[n][at], dim=1)
        lines.append(f"| `{n}` | " + " | ".join(_cell(float(m), float(c))
                                                for m, c in zip(mean, ci)) + " |")
    for ref in (r for r in references if r in curves):
        # the paired differences at the checkpoints, and their mean over units 1..K (an
        # area between the curves: the whole run's learning, not one point of it)
        lines += ["", f"paired (same tasks and seeds), method − `{ref}`:", "",
                  "| method | " + " | ".join(_steps(k * unit) for k in at)
                  + f" | mean {_steps(unit)}-{_steps((len(curves[ref]) - 1) * unit)} |",
                  "| --- |" + " ---: |" * (len(at) + 1)]
        for n in names:
            if n in (ref, "oracle"):
                continue
            diff = curves[n] - curves[ref]
            mean, ci = mean_ci95(diff[at], dim=1)
            area, area_ci = mean_ci95(diff[1:].mean(0), dim=0)
            lines.append(f"| `{n}` | " + " | ".join(_cell(float(m), float(c))
                                                    for m, c in zip(mean, ci))
                         + f" | {_cell(float(area), float(area_ci))} |")
    if "dqn_tuned" in curves:
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
            quarter = last // 4
            d_mean, d_ci = mean_ci95(curves[n][quarter] - curves["dqn_tuned"][last], dim=0)
            lines.append(f"- `{n}`: {when} ({verdict}); paired, its return at "
                         f"{_steps(quarter * unit)} − `dqn_tuned`'s at {_steps(last * unit)}: "
                         f"{_cell(float(d_mean), float(d_ci))}")
    lines += ["", "time of a curve per seed (wall s / CPU s, 2 shared cores): " + "; ".join(
        f"`{n}` " + ", ".join(f"{r['wall_s']:.0f}/{r['cpu_s']:.0f}" for r in records[n])
        for n in names if n != "oracle")]
    trained = [json.loads((d / "train_time.json").read_text()) for d in dirs
               if (d / "train_time.json").exists()]
    if trained:
        lines.append("meta-train (wall s / CPU s): " + ", ".join(
            f"{t['meta']['wall_s']:.0f}/{t['meta']['cpu_s']:.0f}"
            + (" (resumed)" if t["meta"].get("resumed") else "") for t in trained)
            + "; `dqn_pretrained`: " + ", ".join(
            f"{t['dqn_pretrained']['wall_s']:.0f}/{t['dqn_pretrained']['cpu_s']:.0f}"
            for t in trained))
    _, algo_cfg = load_config(preset)
    if "dqn_metatuned" in names and isinstance(algo_cfg, DQNInitConfig) \
            and algo_cfg.metatuned is not None:
        mt = read_meta_tuned(algo_cfg.metatuned)
        lines.append(f"`dqn_metatuned` ({algo_cfg.metatuned}): gamma "
                     f"{mt.hyperparameters['gamma']:.4g}, lr {mt.hyperparameters['lr']:.4g} "
                     f"(meta-trained on {mt.tasks} training tasks, {mt.env_steps} env steps, "
                     f"seeds {mt.seeds}: {mt.wall_s:.0f} s wall / {mt.cpu_s:.0f} s CPU)")
    if "dqn_tuned" in names and isinstance(algo_cfg, DQNInitConfig) \
            and algo_cfg.tuned is not None:
        hp = read_tuned(algo_cfg.tuned).hyperparameters
        lines.append(f"`dqn_tuned` ({algo_cfg.tuned}): " + ", ".join(
            f"{k} {v:.4g}" for k, v in hp.items()))
    for n in names:
        etas = [r["final_eta"] for r in records[n] if "final_eta" in r]
        if etas:
            lines.append(f"`{n}` final eta (mean over tasks, per seed): " + "; ".join(
                ", ".join(f"{k} {sum(v) / len(v):.4g}" for k, v in e.items()) for e in etas))
        trajectories = [r["eta_trajectory"] for r in records[n] if "eta_trajectory" in r]
        if trajectories and len(trajectories) == len(records[n]):
            eta_mean = {key: [sum(t[k][key] for t in trajectories) / len(trajectories)
                          for k in at] for key in trajectories[0][0]}
            lines.append(f"`{n}` eta after " + ", ".join(_steps(k * unit) for k in at)
                         + " env steps (mean over tasks and seeds): " + "; ".join(
                             f"{key} " + ", ".join(f"{v:.4g}" for v in values)
                             for key, values in eta_mean.items()))
    return "\n".join(lines)


def plot(presets: list[Path], seeds: list[int], out: Path, path: Path) -> None:
    """Every method's curve (mean ± 95% CI over tasks, each task averaged over seeds)
    against env steps, one panel per preset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(presets), figsize=(6 * len(presets), 4), squeeze=False)
    for ax, preset in zip(axes[0], presets):
        config, _ = load_config(preset)
        unit = config.evaluation.env_steps_per_unit
        dirs = [out / config.name / f"s{s}" for s in seeds]
        for n in (*AGENTS, *variants(dirs), "oracle"):
            files = [d / "curves" / f"{n}.json" for d in dirs]
            if not all(f.exists() for f in files):
                continue
            c = torch.tensor([json.loads(f.read_text())["curve"] for f in files]).double()
            mean, ci = mean_ci95(c.mean(0), dim=1)
            x = [k * unit for k in range(len(mean))]
            style = "--" if n == "oracle" else "-"
            ax.plot(x, mean, style, label=n)
            ax.fill_between(x, mean - ci.nan_to_num(), mean + ci.nan_to_num(), alpha=0.15)
        ax.set_title(f"{config.name} (seeds {', '.join(map(str, seeds))})")
        ax.set_xlabel("env steps of online learning (held-out tasks)")
        ax.set_ylabel("greedy return")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("presets", type=Path, nargs="+")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", type=Path, default=Path("/tmp/dqn_meta"))
    parser.add_argument("--agents", nargs="+", default=list(AGENTS), choices=AGENTS)
    parser.add_argument("--at", type=int, nargs="+", default=[0, 1, 2, 5, 10, 20],
                        help="units shown in the summary tables")
    parser.add_argument("--meta-lr", type=float, default=None,
                        help="dqn_metagrad's meta step size (default: algorithm.metagrad's)")
    parser.add_argument("--gamma-bar", type=float, default=None,
                        help="dqn_metagrad's reference discount (default: "
                        "algorithm.metagrad's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="a config override KEY=VALUE (repeatable): a variant, with "
                        "--label")
    parser.add_argument("--label", default=None, help="the variant's name: its curves are "
                        "curves/<agent>@LABEL.json")
    parser.add_argument("--summary", action="store_true")
    parser.add_argument("--paired", nargs="+", default=["dqn_tuned"],
                        help="with --summary: the methods the paired tables subtract")
    parser.add_argument("--plot", type=Path, default=None, help="with --summary: a PNG of "
                        "the curves")
    args = parser.parse_args()
    torch.set_num_threads(1)
    overrides = [f"algorithm.metagrad.{k}={v}" for k, v in
                 (("meta_lr", args.meta_lr), ("gamma_bar", args.gamma_bar)) if v is not None]
    overrides += args.overrides
    if args.label is not None and ("@" in args.label or "/" in args.label
                                   or not args.label):
        parser.error(f"--label: a plain name without '@' or '/', got {args.label!r}")
    if args.overrides and args.label is None and not args.summary:
        parser.error("--set changes a method: name the variant with --label, so that its "
                     "curves do not replace the method's")
    if args.summary:
        for preset in args.presets:
            print(summary(preset, args.seeds, args.out, args.at, tuple(args.paired)))
        if args.plot is not None:
            plot(args.presets, args.seeds, args.out, args.plot)
        return
    for seed in args.seeds:  # every preset's first seed before any second one
        for preset in args.presets:
            measure_seed(preset, seed, args.out, overrides, tuple(args.agents), args.label)


if __name__ == "__main__":
    main()
