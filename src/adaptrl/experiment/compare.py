"""Compare several runs on the same held-out tasks: one table, one plot.

Every run is scored under the evaluation protocol with *common* settings (test tasks,
evaluation seed, number of adaptation units): a run's ``eval.json`` is reused when it was
made with exactly these settings after the run's last checkpoint, otherwise the run is
re-evaluated (its ``eval.json`` is left as it is). Each run keeps its own evaluation step
sizes, since the inner step size is part of the method; a learner with learned step
sizes (Meta-SGD) uses those. The runs must share the task family (name and parameters),
or the numbers would not be comparable.

Runs may adapt in different *units*: a gradient-based agent (MAML, ...) in gradient steps,
a memory-based agent (RL²) in the episodes of a trial. ``evaluation.episodes`` means
different things for the two: the support episodes of one gradient step (part of the
adaptation budget, so runs scored in gradient steps must share it) versus the number of
independent trials averaged per task (a sample size, no budget; runs scored in episodes
share it among themselves, as before, but not with gradient-step runs). To put both on
one axis every curve point carries its ``experience``: the episodes already played on the
task before the scored episodes, ``k * evaluation.episodes`` after ``k`` gradient steps
(each step consumed that many support episodes) and ``k`` before the ``k+1``-th episode
of a trial. The K of the curve (``steps``) is common to all runs.

The baselines (pretrained, scratch, oracle, ...) are shown once, from the first run
that has each. Next to the adaptation curve the table gives what meta-training cost:
wall time, environment steps and iterations, from the last line of ``metrics.jsonl``;
and, where a *pretrained* baseline is shown, every method's lead over it after one
adaptation unit, paired over the same tasks (the test of "beats pretrained"), for rows
in the pretrained baseline's unit only (one gradient step and one episode are not the
same budget).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from adaptrl.agents.contract import AdaptationUnit
from adaptrl.algorithms.base import AlgorithmConfig
from adaptrl.algorithms.baselines import TRAINED_BASELINES
from adaptrl.algorithms.registry import algorithm_spec
from adaptrl.evaluation.statistics import paired_difference
from adaptrl.experiment.config import ConfigError, ExperimentConfig
from adaptrl.experiment.evaluate import evaluate_run, load_run
from adaptrl.experiment.run_dir import RunDir, read_metrics

GRADIENT_STEPS, EPISODES = AdaptationUnit.GRADIENT_STEPS, AdaptationUnit.EPISODES
UNIT_WORDS = {unit: unit.word for unit in AdaptationUnit}
"""How a unit reads in a table header (``1 step``, ``2 episodes``)."""


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
    per_task: list[list[float]] | None = None
    vs_pretrained: dict[str, list[float]] | None = None
    unit: str = GRADIENT_STEPS
    experience: list[int] | None = None
    """Episodes played on a task before the scored episodes of each curve point."""


def _row(method: str, run: str, algorithm: str, summary: dict[str, Any],
         cost: dict[str, Any], unit: str, episodes_per_unit: int) -> Row:
    """A row from an eval.json method summary (extra keys such as success rates are left out).

    ``episodes_per_unit``: the support episodes one unit consumes (``evaluation.episodes``
    per gradient step, 1 per episode of a trial).
    """
    return Row(method, run, algorithm, summary["steps"], summary["mean"], summary["ci95"],
               per_task=summary.get("per_task"), unit=unit,
               experience=[k * episodes_per_unit for k in summary["steps"]], **cost)


def _paired_vs(rows: list[Row], reference: str) -> list[Row]:
    """Every row with its paired difference to the ``reference`` row (if it has one); only
    rows in the reference's unit are paired (the same units of budget on the same tasks)."""
    ref = next((r for r in rows if r.method == reference and r.per_task is not None), None)
    if ref is None:
        return rows
    out = []
    for r in rows:
        if r.per_task is None or r is ref or r.unit != ref.unit:
            out.append(r)
            continue
        diff = paired_difference(torch.tensor(r.per_task), torch.tensor(ref.per_task))
        out.append(replace(r, vs_pretrained=diff))
    return out


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


_EVAL_DEFAULTS = {"batch_unit": "episodes", "tasks_file": None}
"""What an eval.json written before a setting existed was made with."""


def _reusable(run: RunDir, settings: dict[str, Any], checkpoint: str) -> dict[str, Any] | None:
    """The run's eval.json if it was made with ``settings`` after its last checkpoint."""
    if not run.eval_json.exists():
        return None
    result: dict[str, Any] = json.loads(run.eval_json.read_text())
    if any(result.get(k, _EVAL_DEFAULTS.get(k)) != v for k, v in settings.items()):
        return None
    ckpt = run.checkpoint_file(checkpoint)
    if result.get("checkpoint") != checkpoint or not ckpt.exists() or \
            run.eval_json.stat().st_mtime < ckpt.stat().st_mtime:
        return None
    return result


def _label(run: RunDir, algorithm: str, taken: set[str]) -> str:
    label = run.path.name or algorithm
    return label if label not in taken else f"{label} ({run.path})"


def adaptation_unit(algo_cfg: AlgorithmConfig) -> AdaptationUnit:
    """The unit a run's agent adapts in, as its algorithm's spec declares it."""
    return algorithm_spec(algo_cfg.name).unit


def _check_comparable(loaded: list[tuple[RunDir, ExperimentConfig, Any]],
                      units: list[str]) -> dict[str, int]:
    """The common ``evaluation.episodes`` of each unit; :class:`ConfigError` if the runs
    differ in task family or ``evaluation.tasks_file``, or runs of one unit differ in
    ``evaluation.episodes`` or ``evaluation.batch_unit`` (the same data per adaptation
    step)."""
    first, first_cfg, _ = loaded[0]
    family = (first_cfg.family.name, first_cfg.family.params)
    batches: dict[str, tuple[int, str]] = {}  # unit -> (evaluation.episodes, .batch_unit)
    owner: dict[str, Path] = {}
    for (run, cfg, _), unit in zip(loaded, units):
        if (cfg.family.name, cfg.family.params) != family:
            raise ConfigError(f"compare: {run.path} is on family {cfg.family.name} "
                              f"{cfg.family.params}, but {first.path} is on "
                              f"{family[0]} {family[1]}; runs must share the task family")
        if cfg.evaluation.tasks_file != first_cfg.evaluation.tasks_file:
            raise ConfigError(f"compare: {run.path} is scored on evaluation.tasks_file="
                              f"{cfg.evaluation.tasks_file}, {first.path} on "
                              f"{first_cfg.evaluation.tasks_file}; runs must share their "
                              "test tasks (paired differences compare task by task)")
        batch = (cfg.evaluation.episodes, cfg.evaluation.batch_unit)
        if unit in batches and batch != batches[unit]:
            what = ("support episodes per gradient step" if unit == GRADIENT_STEPS
                    else "trials per task")
            (e, b), (e0, b0) = batch, batches[unit]
            raise ConfigError(f"compare: {run.path} uses evaluation.episodes={e}, "
                              f"evaluation.batch_unit={b}; {owner[unit]} uses {e0}, {b0} "
                              f"({what}); runs scored in {unit.replace('_', ' ')} must share "
                              "both (override with --set evaluation.<key>=... when training)")
        batches.setdefault(unit, batch)
        owner.setdefault(unit, run.path)
    return {unit: e for unit, (e, _) in batches.items()}


def compare_runs(run_paths: list[Path], num_tasks: int | None = None, seed: int | None = None,
                 steps: int | None = None) -> dict[str, Any]:
    """Score every run on the same held-out tasks; returns the comparison as a dict.

    ``num_tasks``, ``seed`` and ``steps`` default to the first run's evaluation settings.
    Raises :class:`ConfigError` if the runs differ in task family, or runs of the same
    adaptation unit differ in ``evaluation.episodes`` (see the module docstring).
    """
    if not run_paths:
        raise ConfigError("compare: give at least one run directory")
    loaded = [load_run(Path(p)) for p in run_paths]
    units = [adaptation_unit(algo) for _, _, algo in loaded]
    episodes = _check_comparable(loaded, units)
    _, first_cfg, _ = loaded[0]
    n = num_tasks or first_cfg.evaluation.num_tasks
    s = first_cfg.evaluation.seed if seed is None else seed
    k = first_cfg.evaluation.steps if steps is None else steps
    if n < 2:
        raise ConfigError(f"--tasks must be >= 2 (a CI needs two tasks), got {n}")

    rows: list[Row] = []
    baselines: dict[str, Row] = {}
    for (run, cfg, algo), unit in zip(loaded, units):
        settings = {"num_tasks": n, "seed": s, "episodes_per_step": episodes[unit],
                    "batch_unit": cfg.evaluation.batch_unit,
                    "tasks_file": cfg.evaluation.tasks_file}
        result = _reusable(run, settings, cfg.evaluation.checkpoint)
        if result is None or len(result["methods"]["agent"]["steps"]) != k + 1 or \
                "per_task" not in result["methods"]["agent"]:
            new = set(cfg.evaluation.baselines) - set(baselines)
            result = evaluate_run(run.path, n, k, s, write=False, baselines=bool(new))
        per_unit = episodes[unit] if unit == GRADIENT_STEPS else 1
        label = _label(run, algo.name, {r.method for r in rows})
        rows.append(_row(label, str(run.path), algo.name, result["methods"]["agent"],
                         training_cost(run), unit, per_unit))
        for name, m in result["methods"].items():
            if name == "agent" or name in baselines:
                continue
            cost = training_cost(run.baseline(name)) if name in TRAINED_BASELINES else \
                {"wall_time_s": None, "env_steps": None, "iterations": None}
            baselines[name] = _row(name, str(run.path), name, m, cost, unit, per_unit)
    final = _paired_vs(rows + list(baselines.values()), "pretrained")
    distinct = sorted(set(units))
    return {"family": first_cfg.family.name, "family_params": first_cfg.family.params,
            "split": "tasks_file" if first_cfg.evaluation.tasks_file else "test",
            "tasks_file": first_cfg.evaluation.tasks_file, "num_tasks": n, "seed": s,
            "steps": k,
            "episodes_per_step": episodes.get(GRADIENT_STEPS),
            "trials_per_task": episodes.get(EPISODES),
            "unit": distinct[0] if len(distinct) == 1 else "mixed", "units": distinct,
            "rows": [asdict(r) for r in final]}


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


def _count(word: str, i: int) -> str:
    return f"{i} {word}{'s' if i != 1 else ''}"


def _unit_label(unit: str, comparison: dict[str, Any]) -> str:
    """How a row's unit reads in a mixed table and legend."""
    if unit == GRADIENT_STEPS:
        return f"gradient steps of {comparison['episodes_per_step']} episodes"
    return "episodes of a trial"


def _caption(comparison: dict[str, Any]) -> str:
    k, unit = comparison["steps"], comparison["unit"]
    head = (f"{comparison['family']}: average return on {comparison['num_tasks']} held-out "
            f"(test-split) tasks")
    if unit == GRADIENT_STEPS:
        return (f"{head} after 0..{k} adaptation steps, mean ± 95% CI over tasks; evaluation "
                f"seed {comparison['seed']}, {comparison['episodes_per_step']} episodes per step.")
    if unit == EPISODES:
        return (f"{head} in episodes 1..{k + 1} of a trial (column k: after k episodes), "
                f"mean ± 95% CI over tasks; evaluation seed {comparison['seed']}, "
                f"{comparison['trials_per_task']} trials per task.")
    e = comparison["episodes_per_step"]
    return (f"{head}, mean ± 95% CI over tasks; evaluation seed {comparison['seed']}. Column k "
            f"is in the row's unit: after k gradient steps (each adapts on the {e} episodes "
            f"scored before it: k × {e} episodes of experience) or episode k+1 of a trial "
            f"(k earlier episodes in memory; {comparison['trials_per_task']} trials per task).")


def markdown_table(comparison: dict[str, Any]) -> str:
    """The comparison as a GitHub-markdown table (mean ± 95% CI over held-out tasks).

    Runs of one unit get a header in that unit (``0 steps | 1 step | ...``); runs of mixed
    units get a ``unit`` column and a header of unit counts (``0 | 1 | ...``).
    """
    k, rows = comparison["steps"], comparison["rows"]
    mixed = comparison["unit"] == "mixed"
    head = ["method", "algorithm"]
    if mixed:
        head += ["unit"] + [str(i) for i in range(k + 1)]
    else:
        head += [_count(UNIT_WORDS[comparison["unit"]], i) for i in range(k + 1)]
    paired_rows = [r for r in rows if r.get("vs_pretrained")]
    paired = k >= 1 and bool(paired_rows)
    if paired:
        head += [f"1 {UNIT_WORDS[paired_rows[0]['unit']]} − pretrained (paired)"]
    head += ["meta-train wall time", "env steps", "iterations"]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] * (2 + mixed) + ["---:"] * (k + 4 + paired)) + "|"]
    for r in rows:
        cells = [r["method"], r["algorithm"]]
        if mixed:  # the oracle is given the task: it spends no unit
            cells.append("— (given the task)" if r["method"] == "oracle"
                         else _unit_label(r["unit"], comparison))
        cells += [_cell(m, c) for m, c in zip(r["mean"], r["ci95"])]
        if paired:
            d = r.get("vs_pretrained")
            cells.append("—" if not d else
                         f"{d['mean'][1]:+.1f} ± {d['ci95'][1]:.1f}")
        cells += [_fmt_time(r["wall_time_s"]), _fmt_steps(r["env_steps"]),
                  "—" if r["iterations"] is None else str(r["iterations"])]
        lines.append("| " + " | ".join(cells) + " |")
    return _caption(comparison) + "\n\n" + "\n".join(lines) + "\n"


Curve = tuple[list[float], list[float], list[float]]
"""x, mean and 95% CI half-width of one plotted row."""


def _curves(comparison: dict[str, Any]) -> tuple[str, list[Curve], bool]:
    """The x label, every row's curve and whether the x axis is symlog.

    One unit: x is the unit count. Mixed units: x is the episodes played on the task
    before the scored episodes (``experience``), symlog when it spans more than a decade
    (k × 40 support episodes of MAML beside 1, 2, 3 episodes of RL²); a flat oracle row
    is drawn across the whole axis.
    """
    rows = comparison["rows"]
    mixed = comparison["unit"] == "mixed"
    xs = [list(r["experience"] if mixed else r["steps"]) for r in rows]
    every = sorted({x for row in xs for x in row})
    curves: list[Curve] = []
    for r, x in zip(rows, xs):
        ci = [0.0 if c is None or c != c else c for c in r["ci95"]]  # NaN: a single task
        if mixed and r["method"] == "oracle":  # flat: one line across every run's units
            curves.append(([every[0], every[-1]], [r["mean"][0]] * 2, [ci[0]] * 2))
        else:
            curves.append((x, r["mean"], ci))
    if not mixed:
        return comparison["unit"].replace("_", " "), curves, False
    positive = [x for x in every if x > 0]
    symlog = bool(positive) and max(positive) > 10 * min(positive)
    e = comparison["episodes_per_step"]
    label = ("episodes played on the task before the scored ones"
             + (" (symlog scale)" if symlog else "")
             + f"\ngradient step k: k × {e} support episodes; trial episode k+1: k episodes")
    return label, curves, symlog


def plot_comparison(comparison: dict[str, Any], out: Path) -> Path:
    """Every method's adaptation curve with its 95% CI band, on one axes (see :func:`_curves`
    for the x of runs in different units)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator, ScalarFormatter

    mixed = comparison["unit"] == "mixed"
    xlabel, curves, symlog = _curves(comparison)
    fig, ax = plt.subplots(figsize=(9.5, 4.8) if mixed else (8, 4.5))
    for r, (x, mean, ci) in zip(comparison["rows"], curves):
        style = "--" if r["method"] == "oracle" else "-o"
        label = r["method"]
        if mixed and r["method"] != "oracle":
            label += f" ({_unit_label(r['unit'], comparison)})"
        (line,) = ax.plot(x, mean, style, label=label, markersize=4)
        ax.fill_between(x, [m - c for m, c in zip(mean, ci)],
                        [m + c for m, c in zip(mean, ci)], alpha=0.15, color=line.get_color())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("average return (held-out tasks)")
    ax.set_title(f"{comparison['family']}: {comparison['num_tasks']} test tasks, "
                 f"seed {comparison['seed']}")
    if symlog:
        ax.set_xscale("symlog", linthresh=1.0, linscale=0.5)
        ticks = sorted({v for x, _, _ in curves for v in x})
        if len(ticks) <= 12:  # label every scored point; otherwise symlog's own ticks
            ax.xaxis.set_major_locator(FixedLocator(ticks))
            ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_locator(NullLocator())
    else:
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
