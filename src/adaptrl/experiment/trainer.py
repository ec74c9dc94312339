"""The training loop shared by every meta-learner: sample tasks, meta-update, log, checkpoint.

Resuming is exact: the checkpoint holds the learner (weights and optimiser state), the
run generator's state and the counters, and the metrics log is cut back to the
checkpoint's iteration, so a resumed run writes the same metrics as an unbroken one
(apart from ``wall_time_s``). Ctrl-C saves a checkpoint of the last finished iteration.
With an ``averaging`` section the checkpoints also hold the running average of the
policy's weights (:mod:`adaptrl.experiment.iterate_averaging`).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

from adaptrl.experiment.checkpoints import load_checkpoint, save_checkpoint
from adaptrl.experiment.config import ConfigError, ExperimentConfig, dump_config
from adaptrl.experiment.interrupts import terminate_as_interrupt
from adaptrl.experiment.iterate_averaging import (AveragingConfig, PolicyAverage,
                                                   check_resumable)
from adaptrl.algorithms.baselines import TRAINED_BASELINES, baseline_config
from adaptrl.algorithms.registry import algorithm_spec
from adaptrl.experiment.learners import (apply_init_from, build_family, build_learner,
                                         meta_batch_size)
from adaptrl.experiment.progress import TrainingProgress
from adaptrl.experiment.run_dir import MetricsLog, RunDir
from adaptrl.experiment.scalars import Scalars
from adaptrl.experiment.seeding import make_generator
from adaptrl.experiment.selection import CheckpointScore
from adaptrl.tasks.base import TaskFamily

@dataclass
class TrainResult:
    run: RunDir
    iterations: int
    best_iteration: int | None
    best_score: float | None
    wall_time_s: float


def train_learner(run: RunDir, family: TaskFamily, algo_cfg: BaseModel, *, iterations: int,
                  seed: int, device: torch.device, checkpoint_every: int, resume: bool,
                  progress: bool, tensorboard: bool, label: str,
                  score: CheckpointScore,
                  averaging: AveragingConfig | None = None) -> TrainResult:
    """Train one learner in ``run`` (a run directory or a baseline's sub-run); ``score``
    judges which checkpoint is the best (:mod:`adaptrl.experiment.selection`); with
    ``averaging`` the checkpoints also hold the policy's weight average."""
    generator = make_generator(seed)
    learner = build_learner(family, algo_cfg, generator, device, init_seed=seed)
    start, best_score, best_iter, wall = 0, None, None, 0.0
    state: dict[str, Any] = {}
    if resume and run.latest.exists():
        state = load_checkpoint(run.latest)
        learner.load_state_dict(state["learner"])
        generator.set_state(state["generator"])
        start, wall = int(state["iteration"]), float(state["wall_time_s"])
        best_score, best_iter = state.get("best_score"), state.get("best_iteration")
    else:
        apply_init_from(learner, algo_cfg)
    average = None if averaging is None else PolicyAverage(averaging, learner.policy)
    if average is not None:
        if state.get("average") is not None:  # prepare_run checked its window
            average.load_state_dict(state["average"])
        average.update(learner.policy, start)  # the starting policy, if it is due
    run.path.mkdir(parents=True, exist_ok=True)
    log = MetricsLog(run.metrics, keep_iterations_below=start)
    scalars = Scalars(run.path / "tensorboard", tensorboard)
    batch = meta_batch_size(algo_cfg)

    # the generator state at the end of the last finished iteration: an interrupt mid-way
    # through an iteration must not record the draws that iteration had already made
    gen_state = generator.get_state()
    learner_state = copy.deepcopy(learner.state_dict())
    average_state = None if average is None else copy.deepcopy(average.state_dict())

    def checkpoint(path: Path, iteration: int) -> None:
        save_checkpoint({"iteration": iteration, "learner": learner_state,
                         "generator": gen_state, "wall_time_s": wall,
                         "best_score": best_score, "best_iteration": best_iter,
                         "average": average_state}, path)

    done = start
    try:
        with terminate_as_interrupt(), TrainingProgress(iterations, start, label, progress) as bar:
            for it in range(start, iterations):
                t0 = time.perf_counter()
                tasks = family.sample(batch, "train", generator)
                metrics = learner.meta_update(tasks)
                done = it + 1
                moved = average.update(learner.policy, done) if average is not None else False
                value = score(learner, done, metrics)  # validation time counts as training
                wall += time.perf_counter() - t0
                if value is not None and score.validates:
                    metrics = {**metrics, "validation_return": value}
                record = {"iteration": it, "wall_time_s": round(wall, 4),
                          "env_steps": int(learner.env_steps), **metrics}
                log.write(record)
                scalars.write(it, metrics)
                gen_state = generator.get_state()
                learner_state = copy.deepcopy(learner.state_dict())
                if average is not None and moved:  # copy the weights only when they moved
                    average_state = copy.deepcopy(average.state_dict())
                if value is not None and (best_score is None or value > best_score):
                    best_score, best_iter = value, it
                    checkpoint(run.best, done)
                if done % checkpoint_every == 0 or done == iterations:
                    checkpoint(run.latest, done)
                bar.update(metrics)
    except KeyboardInterrupt:
        checkpoint(run.latest, done)
        raise
    finally:
        log.close()
        scalars.close()
    if not run.best.exists():
        checkpoint(run.best, done)
    return TrainResult(run, done, best_iter, best_score, wall)


def prepare_run(config: ExperimentConfig, run_path: Path, resume: bool) -> RunDir:
    """Create (or reopen, when resuming) the run directory and write the resolved config."""
    run = RunDir(Path(run_path))
    if resume:
        if not run.latest.exists():
            raise ConfigError(f"--resume: no checkpoint in {run.checkpoints}; "
                              "start the run without --resume")
        try:  # refuse before the run's config.yaml is rewritten
            check_resumable(load_checkpoint(run.latest).get("average"), config.averaging)
        except ValueError as err:
            raise ConfigError(f"--resume: {err}") from err
    elif run.latest.exists():
        raise ConfigError(f"{run.path} already holds a run; pass --resume to continue it "
                          "or --run-dir to start a new one")
    run.path.mkdir(parents=True, exist_ok=True)
    dump_config(config, run.config)
    return run


def train(config: ExperimentConfig, algo_cfg: BaseModel, run_path: Path, *,
          resume: bool = False, baselines: bool = True) -> TrainResult:
    """Meta-train per ``config`` in ``run_path``; then train the baselines that need training
    (*pretrained*, *aggregation*) if the evaluation uses them."""
    run = prepare_run(config, run_path, resume)
    family = build_family(config)
    device = torch.device(config.device)
    score = CheckpointScore(config.selection, family, config.evaluation, device)
    common = dict(seed=config.seed, device=device, checkpoint_every=config.checkpoint_every,
                  progress=config.logging.progress, tensorboard=config.logging.tensorboard,
                  score=score)
    result = train_learner(run, family, algo_cfg, iterations=config.iterations, resume=resume,
                           label=f"{algo_cfg.name} meta-train",  # type: ignore[attr-defined]
                           averaging=config.averaging, **common)  # type: ignore[arg-type]
    admitted = algorithm_spec(algo_cfg.name).baselines
    for name in TRAINED_BASELINES:
        if not (baselines and name in config.evaluation.baselines and name in admitted):
            continue
        sub = run.baseline(name)
        iters = getattr(config.baselines, f"{name}_iterations") or config.iterations
        train_learner(sub, family, baseline_config(name, algo_cfg), iterations=iters,
                      resume=sub.latest.exists(), label=f"{name} baseline",
                      **common)  # type: ignore[arg-type]
    return result
