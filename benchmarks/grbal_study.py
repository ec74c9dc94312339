"""GrBAL against its non-meta-learned baselines and the MPC oracle (docs/model_based.md).

Loads a trained GrBAL run and a run of the same preset trained without meta-learning
(``--set algorithm.inner.steps=0``), and scores on two task sets, each under the one
protocol (:func:`adaptrl.evaluation.protocol.adaptation_curves`, unit ``transitions``: a
trial of ``--episodes`` consecutive episodes per task, the model adapting at every step):

* *held-out*: tasks drawn uniformly from the hull of the training grid (off the grid's
  points: never trained on, inside the training range);
* *OOD*: the family's test split (CaDM's out-of-distribution boxes).

Agents: GrBAL (adapted online), *mb* (the non-meta-learned model, not adapted),
*mb_finetune* (the same model adapted online with GrBAL's inner step), the MPC oracle (the
same planner on the simulator) and uniformly random actions. Returns are normalised per task
so that the oracle scores 1 and random actions 0
(:func:`~adaptrl.evaluation.protocol.normalised_to_oracle`); differences are paired over
tasks (95% t-intervals). Also writes the plots of docs/model_based.md: the model's
open-loop prediction error against the prediction horizon before and after adapting on the
last M transitions, and one OOD episode of GrBAL + MPC beside the oracle's.

    python benchmarks/grbal_study.py --grbal runs/grbal-pendulum --mb runs/mb-pendulum \\
        --out docs/img/grbal-pendulum
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from adaptrl.algorithms.grbal import GrBAL, ModelBasedAgent, adapt  # noqa: E402
from adaptrl.evaluation.protocol import adaptation_curves, normalised_to_oracle  # noqa: E402
from adaptrl.evaluation.statistics import mean_ci95  # noqa: E402
from adaptrl.experiment.evaluate import load_run, restore_run  # noqa: E402
from adaptrl.experiment.learners import build_family  # noqa: E402
from adaptrl.planning.controller import RandomActor, Window  # noqa: E402
from adaptrl.planning.mpc import ActionDomain  # noqa: E402
from adaptrl.rollouts.trial_sampler import TrialActor, play_trials  # noqa: E402
from adaptrl.tasks.base import TaskFamily, Tasks  # noqa: E402


@dataclass(frozen=True)
class RandomAgent:
    """Uniformly random actions (the normalisation's 0), as a transitions agent."""

    domain: ActionDomain
    unit: str = "transitions"

    def actor(self, tasks: Tasks) -> TrialActor[Any]:
        return RandomActor(self.domain)


def held_out_tasks(family: Any, n: int, generator: torch.Generator) -> Tasks:
    """``n`` tasks uniform over the training grid's hull (every other parameter at its one
    value): inside the training range, off the grid's points."""
    grid = family.splitter.grid
    train = family.sample(n, "train", generator)
    params = dict(train.params)
    for key, values in grid.items():
        lo, hi = float(values.min()), float(values.max())
        params[key] = (lo + (hi - lo) * torch.rand(n, generator=generator)).to(
            params[key].dtype)
    return Tasks(params)


def load(path: str, checkpoint: str = "best") -> tuple[Any, GrBAL]:
    run, config, algo = load_run(Path(path))
    learner = restore_run(run, config, algo, checkpoint).learner
    assert isinstance(learner, GrBAL)
    return config, learner


def score(family: TaskFamily, agents: dict[str, Any], tasks: Tasks, episodes: int,
          seed: int, seconds: dict[str, dict[str, float]] | None = None
          ) -> dict[str, torch.Tensor]:
    """Each agent's returns ``[episodes, tasks]``; ``seconds[name]`` gets its wall and process
    CPU time (the cores are shared: CPU time is the figure to compare)."""
    out = {}
    for name, agent in agents.items():
        start, cpu = time.time(), time.process_time()
        out[name] = adaptation_curves(family, agent, tasks, episodes - 1, 1, seed,
                                      torch.device("cpu"))["return"]
        wall, used = time.time() - start, time.process_time() - cpu
        if seconds is not None:
            seconds[name] = {"wall_s": round(wall, 1), "cpu_s": round(used, 1)}
        print(f"  {name}: {out[name].mean(1).tolist()} ({wall:.0f} s wall, "
              f"{used:.0f} s cpu)", flush=True)
    return out


def summarise(returns: dict[str, torch.Tensor]) -> dict[str, Any]:
    oracle = returns["mpc_oracle"][0]  # the oracle does not adapt: its first episode
    floor = returns["random"][0]
    norm = {k: normalised_to_oracle(v, oracle, floor) for k, v in returns.items()}
    table: dict[str, Any] = {"normalised": {}, "raw": {}, "paired": {}, "per_task": {}}
    for k, v in norm.items():
        mean, ci = mean_ci95(v.double(), dim=1)
        table["normalised"][k] = {"mean": mean.tolist(), "ci95": ci.tolist()}
        table["per_task"][k] = v.tolist()  # [episodes][tasks]: paired tests across studies
        rmean, rci = mean_ci95(returns[k].double(), dim=1)
        table["raw"][k] = {"mean": rmean.tolist(), "ci95": rci.tolist()}
    for base in ("mb", "mb_finetune", "grbal_preset"):  # the last: in a --grid-* study
        if base not in norm:
            continue
        mean, ci = mean_ci95((norm["grbal"] - norm[base]).double(), dim=1)
        table["paired"][f"grbal-{base}"] = {"mean": mean.tolist(), "ci95": ci.tolist()}
    return table


def with_test_inner(agent: ModelBasedAgent, steps: int | None = None, lr: float | None = None,
                    past: int | None = None) -> ModelBasedAgent:
    """``agent`` with its online adaptation at test changed: ``steps`` inner steps of size
    ``lr`` (a fixed step: replaces learned step sizes) on the last ``past`` transitions
    (``None``: the run's own)."""
    test = {k: v for k, v in (("steps", steps), ("lr", lr)) if v is not None}
    if test:
        agent = replace(agent, inner=agent.inner.model_copy(update=test),
                        optimizer=None if lr is not None else agent.optimizer)
    return agent if past is None else replace(agent, memory=past)


def finetuned(mb_agent: ModelBasedAgent, like: ModelBasedAgent) -> ModelBasedAgent:
    """mb_finetune: the non-meta-learned model adapted online exactly as ``like`` adapts."""
    return replace(mb_agent, adapt=True, inner=like.inner, memory=like.memory,
                   optimizer=None)


def test_grid(family: TaskFamily, agent: ModelBasedAgent, mb_agent: ModelBasedAgent,
              sets: dict[str, Tasks], fixed: dict[str, dict[str, torch.Tensor]],
              pasts: list[int], lrs: list[float], episodes: int, seed: int
              ) -> list[dict[str, Any]]:
    """GrBAL and mb_finetune scored at every test-time window ``past`` x step size ``lr``
    (one row each), against the agents of ``fixed[set]`` that do not depend on them (mb, the
    oracle, random actions, and GrBAL as trained: ``grbal_preset``) on the same tasks and
    seed: every difference is paired over tasks."""
    rows = []
    for past in pasts:
        for lr in lrs:
            grid_agent = with_test_inner(agent, lr=lr, past=past)
            row: dict[str, Any] = {"past": past, "lr": lr}
            for name, tasks in sets.items():
                print(f"past {past}, lr {lr}, {name} tasks:", flush=True)
                seconds: dict[str, dict[str, float]] = {}
                returns = score(family, {"grbal": grid_agent,
                                         "mb_finetune": finetuned(mb_agent, grid_agent)},
                                tasks, episodes, seed, seconds)
                row[name] = summarise({**fixed[name], **returns})
                row[name]["seconds"] = seconds
            rows.append(row)
    return rows


def print_grid(rows: list[dict[str, Any]]) -> None:
    """One line per setting: GrBAL's normalised return and its paired differences."""
    def cell(table: dict[str, Any], key: str, name: str) -> str:
        entry = table[key][name]
        return f"{entry['mean'][0]:+.3f} ± {entry['ci95'][0]:.3f}"
    print("past  lr      | held-out: GrBAL, GrBAL-mb, GrBAL-preset | OOD: GrBAL, GrBAL-mb, "
          "GrBAL-preset")
    for row in rows:
        line = f"{row['past']:<5d} {row['lr']:<7g} |"
        for name in ("held-out", "ood"):
            t = row[name]
            line += (f" {cell(t, 'normalised', 'grbal')}, {cell(t, 'paired', 'grbal-mb')}, "
                     f"{cell(t, 'paired', 'grbal-grbal_preset')} |")
        print(line, flush=True)


def oracle_episodes(family: TaskFamily, tasks: Tasks, oracle: ModelBasedAgent, seed: int
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One MPC-oracle episode per task: observations, actions, next observations ``[T, n, ...]``."""
    env = family.make_env(tasks, 1)
    steps = play_trials(env, oracle.actor(tasks), 1, torch.Generator().manual_seed(seed))
    obs, act, nxt = (x[:, :, 0] for x in (steps.observations, steps.actions,
                                          steps._require_next()))
    return obs, act, nxt


def adaptation_diagnostics(agent: ModelBasedAgent,
                           episodes: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                           starts: list[int], horizon: int, future: int = 0
                           ) -> dict[str, torch.Tensor]:
    """What one online adaptation does to ``agent``'s model along ``episodes``, per task
    (the mean over ``starts``), before and after adapting on the ``agent.memory``
    transitions before each start ``t`` as the agent does at test (GrBAL's eq. 2):

    * ``past_*`` ``[n]``: the model loss on those M transitions (the fit of the window);
    * ``future_*`` ``[n]``: the loss on the next ``future`` transitions (``t .. t + K``,
      one step each: what GrBAL's outer loss, eq. 3, scores; with ``future`` 0, none);
    * ``open_loop_*`` ``[n, horizon]``: the error ``||s_hat_{t+k} - s_{t+k}||`` of the
      model's open-loop prediction along the episode's actions, ``k = 1..horizon`` (what
      the planner relies on).

    A window fitted better while the future gets worse is over-fitting to the M transitions."""
    obs, act, nxt = episodes
    model, M, n = agent.model, agent.memory, obs.shape[1]

    def window(lo: int, hi: int) -> Window:
        return Window(obs[lo:hi].transpose(0, 1), act[lo:hi].transpose(0, 1),
                      nxt[lo:hi].transpose(0, 1), torch.ones(n, hi - lo, dtype=torch.bool))

    out = {f"{k}_{w}": torch.zeros(n) for k in ("past", "future") for w in ("before", "after")}
    out |= {f"open_loop_{w}": torch.zeros(n, horizon) for w in ("before", "after")}
    for t in starts:
        past = window(t - M, t)
        # adapted as the agent adapts (ReBAL: the context of the window; before: of none)
        adapted = adapt(model, agent.params, past, n, agent.inner, False, agent.optimizer)
        prior = adapt(model, agent.params, None, n, agent.inner, False)
        for params, when in ((prior, "before"), (adapted, "after")):
            with torch.no_grad():
                out[f"past_{when}"] += model.loss(params, past.obs, past.action, past.next_obs)
                if future:
                    ahead = window(t, t + future)
                    out[f"future_{when}"] += model.loss(params, ahead.obs, ahead.action,
                                                        ahead.next_obs)
                s = obs[t]
                for k in range(horizon):
                    s = model.predict(s.unsqueeze(1), act[t + k].unsqueeze(1), params)[:, 0]
                    out[f"open_loop_{when}"][:, k] += (s - obs[t + k + 1]).norm(dim=-1)
    return {k: v / len(starts) for k, v in out.items()}


def horizon_errors(agent: ModelBasedAgent, family: Any, tasks: Tasks,
                   oracle: ModelBasedAgent, horizon: int, seed: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean open-loop error ``||s_hat_{t+k} - s_{t+k}||`` for ``k = 1..horizon`` along oracle
    episodes on ``tasks``, from theta* and from theta adapted on the M transitions before
    ``t`` (every 10th step from M on)."""
    episodes = oracle_episodes(family, tasks, oracle, seed)
    starts = list(range(agent.memory, episodes[0].shape[0] - horizon, 10))
    d = adaptation_diagnostics(agent, episodes, starts, horizon)
    return d["open_loop_before"].mean(0), d["open_loop_after"].mean(0)


def diagnose(family: TaskFamily, agents: dict[str, ModelBasedAgent], sets: dict[str, Tasks],
             oracle: ModelBasedAgent, pasts: list[int], lrs: list[float], horizon: int,
             future: int, seed: int) -> dict[str, Any]:
    """:func:`adaptation_diagnostics` of each agent's model at every test-time window x step
    size, on the same oracle episodes and starts (every 10th step from the largest window
    on), per task set; per-task values and their means."""
    out: dict[str, Any] = {}
    for set_name, tasks in sets.items():
        episodes = oracle_episodes(family, tasks, oracle, seed)
        starts = list(range(max(pasts), episodes[0].shape[0] - max(horizon, future), 10))
        rows = []
        for name, agent in agents.items():
            for past in pasts:
                for lr in lrs:
                    d = adaptation_diagnostics(with_test_inner(agent, lr=lr, past=past),
                                               episodes, starts, horizon, future)
                    rows.append({"model": name, "past": past, "lr": lr,
                                 "per_task": {k: v.tolist() for k, v in d.items()},
                                 "mean": {k: v.mean(0).tolist() for k, v in d.items()}})
        out[set_name] = {"starts": starts, "rows": rows}
    return out


def significant(value: Any, digits: int = 6) -> Any:
    """``value`` (JSON-like) with every float rounded to ``digits`` significant digits."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: significant(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [significant(v, digits) for v in value]
    return value


def print_diagnosis(result: dict[str, Any], horizons: tuple[int, ...] = (1, 5, 10, 20)) -> None:
    """One line per set, model and setting: losses and open-loop errors before -> after."""
    for set_name, table in result.items():
        print(f"{set_name}: model past lr | past loss | future loss | open-loop error at "
              f"{horizons} steps (before -> after)")
        for row in table["rows"]:
            m = row["mean"]
            before, after = m["open_loop_before"], m["open_loop_after"]
            errs = "  ".join(f"{before[k - 1]:.3f}->{after[k - 1]:.3f}"
                             for k in horizons if k <= len(before))
            print(f"  {row['model']:<5} {row['past']:<3d} {row['lr']:<7g} | "
                  f"{m['past_before']:.4f}->{m['past_after']:.4f} | "
                  f"{m['future_before']:.4f}->{m['future_after']:.4f} | {errs}", flush=True)


LEARNER_LABELS = {"grbal": "GrBAL", "rebal": "ReBAL"}
"""How the plots name the meta-learner (by its algorithm name; the JSON keeps "grbal")."""


def plot_horizon_errors(curves: dict[str, dict[str, list[float]]], title: str,
                        path: str, learner: str = "grbal") -> None:
    """Open-loop error against prediction horizon, from theta and after adapting (log y);
    ReBAL's theta is its model with the zero context of no transitions."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, style in (("grbal", "-"), ("mb", "--")):
        ks = range(1, len(curves[name]["before"]) + 1)
        shown = LEARNER_LABELS.get(learner, learner) if name == "grbal" else name
        ax.plot(ks, curves[name]["before"], style, color="tab:gray", label=f"{shown}, theta")
        ax.plot(ks, curves[name]["after"], style, color="tab:blue",
                label=f"{shown}, adapted on last M")
    ax.set_yscale("log")
    ax.set_xlabel("prediction horizon (steps)")
    ax.set_ylabel("open-loop state error")
    ax.set_title(f"{title}: OOD tasks")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def box_of(tasks: Tasks, boxes: list[dict[str, Any]]) -> list[int]:
    """The index of the test box each task lies in (-1: none)."""
    out = []
    for i in range(len(tasks)):
        inside = [j for j, box in enumerate(boxes)
                  if all(lo <= float(tasks.params[k][i]) <= hi for k, (lo, hi) in box.items())]
        out.append(inside[0] if inside else -1)
    return out


def box_mean(values: list[float], where: list[int], box: int) -> float:
    """The mean of the values of the tasks in ``box`` (``where[i]``: task i's box)."""
    picked = [v for v, b in zip(values, where) if b == box]
    return sum(picked) / len(picked)


def report_by_box(saved: dict[str, Any], boxes: list[dict[str, Any]], where: list[int]
                  ) -> None:
    """A grid study's or a diagnosis's OOD numbers split by test box (task means per box)."""
    def mean(values: list[float], j: int) -> float:
        return box_mean(values, where, j)
    names = [", ".join(f"{k} {lo:g}-{hi:g}" for k, (lo, hi) in box.items()) for box in boxes]
    if "grid" in saved:
        print("OOD normalised return by box: past lr | per box: GrBAL (preset) / mb / "
              "mb_finetune")
        for row in saved["grid"]:
            per = row["ood"]["per_task"]
            cells = " | ".join(
                f"{mean(per['grbal'][0], j):.3f} ({mean(per['grbal_preset'][0], j):.3f}) / "
                f"{mean(per['mb'][0], j):.3f} / {mean(per['mb_finetune'][0], j):.3f}"
                for j in range(len(boxes)))
            print(f"  {row['past']:<3d} {row['lr']:<7g} | {cells}")
    if "diagnosis" in saved:
        print("OOD diagnosis by box: model past lr | per box: next-K loss before->after, "
              "open-loop error at 10 and 20 steps before->after")
        for row in saved["diagnosis"]["ood"]["rows"]:
            per = row["per_task"]
            parts: list[str] = []
            for j in range(len(boxes)):
                ol = {(w, k): mean([v[k - 1] for v in per[f"open_loop_{w}"]], j)
                      for w in ("before", "after") for k in (10, 20)}
                parts.append(f"{mean(per['future_before'], j):.3g}->"
                             f"{mean(per['future_after'], j):.3g}, "
                             f"{ol['before', 10]:.2f}->{ol['after', 10]:.2f}, "
                             f"{ol['before', 20]:.2f}->{ol['after', 20]:.2f}")
            print(f"  {row['model']:<5} {row['past']:<3d} {row['lr']:<7g} | "
                  + " | ".join(parts))
    print("boxes: " + "; ".join(f"{j}: {n} ({where.count(j)} tasks)"
                                for j, n in enumerate(names)))


POOLED = ("mb", "mb_finetune")


def pool_seeds(studies: list[dict[str, Any]]) -> dict[str, Any]:
    """Several training seeds' studies (same tasks, same test-time settings) pooled: for each
    task set, each agent's normalised return and each paired difference GrBAL - baseline as
    the mean over seeds of the per-seed task means, with a 95% t-interval over seeds (the
    training seed is the replicated unit), beside the interval over all (seed, task) pairs
    and each seed's own interval over tasks."""
    out: dict[str, Any] = {"seeds": len(studies)}
    for name in ("held-out", "ood"):
        per = [study[name]["per_task"] for study in studies]
        table: dict[str, Any] = {"normalised": {}, "paired": {}}
        series = {agent: torch.tensor([p[agent][0] for p in per], dtype=torch.float64)
                  for agent in per[0]}  # [seeds, tasks]
        diffs = {f"grbal-{b}": series["grbal"] - series[b] for b in POOLED if b in series}
        for key, values in (*series.items(), *diffs.items()):
            seed_means = values.mean(1)
            mean, ci = mean_ci95(seed_means)
            pairs_mean, pairs_ci = mean_ci95(values.flatten())
            per_seed_mean, per_seed_ci = mean_ci95(values, dim=1)
            entry = {"mean": float(mean), "ci95_seeds": float(ci),
                     "ci95_pairs": float(pairs_ci), "per_seed": per_seed_mean.tolist(),
                     "per_seed_ci95": per_seed_ci.tolist()}
            assert abs(float(pairs_mean) - float(mean)) < 1e-9  # equal task counts
            table["paired" if key in diffs else "normalised"][key] = entry
        out[name] = table
    return out


def pooled_by_box(studies: list[dict[str, Any]], boxes: list[dict[str, Any]]
                  ) -> dict[str, list[float]]:
    """Each agent's OOD normalised return (and GrBAL - mb) by test box, the mean over every
    seed's tasks in the box (the studies' own stored tasks say which box)."""
    where: list[int] = []
    values: dict[str, list[float]] = {}
    for study in studies:  # every seed's tasks, one after another
        tasks = Tasks({k: torch.tensor(v) for k, v in study["tasks"]["ood"].items()})
        where += box_of(tasks, boxes)
        per = study["ood"]["per_task"]
        for key, row in {**{k: v[0] for k, v in per.items()},
                         "grbal-mb": [g - m for g, m in zip(per["grbal"][0],
                                                            per["mb"][0])]}.items():
            values.setdefault(key, []).extend(row)
    return {k: [box_mean(v, where, j) for j in range(len(boxes))] for k, v in values.items()
            } | {"tasks": [float(where.count(j)) for j in range(len(boxes))]}


def print_pooled(pooled: dict[str, Any]) -> None:
    print(f"{pooled['seeds']} seeds: mean over seeds ± 95% CI over seeds [over all pairs]; "
          "per seed")
    for name in ("held-out", "ood"):
        for kind in ("normalised", "paired"):
            for key, e in pooled[name][kind].items():
                seeds = ", ".join(f"{m:+.3f}" for m in e["per_seed"])
                print(f"  {name:<8} {key:<18} {e['mean']:+.3f} ± {e['ci95_seeds']:.3f} "
                      f"[± {e['ci95_pairs']:.3f}]; {seeds}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grbal", required=True)
    parser.add_argument("--mb", help="the run trained without meta-learning (all but "
                        "--report and --replot)")
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--out", required=True, help="prefix of the JSON and PNG files")
    parser.add_argument("--checkpoint", choices=("best", "latest"), default="best",
                        help="which checkpoint of both runs: best by training return, or the last")
    parser.add_argument("--test-steps", type=int, default=None,
                        help="inner steps of the online adaptation at test (default: the run's)")
    parser.add_argument("--test-lr", type=float, default=None,
                        help="inner step size at test (default: the run's; replaces learned ones)")
    parser.add_argument("--test-past", type=int, default=None,
                        help="adaptation window M at test (default: the run's)")
    parser.add_argument("--grid-past", type=int, nargs="+", default=None,
                        help="a grid study: GrBAL and mb_finetune at each of these test-time "
                        "windows M (x --grid-lr), paired with mb, the oracle and GrBAL as "
                        "trained, scored once; writes OUT.json, no plots")
    parser.add_argument("--grid-lr", type=float, nargs="+", default=None,
                        help="a grid study's test-time inner step sizes (default: the run's)")
    parser.add_argument("--diagnose", action="store_true",
                        help="no returns: what one online adaptation does to GrBAL's and mb's "
                        "models (window fit, next-K loss, open-loop error) at each --grid-past "
                        "x --grid-lr, along oracle episodes; writes OUT.json")
    parser.add_argument("--horizon", type=int, default=20,
                        help="--diagnose: open-loop prediction horizon (default 20: the "
                        "pendulum planner's)")
    parser.add_argument("--report", action="store_true",
                        help="only print OUT.json's (a grid study's or a diagnosis's) OOD "
                        "numbers by test box (the tasks drawn again from --grbal's config "
                        "and --seed, --tasks)")
    parser.add_argument("--no-plots", action="store_true",
                        help="only the returns (skip the horizon errors and the trajectory)")
    parser.add_argument("--pool", nargs="+", default=None, metavar="JSON",
                        help="only pool these studies of several training seeds (same tasks, "
                        "same settings): intervals over seeds; with --report also by OOD test "
                        "box (boxes from --grbal's config); writes OUT.json")
    parser.add_argument("--replot", action="store_true",
                        help="only redraw the horizon-error plot from OUT.json")
    args = parser.parse_args()
    if args.replot:
        saved = json.loads(Path(f"{args.out}.json").read_text())
        plot_horizon_errors(saved["horizon_error_ood"], saved.get("family", ""),
                            f"{args.out}-horizon-error.png", saved.get("learner", "grbal"))
        return
    if args.pool:
        studies = [json.loads(Path(f).read_text()) for f in args.pool]
        pooled = pool_seeds(studies)
        pooled["studies"] = args.pool
        if args.report:  # by OOD test box, over all seeds' tasks
            _, config, _ = load_run(Path(args.grbal))
            pooled["ood_by_box"] = pooled_by_box(studies, config.family.params["test_boxes"])
            for key, values in pooled["ood_by_box"].items():
                print(f"  OOD by box, {key:<12} " + "  ".join(f"{v:+.3f}" for v in values))
        Path(f"{args.out}.json").write_text(json.dumps(pooled, indent=1))
        print_pooled(pooled)
        return
    torch.set_num_threads(1)
    if args.report:
        _, config, _ = load_run(Path(args.grbal))
        family = build_family(config)
        gen = torch.Generator().manual_seed(args.seed)
        held_out_tasks(family, args.tasks, gen)  # drawn first, as in a study
        ood = family.sample(args.tasks, "test", gen)
        boxes = config.family.params["test_boxes"]
        report_by_box(json.loads(Path(f"{args.out}.json").read_text()), boxes,
                      box_of(ood, boxes))
        return
    if args.mb is None:
        parser.error("--mb is required (the run trained with algorithm.inner.steps=0)")
    config, grbal = load(args.grbal, args.checkpoint)
    _, mb = load(args.mb, args.checkpoint)
    family = build_family(config)
    # the test-time inner step, for GrBAL and mb_finetune alike
    agent = with_test_inner(grbal.agent(), args.test_steps, args.test_lr, args.test_past)
    oracle = replace(agent, oracle=True, adapt=False)
    mb_agent = mb.agent()
    finetune = finetuned(mb_agent, agent)
    agents: dict[str, Any] = {
        "grbal": agent, "mb": replace(mb_agent, adapt=False), "mb_finetune": finetune,
        "mpc_oracle": oracle, "random": RandomAgent(ActionDomain.of(family.action_space))}
    gen = torch.Generator().manual_seed(args.seed)
    sets = {"held-out": held_out_tasks(family, args.tasks, gen),
            "ood": family.sample(args.tasks, "test", gen)}
    result: dict[str, Any] = {"family": family.name, "learner": grbal.config.name,
                              "grbal_run": args.grbal, "mb_run": args.mb,
                              "checkpoint": args.checkpoint,
                              "test_inner": {**agent.inner.model_dump(), "past": agent.memory},
                              "env_steps": {"grbal": grbal.env_steps, "mb": mb.env_steps}}
    result["tasks"] = {name: {k: v.tolist() for k, v in tasks.params.items()}
                       for name, tasks in sets.items()}
    pasts, lrs = args.grid_past or [agent.memory], args.grid_lr or [agent.inner.lr]
    if args.diagnose:
        result["diagnosis"] = diagnose(family, {"grbal": agent, "mb": finetune}, sets, oracle,
                                       pasts, lrs, args.horizon, grbal.config.future,
                                       args.seed)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        # thousands of per-task numbers: 6 significant digits, one line
        Path(f"{args.out}.json").write_text(json.dumps(significant(result), separators=(",", ":")))
        print_diagnosis(result["diagnosis"])
        return
    if args.grid_past is not None or args.grid_lr is not None:
        fixed = {}
        for name, tasks in sets.items():
            print(f"{name} tasks ({args.tasks}), the agents every setting is paired with:",
                  flush=True)
            seconds: dict[str, dict[str, float]] = {}
            fixed[name] = score(family, {"grbal_preset": agent, "mb": agents["mb"],
                                         "mpc_oracle": oracle, "random": agents["random"]},
                                tasks, args.episodes, args.seed, seconds)
            result.setdefault("seconds_fixed", {})[name] = seconds
        result["grid"] = test_grid(family, agent, mb_agent, sets, fixed, pasts, lrs,
                                   args.episodes, args.seed)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(f"{args.out}.json").write_text(json.dumps(result, indent=1))
        print_grid(result["grid"])
        return
    for name, tasks in sets.items():
        print(f"{name} tasks ({args.tasks}):", flush=True)
        seconds = {}
        result[name] = summarise(score(family, agents, tasks, args.episodes, args.seed,
                                       seconds))
        result[name]["seconds"] = seconds
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.no_plots:
        Path(f"{out}.json").write_text(json.dumps(result, indent=1))
        print(json.dumps({k: result[k] for k in ("held-out", "ood")}, indent=1))
        return
    # model error against prediction horizon on the OOD tasks, before / after adapting
    curves = {}
    for name, a in {"grbal": agent, "mb": finetune}.items():
        b, af = horizon_errors(a, family, sets["ood"], oracle, 15, args.seed)
        curves[name] = {"before": b.tolist(), "after": af.tolist()}
    result["horizon_error_ood"] = curves
    plot_horizon_errors(curves, family.name, f"{out}-horizon-error.png", grbal.config.name)
    # one OOD episode: GrBAL + MPC beside the oracle
    task = sets["ood"][0]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    learner = LEARNER_LABELS.get(grbal.config.name, grbal.config.name)
    for name, a in ((f"{learner} + MPC", agent), ("MPC oracle", oracle)):
        env = family.make_env(task, 1)
        steps = play_trials(env, a.actor(task), 1, torch.Generator().manual_seed(args.seed))
        o = steps.observations[:, 0, 0]
        angle = torch.atan2(o[:, 1], o[:, 0]) if o.shape[-1] == 3 else o[:, 2]
        live = steps.masks[:, 0, 0] > 0
        ax.plot(torch.nonzero(live).flatten(), angle[live], label=name)
    varied = getattr(getattr(family, "splitter", None), "grid", task.params)
    params = {k: round(float(v[0]), 3) for k, v in task.params.items() if k in varied}
    ax.set_xlabel("step")
    ax.set_ylabel("pole angle (rad)")
    ax.set_title(f"{family.name}, OOD task {params}", fontsize=8)
    ax.legend()
    fig.tight_layout()
    fig.savefig(f"{out}-trajectory.png", dpi=120)
    Path(f"{out}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("held-out", "ood")}, indent=1))


if __name__ == "__main__":
    main()
