"""Figures of a run: learning curve, adaptation curve with CI bands, 2D paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from adaptrl.algorithms.base import GradientAgent  # noqa: E402
from adaptrl.evaluation.classic.tables import setting_label  # noqa: E402
from adaptrl.evaluation.protocol import gradient_curve  # noqa: E402
from adaptrl.experiment.evaluate import evaluation_tasks, load_learner, load_run  # noqa: E402
from adaptrl.experiment.learners import build_family  # noqa: E402
from adaptrl.experiment.run_dir import RunDir, read_metrics  # noqa: E402
from adaptrl.tasks.render import can_draw_stages, draw_stages  # noqa: E402

COLORS = {"agent": "tab:blue", "pretrained": "tab:orange", "pretrained_adam": "tab:brown",
          "scratch": "tab:gray", "oracle": "tab:green"}


def _finish(fig: Any, ax: Any, out: Path, xlabel: str, ylabel: str, title: str) -> Path:
    """Label a single-axes curve figure, save it to ``out`` and close it."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, out)


def _save(fig: Any, out: Path) -> Path:
    """Lay out, write and close a figure."""
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_learning_curve(run: RunDir, out: Path) -> Path | None:
    """Pre- and post-adaptation training returns against the meta-iteration."""
    if not run.metrics.exists():
        return None
    rows = read_metrics(run.metrics)
    keys = [k for k in ("return_pre", "return_post", "return_trial") if rows and k in rows[0]]
    if not keys:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for k in keys:
        ax.plot([r["iteration"] for r in rows], [r[k] for r in rows],
                label=k.replace("return_", "") + "-adaptation" if k != "return_trial" else "trial")
    pre = run.baseline("pretrained").metrics
    if pre.exists():
        prow = read_metrics(pre)
        ax.plot([r["iteration"] for r in prow], [r["return_post"] for r in prow],
                label="pretrained (training)", color=COLORS["pretrained"], alpha=0.6)
    return _finish(fig, ax, out, "meta-iteration", "average return (training tasks)",
                   "learning curve")


def plot_adaptation_curve(eval_result: dict[str, Any], out: Path) -> Path:
    """Held-out score against adaptation units for the agent and its baselines (95% CI bands)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, m in eval_result["methods"].items():
        steps = m["steps"]
        mean = torch.tensor(m["mean"])
        ci = torch.tensor(m["ci95"]).nan_to_num(0.0)
        style = "--" if name == "oracle" else "-o"
        ax.plot(steps, mean, style, label=name, color=COLORS.get(name))
        ax.fill_between(steps, mean - ci, mean + ci, alpha=0.2, color=COLORS.get(name))
    return _finish(fig, ax, out, eval_result["unit"].replace("_", " "),
                   "average return (held-out tasks)",
                   f"{eval_result['family']}: adaptation on {eval_result['num_tasks']} test tasks")


def plot_paths(run_path: Path, out: Path, num_tasks: int = 4, steps: int = 1,
               seed: int = 0) -> Path | None:
    """2D paths on a few test tasks before and after adaptation (for 2D-position families)."""
    run, config, algo_cfg = load_run(run_path)
    family = build_family(config)
    if not can_draw_stages(family):
        return None
    learner = load_learner(run, config, algo_cfg, config.evaluation.checkpoint)
    agent = learner.agent(config.evaluation.step_sizes)
    if not isinstance(agent, GradientAgent):  # paths of the adapted policy, step by step
        return None
    g = torch.Generator().manual_seed(seed)
    tasks, _ = evaluation_tasks(family, num_tasks, seed, config.evaluation.tasks_file)
    # adapt on the protocol's number of episodes (one episode gives a useless gradient),
    # draw the first two episodes of each stage
    _, trajs = gradient_curve(family, agent, tasks, steps, config.evaluation.episodes, g,
                              torch.device(config.device),
                              batch_unit=config.evaluation.batch_unit)
    trajs = [t.select_episodes(slice(0, 2)) for t in trajs]
    fig, axes = plt.subplots(1, num_tasks, figsize=(3.2 * num_tasks, 3.4), squeeze=False)
    stages = {("before adaptation" if k == 0 else f"after {k} step{'s' if k > 1 else ''}"): t
              for k, t in enumerate(trajs)}
    for i, ax in enumerate(axes[0]):
        one = {label: t.select_tasks(slice(i, i + 1)) for label, t in stages.items()}
        draw_stages(ax, family, tasks[i], one)
        ax.set_aspect("equal")
        ax.set_title(f"test task {i}")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    unique = dict(zip(labels, handles))  # one entry per label (stages redraw the task)
    axes[0][0].legend(unique.values(), unique.keys(), fontsize=7)
    return _save(fig, out)


def plot_classic_table(table: dict[str, Any], out: Path) -> Path:
    """The RL² paper's table as grouped bars: one group per setting, one bar per method."""
    rows = table["settings"]
    methods = list(dict.fromkeys(m for r in rows for m in r["methods"]))
    fig, axes = plt.subplots(1, len(rows), figsize=(max(4.0, 1.0 + 0.5 * len(methods)) *
                                                     len(rows), 3.6), squeeze=False)
    for ax, row in zip(axes[0], rows):
        names = [m for m in methods if m in row["methods"]]
        means = [row["methods"][m]["mean"] for m in names]
        cis = [row["methods"][m]["ci95"] for m in names]
        colors = ["tab:blue" if m == "rl2" else "tab:gray" for m in names]
        ax.bar(range(len(names)), means, yerr=cis, color=colors, capsize=3)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_title(setting_label(row))
        lo = min(m - c for m, c in zip(means, cis))
        ax.set_ylim(bottom=0.9 * lo if lo > 0 else None)
    axes[0][0].set_ylabel("total reward per trial")
    fig.suptitle(f"{table['family']}: RL² beside the classic algorithms (95% CI)")
    return _save(fig, out)


def plot_run(run_path: Path) -> list[Path]:
    """Every figure available for a run, under ``RUN_DIR/plots/``."""
    run = RunDir(Path(run_path))
    run.plots.mkdir(parents=True, exist_ok=True)
    made = [plot_learning_curve(run, run.plots / "learning_curve.png")]
    if run.eval_json.exists():
        result = json.loads(run.eval_json.read_text())
        made.append(plot_adaptation_curve(result, run.plots / "adaptation_curve.png"))
        if "table" in result:
            made.append(plot_classic_table(result["table"], run.plots / "classic_table.png"))
    made.append(plot_paths(run.path, run.plots / "paths.png"))
    return [p for p in made if p is not None]
