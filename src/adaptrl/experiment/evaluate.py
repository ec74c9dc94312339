"""Evaluate a run directory under the protocol, with its baselines, into ``eval.json``.

Checkpoints are read whole and finite (:mod:`adaptrl.experiment.checkpoints`): weights with a
NaN or Inf are refused rather than scored as ``nan ± nan``. eval.json is checked writable
before the (long) evaluation starts and is written atomically as strict JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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
    CheckpointError,
    newest_good_checkpoint,
    non_finite,
    read_run_checkpoint,
    restore,
)
from adaptrl.experiment.classic_table import classic_table
from adaptrl.experiment.config import ConfigError, ExperimentConfig, read_yaml, validate_config
from adaptrl.experiment.iterate_averaging import averaged_policy_state, describe
from adaptrl.experiment.learners import build_family, build_learner
from adaptrl.experiment.run_dir import RunDir
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
    ``iteration`` (0-based, the last one finished), ``average`` (a description of the
    weight average put in place, for ``checkpoint: average``) and ``stream`` (the task
    stream's record, :mod:`adaptrl.experiment.streams`, if the run trained on one)."""

    learner: MetaLearner
    iteration: int
    average: dict[str, Any] | None = None
    stream: dict[str, Any] | None = None


def load_learner(run: RunDir, config: ExperimentConfig, algo_cfg: AlgorithmConfig,
                 checkpoint: str = "best") -> MetaLearner:
    """The run's learner restored from a checkpoint (:func:`restore_run`)."""
    return restore_run(run, config, algo_cfg, checkpoint).learner


def restore_run(run: RunDir, config: ExperimentConfig, algo_cfg: AlgorithmConfig,
                checkpoint: str = "best") -> Restored:
    """The run's learner restored from its ``best`` or ``latest`` checkpoint, or (``average``)
    the latest checkpoint with the policy's weight average in place of its weights."""
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
    restored = Restored(learner, int(state["iteration"]) - 1, stream=state.get("stream"))
    if checkpoint == "average":
        average = state.get("average")
        if average is None or average.get("last") is None:
            raise ConfigError(f"{run.path}: the latest checkpoint holds no averaged policy; "
                              "train with an `averaging` section (averaging.start <= the "
                              "iterations trained), or evaluate --checkpoint best / latest")
        try:
            averaged, described = averaged_policy_state(average), describe(average)
        except (KeyError, TypeError) as err:
            raise CheckpointError(f"{path}: damaged checkpoint (average: no {err})") from None
        restore(learner.policy, averaged, path, run.config)
        restored = replace(restored, average=described)
    return restored


def baseline_agents(run: RunDir, config: ExperimentConfig, algo_cfg: AlgorithmConfig,
                    step_sizes: list[float], seed: int) -> dict[str, Agent]:
    """The baselines the config asks for and the algorithm admits
    (:mod:`adaptrl.algorithms.baselines`): the trained ones restored from their best
    checkpoints in ``RUN_DIR/baselines/``, *scratch* at a random initialisation drawn from
    the evaluation seed; all adapt with the meta-learner's inner loop."""
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
        elif run.baseline(name).best.exists():
            learner = build_learner(family, baseline_config(name, algo_cfg),
                                    make_generator(seed), device, config.seed)
            best = run.baseline(name).best
            restore(learner, read_run_checkpoint(best)["learner"], best, run.config)
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


def evaluate_run(run_path: Path, num_tasks: int | None = None, steps: int | None = None,
                 seed: int | None = None, checkpoint: str | None = None,
                 write: bool = True, baselines: bool = True,
                 all_settings: bool = False, tasks_file: str | None = None) -> dict[str, Any]:
    """Run the protocol on held-out tasks for the agent and its baselines; write eval.json.

    ``baselines=False`` scores the agent alone (``adaptrl compare`` takes the baselines
    from one run only). ``tasks_file`` overrides ``evaluation.tasks_file``.
    """
    run, config, algo_cfg = load_run(run_path)
    if write:  # fail now, not after the evaluation
        check_writable(run.eval_json)
    ev = config.evaluation
    n = num_tasks or ev.num_tasks
    k = ev.steps if steps is None else steps
    s = ev.seed if seed is None else seed
    ckpt = checkpoint or ev.checkpoint
    if n < 2:
        raise ConfigError(f"--tasks must be >= 2 (a CI needs two tasks), got {n}")
    family = build_family(config)
    device = torch.device(config.device)
    tasks_file = tasks_file or ev.tasks_file
    tasks, split = evaluation_tasks(family, n, s, tasks_file)
    restored = restore_run(run, config, algo_cfg, ckpt)
    learner = restored.learner
    agent = learner.agent(ev.step_sizes)
    unit = agent.unit
    agents: dict[str, Any] = {"agent": agent}
    if baselines:
        agents.update(baseline_agents(run, config, algo_cfg, ev.step_sizes, s))
    methods = {}
    scores: dict[str, torch.Tensor] = {}
    for name, a in agents.items():
        curves = adaptation_curves(family, a, tasks, k, ev.episodes, s, device, ev.batch_unit)
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
    if ckpt == "average":
        result["average"] = restored.average
    if paired:
        result["agent_minus"] = paired
    if restored.stream is not None:  # trained along a stream: every stage, as trained
        result.update(stream_summary(restored.stream, config, family))
    if unit == AdaptationUnit.EPISODES and baselines:  # RL² on bandits / MDPs: the paper's table
        table = classic_table(config.family.name, family, agent, n, s, device, all_settings)
        if table is not None:
            result["table"] = table
    bad = non_finite(result["methods"], "methods")
    if bad:
        raise FaultError(f"evaluating {run.path} gave non-finite scores in {', '.join(bad)}; "
                         f"nothing was written to {run.eval_json}")
    result = undefined_as_null(result)  # e.g. a CI over one value: null, never NaN
    if write:
        atomic_write_json(run.eval_json, result)
    return result
