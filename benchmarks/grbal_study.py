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

from adaptrl.algorithms.grbal import GrBAL, ModelBasedAgent, adapt_model  # noqa: E402
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
          seed: int) -> dict[str, torch.Tensor]:
    out = {}
    for name, agent in agents.items():
        start, cpu = time.time(), time.process_time()
        out[name] = adaptation_curves(family, agent, tasks, episodes - 1, 1, seed,
                                      torch.device("cpu"))["return"]
        print(f"  {name}: {out[name].mean(1).tolist()} ({time.time() - start:.0f} s wall, "
              f"{time.process_time() - cpu:.0f} s cpu)", flush=True)
    return out


def summarise(returns: dict[str, torch.Tensor]) -> dict[str, Any]:
    oracle = returns["mpc_oracle"][0]  # the oracle does not adapt: its first episode
    floor = returns["random"][0]
    norm = {k: normalised_to_oracle(v, oracle, floor) for k, v in returns.items()}
    table: dict[str, Any] = {"normalised": {}, "raw": {}, "paired": {}}
    for k, v in norm.items():
        mean, ci = mean_ci95(v.double(), dim=1)
        table["normalised"][k] = {"mean": mean.tolist(), "ci95": ci.tolist()}
        rmean, rci = mean_ci95(returns[k].double(), dim=1)
        table["raw"][k] = {"mean": rmean.tolist(), "ci95": rci.tolist()}
    for base in ("mb", "mb_finetune"):
        mean, ci = mean_ci95((norm["grbal"] - norm[base]).double(), dim=1)
        table["paired"][f"grbal-{base}"] = {"mean": mean.tolist(), "ci95": ci.tolist()}
    return table


def horizon_errors(learner: GrBAL, agent: ModelBasedAgent, family: Any, tasks: Tasks,
                   oracle: ModelBasedAgent, horizon: int, seed: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean open-loop error ``||s_hat_{t+k} - s_{t+k}||`` for ``k = 1..horizon`` along oracle
    episodes on ``tasks``, from theta* and from theta adapted on the M transitions before
    ``t`` (every 10th step from M on)."""
    env = family.make_env(tasks, 1)
    steps = play_trials(env, oracle.actor(tasks), 1, torch.Generator().manual_seed(seed))
    obs, act, nxt = (x[:, :, 0] for x in (steps.observations, steps.actions,
                                          steps._require_next()))
    M = agent.memory
    before, after = torch.zeros(horizon), torch.zeros(horizon)
    starts = list(range(M, obs.shape[0] - horizon, 10))
    model = learner.model
    for t in starts:
        window = Window(obs[t - M:t].transpose(0, 1), act[t - M:t].transpose(0, 1),
                        nxt[t - M:t].transpose(0, 1),
                        torch.ones(len(tasks), M, dtype=torch.bool))
        adapted = adapt_model(model, agent.params, window, agent.inner, False)
        for params, acc in ((None, before), (adapted, after)):
            s = obs[t]
            with torch.no_grad():
                for k in range(horizon):
                    s = model.predict(s.unsqueeze(1), act[t + k].unsqueeze(1), params)[:, 0]
                    acc[k] += float((s - obs[t + k + 1]).norm(dim=-1).mean())
    return before / len(starts), after / len(starts)


def plot_horizon_errors(curves: dict[str, dict[str, list[float]]], title: str,
                        path: str) -> None:
    """Open-loop error against prediction horizon, from theta and after adapting (log y)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, style in (("grbal", "-"), ("mb", "--")):
        ks = range(1, len(curves[name]["before"]) + 1)
        ax.plot(ks, curves[name]["before"], style, color="tab:gray", label=f"{name}, theta")
        ax.plot(ks, curves[name]["after"], style, color="tab:blue",
                label=f"{name}, adapted on last M")
    ax.set_yscale("log")
    ax.set_xlabel("prediction horizon (steps)")
    ax.set_ylabel("open-loop state error")
    ax.set_title(f"{title}: OOD tasks")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grbal", required=True)
    parser.add_argument("--mb", required=True)
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
    parser.add_argument("--no-plots", action="store_true",
                        help="only the returns (skip the horizon errors and the trajectory)")
    parser.add_argument("--replot", action="store_true",
                        help="only redraw the horizon-error plot from OUT.json")
    args = parser.parse_args()
    if args.replot:
        saved = json.loads(Path(f"{args.out}.json").read_text())
        plot_horizon_errors(saved["horizon_error_ood"], saved.get("family", ""),
                            f"{args.out}-horizon-error.png")
        return
    torch.set_num_threads(1)
    config, grbal = load(args.grbal, args.checkpoint)
    _, mb = load(args.mb, args.checkpoint)
    family = build_family(config)
    agent = grbal.agent()
    test = {k: v for k, v in (("steps", args.test_steps), ("lr", args.test_lr))
            if v is not None}
    if test:  # the test-time inner step, for GrBAL and mb_finetune alike
        agent = replace(agent, inner=agent.inner.model_copy(update=test),
                        optimizer=None if args.test_lr is not None else agent.optimizer)
    if args.test_past is not None:
        agent = replace(agent, memory=args.test_past)
    oracle = replace(agent, oracle=True, adapt=False)
    mb_agent = mb.agent()
    finetune = replace(mb_agent, adapt=True, inner=agent.inner, memory=agent.memory)
    agents: dict[str, Any] = {
        "grbal": agent, "mb": replace(mb_agent, adapt=False), "mb_finetune": finetune,
        "mpc_oracle": oracle, "random": RandomAgent(ActionDomain.of(family.action_space))}
    gen = torch.Generator().manual_seed(args.seed)
    sets = {"held-out": held_out_tasks(family, args.tasks, gen),
            "ood": family.sample(args.tasks, "test", gen)}
    result: dict[str, Any] = {"family": family.name, "grbal_run": args.grbal, "mb_run": args.mb,
                              "checkpoint": args.checkpoint,
                              "test_inner": {**agent.inner.model_dump(), "past": agent.memory},
                              "env_steps": {"grbal": grbal.env_steps, "mb": mb.env_steps}}
    for name, tasks in sets.items():
        print(f"{name} tasks ({args.tasks}):", flush=True)
        result[name] = summarise(score(family, agents, tasks, args.episodes, args.seed))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.no_plots:
        Path(f"{out}.json").write_text(json.dumps(result, indent=1))
        print(json.dumps({k: result[k] for k in ("held-out", "ood")}, indent=1))
        return
    # model error against prediction horizon on the OOD tasks, before / after adapting
    curves = {}
    for name, (learner, a) in {"grbal": (grbal, agent),
                               "mb": (mb, finetune)}.items():
        b, af = horizon_errors(learner, a, family, sets["ood"], oracle, 15, args.seed)
        curves[name] = {"before": b.tolist(), "after": af.tolist()}
    result["horizon_error_ood"] = curves
    plot_horizon_errors(curves, family.name, f"{out}-horizon-error.png")
    # one OOD episode: GrBAL + MPC beside the oracle
    task = sets["ood"][0]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, a in (("GrBAL + MPC", agent), ("MPC oracle", oracle)):
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
