"""Compare several runs on the same held-out tasks: one table, one plot.

Every run is scored under the evaluation protocol with *common* settings (test tasks,
evaluation seed, number of adaptation units): a run's ``eval.json`` is reused when it was
made with exactly these settings after the run's last checkpoint, otherwise the run is
re-evaluated (its ``eval.json`` is left as it is). Each run keeps its own evaluation step
sizes, since the inner step size is part of the method; a learner with learned step
sizes (Meta-SGD) uses those. The runs must share the task family (name and parameters)
and the episodes per adaptation step, or the numbers would not be comparable.

The baselines (pretrained, scratch, oracle, ...) are shown once, from the first run
that has each. Next to the adaptation curve the table gives what meta-training cost:
wall time, environment steps and iterations, from the last line of ``metrics.jsonl``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from adaptrl.experiment.config import ConfigError
from adaptrl.experiment.evaluate import evaluate_run, load_run
from adaptrl.experiment.learners import TRAINED_BASELINES
from adaptrl.experiment.run_dir import RunDir, read_metrics


@dataclass(frozen=True)
class Row:
    """One line of the comparison: a method's adaptation curve and its training cost."""

    method: str
    run: str
    algorithm: str
    steps: list[int]
    mean: list[float]
    ci95: list[float]
    wall_time_s: float | None
    env_steps: int | None
    iterations: int | None


def training_cost(run: RunDir) -> dict[str, Any]:
    """Wall time, env steps and iterations of a run, from its metrics log's last line."""
    if not run.metrics.exists():
        return {"wall_time_s": None, "env_steps": None, "iterations": None}
    rows = read_metrics(run.metrics)
    if not rows:
        return {"wall_time_s": None, "env_steps": None, "iterations": None}
    last = rows[-1]
    return {"wall_time_s": last.get("wall_time_s"), "env_steps": last.get("env_steps"),
            "iterations": int(last["iteration"]) + 1}


def _reusable(run: RunDir, settings: dict[str, Any], checkpoint: str) -> dict[str, Any] | None:
    """The run's eval.json if it was made with ``settings`` after its last checkpoint."""
    if not run.eval_json.exists():
        return None
    result: dict[str, Any] = json.loads(run.eval_json.read_text())
    if any(result.get(k) != v for k, v in settings.items()):
        return None
    ckpt = run.best if checkpoint == "best" else run.latest
    if result.get("checkpoint") != checkpoint or not ckpt.exists() or \
            run.eval_json.stat().st_mtime < ckpt.stat().st_mtime:
        return None
    return result


def _label(run: RunDir, algorithm: str, taken: set[str]) -> str:
    label = run.path.name or algorithm
    return label if label not in taken else f"{label} ({run.path})"


def compare_runs(run_paths: list[Path], num_tasks: int | None = None, seed: int | None = None,
                 steps: int | None = None) -> dict[str, Any]:
    """Score every run on the same held-out tasks; returns the comparison as a dict.

    ``num_tasks``, ``seed`` and ``steps`` default to the first run's evaluation settings.
    Raises :class:`ConfigError` if the runs differ in task family or episodes per step.
    """
    if not run_paths:
        raise ConfigError("compare: give at least one run directory")
    loaded = [load_run(Path(p)) for p in run_paths]
    _, first_cfg, _ = loaded[0]
    family = (first_cfg.family.name, first_cfg.family.params)
    episodes = first_cfg.evaluation.episodes
    for run, cfg, _ in loaded[1:]:
        if (cfg.family.name, cfg.family.params) != family:
            raise ConfigError(f"compare: {run.path} is on family {cfg.family.name} "
                              f"{cfg.family.params}, but {loaded[0][0].path} is on "
                              f"{family[0]} {family[1]}; runs must share the task family")
        if cfg.evaluation.episodes != episodes:
            raise ConfigError(f"compare: {run.path} uses evaluation.episodes="
                              f"{cfg.evaluation.episodes}, {loaded[0][0].path} uses {episodes}; "
                              "runs must share it")
    n = num_tasks or first_cfg.evaluation.num_tasks
    s = first_cfg.evaluation.seed if seed is None else seed
    k = first_cfg.evaluation.steps if steps is None else steps
    if n < 2:
        raise ConfigError(f"--tasks must be >= 2 (a CI needs two tasks), got {n}")
    settings = {"num_tasks": n, "seed": s, "episodes_per_step": episodes}

    rows: list[Row] = []
    baselines: dict[str, Row] = {}
    unit = "gradient_steps"
    for run, cfg, algo in loaded:
        result = _reusable(run, settings, cfg.evaluation.checkpoint)
        if result is None or len(result["methods"]["agent"]["steps"]) != k + 1:
            new = set(cfg.evaluation.baselines) - set(baselines)
            result = evaluate_run(run.path, n, k, s, write=False, baselines=bool(new))
        unit = result["unit"]
        label = _label(run, algo.name, {r.method for r in rows})
        rows.append(Row(label, str(run.path), algo.name, **result["methods"]["agent"],
                        **training_cost(run)))
        for name, m in result["methods"].items():
            if name == "agent" or name in baselines:
                continue
            cost = training_cost(run.baseline(name)) if name in TRAINED_BASELINES else \
                {"wall_time_s": None, "env_steps": None, "iterations": None}
            baselines[name] = Row(name, str(run.path), name, **m, **cost)
    return {"family": family[0], "family_params": family[1], "split": "test",
            "num_tasks": n, "seed": s, "steps": k, "episodes_per_step": episodes, "unit": unit,
            "rows": [asdict(r) for r in rows + list(baselines.values())]}


def _cell(mean: float, ci: float | None) -> str:
    if ci is None or ci != ci:  # NaN: a single task
        return f"{mean:.1f}"
    return f"{mean:.1f} ± {ci:.1f}"


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _fmt_steps(steps: int | None) -> str:
    if steps is None:
        return "—"
    return f"{steps / 1e6:.2f} M" if steps >= 1e6 else f"{steps / 1e3:.0f} k"


def markdown_table(comparison: dict[str, Any]) -> str:
    """The comparison as a GitHub-markdown table (mean ± 95% CI over held-out tasks)."""
    unit = "step" if comparison["unit"] == "gradient_steps" else "episode"
    k = comparison["steps"]
    head = ["method", "algorithm"] + [f"{i} {unit}{'s' if i != 1 else ''}" for i in range(k + 1)]
    head += ["meta-train wall time", "env steps", "iterations"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (k + 4)) + "|"]
    for r in comparison["rows"]:
        cells = [r["method"], r["algorithm"]]
        cells += [_cell(m, c) for m, c in zip(r["mean"], r["ci95"])]
        cells += [_fmt_time(r["wall_time_s"]), _fmt_steps(r["env_steps"]),
                  "—" if r["iterations"] is None else str(r["iterations"])]
        lines.append("| " + " | ".join(cells) + " |")
    caption = (f"{comparison['family']}: average return on {comparison['num_tasks']} held-out "
               f"(test-split) tasks after 0..{k} adaptation {unit}s, mean ± 95% CI over tasks; "
               f"evaluation seed {comparison['seed']}, {comparison['episodes_per_step']} "
               f"episodes per {unit}.")
    return caption + "\n\n" + "\n".join(lines) + "\n"


def plot_comparison(comparison: dict[str, Any], out: Path) -> Path:
    """Every method's adaptation curve with its 95% CI band, on one axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in comparison["rows"]:
        mean = r["mean"]
        ci = [0.0 if c is None or c != c else c for c in r["ci95"]]
        style = "--" if r["method"] == "oracle" else "-o"
        (line,) = ax.plot(r["steps"], mean, style, label=r["method"], markersize=4)
        ax.fill_between(r["steps"], [m - c for m, c in zip(mean, ci)],
                        [m + c for m, c in zip(mean, ci)], alpha=0.15, color=line.get_color())
    ax.set_xlabel(comparison["unit"].replace("_", " "))
    ax.set_ylabel("average return (held-out tasks)")
    ax.set_title(f"{comparison['family']}: {comparison['num_tasks']} test tasks, "
                 f"seed {comparison['seed']}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def write_comparison(comparison: dict[str, Any], out_dir: Path) -> list[Path]:
    """``comparison.json``, ``comparison.md`` and ``adaptation_curves.png`` in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    js = out_dir / "comparison.json"
    js.write_text(json.dumps(comparison, indent=2))
    md = out_dir / "comparison.md"
    md.write_text(markdown_table(comparison))
    return [js, md, plot_comparison(comparison, out_dir / "adaptation_curves.png")]
