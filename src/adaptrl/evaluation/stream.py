"""Scoring a task stream: the stage-by-stage score matrix and continual-learning metrics.

A learner trained on a stream of ``T`` stages (:class:`~adaptrl.rollouts.schedule.
StageStream`) is scored after each stage on fixed held-out tasks of every stage seen so
far. ``R[i, j]`` is the score on stage ``j`` after training through stage ``i``
(Lopez-Paz & Ranzato 2017, "Gradient Episodic Memory for Continual Learning", NeurIPS,
§2: the matrix ``R in R^{T x T}``). Scores are per-task returns of any evaluation
protocol (a ``score(stage) -> [tasks]`` function), so every agent is scored alike.

The metrics, after stage ``k`` (0-based; ``K = k + 1`` stages seen; at the end of the
stream ``k = T - 1``):

* retained — ``ACC = 1/K sum_{j<=k} R[k, j]``: Lopez-Paz & Ranzato 2017 §2 "average
  accuracy" (ACC); Riemer et al. 2019 (ICLR, "Learning to Learn without Forgetting by
  Maximizing Transfer and Minimizing Interference", §5) call it retained accuracy (RA).
* learning — ``LA = 1/K sum_{j<=k} R[j, j]``, the score on each stage just after
  learning it: Riemer et al. 2019 §5 "learning accuracy" (LA).
* backward transfer — ``BWT = 1/(K-1) sum_{j<k} (R[k, j] - R[j, j])``: Lopez-Paz &
  Ranzato 2017 §2 (BWT); negative when later stages hurt earlier ones.
* forgetting — ``F = 1/(K-1) sum_{j<k} (max_{j<=l<k} R[l, j] - R[k, j])``: Chaudhry et
  al. 2018 (ECCV, "Riemannian Walk for Incremental Learning: Understanding Forgetting and
  Intransigence", §4 "forgetting measure"), the best score a stage ever had minus its
  final score. Chaudhry et al. take the max over all ``l < k``; here rows before stage
  ``j`` was learned (``l < j``, a score of forward transfer, not of knowledge to lose)
  are left out; the two agree wherever only the stages seen so far are scored.

BWT and forgetting are undefined (``None``) after the first stage. Each metric comes
with the half-width of its 95% CI over tasks (:func:`~adaptrl.evaluation.statistics.
mean_ci95`) where per-task scores exist: every metric is a mean over stages of a
difference of rows within one column, and a column's tasks are the same in every row, so
the per-task values ``x_t = mean_j (R[a_j, j]_t - R[b_j, j]_t)`` (task ``t`` of every
stage's fixed set) are i.i.d. across ``t`` and their mean is the metric. It needs every
stage to hold the same number of tasks; otherwise the CI is ``None``. Forgetting's CI is
conditional on the row its max picked (it ignores that choice).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from adaptrl.evaluation.statistics import mean_ci95

Scores = torch.Tensor | float
METRICS: tuple[str, ...] = ("retained", "learning", "backward_transfer", "forgetting")


class StreamRecord:
    """The score matrix ``R`` of a stream of ``num_stages`` stages, filled row by row as
    training passes each stage's end (module doc: definitions and references)."""

    def __init__(self, num_stages: int) -> None:
        if isinstance(num_stages, bool) or not isinstance(num_stages, int) or num_stages < 1:
            raise ValueError(f"num_stages must be an integer >= 1, got {num_stages!r}")
        self.num_stages = num_stages
        self._rows: dict[int, list[torch.Tensor]] = {}

    # -- filling ---------------------------------------------------------------------
    def record(self, after_stage: int, scores_per_stage: Sequence[Scores]) -> None:
        """Row ``after_stage`` of ``R``: ``scores_per_stage[j]``, the per-task returns
        ``[tasks]`` (or one number) on stage ``j``, for every stage ``j <= after_stage``
        (later stages may follow, up to ``num_stages``).

        A stage's tasks must be the same in every row (the same count is checked), so
        that rows pair task by task. Each row is recorded once; scores must be finite.
        """
        if not 0 <= after_stage < self.num_stages:
            raise ValueError(f"after_stage must be in [0, {self.num_stages}), "
                             f"got {after_stage}")
        if after_stage in self._rows:
            raise ValueError(f"row after_stage={after_stage} is already recorded")
        if not after_stage + 1 <= len(scores_per_stage) <= self.num_stages:
            raise ValueError(f"after stage {after_stage}, scores for {after_stage + 1} to "
                             f"{self.num_stages} stages are needed, got "
                             f"{len(scores_per_stage)}")
        row = [_as_scores(s, f"scores_per_stage[{j}]") for j, s in enumerate(scores_per_stage)]
        for j, scores in enumerate(row):
            known = self._column_shape(j)
            if known is not None and known != scores.shape:
                raise ValueError(f"stage {j}: {_count(scores.shape)} task scores, earlier rows "
                                 f"had {_count(known)} (each stage keeps its fixed tasks)")
        self._rows[after_stage] = row

    def score_stages(self, after_stage: int, score: Callable[[int], Scores],
                     include_future: bool = False) -> None:
        """Record row ``after_stage`` by calling ``score(j)`` for the stages seen so far
        (every stage with ``include_future``, for forward-transfer studies)."""
        last = self.num_stages if include_future else after_stage + 1
        self.record(after_stage, [score(j) for j in range(last)])

    # -- reading ---------------------------------------------------------------------
    @property
    def recorded(self) -> list[int]:
        """The rows recorded so far, ascending."""
        return sorted(self._rows)

    def entry(self, after_stage: int, stage: int) -> torch.Tensor | None:
        """The scores ``R[after_stage, stage]`` (float64, ``[tasks]`` or 0-d), or None."""
        row = self._rows.get(after_stage)
        return row[stage] if row is not None and stage < len(row) else None

    def mean_matrix(self) -> list[list[float | None]]:
        """``R`` as task means, ``None`` where not scored."""
        return [[_mean(self.entry(i, j)) for j in range(self.num_stages)]
                for i in range(self.num_stages)]

    def metrics(self, after_stage: int | None = None) -> dict[str, dict[str, float | None]]:
        """The metrics after ``after_stage`` (default: the last recorded row), each as
        ``{"mean", "ci95"}`` (module doc); rows ``0..after_stage`` must be recorded."""
        if after_stage is None:
            if not self._rows:
                raise ValueError("no row recorded yet")
            after_stage = max(self._rows)
        k = after_stage
        missing = [i for i in range(k + 1) if i not in self._rows]
        if missing:
            raise ValueError(f"metrics after stage {k} need rows 0..{k}; missing {missing}")
        seen, earlier = range(k + 1), range(k)
        out = {"retained": self._column_mean([(k, j, None) for j in seen]),
               "learning": self._column_mean([(j, j, None) for j in seen])}
        if k == 0:
            out["backward_transfer"] = out["forgetting"] = {"mean": None, "ci95": None}
            return out
        out["backward_transfer"] = self._column_mean([(k, j, j) for j in earlier])
        out["forgetting"] = self._column_mean([(self._best_row(j, k), j, k) for j in earlier])
        return out

    def summary(self) -> dict[str, Any]:
        """JSON-ready (no NaN: undefined entries are ``null``) for ``eval.json``: the
        matrix of means and CIs, each stage's task count, the final metrics and the
        metrics after every stage whose rows are complete."""
        complete = [k for k in range(self.num_stages)
                    if all(i in self._rows for i in range(k + 1))]
        return {
            "num_stages": self.num_stages,
            "after_stage": complete[-1] if complete else None,
            "mean": self.mean_matrix(),
            "ci95": [[_ci(self.entry(i, j)) for j in range(self.num_stages)]
                     for i in range(self.num_stages)],
            "num_tasks": [_count(s) if (s := self._column_shape(j)) is not None else None
                          for j in range(self.num_stages)],
            "metrics": self.metrics(complete[-1]) if complete else None,
            "metrics_by_stage": [{"after_stage": k, **self.metrics(k)} for k in complete],
        }

    # -- checkpoints -----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain values only (loads under ``torch.load(weights_only=True)``)."""
        return {"num_stages": self.num_stages,
                "rows": {i: [s.clone() for s in row] for i, row in self._rows.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["num_stages"] != self.num_stages:
            raise ValueError(f"a record of {state['num_stages']} stages cannot load into one "
                             f"of {self.num_stages}")
        self._rows = {}
        for i, row in sorted(state["rows"].items()):
            self.record(int(i), row)

    # -- internals -------------------------------------------------------------------
    def _column_shape(self, stage: int) -> torch.Size | None:
        for row in self._rows.values():
            if stage < len(row):
                return row[stage].shape
        return None

    def _best_row(self, stage: int, before: int) -> int:
        """The row ``l`` in ``[stage, before)`` with the highest mean score on ``stage``
        (the first such row on a tie)."""
        means = [float(self._rows[row][stage].mean()) for row in range(stage, before)]
        return stage + means.index(max(means))

    def _column_mean(self, terms: list[tuple[int, int, int | None]]
                     ) -> dict[str, float | None]:
        """``mean_j (R[a, j] - R[b, j])`` over ``terms = [(a, j, b or None), ...]``, with
        its 95% CI over tasks where every term has the same number of per-task scores."""
        diffs = []
        for a, j, b in terms:
            d = self._rows[a][j]
            diffs.append(d if b is None else d - self._rows[b][j])
        shapes = {d.shape for d in diffs}
        if len(shapes) == 1 and next(iter(shapes)).numel() > 0 and diffs[0].dim() == 1:
            mean, ci = mean_ci95(torch.stack(diffs).mean(0))
            return {"mean": _finite(mean), "ci95": _finite(ci)}
        return {"mean": _finite(torch.stack([d.mean() for d in diffs]).mean()), "ci95": None}


def _as_scores(value: Scores, name: str) -> torch.Tensor:
    """``value`` as a float64 CPU tensor, ``[tasks]`` or 0-d; finite."""
    t = torch.as_tensor(value, dtype=torch.float64).detach().cpu()
    if t.dim() > 1 or t.numel() == 0:
        raise ValueError(f"{name} must be per-task scores [tasks] or one number, got shape "
                         f"{list(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} holds a non-finite score: {t.tolist()}")
    return t.clone()


def _count(shape: torch.Size) -> int:
    """Tasks behind scores of ``shape`` (a 0-d score stands for one number)."""
    return shape[0] if len(shape) else 1


def _finite(x: torch.Tensor | float) -> float | None:
    value = float(x)
    return value if math.isfinite(value) else None


def _mean(scores: torch.Tensor | None) -> float | None:
    return None if scores is None else _finite(scores.mean())


def _ci(scores: torch.Tensor | None) -> float | None:
    if scores is None or scores.dim() == 0:
        return None
    return _finite(mean_ci95(scores)[1])
