"""Which checkpoint is "best": the rule that picks the evaluated checkpoint of a run.

The MAML paper evaluates "the checkpoint with the best average return". Two readings:

* ``training_return`` (default, the paper's practice): the highest post-adaptation return
  of one meta-iteration's training batch. Cheap, but a single batch is noisy (20 tasks),
  and it measures the 1-step return only.
* ``validation``: every ``selection.every`` iterations, run the evaluation protocol itself
  (``evaluation.steps`` adaptation units with ``evaluation.step_sizes``) on a fixed set of
  ``selection.num_tasks`` tasks drawn from the **train** split, and keep the checkpoint
  whose mean return over units 1..K is highest. Held-out test tasks are never used, and
  the validation draws its own random numbers, so the run's generator (and exact resume)
  is untouched. On navigation-2d the 2- and 3-step returns drift while the training batch
  return stays flat (docs/reproducing-maml.md); this rule sees them.

Every trained learner of a run (the meta-learner and the trained baselines) is selected
by the same rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import Field

from adaptrl.evaluation.protocol import adaptation_curve
from adaptrl.schema import ConfigModel, Seed
from adaptrl.tasks.base import TaskFamily

if TYPE_CHECKING:  # config.py imports this module for SelectionConfig
    from adaptrl.experiment.config import EvaluationConfig

SCORE_KEYS = ("return_post", "return_trial", "return")


class SelectionConfig(ConfigModel):
    """How the best checkpoint of a run is chosen (see :mod:`adaptrl.experiment.selection`)."""

    by: Literal["training_return", "validation"] = Field(
        "training_return", description="training_return: the best post-adaptation return of "
        "a training batch (the paper's practice); validation: the evaluation protocol's mean "
        "return over units 1..K on fixed train-split tasks, every `every` iterations")
    every: int = Field(10, ge=1, description="iterations between validations")
    num_tasks: int = Field(20, ge=1, description="train-split tasks of the validation")
    seed: Seed = Field(54321, description="seed of the validation tasks and sampling")


def training_score(metrics: dict[str, Any]) -> float | None:
    """The post-adaptation return of the iteration's training batch, if the learner has one."""
    for k in SCORE_KEYS:
        if k in metrics and metrics[k] is not None:
            return float(metrics[k])
    return None


class CheckpointScore:
    """Scores a learner after an iteration; ``None`` means "not judged at this iteration"."""

    def __init__(self, selection: SelectionConfig, family: TaskFamily,
                 evaluation: EvaluationConfig, device: torch.device) -> None:
        """``evaluation``: the protocol a validation runs (its units, episodes, batch unit
        and step sizes; its tasks are the validation's own)."""
        self.selection, self.family, self.evaluation, self.device = (
            selection, family, evaluation, device)
        self.tasks = (family.sample(selection.num_tasks, "train",
                                    torch.Generator().manual_seed(selection.seed))
                      if selection.by == "validation" else None)

    @property
    def validates(self) -> bool:
        """Whether scores come from validation runs (logged as ``validation_return``)."""
        return self.tasks is not None

    def __call__(self, learner: Any, iteration: int, metrics: dict[str, Any]) -> float | None:
        """``iteration`` counts finished iterations (1-based)."""
        if self.tasks is None:
            return training_score(metrics)
        if iteration % self.selection.every != 0:
            return None
        ev = self.evaluation
        curve = adaptation_curve(self.family, learner.agent(ev.step_sizes), self.tasks,
                                 ev.steps, ev.episodes, self.selection.seed, self.device,
                                 ev.batch_unit, ev.env_steps_per_unit)
        units = curve[1:] if ev.steps > 0 else curve
        return float(units.mean())
