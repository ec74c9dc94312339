"""Hyperparameter sweeps on Ray Tune: ``adaptrl sweep CONFIG --param KEY=VALUES ... --seeds N``.

A *point* of the sweep sets each ``--param`` key (a dotted config key, as ``--set`` takes
it); a Ray Tune *trial* trains the point once per seed, each seed an ordinary run directory
(``OUT/runs/<name>-<point>-s<seed>``, trained and evaluated by
:func:`adaptrl.experiment.seeds.train_seeds`, so ``adaptrl evaluate / plot / compare``
work on it), and reports the point's score: the **final post-adaptation return** (the
agent's mean return over the held-out tasks after the last adaptation unit, ``eval.json``)
averaged over seeds.

The space: ``KEY=a,b,c`` is a list of values (YAML each); ``KEY=uniform(lo,hi)``,
``loguniform(lo,hi)`` or ``randint(lo,hi)`` a range. A space of lists only is a **grid**:
every combination is a trial (Tune's grid search). A space with a range is searched by
**Optuna** (TPE, Ray Tune's ``OptunaSearch``; lists become categorical dimensions) for
``--samples`` points: a sweep's trials are whole training runs, few enough that a
model-based search spends them better than random search.

Written to ``OUT``: ``trials/<name>-<point>.json`` (per trial: the point, seeds, run
directories and their final returns), ``report.json`` and ``report.md`` (the
**sensitivity report**: final return against each hyperparameter, mean and 95% Student-t
CI over seeds, per trial and per value), ``sensitivity.png``, and ``best.yaml`` (the best
point's resolved config; atomic writes). **Resumable**: a trial whose record exists is
finished and not run again (an Optuna search is told the finished points and their scores,
``points_to_evaluate`` / ``evaluated_rewards``, and samples only the rest); inside a trial,
a finished seed is skipped and a partial one resumed (``train_seeds``). Run the same command
again to continue.

The trials sample locally (one CPU each; ``sampler.backend: ray`` inside a trial would
compete with the trials for the same CPUs) and train no baselines (``evaluation.baselines``
is ``[]``: the sweep compares the agent with itself; add ``--set`` to change it).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from adaptrl.errors import FaultError, UserError
from adaptrl.evaluation.statistics import mean_ci95
from adaptrl.experiment.atomic import atomic_write_json, atomic_write_text
from adaptrl.experiment.config import (
    ConfigError,
    apply_overrides,
    dump_config,
    read_yaml,
    validate_config,
)
from adaptrl.experiment.seeds import parse_seeds

RangeKind = Literal["uniform", "loguniform", "randint"]
RANGE_KINDS: tuple[str, ...] = ("uniform", "loguniform", "randint")
METRIC = "final_return"
SWEEP_DEFAULTS = ("evaluation.baselines=[]",)
"""Overrides every trial gets before the user's ``--set``."""
_RANGE = re.compile(r"(\w+)\(\s*([^,()]+?)\s*,\s*([^,()]+?)\s*\)")


@dataclass(frozen=True)
class Param:
    """One swept key: a list of ``values`` or a range ``kind(low, high)``."""

    key: str
    values: tuple[Any, ...] = ()
    kind: RangeKind | None = None
    low: float = 0.0
    high: float = 0.0

    @property
    def is_range(self) -> bool:
        return self.kind is not None

    def ends(self) -> tuple[Any, ...]:
        """Values to validate the config with: the list, or the range's ends."""
        if self.kind is None:
            return self.values
        if self.kind == "randint":
            return (int(self.low), int(self.high) - 1)
        return (self.low, self.high)


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise UserError(f"{what}: {text!r} is not a finite number")
    return value


def parse_param(text: str) -> Param:
    """``KEY=a,b,c`` or ``KEY=uniform(lo,hi)`` / ``loguniform`` / ``randint``; a
    :class:`UserError` says what is wrong with the ``--param`` given."""
    from adaptrl.experiment.config import parse_yaml

    what = f"--param {text!r}"
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key or not raw:
        raise UserError(f"{what}: expected KEY=VALUES with a dotted config KEY, e.g. "
                        "algorithm.inner.lr=0.05,0.1 or algorithm.inner.lr=loguniform(0.01,0.3)")
    if not all(key.split(".")):
        raise UserError(f"{what}: malformed key {key!r}")
    if (match := _RANGE.fullmatch(raw)) is not None:
        kind = match.group(1)
        if kind not in RANGE_KINDS:
            raise UserError(f"{what}: unknown range {kind!r}; allowed: {list(RANGE_KINDS)} "
                            "or a list of values a,b,c")
        low, high = _number(match.group(2), what), _number(match.group(3), what)
        if not low < high:
            raise UserError(f"{what}: a range needs low < high, got {low:g}, {high:g}")
        if kind == "loguniform" and low <= 0:
            raise UserError(f"{what}: loguniform needs low > 0, got {low:g}")
        if kind == "randint" and (low != int(low) or high != int(high)):
            raise UserError(f"{what}: randint needs integer bounds (high excluded)")
        return Param(key, kind=kind, low=low, high=high)  # type: ignore[arg-type]
    if "(" in raw and raw.split("(")[0].isidentifier():
        raise UserError(f"{what}: write a range as kind(low,high) with kind in "
                        f"{list(RANGE_KINDS)}")
    try:  # one YAML flow sequence: 0.05,0.1 ; [8,8],[16,16] ; tanh,relu
        values = parse_yaml(f"[{raw}]")
    except Exception as err:  # noqa: BLE001 - yaml's errors: one message
        raise UserError(f"{what}: values are not valid YAML ({' '.join(str(err).split())})"
                        ) from None
    if not isinstance(values, list) or not values or any(v is None for v in values):
        raise UserError(f"{what}: give one or more comma-separated values")
    dupes = sorted({json.dumps(v) for v in values if values.count(v) > 1})
    if dupes:
        raise UserError(f"{what}: value {', '.join(dupes)} given twice")
    return Param(key, values=tuple(values))


def parse_params(texts: Sequence[str]) -> list[Param]:
    """Every ``--param``; none, or a key twice, is a :class:`UserError`."""
    if not texts:
        raise UserError("sweep: give at least one --param KEY=VALUES")
    params = [parse_param(t) for t in texts]
    keys = [p.key for p in params]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise UserError(f"--param {twice[0]} given twice; one --param per key")
    return params


def _override(key: str, value: Any) -> str:
    return f"{key}={json.dumps(value)}"  # JSON is YAML: --set parses it back exactly


def check_params(data: dict[str, Any], params: Sequence[Param]) -> None:
    """Every list value and range end must make a valid config: the config error, with
    the ``--param`` named, before anything runs."""
    for p in params:
        for value in p.ends():
            try:
                validate_config(apply_overrides(copy.deepcopy(data), [_override(p.key, value)]))
            except ConfigError as err:
                detail = "; ".join(line.strip() for line in str(err).splitlines()
                                   if line.strip() and line.strip() != "invalid config:")
                raise ConfigError(f"--param {p.key}: value {value!r} gives an invalid config: "
                                  f"{detail}") from None


# ----------------------------------------------------------------------------- points

def point_name(base: str, point: dict[str, Any], hashed: bool) -> str:
    """A run-name-safe label of ``point`` (``base-key=value_...``); ``hashed`` appends a
    short hash of the exact values (Optuna's floats print alike to a few digits)."""
    parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={json.dumps(v)}"
             for k, v in point.items()]
    slug = re.sub(r"[^A-Za-z0-9._=+-]", "", "_".join(parts))[:150]
    if hashed:
        slug += "-" + hashlib.sha1(json.dumps(point, sort_keys=True).encode()).hexdigest()[:6]
    return f"{base}-{slug}"


@dataclass(frozen=True)
class Plan:
    """Everything a trial needs (sent to Ray workers: plain values only)."""

    config_path: str
    overrides: tuple[str, ...]
    seeds: tuple[int, ...]
    out: str
    base_name: str
    hashed: bool
    cwd: str

    @property
    def trials_dir(self) -> Path:
        return Path(self.out) / "trials"

    @property
    def runs_dir(self) -> Path:
        return Path(self.out) / "runs"


def final_return(run: Path) -> float:
    """The agent's mean return over held-out tasks after the last adaptation unit."""
    result = json.loads((run / "eval.json").read_text())
    return float(result["methods"]["agent"]["mean"][-1])


def run_point(plan: Plan, point: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate ``point`` once per seed (finished seeds skipped) and write its
    record; the record."""
    from adaptrl.experiment.seeds import train_seeds

    torch.set_num_threads(1)
    os.chdir(plan.cwd)  # a trial's process may start elsewhere; configs name relative paths
    name = point_name(plan.base_name, point, plan.hashed)
    overrides = [*plan.overrides, *(_override(k, v) for k, v in point.items()),
                 f"name={json.dumps(name)}"]
    paths = train_seeds(Path(plan.config_path), list(plan.seeds), plan.runs_dir, overrides)
    returns = [final_return(p) for p in paths]
    mean, ci = mean_ci95(torch.tensor(returns, dtype=torch.float64))
    record = {"name": name, "point": point, "seeds": list(plan.seeds),
              "runs": [str(p) for p in paths], "final_return": returns,
              "mean": float(mean), "ci95": None if math.isnan(float(ci)) else float(ci)}
    atomic_write_json(plan.trials_dir / f"{name}.json", record)
    return record


def _trainable(config: dict[str, Any], plan: dict[str, Any]) -> None:
    """A Ray Tune function trainable: one point, all seeds."""
    from ray import tune

    fields_ = {k: v for k, v in plan.items() if k != "keys"}
    p = Plan(**{**fields_, "seeds": tuple(plan["seeds"]), "overrides": tuple(plan["overrides"])})
    point = config["point"] if "point" in config else {
        key: config[f"p{i}"] for i, key in enumerate(plan["keys"])}
    record = run_point(p, point)
    tune.report({METRIC: record["mean"]})


def finished_records(plan: Plan) -> list[dict[str, Any]]:
    """The records of the trials finished so far (of this sweep's seeds)."""
    if not plan.trials_dir.is_dir():
        return []
    records = [json.loads(p.read_text()) for p in sorted(plan.trials_dir.glob("*.json"))]
    return [r for r in records if r["seeds"] == list(plan.seeds)]


def grid_points(params: Sequence[Param]) -> list[dict[str, Any]]:
    return [dict(zip([p.key for p in params], combo, strict=True))
            for combo in itertools.product(*(p.values for p in params))]


# ------------------------------------------------------------------------------ sweep

@dataclass(frozen=True)
class SweepResult:
    out: Path
    records: list[dict[str, Any]]
    ran: int  # trials run by this call (the others were finished before)
    failed: int  # trials of this call that raised (Ray Tune's error files say why)
    best: dict[str, Any]


def run_sweep(config_path: Path, param_texts: Sequence[str], seeds: str, *,
              out: Path | None = None, samples: int | None = None,
              overrides: Sequence[str] = (), cpus: int | None = None,
              address: str | None = None, search_seed: int = 0) -> SweepResult:
    """Run (or continue) a sweep and write its report and best config (module doc).

    ``seeds``: a count ``N`` (the config's seed and the ``N - 1`` after it) or a spec such
    as ``1-5``; ``samples``: Optuna trials in all, for a space with a range; ``cpus``: CPUs
    of the local Ray cluster (one per concurrent trial; default all of this machine's).
    """
    params = parse_params(param_texts)
    config_path = Path(config_path).resolve()
    data = apply_overrides(read_yaml(config_path), [*SWEEP_DEFAULTS, *overrides])
    base, _ = validate_config(copy.deepcopy(data))
    if base.sampler.backend != "local":
        raise ConfigError("sweep: trials sample locally (one CPU each); sampler.backend "
                          f"{base.sampler.backend!r} would compete with the trials for the "
                          "same CPUs; set sampler.backend=local")
    check_params(data, params)
    seed_list = (list(range(base.seed, base.seed + int(seeds))) if seeds.strip().isdigit()
                 else parse_seeds(seeds))
    if not seed_list:
        raise UserError("--seeds: give a number of seeds >= 1 or a spec such as 1-5")
    grid = not any(p.is_range for p in params)
    if grid and samples is not None:
        raise UserError("--samples counts the points of an Optuna search; a space of value "
                        "lists is a grid, and every combination runs")
    if not grid and (samples is None or samples < 1):
        raise UserError("--samples N (>= 1) is needed: a space with a range is searched by "
                        "Optuna for N points")
    scalar = (bool, int, float, str)
    for p in params:
        if not grid and not all(isinstance(v, scalar) for v in p.values):
            raise UserError(f"--param {p.key}: Optuna's categorical values must be numbers, "
                            "strings or booleans; sweep lists of values as a grid (no range)")
    out = Path(out if out is not None else Path("runs") / f"sweep-{base.name}").resolve()
    plan = Plan(str(config_path), (*SWEEP_DEFAULTS, *overrides), tuple(seed_list), str(out),
                base.name, not grid, os.getcwd())
    done = finished_records(plan)
    ran, failed = _tune(plan, params, done, grid, samples, cpus, address, search_seed)
    records = [r for r in finished_records(plan)
               if set(r["point"]) == {p.key for p in params}]
    if not records:
        raise FaultError(f"sweep: no trial finished; see the Ray Tune logs in {out / 'tune'}")
    best = max(records, key=lambda r: r["mean"])
    write_report(out, params, records, best)
    best_cfg, _ = validate_config(apply_overrides(
        copy.deepcopy(data), [*(_override(k, v) for k, v in best["point"].items()),
                              f"name={json.dumps(base.name + '-best')}"]))
    dump_config(best_cfg, out / "best.yaml")
    return SweepResult(out, records, ran - failed, failed, best)


def _tune(plan: Plan, params: Sequence[Param], done: list[dict[str, Any]], grid: bool,
          samples: int | None, cpus: int | None, address: str | None, search_seed: int
          ) -> tuple[int, int]:
    """Run the trials not finished yet on Ray Tune; how many ran, and how many of them
    failed."""
    from adaptrl.rollouts.ray_sampler import require_ray

    try:
        require_ray()
    except UserError as err:
        raise UserError(str(err).replace("sampler.backend: 'ray'", "adaptrl sweep")) from None
    # Tune's classic reporter honours verbose=0 (the new one prints its tables regardless)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray
    from ray import tune

    keys = [p.key for p in params]
    finished = [r["point"] for r in done if set(r["point"]) == set(keys)]
    plan_dict = {**asdict(plan), "keys": keys}
    if grid:
        todo = [p for p in grid_points(params) if p not in finished]
        if not todo:
            return 0, 0
        space: dict[str, Any] = {"point": tune.grid_search(todo)}
        search_alg, num_samples = None, 1
    else:
        assert samples is not None
        num_samples = samples - len(finished)
        if num_samples <= 0:
            return 0, 0
        from optuna.samplers import TPESampler
        from ray.tune.search.optuna import OptunaSearch

        # the space goes to Optuna itself: Ray's OptunaSearch takes the finished points'
        # scores (evaluated_rewards) only with a space of optuna distributions
        space = {}
        rewards = [r["mean"] for r in done if r["point"] in finished]
        search_alg = OptunaSearch(
            space={f"p{i}": _optuna_distribution(p) for i, p in enumerate(params)},
            # a new seed per continuation: a seeded sampler starts its random draws afresh
            # and would propose the finished points again
            metric=METRIC, mode="max", sampler=TPESampler(seed=search_seed + len(finished)),
            points_to_evaluate=[{f"p{i}": pt[k] for i, k in enumerate(keys)}
                                for pt in finished] or None,
            evaluated_rewards=rewards or None)
    started = False
    if not ray.is_initialized():
        ray.init(address=address, num_cpus=None if address else cpus,
                 include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        started = True
    try:
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(_trainable, plan=plan_dict), {"cpu": 1}),
            param_space=space,
            tune_config=tune.TuneConfig(metric=METRIC, mode="max", search_alg=search_alg,
                                        num_samples=num_samples),
            run_config=tune.RunConfig(name="tune", storage_path=str(Path(plan.out)),
                                      verbose=0))
        results = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    return len(results), len(results.errors)


def _optuna_distribution(p: Param) -> Any:
    from optuna import distributions

    if p.kind in ("uniform", "loguniform"):
        return distributions.FloatDistribution(p.low, p.high, log=p.kind == "loguniform")
    if p.kind == "randint":  # high excluded, as tune.randint / numpy's integers
        return distributions.IntDistribution(int(p.low), int(p.high) - 1)
    return distributions.CategoricalDistribution(list(p.values))


# ----------------------------------------------------------------------------- report

def _summary(values: list[float]) -> dict[str, Any]:
    mean, ci = mean_ci95(torch.tensor(values, dtype=torch.float64))
    return {"mean": float(mean), "ci95": None if math.isnan(float(ci)) else float(ci),
            "runs": len(values)}


def sensitivity(params: Sequence[Param], records: Sequence[dict[str, Any]]
                ) -> dict[str, list[dict[str, Any]]]:
    """Per hyperparameter, per value it took: the final returns of every run at that value
    (over seeds, and over the other hyperparameters' values), mean and 95% CI."""
    out: dict[str, list[dict[str, Any]]] = {}
    for p in params:
        by_value: dict[str, tuple[Any, list[float]]] = {}
        for r in records:
            value = r["point"][p.key]
            by_value.setdefault(json.dumps(value), (value, []))[1].extend(r["final_return"])
        rows = [{"value": v, **_summary(scores)} for v, scores in by_value.values()]
        numeric = all(isinstance(row["value"], (int, float)) for row in rows)
        out[p.key] = sorted(rows, key=lambda row: row["value"] if numeric
                            else json.dumps(row["value"]))
    return out


def _cell(mean: float, ci: float | None) -> str:
    return f"{mean:.2f}" if ci is None else f"{mean:.2f} ± {ci:.2f}"


def write_report(out: Path, params: Sequence[Param], records: Sequence[dict[str, Any]],
                 best: dict[str, Any]) -> None:
    """``report.json``, ``report.md`` and ``sensitivity.png`` in ``out`` (atomic)."""
    sens = sensitivity(params, records)
    keys = [p.key for p in params]
    trials = sorted(records, key=lambda r: -r["mean"])
    report = {"metric": "final post-adaptation return (agent, last adaptation unit, mean over "
                        "held-out tasks), mean and 95% Student-t CI over seeds",
              "search": "grid" if not any(p.is_range for p in params) else "optuna TPE",
              "params": [asdict(p) for p in params], "trials": trials, "sensitivity": sens,
              "best": best}
    atomic_write_json(out / "report.json", report)
    lines = [f"# Sweep: {len(records)} trials, {len(records[0]['seeds'])} seeds each",
             "", f"Score: {report['metric']}. Search: {report['search']}.", "",
             f"Best: `{best['name']}` ({_cell(best['mean'], best['ci95'])}); its config: "
             "best.yaml", "", "## Trials", "",
             "| " + " | ".join(keys) + " | final return | runs |",
             "|" + " --- |" * len(keys) + " ---: | ---: |"]
    for r in trials:
        lines.append("| " + " | ".join(json.dumps(r["point"][k]) for k in keys) +
                     f" | {_cell(r['mean'], r['ci95'])} | {len(r['final_return'])} |")
    for key, rows in sens.items():
        lines += ["", f"## {key}", "", "| value | final return (pooled over seeds and the "
                  "other parameters) | runs |", "| --- | ---: | ---: |"]
        lines += [f"| {json.dumps(row['value'])} | {_cell(row['mean'], row['ci95'])} | "
                  f"{row['runs']} |" for row in rows]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    _plot(out / "sensitivity.png", sens, {p.key: p for p in params})


def _plot(path: Path, sens: dict[str, list[dict[str, Any]]], params: dict[str, Param]
          ) -> None:
    """Final return against each hyperparameter: values joined for a list, scattered (on a
    log axis for ``loguniform``) for a range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from adaptrl.experiment.atomic import atomic_write

    fig, axes = plt.subplots(1, len(sens), figsize=(4 * len(sens), 3.2), squeeze=False)
    for ax, (key, rows) in zip(axes[0], sens.items(), strict=True):
        numeric = all(isinstance(r["value"], (int, float)) and not isinstance(r["value"], bool)
                      for r in rows)
        xs = [r["value"] if numeric else i for i, r in enumerate(rows)]
        ax.errorbar(xs, [r["mean"] for r in rows], yerr=[r["ci95"] or 0.0 for r in rows],
                    fmt="o" if params[key].is_range else "o-", capsize=3)
        if params[key].kind == "loguniform":
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(xs, [json.dumps(r["value"]) for r in rows])
        ax.set_xlabel(key)
        ax.set_ylabel("final post-adaptation return")
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
