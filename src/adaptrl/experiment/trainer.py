"""The training loop shared by every meta-learner: sample tasks, meta-update, log, checkpoint.

Resuming is exact: the checkpoint holds the learner (weights and optimiser state), the
run generator's state and the counters, and the metrics log is cut back to the
checkpoint's iteration, so a resumed run writes the same metrics as an unbroken one
(apart from ``wall_time_s``).

Nothing lost, nothing silent:

* Everything a checkpoint holds is one :class:`Snapshot`, built whole after an iteration
  and then put in place by one assignment. Ctrl-C or SIGTERM (:mod:`.interrupts`) at any
  moment saves the last snapshot put in place, so a checkpoint never mixes two iterations.
  A kill at any moment leaves the previous checkpoint (writes are atomic: :mod:`.atomic`).
* One process trains in a run directory at a time (:mod:`.lock`).
* A run directory that holds anything is never started over; ``--resume`` checks that the
  checkpoint loads into the learner the config builds before anything is rewritten.
* A damaged latest checkpoint falls back to the newest good one (:mod:`.checkpoints`).
* A NaN / Inf in a metric or in the learner's state stops training (:class:`DivergenceError`)
  and is never saved: the last finite snapshot is kept.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from adaptrl.algorithms.base import AlgorithmConfig
from adaptrl.algorithms.baselines import TRAINED_BASELINES, baseline_config
from adaptrl.algorithms.registry import algorithm_spec
from adaptrl.errors import FaultError, UserError
from adaptrl.experiment.atomic import remove_stale_temps
from adaptrl.experiment.checkpoints import (
    CheckpointError,
    newest_good_checkpoint,
    non_finite,
    restore,
    save_checkpoint,
)
from adaptrl.experiment.config import ConfigError, ExperimentConfig, LoggingConfig, dump_config
from adaptrl.experiment.fault_points import reach
from adaptrl.experiment.interrupts import deferred_interrupts, terminate_as_interrupt
from adaptrl.experiment.learners import (
    apply_init_from,
    build_family,
    build_learner,
    meta_batch_size,
)
from adaptrl.experiment.lock import run_lock
from adaptrl.experiment.progress import TrainingProgress
from adaptrl.experiment.run_dir import TRAINER_FILES, MetricsLog, RunDir
from adaptrl.experiment.sampling import check_sampler, sampler_scope, sampling_family
from adaptrl.experiment.scalars import Scalars
from adaptrl.experiment.seeding import make_generator
from adaptrl.experiment.selection import CheckpointScore
from adaptrl.experiment.streams import StreamScorer, stream_scorer
from adaptrl.rollouts.schedule import IIDSchedule, TaskSchedule, build_schedule
from adaptrl.tasks.base import TaskFamily

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run: RunDir
    iterations: int
    best_iteration: int | None
    best_score: float | None
    wall_time_s: float


class DivergenceError(FaultError):
    """Training produced a NaN or Inf (in a metric or in the learner's state)."""


@dataclass(frozen=True)
class Snapshot:
    """Everything a checkpoint holds, after ``iteration`` finished meta-iterations. Built
    whole, then put in place by one assignment, so an interrupt never saves a mix."""

    iteration: int
    learner: dict[str, Any]
    generator: torch.Tensor
    wall_time_s: float
    best_score: float | None
    best_iteration: int | None
    stream: dict[str, Any] | None = None

    def checkpoint(self) -> dict[str, Any]:
        state = {"iteration": self.iteration, "learner": self.learner,
                 "generator": self.generator, "wall_time_s": self.wall_time_s,
                 "best_score": self.best_score, "best_iteration": self.best_iteration}
        if self.stream is not None:  # a task stream's record (i.i.d. runs have none)
            state["stream"] = self.stream
        return state


_STEP_SETTING = re.compile(r"(^|_)(lr|learning_rate|step_size|step_sizes|init_std|scale)$")


def suspect_settings(algo_cfg: AlgorithmConfig) -> str:
    """The algorithm's step sizes and scales (``algorithm.inner.lr = 0.1, ...``): what makes
    a run diverge, for the divergence message."""
    found: list[str] = []

    def walk(value: Any, name: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{name}.{k}")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and \
                _STEP_SETTING.search(name.rsplit(".", 1)[-1]):
            found.append(f"{name} = {value:g}")

    walk(algo_cfg.model_dump(), "algorithm")
    return ", ".join(found) or "the algorithm's step sizes"


def check_finite(what: str, value: Any, iteration: int, algo_cfg: AlgorithmConfig,
                 kept: str) -> None:
    """Raise :class:`DivergenceError` if ``value`` (metrics or a state dict) holds a NaN or
    Inf, naming the iteration, the entries, the likely settings and what was kept."""
    bad = non_finite(value)
    if bad:
        raise DivergenceError(f"training diverged at iteration {iteration}: {what} "
                              f"{', '.join(bad)} {'is' if len(bad) == 1 else 'are'} NaN or "
                              f"Inf; check the step sizes and scales: "
                              f"{suspect_settings(algo_cfg)}; {kept}")


def _resume_state(run: RunDir, learner: Any, generator: torch.Generator,
                  config_file: Path | None) -> dict[str, Any] | None:
    """Load the newest good checkpoint of ``run`` into ``learner`` and ``generator``; its
    state, or ``None`` if the run has no checkpoint at all."""
    if not any(p.exists() for p in run.resume_candidates):
        return None
    path, state = newest_good_checkpoint(run.resume_candidates)
    restore(learner, state["learner"], path, config_file)
    try:
        generator.set_state(state["generator"])
    except (RuntimeError, TypeError) as err:
        raise CheckpointError(f"{path}: damaged checkpoint (generator state: {err})") from None
    return state


def train_learner(run: RunDir, family: TaskFamily, algo_cfg: AlgorithmConfig, *, iterations: int,
                  seed: int, device: torch.device, checkpoint_every: int, resume: bool,
                  log_cfg: LoggingConfig, label: str,
                  run_config: dict[str, Any] | None = None,
                  score: CheckpointScore,
                  schedule: TaskSchedule | None = None,
                  stream: StreamScorer | None = None) -> TrainResult:
    """Train one learner in ``run`` (a run directory or a baseline's sub-run); ``score``
    judges which checkpoint is the best (:mod:`adaptrl.experiment.selection`). Each
    iteration's tasks come from ``schedule`` (default: i.i.d. training tasks,
    ``family.sample``); along a stream, ``stream`` scores every stage after each stage ends
    and its record is checkpointed (:mod:`adaptrl.experiment.streams`). The caller holds
    the run's lock (:func:`train` does)."""
    schedule = schedule if schedule is not None else IIDSchedule(family)
    generator = make_generator(seed)
    learner = build_learner(family, algo_cfg, generator, device, init_seed=seed)
    state = _resume_state(run, learner, generator, None) if resume else None
    if state is None:
        state = {}
        apply_init_from(learner, algo_cfg)
    start = int(state.get("iteration", 0))
    check_finite("the starting weights:", learner.state_dict(), start, algo_cfg,
                 "nothing was saved")
    if stream is not None and state.get("stream") is not None:
        stream.load_state_dict(state["stream"])
    run.path.mkdir(parents=True, exist_ok=True)
    fresh = not state
    # W&B and the config text for the run itself (run_config), not a baseline's sub-run
    scalars = Scalars.for_run(run.path, log_cfg, run_config, run.path.name)
    batch = meta_batch_size(algo_cfg)
    # the state at the end of the last finished iteration: an interrupt mid-way through an
    # iteration must not record the draws or updates that iteration had already made
    snap = Snapshot(start, copy.deepcopy(learner.state_dict()), generator.get_state(),
                    float(state.get("wall_time_s", 0.0)), state.get("best_score"),
                    state.get("best_iteration"),
                    None if stream is None else copy.deepcopy(stream.state_dict()))
    if fresh:  # from now on the run can be resumed, whenever it is stopped
        save_checkpoint(snap.checkpoint(), run.latest)
    log_file = MetricsLog(run.metrics, keep_iterations_below=start)

    def kept() -> str:
        return (f"{run.latest} holds the last finite state (iteration {snap.iteration}); "
                "nothing non-finite was saved")

    try:
        with terminate_as_interrupt(), TrainingProgress(
                iterations, start, label, log_cfg.progress,
                every_iterations=log_cfg.every_iterations,
                every_seconds=log_cfg.every_seconds) as bar:
            for it in range(start, iterations):
                t0 = time.perf_counter()
                tasks = schedule.tasks(it, batch, generator)
                metrics: dict[str, Any] = learner.meta_update(tasks)
                if schedule.num_stages > 1:
                    metrics = {"stage": schedule.stage(it), **metrics}
                reach("train.updated")
                done = it + 1
                value = score(learner, done, metrics)  # validation time counts as training
                wall = snap.wall_time_s + time.perf_counter() - t0
                if value is not None and score.validates:
                    metrics = {**metrics, "validation_return": value}
                if stream is not None:  # every stage scored when one ends
                    metrics = {**metrics, **stream.after_iteration(learner, done)}
                learner_state = copy.deepcopy(learner.state_dict())
                check_finite("metrics", metrics, it, algo_cfg, kept())
                check_finite("learner state", learner_state, it, algo_cfg, kept())
                log_file.write({"iteration": it, "wall_time_s": round(wall, 4),
                                "env_steps": int(learner.env_steps), **metrics})
                scalars.write(it, metrics, int(learner.env_steps))
                reach("train.logged")
                improved = value is not None and (snap.best_score is None or
                                                  value > snap.best_score)
                new = Snapshot(done, learner_state, generator.get_state(), wall,
                               value if improved else snap.best_score,
                               it if improved else snap.best_iteration,
                               None if stream is None else copy.deepcopy(stream.state_dict()))
                if improved:  # before the snapshot is in place: rewriting it is harmless
                    save_checkpoint(new.checkpoint(), run.best)
                reach("train.snapshot")
                snap = new  # one assignment: an interrupt sees the old or the new, whole
                reach("train.committed")
                if done % checkpoint_every == 0 or done == iterations:
                    log_file.sync()
                    save_checkpoint(snap.checkpoint(), run.latest, keep_previous=run.previous)
                bar.update(metrics, int(learner.env_steps))
    except (KeyboardInterrupt, DivergenceError):
        with deferred_interrupts():  # a second Ctrl-C must not cut this save short
            log_file.sync()
            save_checkpoint(snap.checkpoint(), run.latest, keep_previous=run.previous)
        raise
    finally:
        log_file.close()
        scalars.close()
    if not run.best.exists():
        save_checkpoint(snap.checkpoint(), run.best)
    return TrainResult(run, snap.iteration, snap.best_iteration, snap.best_score,
                       snap.wall_time_s)


def _has_results(run: RunDir) -> bool:
    """Whether ``run`` holds anything a new run would overwrite. A config.yaml alone is a
    run that stopped (or failed on its config) before its first checkpoint: nothing of it
    is lost when it starts again."""
    return run.contents() not in ([], ["config.yaml"])


def _no_checkpoint_error(run: RunDir) -> UserError:
    """``--resume`` with nothing to resume from: advice that cannot lose data."""
    held = run.contents()
    if not held:
        return ConfigError(f"--resume: no checkpoint in {run.checkpoints} (no run to resume "
                           "there); start the run without --resume")
    return ConfigError(f"--resume: no checkpoint in {run.checkpoints}, but {run.path} holds "
                       f"{', '.join(held[:6])}; start the run in another --run-dir (or move "
                       "these files away first)")


def _check_resumable(config: ExperimentConfig, algo_cfg: AlgorithmConfig | None,
                     run: RunDir) -> None:
    """Refuse a resume that would fail after the run's files were rewritten: the newest
    good checkpoint must load into the learner this config builds (when ``algo_cfg`` is
    given; without it, it must merely be good)."""
    if not any(p.exists() for p in run.resume_candidates):
        if not _has_results(run):  # stopped before its first checkpoint: start it again
            return
        raise _no_checkpoint_error(run)
    if algo_cfg is None:
        newest_good_checkpoint(run.resume_candidates)
        return
    family = build_family(config)
    learner = build_learner(family, algo_cfg, make_generator(config.seed),
                            torch.device(config.device), init_seed=config.seed)
    _resume_state(run, learner, make_generator(config.seed), run.config)


def _remove_stray_temps(run: RunDir) -> None:
    """Clear the temporaries a killed writer left in the run (and its sub-runs)."""
    folders = [run.path, run.checkpoints]
    baselines = run.path / "baselines"
    if baselines.is_dir():
        for sub in baselines.iterdir():
            folders += [sub, RunDir(sub).checkpoints]
    for folder in folders:
        for path in remove_stale_temps(folder, TRAINER_FILES):
            log.info("removed %s, left by an interrupted write", path)


def prepare_run(config: ExperimentConfig, run_path: Path, resume: bool,
                algo_cfg: AlgorithmConfig | None = None) -> RunDir:
    """Check the run directory and write the resolved config; call it holding the run's
    lock (:func:`train` does). A new run needs a directory that holds nothing; a resumed one
    a checkpoint that loads into the learner ``algo_cfg`` builds (checked before
    config.yaml is rewritten: a failed ``--resume --set`` leaves the run as it was)."""
    run = RunDir(Path(run_path))
    _remove_stray_temps(run)
    if resume:
        _check_resumable(config, algo_cfg, run)
    elif _has_results(run):
        raise ConfigError(f"{run.path} already holds a run ({', '.join(run.contents()[:6])}); "
                          "pass --resume to continue it or --run-dir to start a new one; "
                          "nothing was changed")
    run.path.mkdir(parents=True, exist_ok=True)
    dump_config(config, run.config)
    return run


def train(config: ExperimentConfig, algo_cfg: AlgorithmConfig, run_path: Path, *,
          resume: bool = False, baselines: bool = True) -> TrainResult:
    """Meta-train per ``config`` in ``run_path``, holding its lock; then train the baselines
    that need training (*pretrained*, *aggregation*) if the evaluation uses them."""
    run_path = Path(run_path)
    if resume and not run_path.is_dir():
        raise _no_checkpoint_error(RunDir(run_path))
    try:
        run_path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FaultError(f"cannot create the run directory {run_path}: "
                         f"{err.strerror or err}") from err
    with run_lock(run_path), sampler_scope():  # Ray workers (sampler.backend) end with it
        reach("train.locked")
        return _train_locked(config, algo_cfg, prepare_run(config, run_path, resume, algo_cfg),
                             resume, baselines)


def _train_locked(config: ExperimentConfig, algo_cfg: AlgorithmConfig, run: RunDir, resume: bool,
                  baselines: bool) -> TrainResult:
    check_sampler(config, algo_cfg)
    family = sampling_family(config, build_family(config))  # sampler.backend: local or ray
    device = torch.device(config.device)
    score = CheckpointScore(config.selection, family, config.evaluation, device)
    schedule = build_schedule(config.schedule, family)
    common = dict(seed=config.seed, device=device, checkpoint_every=config.checkpoint_every,
                  log_cfg=config.logging,
                  score=score, schedule=schedule)

    def scorer() -> StreamScorer | None:  # each trained learner keeps its own record
        return stream_scorer(schedule, family, config.evaluation,
                             config.schedule.eval_tasks_per_stage, device)

    result = train_learner(run, family, algo_cfg, iterations=config.iterations, resume=resume,
                           label=f"{algo_cfg.name} meta-train", run_config=config.model_dump(),
                           stream=scorer(), **common)  # type: ignore[arg-type]
    admitted = algorithm_spec(algo_cfg.name).baselines
    for name in TRAINED_BASELINES:
        if not (baselines and name in config.evaluation.baselines and name in admitted):
            continue
        sub = run.baseline(name)
        iters = getattr(config.baselines, f"{name}_iterations") or config.iterations
        train_learner(sub, family, baseline_config(name, algo_cfg), iterations=iters,
                      resume=True, label=f"{name} baseline",  # from its checkpoint, if any
                      stream=scorer() if iters == config.iterations else None,
                      **common)  # type: ignore[arg-type]
    return result
