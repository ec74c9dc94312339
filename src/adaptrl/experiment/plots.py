"""Figures of a run: learning curve, adaptation curve with CI bands, per-task scores, 2D paths.

Each figure has a ``*_figure`` function that returns it (for ``adaptrl report``, which embeds
it in a page) and a ``plot_*`` function that writes it to a file (``adaptrl plot``).

Conventions every figure keeps (tests/experiment/test_plots.py checks them):

* one colour per method name in every figure (:func:`method_color`), and no two lines of
  one figure in the same colour (:func:`method_colors` gives unknown names spare ones);
* integer axes (iterations, gradient steps, episodes) have integer ticks only;
* legends sit outside the axes (right of the last panel), never over the data;
* scores that do not start at zero are dots with CI bars, not bars cut off above zero.
"""

from __future__ import annotations

import io
import json
import math
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from adaptrl.algorithms.base import GradientAgent  # noqa: E402
from adaptrl.evaluation.classic_tables import setting_label  # noqa: E402
from adaptrl.evaluation.protocol import gradient_curve  # noqa: E402
from adaptrl.experiment.evaluate import evaluation_tasks, load_learner, load_run  # noqa: E402
from adaptrl.experiment.learners import build_family  # noqa: E402
from adaptrl.experiment.run_dir import RunDir, read_metrics  # noqa: E402
from adaptrl.models.functional import expand_params  # noqa: E402
from adaptrl.rollouts.sampler import Policy, rollout  # noqa: E402
from adaptrl.tasks.render import can_draw_stages, draw_stages, outside_legend  # noqa: E402

METHOD_COLORS: dict[str, str] = {
    # the meta-learned agent and the baselines of the adaptation curves and compare
    "agent": "tab:blue", "pretrained": "tab:orange", "pretrained_adam": "tab:brown",
    "aggregation": "tab:purple", "scratch": "tab:gray", "oracle": "tab:green",
    # the classic algorithms beside RL² (the classic table); RL² is the agent
    "rl2": "tab:blue",
    "random": "black", "greedy": "tab:olive", "epsilon_greedy": "#dbdb8d",
    "myopic_greedy": "#8c6d31", "gittins": "tab:red", "gittins_discounted": "#ff9896",
    "thompson": "tab:pink", "optimistic_thompson": "#f7b6d2",
    "thompson_most_probable": "#7b4173", "ucb1": "tab:cyan", "ucrl2": "#9edae5",
    "psrl": "#393b79", "optimistic_psrl": "#9c9ede", "beb": "#843c39",
    "beb_per_step": "#d6616b", "myopic_beb_per_step": "#e7969c",
}
"""The one colour of each method in every figure (``rl2`` is the agent of its runs)."""

PRE_ADAPTATION_COLOR = "#aec7e8"
"""The agent's pre-adaptation training return: a light shade of the agent's colour."""

SPARE_COLORS: tuple[str, ...] = tuple(
    c for c in ("#e7ba52", "#008080", "#a55194", "#ad494a", "#637939", "#5254a3", "#c51b7d",
                "#b35806", "#542788", "#000080")
    if c not in METHOD_COLORS.values() and c != PRE_ADAPTATION_COLOR)
"""Colours for names without a fixed one (e.g. the runs of a comparison, named by folder):
hues unlike the methods' (no second blue, orange, green or gray beside them)."""


def method_color(name: str) -> str:
    """The colour of method ``name`` in every figure: its fixed :data:`METHOD_COLORS`
    entry, else a spare colour chosen by a stable hash of the name."""
    if name in METHOD_COLORS:
        return METHOD_COLORS[name]
    return SPARE_COLORS[zlib.crc32(name.encode()) % len(SPARE_COLORS)]


def method_colors(names: Sequence[str]) -> list[str]:
    """One colour per entry of ``names``, for the lines of one figure: a known method its
    fixed colour; any other name its :func:`method_color` if no other line of the figure
    has it, else the first spare colour still free (repeats only past
    ``len(SPARE_COLORS)`` unknown names)."""
    taken = {METHOD_COLORS[n] for n in names if n in METHOD_COLORS}
    given: dict[str, str] = {}
    for name in dict.fromkeys(n for n in names if n not in METHOD_COLORS):
        free = [c for c in SPARE_COLORS if c not in taken] or list(SPARE_COLORS)
        given[name] = method_color(name) if method_color(name) in free else free[0]
        taken.add(given[name])
    return [METHOD_COLORS.get(n) or given[n] for n in names]


def _label(ax: Any, xlabel: str, ylabel: str, title: str) -> None:
    """Label a curve panel, with a grid and a legend outside, on its right."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    outside_legend(ax)


def _integer_x(*axes: Any) -> None:
    """Integer ticks only on the x axis of ``axes`` (iterations, steps, episodes)."""
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


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
    # the agent's curves in the agent's colour (pre-adaptation a light shade of it),
    # the pretrained baseline's in its own: one colour per line
    styles = {"return_pre": ("pre-adaptation", PRE_ADAPTATION_COLOR, "--"),
              "return_post": ("post-adaptation", method_color("agent"), "-"),
              "return_trial": ("trial", method_color("agent") if "return_post" not in keys
                               else method_colors(["trial"])[0], "-")}
    fig, ax = plt.subplots(figsize=(7, 4))

    def curve(points: list[dict[str, Any]], key: str, **style: Any) -> None:
        # dots on short runs: a one-iteration curve is otherwise invisible
        ax.plot([r["iteration"] for r in points], [r[key] for r in points],
                marker="o" if len(points) <= 20 else None, markersize=3, **style)

    for k in keys:
        label, color, line = styles[k]
        curve(rows, k, linestyle=line, label=label, color=color)
    pre = run.baseline("pretrained").metrics
    if pre.exists():
        curve(read_metrics(pre), "return_post", label="pretrained (training)",
              color=method_color("pretrained"), alpha=0.8)
    _integer_x(ax)
    _label(ax, "meta-iteration", "average return (training tasks)", "learning curve")
    return fig


def plot_adaptation_curve(eval_result: dict[str, Any], out: Path) -> Path:
    """Held-out score against adaptation units for the agent and its baselines (95% CI bands)."""
    return _save(adaptation_curve_figure(eval_result), out)


def _curve(ax: Any, steps: Sequence[float], mean: Sequence[float],
           ci: Sequence[float | None], name: str, color: str) -> None:
    """One method's curve with its 95% CI band (none where eval.json's CI is null: one
    task); the oracle dashed."""
    m = torch.tensor(mean, dtype=torch.float64)
    c = torch.tensor([math.nan if x is None else x for x in ci],
                     dtype=torch.float64).nan_to_num(0.0)
    ax.plot(steps, m, "--" if name == "oracle" else "-o", label=name, color=color,
            markersize=4)
    ax.fill_between(steps, m - c, m + c, alpha=0.2, color=color)


def adaptation_curve_figure(eval_result: dict[str, Any]) -> Any:
    """The adaptation curve of an eval.json result (see :func:`plot_adaptation_curve`).

    Where methods report a success rate (Meta-World: ``success_mean``, ``success_ci95``)
    a second panel below plots it against the same units."""
    methods = eval_result["methods"]
    colors = dict(zip(methods, method_colors(list(methods)), strict=True))
    success = {n: m for n, m in methods.items() if "success_mean" in m}
    fig, axes = plt.subplots(2 if success else 1, 1, figsize=(7, 6.5 if success else 4),
                             sharex=True, squeeze=False)
    ax = axes[0][0]
    for name, m in methods.items():
        _curve(ax, m["steps"], m["mean"], m["ci95"], name, colors[name])
    unit = eval_result["unit"].replace("_", " ")
    _label(ax, "" if success else unit, "average return (held-out tasks)",
           f"{eval_result['family']}: adaptation on {eval_result['num_tasks']} test tasks")
    if success:
        low = axes[1][0]
        for name, m in success.items():
            _curve(low, m["steps"][:len(m["success_mean"])], m["success_mean"],
                   m["success_ci95"], name, colors[name])
        low.set_xlabel(unit)
        low.set_ylabel("success rate (held-out tasks)")
        low.set_ylim(-0.05, 1.05)
        low.grid(alpha=0.3)
    _integer_x(*axes[:, 0])
    return fig


def plot_stream(eval_result: dict[str, Any], out: Path) -> Path | None:
    """The forgetting curve and the score matrix of a run trained along a task stream
    (eval.json's ``stream``; :func:`stream_figure`), or None for an i.i.d. run."""
    fig = stream_figure(eval_result)
    return None if fig is None else _save(fig, out)


def stream_figure(eval_result: dict[str, Any]) -> Any | None:
    """Left: the forgetting curve — the score on every stage (one line each) after each
    stage of training, against the meta-iteration at that stage's end, 95% CI bands over
    the stage's test tasks, a dot where the stage has just been learned (its learning
    score) and dotted where it is not yet trained (forward transfer). Right: the matrix
    ``R[i, j]`` (row: after stage i; column: stage j; Lopez-Paz & Ranzato 2017)."""
    from adaptrl.experiment.streams import stage_label

    stream = eval_result.get("stream")
    if not stream or stream.get("after_stage") is None:
        return None
    mean, ci = stream["mean"], stream["ci95"]
    stages = eval_result.get("stages") or [{"index": j} for j in range(len(mean))]
    ends = [s["iterations"][1] if "iterations" in s else j + 1 for j, s in enumerate(stages)]
    rows = [i for i in range(len(mean)) if any(v is not None for v in mean[i])]
    fig, (ax, mat) = plt.subplots(1, 2, figsize=(12, 4.2),
                                  gridspec_kw={"width_ratios": [1.5, 1]})
    colors = plt.get_cmap("viridis")(torch.linspace(0, 0.9, len(mean)).tolist())
    for j in range(len(mean)):
        pts = [(ends[i], mean[i][j], ci[i][j] or 0.0) for i in rows if mean[i][j] is not None]
        if not pts:
            continue
        x, m, c = (torch.tensor(v, dtype=torch.float64).numpy() for v in zip(*pts, strict=True))
        trained = x >= ends[j]
        ahead = ~trained | (x == ends[j])
        ax.plot(x[trained], m[trained], "-", color=colors[j], label=stage_label(stages[j]))
        ax.plot(x[ahead], m[ahead], ":", color=colors[j])
        ax.fill_between(x, m - c, m + c, alpha=0.12, color=colors[j])
        if j in rows:
            ax.plot([ends[j]], [mean[j][j]], "o", color=colors[j], markersize=6)
    for end in ends[:-1]:
        ax.axvline(end, color="gray", alpha=0.3, lw=0.8)
    _label(ax, "meta-iteration (end of each stage)", "return on the stage's test tasks",
           f"{eval_result['family']}: forgetting curve")
    ax.legend(fontsize="x-small", loc="best")
    grid = torch.tensor([[math.nan if v is None else v for v in row] for row in mean])
    image = mat.imshow(grid.numpy(), cmap="viridis")
    middle = float(grid.nan_to_num(float(grid.nanmean())).mean())
    for i in range(len(mean)):
        for j in range(len(mean)):
            if mean[i][j] is not None:
                mat.text(j, i, f"{mean[i][j]:.2g}", ha="center", va="center", fontsize=7,
                         color="black" if mean[i][j] > middle else "white")
    mat.set_xlabel("stage scored (j)")
    mat.set_ylabel("after training stage (i)")
    mat.set_title("R[i, j]: score matrix")
    fig.colorbar(image, ax=mat, fraction=0.046)
    fig.tight_layout()
    return fig


def per_task_figure(eval_result: dict[str, Any]) -> Any | None:
    """Every held-out task's score after each adaptation unit, one dot per task, for each
    method with per-task scores (a strip plot; the bar is the mean): what a mean hides, a
    few tasks that fail or a method that wins on most tasks but not on average."""
    methods = {name: m["per_task"] for name, m in eval_result["methods"].items()
               if m.get("per_task")}
    if not methods:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(methods)
    colors = method_colors(list(methods))
    for i, (name, per_task) in enumerate(methods.items()):
        scores = torch.tensor(per_task, dtype=torch.float64)  # [units+1, tasks]
        n, color = scores.shape[1], colors[i]
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
    return fig


def plot_paths(run_path: Path, out: Path, num_tasks: int = 4, steps: int = 1,
               seed: int = 0) -> Path | None:
    """2D paths on a few test tasks before and after adaptation (for 2D-position families)."""
    fig = paths_figure(run_path, num_tasks, steps, seed)
    return None if fig is None else _save(fig, out)


SAMPLED_EPISODES = 5
"""Sampled episodes drawn (faintly) per task and stage of the paths figure."""


def _stage_label(k: int) -> str:
    return "before adaptation" if k == 0 else f"after {k} step{'s' if k > 1 else ''}"


def paths_figure(run_path: Path, num_tasks: int = 4, steps: int = 1, seed: int = 0
                 ) -> Any | None:
    """The 2D paths of :func:`plot_paths`, or None for a family or agent it cannot draw.

    Each stage (before adaptation, after each gradient step) shows the policy's *mean*
    path bold (a deterministic rollout of the mean action under that stage's adapted
    parameters) over a few faint sampled episodes (the support data the next step adapts
    on): the sampled paths alone are a scribble of exploration noise."""
    run, config, algo_cfg = load_run(run_path)
    family = build_family(config)
    if not can_draw_stages(family):
        return None
    learner = load_learner(run, config, algo_cfg, config.evaluation.checkpoint)
    agent = learner.agent(config.evaluation.step_sizes)
    if not isinstance(agent, GradientAgent):  # paths of the adapted policy, step by step
        return None
    g = torch.Generator().manual_seed(seed)
    device = torch.device(config.device)
    tasks, _ = evaluation_tasks(family, num_tasks, seed, config.evaluation.tasks_file)
    # adapt on the protocol's number of episodes (one episode gives a useless gradient)
    _, trajs = gradient_curve(family, agent, tasks, steps, config.evaluation.episodes, g,
                              device, batch_unit=config.evaluation.batch_unit)
    # the parameters gradient_curve adapted to, step by step (adapt is deterministic)
    params = [expand_params(agent.initial_params(), len(tasks))]
    for k, support in enumerate(trajs[:-1]):
        params.append(agent.adapt(params[-1], support, k))
    env = family.make_env(tasks, 1, device)
    policy = cast(Policy, agent.policy)  # (an nn.Module that keeps the Policy protocol)
    means = {_stage_label(k): rollout(env, policy, p, g, deterministic=True)
             for k, p in enumerate(params)}
    sampled = {_stage_label(k): t.select_episodes(slice(0, SAMPLED_EPISODES))
               for k, t in enumerate(trajs)}
    fig, axes = plt.subplots(1, num_tasks, figsize=(3.2 * num_tasks + 2.0, 3.4),
                             squeeze=False)
    for i, ax in enumerate(axes[0]):
        one = slice(i, i + 1)
        draw_stages(ax, family, tasks[i], {k: t.select_tasks(one) for k, t in sampled.items()},
                    {k: t.select_tasks(one) for k, t in means.items()})
        ax.set_aspect("equal")
        ax.set_title(f"test task {i}")
        ax.grid(alpha=0.3)
    outside_legend(axes[0][-1])
    fig.suptitle("bold: the policy's mean path (deterministic rollout); "
                 f"faint: {SAMPLED_EPISODES} sampled episodes", fontsize=9)
    return fig


def plot_classic_table(table: dict[str, Any], out: Path) -> Path:
    """The RL² paper's table as grouped bars: one group per setting, one bar per method."""
    return _save(classic_table_figure(table), out)


def classic_table_figure(table: dict[str, Any]) -> Any:
    """The RL² paper's table as one dot plot per setting: each method's mean total reward
    with its 95% CI bar, one colour per method (:func:`method_color`).

    Dots, not bars: the totals of one setting sit close together far above zero (e.g. 5 to
    6 for two-arm bandits, hundreds for long trials), so bars from zero would hide the
    differences the table is about, and bars cut off above zero would draw lengths that
    mean nothing. A dot and its CI are read against the axis, wherever it starts."""
    rows = table["settings"]
    methods = list(dict.fromkeys(m for r in rows for m in r["methods"]))
    colors = dict(zip(methods, method_colors(methods), strict=True))
    fig, axes = plt.subplots(1, len(rows), figsize=(max(4.0, 1.0 + 0.5 * len(methods)) *
                                                     len(rows), 3.6), squeeze=False)
    for ax, row in zip(axes[0], rows, strict=True):
        names = [m for m in methods if m in row["methods"]]
        for x, name in enumerate(names):
            m = row["methods"][name]
            ax.errorbar(x, m["mean"], yerr=m["ci95"], fmt="o", color=colors[name],
                        capsize=3, markersize=5, label=name)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_title(setting_label(row))
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("total reward per trial")
    fig.suptitle(f"{table['family']}: RL² beside the classic algorithms (mean, 95% CI)")
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
        if result.get("stream"):  # trained along a task stream: the forgetting curve
            made.append(plot_stream(result, run.plots / "stream.png"))
    made.append(plot_paths(run.path, run.plots / "paths.png"))
    return [p for p in made if p is not None]
