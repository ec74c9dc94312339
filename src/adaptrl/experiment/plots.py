"""Figures of a run: learning curve, adaptation curve with CI bands, per-task scores, 2D paths.

Each figure has a ``*_figure`` function that returns it (for ``adaptrl report``, which embeds
it in a page) and a ``plot_*`` function that writes it to a file (``adaptrl plot``).
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from adaptrl.algorithms.base import GradientAgent  # noqa: E402
from adaptrl.evaluation.classic.tables import setting_label  # noqa: E402
from adaptrl.evaluation.protocol import gradient_curve  # noqa: E402
from adaptrl.experiment.evaluate import evaluation_tasks, load_learner, load_run  # noqa: E402
from adaptrl.experiment.learners import build_family  # noqa: E402
from adaptrl.experiment.run_dir import RunDir, read_metrics  # noqa: E402
from adaptrl.tasks.render import can_draw_stages, draw_stages  # noqa: E402

COLORS = {"agent": "tab:blue", "pretrained": "tab:orange", "pretrained_adam": "tab:brown",
          "scratch": "tab:gray", "oracle": "tab:green"}


def _label(ax: Any, xlabel: str, ylabel: str, title: str) -> None:
    """Label a single-axes curve figure, with a grid and a legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()


def _write(fig: Any, target: Any) -> None:
    """Lay out a figure, write it as PNG to ``target`` (a path or a binary file) and close it."""
    fig.tight_layout()
    fig.savefig(target, dpi=120, format="png")
    plt.close(fig)


def _save(fig: Any, out: Path) -> Path:
    """Lay out, write and close a figure."""
    _write(fig, out)
    return out


def png_bytes(fig: Any) -> bytes:
    """A figure as PNG bytes, in memory (closed afterwards): what a self-contained page embeds."""
    buf = io.BytesIO()
    _write(fig, buf)
    return buf.getvalue()


def plot_learning_curve(run: RunDir, out: Path) -> Path | None:
    """Pre- and post-adaptation training returns against the meta-iteration."""
    fig = learning_curve_figure(run)
    return None if fig is None else _save(fig, out)


def learning_curve_figure(run: RunDir) -> Any | None:
    """The learning curve (see :func:`plot_learning_curve`), or None without metrics."""
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
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _label(ax, "meta-iteration", "average return (training tasks)", "learning curve")
    return fig


def plot_adaptation_curve(eval_result: dict[str, Any], out: Path) -> Path:
    """Held-out score against adaptation units for the agent and its baselines (95% CI bands)."""
    return _save(adaptation_curve_figure(eval_result), out)


def adaptation_curve_figure(eval_result: dict[str, Any]) -> Any:
    """The adaptation curve of an eval.json result (see :func:`plot_adaptation_curve`)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, m in eval_result["methods"].items():
        steps = m["steps"]
        mean = torch.tensor(m["mean"])
        # eval.json writes an undefined CI (one task) as null: no band there
        ci = torch.tensor([math.nan if c is None else c for c in m["ci95"]]).nan_to_num(0.0)
        style = "--" if name == "oracle" else "-o"
        ax.plot(steps, mean, style, label=name, color=COLORS.get(name))
        ax.fill_between(steps, mean - ci, mean + ci, alpha=0.2, color=COLORS.get(name))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _label(ax, eval_result["unit"].replace("_", " "), "average return (held-out tasks)",
           f"{eval_result['family']}: adaptation on {eval_result['num_tasks']} test tasks")
    return fig


def per_task_figure(eval_result: dict[str, Any]) -> Any | None:
    """Every held-out task's score after each adaptation unit, one dot per task, for each
    method with per-task scores (a strip plot; the bar is the mean): what a mean hides, a
    few tasks that fail or a method that wins on most tasks but not on average."""
    methods = {name: m["per_task"] for name, m in eval_result["methods"].items()
               if m.get("per_task")}
    if not methods:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.8 / len(methods)
    for i, (name, per_task) in enumerate(methods.items()):
        scores = torch.tensor(per_task, dtype=torch.float64)  # [units+1, tasks]
        n, color = scores.shape[1], COLORS.get(name, f"C{i}")
        # task t sits at the same offset after every unit, so a task can be followed
        jitter = torch.linspace(-0.3, 0.3, n) * width if n > 1 else torch.zeros(1)
        for k in range(scores.shape[0]):
            x = k - 0.4 + (i + 0.5) * width
            ax.scatter(x + jitter, scores[k], s=10, alpha=0.6, color=color,
                       label=name if k == 0 else None)
            ax.hlines(scores[k].mean(), x - 0.4 * width, x + 0.4 * width, color=color,
                      linewidth=2)
    ax.set_xticks(range(len(next(iter(methods.values())))))
    _label(ax, eval_result["unit"].replace("_", " "), "return on each held-out task",
           f"per-task scores ({eval_result['num_tasks']} test tasks; bar: mean)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=len(methods),
              frameon=False)  # below the axes: dots fill every corner
    return fig


def plot_paths(run_path: Path, out: Path, num_tasks: int = 4, steps: int = 1,
               seed: int = 0) -> Path | None:
    """2D paths on a few test tasks before and after adaptation (for 2D-position families)."""
    fig = paths_figure(run_path, num_tasks, steps, seed)
    return None if fig is None else _save(fig, out)


def paths_figure(run_path: Path, num_tasks: int = 4, steps: int = 1, seed: int = 0
                 ) -> Any | None:
    """The 2D paths of :func:`plot_paths`, or None for a family or agent it cannot draw."""
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
    unique = dict(zip(labels, handles, strict=True))  # one entry per label (stages redraw the task)
    axes[0][0].legend(unique.values(), unique.keys(), fontsize=7)
    return fig


def plot_classic_table(table: dict[str, Any], out: Path) -> Path:
    """The RL² paper's table as grouped bars: one group per setting, one bar per method."""
    return _save(classic_table_figure(table), out)


def classic_table_figure(table: dict[str, Any]) -> Any:
    """The grouped bars of :func:`plot_classic_table`."""
    rows = table["settings"]
    methods = list(dict.fromkeys(m for r in rows for m in r["methods"]))
    fig, axes = plt.subplots(1, len(rows), figsize=(max(4.0, 1.0 + 0.5 * len(methods)) *
                                                     len(rows), 3.6), squeeze=False)
    for ax, row in zip(axes[0], rows, strict=True):
        names = [m for m in methods if m in row["methods"]]
        means = [row["methods"][m]["mean"] for m in names]
        cis = [row["methods"][m]["ci95"] for m in names]
        colors = ["tab:blue" if m == "rl2" else "tab:gray" for m in names]
        ax.bar(range(len(names)), means, yerr=cis, color=colors, capsize=3)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_title(setting_label(row))
        lo = min(m - c for m, c in zip(means, cis, strict=True))
        ax.set_ylim(bottom=0.9 * lo if lo > 0 else None)
    axes[0][0].set_ylabel("total reward per trial")
    fig.suptitle(f"{table['family']}: RL² beside the classic algorithms (95% CI)")
    return fig


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
