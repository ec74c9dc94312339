"""Task schedules: which training tasks the learner meets at each meta-iteration.

Meta-RL is usually trained on i.i.d. draws from the training split (:class:`IIDSchedule`,
the trainer's behaviour). Continual meta-learning trains on a *non-stationary stream*
instead: a sequence of *stages*, each a sub-distribution of the family's training tasks,
visited once, in order, for a fixed number of iterations each (:class:`StageStream`).
Riemer et al. (ICLR 2019, "Learning to Learn without Forgetting by Maximizing Transfer and
Minimizing Interference", §5) train Meta Experience Replay on such streams: Catcher whose
fruit falls faster over 5 stages, Flappy Bird whose pipe gap narrows over 5 stages.
:func:`parameter_stream` builds that common case: one scalar task parameter's range cut
into ``k`` consecutive intervals, visited in increasing or decreasing order.

Schedules here are *stateless*: the tasks of an iteration are a pure function of the
iteration and of the run's generator, so a checkpoint of the generator (which the trainer
already keeps) resumes a stream exactly; there is no schedule state to save.

Iterations past the end of a stream stay in its last stage (:meth:`StageStream.stage`):
a run longer than the stream keeps training on the final sub-distribution, and
:attr:`StageStream.total_iterations` lets a config check refuse the mismatch up front.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from pydantic import Field, model_validator

from adaptrl.errors import UserError
from adaptrl.schema import ConfigModel
from adaptrl.tasks.base import DeclaresRanges, Split, TaskFamily, Tasks, check_split

Order = Literal["increasing", "decreasing"]

# Rejection sampling of a stage gives up after this many candidate tasks (a stage whose
# interval the family's prior does not reach would otherwise loop forever).
MAX_CANDIDATES = 200_000


@runtime_checkable
class TaskSchedule(Protocol):
    """Which tasks the learner trains on at each meta-iteration (module doc)."""

    num_stages: int

    def stage(self, iteration: int) -> int:
        """The stage that ``iteration`` (0-based) trains on; always 0 for i.i.d."""
        ...

    def tasks(self, iteration: int, batch_size: int, generator: torch.Generator) -> Tasks:
        """The ``batch_size`` training tasks of ``iteration``, drawn from ``generator``."""
        ...

    def completed_stage(self, iterations_done: int) -> int | None:
        """The stage that ends once ``iterations_done`` iterations have run, else None:
        when the trainer scores the stream (a row of :class:`~adaptrl.evaluation.stream.
        StreamRecord`)."""
        ...

    def evaluation_tasks(self, stage: int, n: int, generator: torch.Generator) -> Tasks:
        """``n`` held-out (``test`` split) tasks of ``stage``, for scoring it."""
        ...


class IIDSchedule:
    """Today's behaviour: every iteration draws i.i.d. tasks from ``split``.

    ``tasks`` is exactly ``family.sample(batch_size, split, generator)`` (the same draws
    from the same random stream), so a run with this schedule is the run without one.
    """

    num_stages = 1

    def __init__(self, family: TaskFamily, split: Split = "train") -> None:
        self.family = family
        self.split = check_split(split)

    def stage(self, iteration: int) -> int:
        _check_iteration(iteration)
        return 0

    def tasks(self, iteration: int, batch_size: int, generator: torch.Generator) -> Tasks:
        _check_iteration(iteration)
        return self.family.sample(batch_size, self.split, generator)

    def completed_stage(self, iterations_done: int) -> int | None:
        return None  # an i.i.d. schedule never ends a stage

    def evaluation_tasks(self, stage: int, n: int, generator: torch.Generator) -> Tasks:
        if stage != 0:
            raise ValueError(f"stage must be 0 for an i.i.d. schedule, got {stage}")
        return self.family.sample(n, "test", generator)


@runtime_checkable
class Stage(Protocol):
    """A sub-distribution of a family's tasks, with the family's train / test splits.

    Anything with this ``sample`` is a stage: a :class:`ParameterRange`, or a
    :class:`~adaptrl.tasks.base.TaskFamily` itself (e.g. ``CartPolePhysics(gravity_range=
    (4.9, 7.8))`` as one stage of a cartpole stream), whose tasks must carry the parameters
    the trained family's ``make_env`` reads.
    """

    def sample(self, n: int, split: Split, generator: torch.Generator) -> Tasks: ...


_COMPONENT = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*)(\[(?P<index>\d+)\])?$")


def parameter_values(tasks: Tasks, parameter: str) -> torch.Tensor:
    """The scalar ``parameter`` of every task, ``[n]`` float64.

    ``parameter`` is a key of ``tasks.params`` holding one number per task (shape ``[n]``
    or ``[n, 1]``), or ``key[i]``, the ``i``-th component of a vector parameter
    (shape ``[n, d]``): ``goal[0]`` is navigation-2d's goal x-coordinate.
    """
    match = _COMPONENT.match(parameter)
    if match is None or match["key"] not in tasks.params:
        raise ValueError(f"parameter {parameter!r} is not one of {scalar_parameters(tasks)}")
    value = tasks.params[match["key"]]
    n = len(tasks)
    if match["index"] is None:
        if value.numel() != n:
            raise ValueError(f"parameter {parameter!r} has shape {list(value.shape)}, not one "
                             f"number per task; allowed: {scalar_parameters(tasks)}")
        return value.reshape(n).double()
    index = int(match["index"])
    if value.dim() != 2 or index >= value.shape[1]:
        raise ValueError(f"parameter {parameter!r}: {match['key']} has shape "
                         f"{list(value.shape)}; allowed: {scalar_parameters(tasks)}")
    return value[:, index].double()


def scalar_parameters(tasks: Tasks) -> list[str]:
    """The names :func:`parameter_values` accepts for these tasks: scalar keys, and
    ``key[i]`` for every component of a vector key (higher-rank keys are left out)."""
    names = []
    for key, value in sorted(tasks.params.items()):
        if value.dim() == 1 or (value.dim() == 2 and value.shape[1] == 1):
            names.append(key)
        elif value.dim() == 2:
            names += [f"{key}[{i}]" for i in range(value.shape[1])]
    return names


def family_parameters(family: TaskFamily) -> list[str]:
    """The scalar parameters of ``family`` (read from one task it samples)."""
    return scalar_parameters(family.sample(1, "train", torch.Generator().manual_seed(0)))


def declared_range(family: TaskFamily, parameter: str) -> tuple[float, float] | None:
    """The range ``family`` declares for ``parameter`` (:class:`DeclaresRanges`), or None."""
    if not isinstance(family, DeclaresRanges) or not isinstance(family.ranges, Mapping):
        return None
    match = _COMPONENT.match(parameter)
    key = match["key"] if match else parameter
    if key not in family.ranges:
        return None
    low, high = family.ranges[key]
    return float(low), float(high)


@dataclass(frozen=True)
class ParameterRange:
    """The family's ``split`` tasks conditioned on ``low <= parameter < high``.

    ``closed`` includes ``high`` (the last interval of a partition, so that the intervals
    cover the range with no gap and no overlap). Sampling is rejection from
    ``family.sample``: every other parameter keeps its prior, the stage inherits the
    family's train / test disjointness, and any family works without a hook. It costs
    about ``1 / (the prior's mass in the interval)`` candidate draws per task (5x for
    one of 5 equal stages of a uniform parameter).
    """

    family: TaskFamily
    parameter: str
    low: float
    high: float
    closed: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"low, high must be finite with low < high, got "
                             f"[{self.low}, {self.high}] for {self.parameter!r}")

    def contains(self, tasks: Tasks) -> torch.Tensor:
        """``[n]`` bool: the task's parameter lies in this interval."""
        value = parameter_values(tasks, self.parameter)
        above = value >= self.low
        return above & ((value <= self.high) if self.closed else (value < self.high))

    def sample(self, n: int, split: Split, generator: torch.Generator) -> Tasks:
        """``n`` tasks of ``split`` inside the interval, by rejection (``ValueError`` after
        ``MAX_CANDIDATES`` candidates if the prior hardly reaches the interval)."""
        kept: list[Tasks] = []
        have, drawn, accepted = 0, 0, 0
        while have < n:
            if drawn >= MAX_CANDIDATES:
                raise ValueError(
                    f"{self.parameter} in [{self.low}, {self.high}]: only {accepted} of "
                    f"{drawn} {split} tasks of "
                    f"{getattr(self.family, 'name', self.family)!r} fell in the interval; "
                    "does the family's prior reach it?")
            need = n - have
            # aim at twice the acceptance seen so far (the first round guesses 1 in 8)
            rate = (accepted + 1) / (drawn + 8)
            m = min(max(16, math.ceil(2 * need / rate)), MAX_CANDIDATES - drawn)
            cand = self.family.sample(m, split, generator)
            inside = torch.nonzero(self.contains(cand)).flatten()
            drawn, accepted = drawn + m, accepted + len(inside)
            if len(inside):
                kept.append(cand[inside[:need]])
                have += min(len(inside), need)
        return Tasks.cat(kept)

    def describe(self) -> dict[str, Any]:
        """JSON-ready: the interval, for logs and eval.json."""
        return {"parameter": self.parameter, "low": self.low, "high": self.high,
                "closed": self.closed}


class StageStream:
    """A sequence of stages, each trained for a number of iterations, in order.

    Stage ``k`` covers iterations ``[starts[k], ends[k])``. Iterations from
    ``total_iterations`` on stay in the last stage (module doc); negative ones are errors.
    """

    def __init__(self, stages: Sequence[Stage], iterations_per_stage: int | Sequence[int],
                 split: Split = "train") -> None:
        if not stages:
            raise ValueError("stages must hold at least one stage")
        for k, stage in enumerate(stages):
            if not isinstance(stage, Stage):
                raise TypeError(f"stages[{k}] has no sample(n, split, generator): {stage!r}")
        counts = _stage_lengths(iterations_per_stage, len(stages))
        self.stages = list(stages)
        self.split = check_split(split)
        self.num_stages = len(stages)
        self.iterations_per_stage = counts
        self.ends = tuple(itertools.accumulate(counts))
        self.starts = (0, *self.ends[:-1])

    @property
    def total_iterations(self) -> int:
        """The iterations the stream lasts (later ones repeat its last stage)."""
        return self.ends[-1]

    def stage(self, iteration: int) -> int:
        _check_iteration(iteration)
        return min(bisect.bisect_right(self.ends, iteration), self.num_stages - 1)

    def tasks(self, iteration: int, batch_size: int, generator: torch.Generator) -> Tasks:
        return self.stages[self.stage(iteration)].sample(batch_size, self.split, generator)

    def completed_stage(self, iterations_done: int) -> int | None:
        index = bisect.bisect_left(self.ends, iterations_done)
        return index if index < self.num_stages and self.ends[index] == iterations_done \
            else None

    def evaluation_tasks(self, stage: int, n: int, generator: torch.Generator) -> Tasks:
        if not 0 <= stage < self.num_stages:
            raise ValueError(f"stage must be in [0, {self.num_stages}), got {stage}")
        return self.stages[stage].sample(n, "test", generator)

    def describe(self) -> list[dict[str, Any]]:
        """JSON-ready: each stage's iterations ``[start, end)`` and, where it says, its
        sub-distribution (for logs and eval.json)."""
        out = []
        for k, stage in enumerate(self.stages):
            describe = getattr(stage, "describe", None)
            about = describe() if callable(describe) else {"stage": repr(stage)}
            out.append({"index": k, "iterations": [self.starts[k], self.ends[k]], **about})
        return out


def stage_bounds(low: float, high: float, num_stages: int, order: Order = "increasing"
                 ) -> list[tuple[float, float]]:
    """``[low, high]`` cut into ``num_stages`` equal consecutive intervals, in ``order``
    (``decreasing``: the highest interval first)."""
    if num_stages < 1:
        raise ValueError(f"num_stages: must be >= 1, got {num_stages}")
    edges = [low + (high - low) * k / num_stages for k in range(num_stages)] + [high]
    bounds = list(itertools.pairwise(edges))
    return bounds[::-1] if order == "decreasing" else bounds


def parameter_stream(family: TaskFamily, parameter: str, num_stages: int,
                     iterations_per_stage: int | Sequence[int], order: Order = "increasing",
                     low: float | None = None, high: float | None = None) -> StageStream:
    """A stream over one scalar task parameter: its range cut into ``num_stages`` equal
    intervals, trained on in ``order`` (Riemer et al. 2019's "fruit falls faster over 5
    stages" is ``order="increasing"`` on the fruit speed).

    The range is ``[low, high]`` when both are given, else the family's declared range
    (:class:`~adaptrl.tasks.base.DeclaresRanges`). ``ValueError`` messages start with the
    argument at fault (``parameter``, ``low`` / ``high``, ``order``), the names
    :class:`ScheduleConfig` uses too.
    """
    allowed = family_parameters(family)
    name = getattr(family, "name", type(family).__name__)
    if parameter not in allowed:
        raise ValueError(f"parameter: {name} has no scalar task parameter {parameter!r}; "
                         f"allowed: {allowed}")
    if order not in ("increasing", "decreasing"):
        raise ValueError(f"order: must be 'increasing' or 'decreasing', got {order!r}")
    declared = declared_range(family, parameter)
    if (low is None) != (high is None):
        raise ValueError(f"low / high: give both or neither, got low={low}, high={high}")
    if low is None or high is None:
        if declared is None:
            raise ValueError(f"low / high: {name} declares no range for {parameter!r}; give "
                             "low and high (the interval its stages split)")
        low, high = declared
    if not low < high:
        raise ValueError(f"low / high: need low < high, got [{low}, {high}]")
    if declared is not None and not declared[0] <= low < high <= declared[1]:
        raise ValueError(f"low / high: [{low}, {high}] leaves {name}'s range for "
                         f"{parameter!r}, {list(declared)}")
    bounds = stage_bounds(low, high, num_stages, order)
    stages = [ParameterRange(family, parameter, lo, hi, closed=(hi == high))
              for lo, hi in bounds]
    return StageStream(stages, iterations_per_stage)


class ScheduleConfig(ConfigModel):
    """Which schedule the trainer draws training tasks from (a config section).

    ``kind: iid`` (default) is the usual i.i.d. meta-training. ``kind: stages`` trains on a
    stream over one task parameter (:func:`parameter_stream`) and scores every stage seen
    so far after each stage on ``eval_tasks_per_stage`` fixed test tasks per stage
    (:mod:`adaptrl.evaluation.stream`).
    """

    kind: Literal["iid", "stages"] = Field("iid", description="iid: i.i.d. training tasks; "
                                           "stages: a stream of stages over `parameter`")
    parameter: str | None = Field(
        None, description="the scalar task parameter the stages split, e.g. gravity, "
        "goal[0] (a vector parameter's component)")
    num_stages: int | None = Field(None, ge=1, description="stages in the stream")
    iterations_per_stage: int | list[int] | None = Field(
        None, description="meta-iterations per stage: one number, or one per stage")
    order: Order = Field("increasing", description="increasing: the lowest interval first")
    low: float | None = Field(None, description="range split into stages (default: the "
                              "family's declared range)")
    high: float | None = Field(None, description="see low")
    eval_tasks_per_stage: int = Field(20, ge=2, description="fixed test tasks per stage, "
                                      "scored after every stage")

    @model_validator(mode="after")
    def _consistent(self) -> ScheduleConfig:
        stream_fields = ("parameter", "num_stages", "iterations_per_stage", "low", "high")
        if self.kind == "iid":
            given = [f for f in stream_fields if getattr(self, f) is not None]
            if given:
                raise ValueError(f"{', '.join(given)}: only used with kind: stages "
                                 "(kind is iid)")
            return self
        missing = [f for f in stream_fields[:3] if getattr(self, f) is None]
        if missing:
            raise ValueError(f"{', '.join(missing)}: required with kind: stages")
        assert self.num_stages is not None and self.iterations_per_stage is not None
        _stage_lengths(self.iterations_per_stage, self.num_stages)
        if (self.low is None) != (self.high is None):
            raise ValueError(f"low / high: give both or neither, got low={self.low}, "
                             f"high={self.high}")
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ValueError(f"low / high: need low < high, got [{self.low}, {self.high}]")
        return self

    def total_iterations(self) -> int | None:
        """The iterations a ``stages`` stream lasts (None for ``iid``): a config check can
        ask ``iterations`` to equal it."""
        if self.kind == "iid":
            return None
        assert self.num_stages is not None and self.iterations_per_stage is not None
        return sum(_stage_lengths(self.iterations_per_stage, self.num_stages))


def build_schedule(config: ScheduleConfig, family: TaskFamily) -> TaskSchedule:
    """The schedule ``config`` describes, over ``family``; a ``UserError`` names the
    ``schedule.<field>`` at fault (an unknown parameter lists the family's allowed ones)."""
    if config.kind == "iid":
        return IIDSchedule(family)
    assert config.parameter is not None and config.num_stages is not None
    assert config.iterations_per_stage is not None
    try:
        stream = parameter_stream(family, config.parameter, config.num_stages,
                                  config.iterations_per_stage, config.order, config.low,
                                  config.high)
    except ValueError as err:
        raise UserError(f"schedule.{err}") from err
    for k, stage in enumerate(stream.stages):  # refuse an empty stage now, not mid-run
        try:  # a private generator: the run's random stream is left untouched
            stage.sample(1, "train", torch.Generator().manual_seed(0))
        except ValueError as err:
            raise UserError(f"schedule.low / high: stage {k}: {err}") from err
    return stream


# -- helpers ---------------------------------------------------------------------------
def _check_iteration(iteration: int) -> None:
    if iteration < 0:
        raise ValueError(f"iteration must be >= 0, got {iteration}")


def _stage_lengths(iterations_per_stage: int | Sequence[int], num_stages: int) -> list[int]:
    """Iterations of every stage; ``ValueError`` naming ``iterations_per_stage`` when the
    count is not one number or one per stage, or some count is below 1."""
    counts = ([iterations_per_stage] * num_stages if isinstance(iterations_per_stage, int)
              else list(iterations_per_stage))
    if len(counts) != num_stages:
        raise ValueError(f"iterations_per_stage: {len(counts)} counts for {num_stages} "
                         f"stages, got {iterations_per_stage}")
    if any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in counts):
        raise ValueError(f"iterations_per_stage: every count must be an integer >= 1, "
                         f"got {iterations_per_stage}")
    return counts
