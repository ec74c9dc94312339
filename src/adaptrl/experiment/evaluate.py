"""Evaluate a run directory under the protocol, with its baselines, into ``eval.json`` (the
config's own settings) or ``eval-<settings>.json`` (other settings: :func:`evaluation_name`).

Checkpoints are read whole and finite (:mod:`adaptrl.experiment.checkpoints`): weights with a
NaN or Inf are refused rather than scored as ``nan ± nan``. The result file is checked writable
before the (long) evaluation starts and is written atomically as strict JSON.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from adaptrl.agents.contract import AdaptationUnit, Agent
from adaptrl.algorithms.base import AlgorithmConfig, MetaLearner
from adaptrl.algorithms.baselines import BASELINES, baseline_config
from adaptrl.algorithms.registry import algorithm_spec
from adaptrl.errors import FaultError
from adaptrl.evaluation.protocol import adaptation_curves, oracle_curve
from adaptrl.evaluation.statistics import curve_summary, paired_difference
from adaptrl.experiment.atomic import atomic_write_json, check_writable, undefined_as_null
from adaptrl.experiment.checkpoints import (
    newest_good_checkpoint,
    non_finite,
    read_run_checkpoint,
    restore,
)
from adaptrl.experiment.classic_table import classic_table
from adaptrl.experiment.config import ConfigError, ExperimentConfig, read_yaml, validate_config
from adaptrl.experiment.learners import build_family, build_learner
from adaptrl.experiment.run_dir import RunDir
from adaptrl.experiment.scalars import log_evaluation
from adaptrl.experiment.seeding import make_generator
from adaptrl.experiment.streams import stream_summary
from adaptrl.tasks.base import TaskFamily, Tasks
from adaptrl.tasks.files import load_tasks


def load_run(run_path: Path) -> tuple[RunDir, ExperimentConfig, Any]:
    run = RunDir(Path(run_path))
    if not run.config.exists():
        raise ConfigError(f"{run.path} is not a run directory (no config.yaml)")
    config, algo_cfg = validate_config(read_yaml(run.config))
    return run, config, algo_cfg


@dataclass(frozen=True)
class Restored:
    """A run's learner as a checkpoint left it, with what the checkpoint says about it:
    ``iteration`` (0-based, the last one finished) and ``stream`` (the task stream's
    record, :mod:`adaptrl.experiment.streams`, if the run trained on one)."""

    learner: MetaLearner
    iteration: int
    stream: dict[str, Any] | None = None


def load_learner(run: RunDir, config: ExperimentConfig, algo_cfg: AlgorithmConfig,
                 checkpoint: str = "best") -> MetaLearner:
    """The run's learner restored from a checkpoint (:func:`restore_run`)."""
    return restore_run(run, config, algo_cfg, checkpoint).learner


def restore_run(run: RunDir, config: ExperimentConfig, algo_cfg: AlgorithmConfig,
                checkpoint: str = "best") -> Restored:
    """The run's learner restored from its ``best`` or ``latest`` checkpoint."""
    path = run.checkpoint_file(checkpoint)
    if not path.exists() and not (path == run.latest and run.previous.exists()):
        raise ConfigError(f"{run.path}: no {checkpoint} checkpoint; train the run first")
    family = build_family(config)
    learner = build_learner(family, algo_cfg, make_generator(config.seed),
                            torch.device(config.device), init_seed=config.seed)
    if path == run.latest:  # a damaged latest falls back to the one before it
        path, state = newest_good_checkpoint((run.latest, run.previous))
    else:  # the best checkpoint is a choice: no other stands in for it
        state = read_run_checkpoint(path)
    restore(learner, state["learner"], path, run.config)
    return Restored(learner, int(state["iteration"]) - 1, stream=state.get("stream"))


def baseline_agents(run: RunDir, config: ExperimentConfig, algo_cfg: AlgorithmConfig,
                    step_sizes: list[float], seed: int, checkpoint: str = "best"
                    ) -> dict[str, Agent]:
    """The baselines the config asks for and the algorithm admits
    (:mod:`adaptrl.algorithms.baselines`): the trained ones restored from the same
    checkpoint as the agent (``checkpoint``: best or latest) in
    ``RUN_DIR/baselines/``, *scratch* at a random initialisation drawn from the evaluation
    seed; all adapt with the meta-learner's inner loop."""
    agents: dict[str, Agent] = {}
    family = build_family(config)
    device = torch.device(config.device)
    admitted = algorithm_spec(algo_cfg.name).baselines
    for name, baseline in BASELINES.items():
        if name not in config.evaluation.baselines or name not in admitted:
            continue
        if not baseline.trained:
            learner = build_learner(family, baseline_config(name, algo_cfg),
                                    make_generator(seed), device, init_seed=seed)
        elif run.baseline(name).checkpoint_file(checkpoint).exists():
            learner = build_learner(family, baseline_config(name, algo_cfg),
                                    make_generator(seed), device, config.seed)
            path = run.baseline(name).checkpoint_file(checkpoint)
            restore(learner, read_run_checkpoint(path)["learner"], path, run.config)
        else:
            continue
        agents[name] = learner.agent(step_sizes)
    return agents


def evaluation_tasks(family: TaskFamily, n: int, seed: int, path: str | None
                     ) -> tuple[Tasks, str]:
    """The tasks a run is scored on and their origin for eval.json's ``split``: ``n`` tasks
    of the ``test`` split drawn with ``seed``, or the first ``n`` of the tasks file
    ``path`` (``evaluation.tasks_file``; split ``"tasks_file"``)."""
    if path is None:
        return family.sample(n, "test", torch.Generator().manual_seed(seed)), "test"
    try:
        tasks = load_tasks(path, family)
    except ValueError as err:
        raise ConfigError(f"evaluation.tasks_file: {err}") from None
    if n > len(tasks):
        raise ConfigError(f"evaluation.tasks_file: {path} holds {len(tasks)} tasks, "
                          f"{n} asked (evaluation.num_tasks or --tasks)")
    return tasks[:n], "tasks_file"


DEFAULT_EVAL = "eval.json"
"""The run's own evaluation (its config's ``evaluation`` section): what plots, reports and
``adaptrl compare`` read."""

TEST_SPLIT = ""
"""``tasks_file`` for the test split even where the config names a tasks file."""

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.]+")


def evaluation_name(config: ExperimentConfig, num_tasks: int | None = None,
                    steps: int | None = None, seed: int | None = None,
                    checkpoint: str | None = None, tasks_file: str | None = None,
                    episodes: int | None = None, batch_unit: str | None = None) -> str:
    """The file name of an evaluation of a run with ``config`` under these settings (``None``:
    the config's): ``eval.json`` when every setting is the config's own
    (``config.evaluation``), else ``eval-<settings>.json`` naming each setting that differs,
    in this order: ``tasks<N>``, ``steps<K>``, ``seed<S>``, ``episodes<E>``,
    ``batch-<unit>``, the checkpoint's name (``latest``, ``best``) and
    ``tasksfile-<file stem>`` (or ``testsplit``: :data:`TEST_SPLIT`); e.g.
    ``eval-tasks40-steps3-seed12345.json``. An evaluation under other settings so never
    replaces the run's default one."""
    ev = config.evaluation
    parts = []
    for word, value, own in (("tasks", num_tasks, ev.num_tasks), ("steps", steps, ev.steps),
                             ("seed", seed, ev.seed), ("episodes", episodes, ev.episodes)):
        if value is not None and value != own:
            parts.append(f"{word}{value}")
    if batch_unit is not None and batch_unit != ev.batch_unit:
        parts.append(f"batch-{batch_unit}")
    if checkpoint is not None and checkpoint != ev.checkpoint:
        parts.append(checkpoint)
    if tasks_file == TEST_SPLIT and ev.tasks_file is not None:
        parts.append("testsplit")
    elif tasks_file and tasks_file != ev.tasks_file:
        stem = _NAME_UNSAFE.sub("_", Path(tasks_file).stem).strip("_.") or "file"
        parts.append(f"tasksfile-{stem}")
    return DEFAULT_EVAL if not parts else f"eval-{'-'.join(parts)}.json"


def evaluation_path(run_path: Path, num_tasks: int | None = None, steps: int | None = None,
                    seed: int | None = None, checkpoint: str | None = None,
                    tasks_file: str | None = None) -> Path:
    """Where :func:`evaluate_run` writes an evaluation of ``run_path`` under these settings
    (:func:`evaluation_name`)."""
    _, config, _ = load_run(run_path)
    return Path(run_path) / evaluation_name(config, num_tasks, steps, seed, checkpoint,
                                            tasks_file)


def evaluate_run(run_path: Path, num_tasks: int | None = None, steps: int | None = None,
                 seed: int | None = None, checkpoint: str | None = None,
                 write: bool = True, baselines: bool = True,
                 all_settings: bool = False, tasks_file: str | None = None,
                 out: Path | None = None, episodes: int | None = None,
                 batch_unit: str | None = None) -> dict[str, Any]:
    """Run the protocol on held-out tasks for the agent and its baselines; write the result.

    Settings left ``None`` are the config's (``evaluation`` section). The result goes to
    ``out`` if given, else to ``RUN_DIR/eval.json`` when every setting is the config's
    own, else to ``RUN_DIR/eval-<settings>.json`` (:func:`evaluation_name`): the default
    evaluation, which plots and reports read, is only replaced by one made under the same
    settings. ``baselines=False`` scores the agent alone (``adaptrl compare`` takes the
    baselines from one run only). ``tasks_file`` overrides ``evaluation.tasks_file``
    (:data:`TEST_SPLIT`: none, the test split),
    ``episodes`` and ``batch_unit`` ``evaluation.episodes`` and ``.batch_unit``.
    """
    run, config, algo_cfg = load_run(run_path)
    target = Path(out) if out is not None else run.path / evaluation_name(
        config, num_tasks, steps, seed, checkpoint, tasks_file, episodes, batch_unit)
    if write:  # fail now, not after the evaluation
        check_writable(target)
    ev = config.evaluation
    if episodes is not None or batch_unit is not None:
        ev = ev.model_copy(update={k: v for k, v in (("episodes", episodes),
                                                     ("batch_unit", batch_unit))
                                   if v is not None})
    n = num_tasks or ev.num_tasks
    k = ev.steps if steps is None else steps
    s = ev.seed if seed is None else seed
    ckpt = checkpoint or ev.checkpoint
    if n < 2:
        raise ConfigError(f"--tasks must be >= 2 (a CI needs two tasks), got {n}")
    family = build_family(config)
    device = torch.device(config.device)
    tasks_file = ev.tasks_file if tasks_file is None else (tasks_file or None)
    tasks, split = evaluation_tasks(family, n, s, tasks_file)
    restored = restore_run(run, config, algo_cfg, ckpt)
    learner = restored.learner
    agent = learner.agent(ev.step_sizes)
    unit = agent.unit
    agents: dict[str, Any] = {"agent": agent}
    if baselines:
        agents.update(baseline_agents(run, config, algo_cfg, ev.step_sizes, s, ckpt))
    methods = {}
    scores: dict[str, torch.Tensor] = {}
    for name, a in agents.items():
        curves = adaptation_curves(family, a, tasks, k, ev.episodes, s, device, ev.batch_unit,
                                   ev.env_steps_per_unit)
        scores[name] = curves["return"]
        # per-task scores [units+1][tasks] make paired comparisons across runs possible
        methods[name] = {**curve_summary(curves["return"]),
                         "per_task": curves["return"].tolist()}
        if "success" in curves:  # Meta-World: success rate beside return
            succ = curve_summary(curves["success"])
            methods[name].update(success_mean=succ["mean"], success_ci95=succ["ci95"])
    if "oracle" in ev.baselines and baselines:
        oracle = oracle_curve(family, tasks, k, ev.episodes, device)
        if oracle is not None:
            methods["oracle"] = curve_summary(oracle)
    # "agent beats baseline" is a paired question: the same tasks, per-task differences
    paired = {name: paired_difference(scores["agent"], sc) for name, sc in scores.items()
              if name != "agent"}
    result = {"family": config.family.name, "split": split, "num_tasks": n, "unit": unit.value,
              "seed": s, "episodes_per_step": ev.episodes, "batch_unit": ev.batch_unit,
              "step_sizes": ev.step_sizes,
              "algorithm": algo_cfg.name, "checkpoint": ckpt,
              "checkpoint_iteration": restored.iteration,
              "methods": methods}
    if split == "tasks_file":
        result["tasks_file"] = tasks_file
    if paired:
        result["agent_minus"] = paired
    if restored.stream is not None:  # trained along a stream: every stage, as trained
        result.update(stream_summary(restored.stream, config, family))
    if unit == AdaptationUnit.EPISODES and baselines:  # RL² on bandits / MDPs: the paper's table
        table = classic_table(family, agent, n, s, device, all_settings)
        if table is not None:
            result["table"] = table
    bad = non_finite(result["methods"], "methods")
    if bad:
        raise FaultError(f"evaluating {run.path} gave non-finite scores in {', '.join(bad)}; "
                         f"nothing was written to {target}")
    result = undefined_as_null(result)  # e.g. a CI over one value: null, never NaN
    if write:
        atomic_write_json(target, result)
        if target == run.eval_json:  # the run's own evaluation: to TensorBoard / W&B too
            log_evaluation(run.path, config.logging, config.model_dump(), result)
    return result
