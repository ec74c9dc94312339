"""A run's task schedule and, for a stream of stages, the scoring of every stage seen.

The trainer draws each iteration's training tasks from the config's schedule
(:mod:`adaptrl.rollouts.schedule`: i.i.d. by default, exactly ``family.sample``; or a
:class:`~adaptrl.rollouts.schedule.StageStream`). Along a stream, at the end of each stage,
:class:`StreamScorer` scores the learner's agent under the evaluation protocol on fixed
test tasks of *every* stage — the ones still to come too, so that forward transfer shows —
and records them in a :class:`~adaptrl.evaluation.stream.StreamRecord` (retained
performance, learning accuracy, backward transfer, forgetting; Lopez-Paz & Ranzato 2017,
Chaudhry et al. 2018). The record travels in the run's checkpoints, so a resumed stream
continues exactly, and ``evaluate`` reports it in eval.json.

The scoring draws from its own generators (seeded by ``evaluation.seed`` and the stage),
so the run's generator, and hence training, is the same with or without it.
"""

from __future__ import annotations

from typing import Any

import torch

from adaptrl.algorithms.base import MetaLearner
from adaptrl.evaluation.protocol import adaptation_curves
from adaptrl.evaluation.stream import StreamRecord
from adaptrl.experiment.config import EvaluationConfig, ExperimentConfig
from adaptrl.rollouts.schedule import StageStream, TaskSchedule, build_schedule
from adaptrl.tasks.base import TaskFamily, Tasks


class StreamScorer:
    """Scores a learner on every stage of a stream after each stage it finishes.

    Each stage's ``eval_tasks`` test tasks are drawn once, from the test split and that
    stage's part of the task distribution; the score of a task is its return after the
    protocol's ``evaluation.steps`` adaptation units (the adapted agent, as the stream's
    learner would be used on it).
    """

    def __init__(self, schedule: StageStream, family: TaskFamily, evaluation: EvaluationConfig,
                 eval_tasks: int, device: torch.device) -> None:
        self.schedule, self.family, self.evaluation = schedule, family, evaluation
        self.device = device
        self.tasks: list[Tasks] = [
            schedule.evaluation_tasks(j, eval_tasks,
                                      torch.Generator().manual_seed(evaluation.seed + j))
            for j in range(schedule.num_stages)]
        self.record = StreamRecord(schedule.num_stages)

    def after_iteration(self, learner: MetaLearner, iterations_done: int
                        ) -> dict[str, float | None]:
        """If ``iterations_done`` ends a stage, score every stage and return the stream
        metrics so far (``stream/retained`` ...) for the metrics log; else ``{}``."""
        finished = self.schedule.completed_stage(iterations_done)
        if finished is None:
            return {}
        ev = self.evaluation
        agent = learner.agent(ev.step_sizes)

        def score(stage: int) -> torch.Tensor:
            curves = adaptation_curves(self.family, agent, self.tasks[stage], ev.steps,
                                       ev.episodes, ev.seed + stage, self.device,
                                       ev.batch_unit, ev.env_steps_per_unit)
            return curves["return"][-1]

        self.record.score_stages(finished, score, include_future=True)
        return {f"stream/{name}": value["mean"]
                for name, value in self.record.metrics(finished).items()}

    def state_dict(self) -> dict[str, Any]:
        return self.record.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.record.load_state_dict(state)


def stream_scorer(schedule: TaskSchedule, family: TaskFamily, evaluation: EvaluationConfig,
                  eval_tasks: int, device: torch.device) -> StreamScorer | None:
    """The scorer of a stream schedule; ``None`` for i.i.d. training (nothing to score)."""
    if not isinstance(schedule, StageStream):
        return None
    return StreamScorer(schedule, family, evaluation, eval_tasks, device)


def stream_summary(state: dict[str, Any], config: ExperimentConfig, family: TaskFamily
                   ) -> dict[str, Any]:
    """eval.json's ``stream`` (the record's matrix and metrics, JSON-safe) and ``stages``
    (each stage's part of the task distribution) from a checkpoint's stream record."""
    schedule = build_schedule(config.schedule, family)
    assert isinstance(schedule, StageStream), "a stream record comes from a stream schedule"
    record = StreamRecord(schedule.num_stages)
    record.load_state_dict(state)
    return {"stream": record.summary(), "stages": schedule.describe()}


def stage_label(stage: dict[str, Any]) -> str:
    """A stage of eval.json's ``stages`` in words: ``fruit_speed [1, 1.6)`` (a parameter
    interval; ``]`` where it is closed), else ``stage k``."""
    if {"parameter", "low", "high"} <= set(stage):
        close = "]" if stage.get("closed") else ")"
        return f"{stage['parameter']} [{stage['low']:.3g}, {stage['high']:.3g}{close}"
    return f"stage {stage.get('index', '?')}"


def stream_rows(result: dict[str, Any]) -> list[tuple[str, float | None, float | None]]:
    """eval.json's stream metrics at the end of the stream as ``(name, mean, ci95)`` rows
    (retained, learning, backward transfer, forgetting); ``[]`` without a stream."""
    metrics = (result.get("stream") or {}).get("metrics") or {}
    return [(name.replace("_", " "), value.get("mean"), value.get("ci95"))
            for name, value in metrics.items()]
