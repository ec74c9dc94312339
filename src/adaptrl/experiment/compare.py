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

Runs of one config that differ only in seed (the same resolved config.yaml apart from
``seed`` and ``name``, e.g. ``runs/maml-s1 .. runs/maml-s5`` of ``adaptrl train CONFIG
--seeds 1-5``) form a *group*. Beside the rows of its runs, each group of two or more
distinct seeds gets its interquartile mean and mean over runs x tasks at every unit, with
stratified-bootstrap 95% CIs over runs, and every two groups of one unit the probability
that one improves on the other (Agarwal et al. 2021, NeurIPS, "Deep Reinforcement Learning
at the Edge of the Statistical Precipice"; :mod:`adaptrl.evaluation.across_seeds`). The
scores are raw returns, not normalised. A run repeating a seed its group already has is
left out of the group's statistics (it is not another sample) and listed as a duplicate.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from adaptrl.agents.contract import AdaptationUnit
from adaptrl.algorithms.base import AlgorithmConfig
from adaptrl.algorithms.baselines import TRAINED_BASELINES
from adaptrl.algorithms.registry import algorithm_spec
from adaptrl.evaluation import across_seeds
from adaptrl.evaluation.statistics import paired_difference
from adaptrl.experiment.config import ConfigError, ExperimentConfig
from adaptrl.experiment.evaluate import (
    DEFAULT_EVAL,
    TEST_SPLIT,
    evaluate_run,
    evaluation_name,
    load_run,
)
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


def _reusable(run: RunDir, settings: dict[str, Any], checkpoint: str,
              names: tuple[str, ...] = (DEFAULT_EVAL,)) -> dict[str, Any] | None:
    """The first of the run's evaluations ``names`` (``eval.json``, ``eval-<settings>.json``
    of :func:`~adaptrl.experiment.evaluate.evaluation_name`) that was made with
    ``settings`` after the run's last checkpoint."""
    ckpt = run.checkpoint_file(checkpoint)
    for name in dict.fromkeys(names):
        path = run.path / name
        if not path.exists():
            continue
        result: dict[str, Any] = json.loads(path.read_text())
        if any(result.get(k, _EVAL_DEFAULTS.get(k)) != v for k, v in settings.items()):
            continue
        if result.get("checkpoint") != checkpoint or not ckpt.exists() or \
                path.stat().st_mtime < ckpt.stat().st_mtime:
            continue
        return result
    return None


def _label(run: RunDir, algorithm: str, taken: set[str]) -> str:
    label = run.path.name or algorithm
    return label if label not in taken else f"{label} ({run.path})"


def adaptation_unit(algo_cfg: AlgorithmConfig) -> AdaptationUnit:
    """The unit a run's agent adapts in, as its algorithm's spec declares it."""
    return algorithm_spec(algo_cfg.name).unit


@dataclass(frozen=True)
class Protocol:
    """The evaluation settings every run of a comparison is scored under: per unit,
    ``evaluation.episodes`` and ``.batch_unit`` (``batches``), and the tasks file."""

    batches: dict[str, tuple[int, str]]
    tasks_file: str | None

    def changes(self, cfg: ExperimentConfig, unit: str) -> list[str]:
        """How this protocol differs from the run's own evaluation settings ``cfg``."""
        episodes, batch_unit = self.batches[unit]
        ev = cfg.evaluation
        return [f"evaluation.{key} {own} -> {new}" for key, own, new in (
            ("episodes", ev.episodes, episodes), ("batch_unit", ev.batch_unit, batch_unit),
            ("tasks_file", ev.tasks_file, self.tasks_file)) if own != new]


REEVALUATE_HINT = ("; or score every run under one protocol, the first run's evaluation "
                   "settings: `adaptrl compare RUN... --reevaluate`")


def _check_comparable(loaded: list[tuple[RunDir, ExperimentConfig, Any]],
                      units: list[AdaptationUnit], reevaluate: bool = False,
                      episodes: int | None = None) -> Protocol:
    """The protocol every run is scored under: per unit, the ``evaluation.episodes``
    (``episodes`` if given) and ``evaluation.batch_unit`` of its first run, and the first
    run's ``evaluation.tasks_file``.

    :class:`ConfigError` if the runs differ in task family (never comparable: a run is
    scored on the family it was trained on) or, unless ``reevaluate``, in
    ``evaluation.tasks_file``, or runs of one unit differ in ``evaluation.episodes`` (when
    ``episodes`` is not given) or ``evaluation.batch_unit`` (the same data per adaptation
    step). With ``reevaluate`` these runs are scored under the first run's settings
    instead (their own ``eval.json`` is neither used nor changed)."""
    first, first_cfg, _ = loaded[0]
    family = (first_cfg.family.name, first_cfg.family.params)
    batches: dict[str, tuple[int, str]] = {}  # unit -> (evaluation.episodes, .batch_unit)
    owner: dict[str, Path] = {}
    for (run, cfg, _), unit in zip(loaded, units):
        if (cfg.family.name, cfg.family.params) != family:
            raise ConfigError(f"compare: {run.path} is on family {cfg.family.name} "
                              f"{cfg.family.params}, but {first.path} is on "
                              f"{family[0]} {family[1]}; runs must share the task family "
                              "(--reevaluate cannot help: a run is scored on the family it "
                              "was trained on)")
        if cfg.evaluation.tasks_file != first_cfg.evaluation.tasks_file and not reevaluate:
            raise ConfigError(f"compare: {run.path} is scored on evaluation.tasks_file="
                              f"{cfg.evaluation.tasks_file}, {first.path} on "
                              f"{first_cfg.evaluation.tasks_file}; runs must share their "
                              "test tasks (paired differences compare task by task)"
                              + REEVALUATE_HINT)
        batch = (cfg.evaluation.episodes if episodes is None else episodes,
                 cfg.evaluation.batch_unit)
        if unit in batches and batch != batches[unit] and not reevaluate:
            what = ("support episodes per gradient step" if unit == GRADIENT_STEPS
                    else "trials per task")
            (e, b), (e0, b0) = batch, batches[unit]
            raise ConfigError(f"compare: {run.path} uses evaluation.episodes={e}, "
                              f"evaluation.batch_unit={b}; {owner[unit]} uses {e0}, {b0} "
                              f"({what}); runs scored in {unit.replace('_', ' ')} must share "
                              "both (override with --set evaluation.<key>=... when training)"
                              + REEVALUATE_HINT)
        batches.setdefault(unit, batch)
        owner.setdefault(unit, run.path)
    return Protocol(batches, first_cfg.evaluation.tasks_file)


SEEDLESS_KEYS = ("seed", "name")
"""The config keys that runs of one group may differ in (besides their directory)."""

_SEED_SUFFIX = re.compile(r"[-_.]?(s|seed)[-_]?\d+$")
"""A run name's seed suffix (``maml-s3``, ``maml_seed3``), left out of a group's label."""


def _seedless(config: ExperimentConfig) -> str:
    """The resolved config without :data:`SEEDLESS_KEYS`, as a key that groups runs."""
    data = config.model_dump(mode="json")
    for key in SEEDLESS_KEYS:
        data.pop(key, None)
    return json.dumps(data, sort_keys=True)


def _group_label(paths: list[Path], configs: list[ExperimentConfig], taken: set[str]) -> str:
    """The runs' directory names without their seed suffix if they agree, else their config
    names so stripped, else the algorithm; made unique among ``taken``."""
    label = configs[0].algorithm["name"]
    for names in ([p.name for p in paths], [c.name for c in configs]):
        stems = {_SEED_SUFFIX.sub("", n) or n for n in names}
        if len(stems) == 1:
            label = stems.pop()
            break
    unique, i = label, 2
    while unique in taken:
        unique, i = f"{label} #{i}", i + 1
    return unique


def _groups(loaded: list[tuple[RunDir, ExperimentConfig, Any]], rows: list[Row],
            reps: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The groups of runs that differ only in seed (two distinct seeds or more; ``rows[i]``
    is ``loaded[i]``'s agent row) with their IQM and mean, and the probability of
    improvement of every two groups in one unit (module docstring)."""
    members: dict[str, list[int]] = {}
    for i, (_, cfg, _) in enumerate(loaded):
        members.setdefault(_seedless(cfg), []).append(i)
    groups: list[dict[str, Any]] = []
    scores: list[Any] = []
    for indices in members.values():
        first_of_seed: dict[int, int] = {}
        for i in indices:
            first_of_seed.setdefault(loaded[i][1].seed, i)
        kept = list(first_of_seed.values())
        if len(kept) < 2:
            continue
        matrix = across_seeds.score_matrix([rows[i].per_task for i in kept])
        stats = across_seeds.group_statistics(matrix, reps)
        head = rows[kept[0]]
        groups.append({
            "label": _group_label([loaded[i][0].path for i in kept],
                                  [loaded[i][1] for i in kept], {g["label"] for g in groups}),
            "algorithm": head.algorithm, "unit": head.unit, "steps": head.steps,
            "experience": head.experience, "runs": [rows[i].method for i in kept],
            "paths": [rows[i].run for i in kept], "seeds": [loaded[i][1].seed for i in kept],
            "duplicates": [rows[i].run for i in indices if i not in kept],
            **{name: interval.as_dict() for name, interval in stats.items()}})
        scores.append(matrix)
    pairs = [{"x": groups[a]["label"], "y": groups[b]["label"], "unit": groups[a]["unit"],
              "probability": across_seeds.probability_of_improvement(
                  scores[a], scores[b], reps).as_dict()}
             for a in range(len(groups)) for b in range(a + 1, len(groups))
             if groups[a]["unit"] == groups[b]["unit"]]
    return groups, pairs


def compare_runs(run_paths: list[Path], num_tasks: int | None = None, seed: int | None = None,
                 steps: int | None = None,
                 bootstrap_reps: int = across_seeds.BOOTSTRAP_REPS,
                 episodes: int | None = None, reevaluate: bool = False) -> dict[str, Any]:
    """Score every run on the same held-out tasks; returns the comparison as a dict.

    ``num_tasks``, ``seed`` and ``steps`` default to the first run's evaluation settings;
    ``episodes`` (``evaluation.episodes`` of every run: support episodes per gradient step,
    trials per task for runs in episodes) to each unit's first run's. With ``reevaluate``,
    runs evaluated differently (``evaluation.episodes``, ``.batch_unit``, ``.tasks_file``)
    are scored under the first run's settings rather than refused; ``reevaluated`` then
    lists, per run, how its protocol differs from its config (:func:`_check_comparable`).
    Runs that differ only in seed are also summarised as groups (``groups``,
    ``group_pairs``; module docstring), their CIs from ``bootstrap_reps`` stratified
    bootstrap replications under a fixed seed (``bootstrap``).
    Raises :class:`ConfigError` if the runs differ in task family, or runs of the same
    adaptation unit differ in ``evaluation.episodes`` (see the module docstring).
    """
    if not run_paths:
        raise ConfigError("compare: give at least one run directory")
    loaded = [load_run(Path(p)) for p in run_paths]
    units = [adaptation_unit(algo) for _, _, algo in loaded]
    protocol = _check_comparable(loaded, units, reevaluate, episodes)
    _, first_cfg, _ = loaded[0]
    n = num_tasks or first_cfg.evaluation.num_tasks
    s = first_cfg.evaluation.seed if seed is None else seed
    k = first_cfg.evaluation.steps if steps is None else steps
    if n < 2:
        raise ConfigError(f"--tasks must be >= 2 (a CI needs two tasks), got {n}")

    rows: list[Row] = []
    baselines: dict[str, Row] = {}
    reevaluated: dict[str, list[str]] = {}
    for (run, cfg, algo), unit in zip(loaded, units):
        e, batch_unit = protocol.batches[unit]
        settings = {"num_tasks": n, "seed": s, "episodes_per_step": e,
                    "batch_unit": batch_unit, "tasks_file": protocol.tasks_file}
        ckpt = cfg.evaluation.checkpoint
        result = _reusable(run, settings, ckpt, (DEFAULT_EVAL, evaluation_name(
            cfg, n, k, s, ckpt, protocol.tasks_file or TEST_SPLIT, e, batch_unit)))
        if result is None or len(result["methods"]["agent"]["steps"]) != k + 1 or \
                "per_task" not in result["methods"]["agent"]:
            new = set(cfg.evaluation.baselines) - set(baselines)
            result = evaluate_run(run.path, n, k, s, write=False, baselines=bool(new),
                                  tasks_file=protocol.tasks_file or TEST_SPLIT, episodes=e,
                                  batch_unit=batch_unit)
        changes = protocol.changes(cfg, unit)
        if changes:
            reevaluated[str(run.path)] = changes
        per_unit = e if unit == GRADIENT_STEPS else 1
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
    groups, pairs = _groups(loaded, rows, bootstrap_reps)
    across = ({"bootstrap": across_seeds.bootstrap_settings(bootstrap_reps)} if groups else {})
    per_unit_episodes = {unit: e for unit, (e, _) in protocol.batches.items()}
    return {"family": first_cfg.family.name, "family_params": first_cfg.family.params,
            "split": "tasks_file" if protocol.tasks_file else "test",
            "tasks_file": protocol.tasks_file, "num_tasks": n, "seed": s,
            "steps": k,
            "episodes_per_step": per_unit_episodes.get(GRADIENT_STEPS),
            "trials_per_task": per_unit_episodes.get(EPISODES),
            "unit": distinct[0] if len(distinct) == 1 else "mixed", "units": distinct,
            "rows": [asdict(r) for r in final], "groups": groups, "group_pairs": pairs,
            **across, **({"reevaluated": reevaluated} if reevaluated else {})}


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


def _unit_columns(comparison: dict[str, Any]) -> list[str]:
    """The header of the unit columns: ``0 steps | 1 step | ...`` for runs of one unit,
    ``unit | 0 | 1 | ...`` for runs of mixed units (each row then names its unit)."""
    k = comparison["steps"]
    if comparison["unit"] == "mixed":
        return ["unit"] + [str(i) for i in range(k + 1)]
    return [_count(UNIT_WORDS[comparison["unit"]], i) for i in range(k + 1)]


def markdown_table(comparison: dict[str, Any]) -> str:
    """The comparison as a GitHub-markdown table (mean ± 95% CI over held-out tasks),
    followed by the across-seeds tables of its groups if it has any
    (:func:`groups_markdown`).

    Runs of one unit get a header in that unit (``0 steps | 1 step | ...``); runs of mixed
    units get a ``unit`` column and a header of unit counts (``0 | 1 | ...``).
    """
    k, rows = comparison["steps"], comparison["rows"]
    mixed = comparison["unit"] == "mixed"
    head = ["method", "algorithm"] + _unit_columns(comparison)
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
    groups = groups_markdown(comparison)
    return (_caption(comparison) + "\n\n" + "\n".join(lines) + "\n"
            + (f"\n{groups}" if groups else ""))


def _interval_cell(interval: dict[str, list[float]], i: int, digits: int) -> str:
    return (f"{interval['point'][i]:.{digits}f} "
            f"[{interval['low'][i]:.{digits}f}, {interval['high'][i]:.{digits}f}]")


def _table(head: list[str], body: list[list[str]], text_columns: int) -> list[str]:
    rule = "|" + "|".join(["---"] * text_columns + ["---:"] * (len(head) - text_columns)) + "|"
    return ["| " + " | ".join(head) + " |", rule] + ["| " + " | ".join(r) + " |" for r in body]


def groups_markdown(comparison: dict[str, Any]) -> str:
    """The across-seeds tables: every group's IQM and mean with their 95% CIs, and the
    probability of improvement of every two groups of one unit; ``""`` without groups."""
    groups = comparison.get("groups") or []
    if not groups:
        return ""
    mixed = comparison["unit"] == "mixed"
    boot = comparison["bootstrap"]
    units = _unit_columns(comparison)
    points = comparison["steps"] + 1

    def unit_cell(unit: str) -> list[str]:
        return [_unit_label(unit, comparison)] if mixed else []

    body = []
    for g in groups:
        runs = f"{len(g['seeds'])} (seeds {', '.join(str(s) for s in g['seeds'])})"
        for stat, name in (("iqm", "IQM"), ("mean", "mean")):
            body.append([g["label"], g["algorithm"], runs, name, *unit_cell(g["unit"]),
                         *[_interval_cell(g[stat], i, 1) for i in range(points)]])
    lines = [f"Across seeds: interquartile mean (IQM) and mean over runs × tasks of the "
             f"raw average return (not normalised), [95% CI] by stratified bootstrap over "
             f"runs ({boot['reps']} replications, seed {boot['seed']}; Agarwal et al. "
             f"2021, rliable).", ""]
    lines += _table(["group", "algorithm", "runs", "statistic"] + units, body, 4 + mixed)
    duplicates = [(g["label"], d) for g in groups for d in g["duplicates"]]
    if duplicates:
        lines += ["", "Left out of their group (a seed the group already has): "
                  + "; ".join(f"{d} ({label})" for label, d in duplicates) + "."]
    pairs = comparison.get("group_pairs") or []
    if pairs:
        rows = [[p["x"], p["y"], *unit_cell(p["unit"]),
                 *[_interval_cell(p["probability"], i, 2) for i in range(points)]]
                for p in pairs]
        lines += ["", "Probability of improvement P(X > Y): the chance that a run of X beats "
                  "a run of Y on a held-out task, averaged over tasks (0.5: a tie), [95% "
                  "CI]; groups of one unit only.", ""]
        lines += _table(["X", "Y"] + units, rows, 2 + mixed)
    return "\n".join(lines) + "\n"


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


def row_colors(rows: list[dict[str, Any]]) -> list[str]:
    """The colour of each row's curve, as in a run's own figures
    (:func:`adaptrl.experiment.plots.method_colors`): a baseline its method's colour; a
    run (named by its folder) the agent's colour when it is the only run, else one of
    its own."""
    from adaptrl.experiment.plots import METHOD_COLORS, method_colors

    runs = [r["method"] for r in rows if r["method"] not in METHOD_COLORS]
    return method_colors(["agent" if runs == [r["method"]] else r["method"] for r in rows])


def comparison_figure(comparison: dict[str, Any]) -> Any:
    """Every method's adaptation curve with its 95% CI band, on one axes (see :func:`_curves`
    for the x of runs in different units); colours as in a run's figures
    (:func:`row_colors`), the legend outside, on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator, ScalarFormatter

    mixed = comparison["unit"] == "mixed"
    xlabel, curves, symlog = _curves(comparison)
    fig, ax = plt.subplots(figsize=(9.5, 4.8) if mixed else (8, 4.5))
    colors = row_colors(comparison["rows"])
    for r, (x, mean, ci), color in zip(comparison["rows"], curves, colors):
        style = "--" if r["method"] == "oracle" else "-o"
        label = r["method"]
        if mixed and r["method"] != "oracle":
            label += f" ({_unit_label(r['unit'], comparison)})"
        ax.plot(x, mean, style, label=label, markersize=4, color=color)
        ax.fill_between(x, [m - c for m, c in zip(mean, ci)],
                        [m + c for m, c in zip(mean, ci)], alpha=0.15, color=color)
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
    return fig


def plot_comparison(comparison: dict[str, Any], out: Path) -> Path:
    """:func:`comparison_figure` written to ``out`` (PNG)."""
    from adaptrl.experiment.plots import png_bytes

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png_bytes(comparison_figure(comparison)))
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
