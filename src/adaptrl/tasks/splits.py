"""Disjoint train / test splits for task families with continuous parameters.

A task's split is a pure function of its parameters: the parameters' float32 bit
patterns are hashed, and the low bit of the hash assigns the task to ``train`` (0) or
``test`` (1). Sampling a split is rejection sampling from the family's prior, so both
splits follow the prior (each keeps half of it, interleaved at the finest scale), and
no parameter vector can ever be drawn by both splits: disjointness holds by
construction, not by luck.

A family may instead take *separate* train and test parameter sets, as context-aware
model-based RL does (Lee et al. 2020, CaDM): train tasks on a grid of values, test tasks
out of distribution in boxes that no grid point enters (:class:`GridBoxSplit`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import torch

from adaptrl.tasks.base import Split, Tasks, check_split
from adaptrl.tasks.common import Range, check_range

_MIX = 0x9E3779B97F4A7C15 - (1 << 64)  # golden-ratio multiplier as a signed int64
_MASK32 = (1 << 32) - 1


def task_hash_bit(tasks: Tasks) -> torch.Tensor:
    """0/1 per task, a deterministic hash of all its parameters' float32 bits."""
    n = len(tasks)
    h = torch.zeros(n, dtype=torch.int64)
    for key in sorted(tasks.params):
        bits = tasks.params[key].detach().to("cpu", torch.float32).reshape(n, -1)
        words = bits.contiguous().view(torch.int32).to(torch.int64) & _MASK32
        for j in range(words.shape[1]):
            h = (h ^ words[:, j]) * _MIX
            h = h ^ ((h >> 29) & ((1 << 35) - 1))
    return (h >> 17) & 1


def split_of(tasks: Tasks) -> list[Split]:
    """The split each task belongs to."""
    return ["test" if b else "train" for b in task_hash_bit(tasks).tolist()]


def sample_split(
    draw: Callable[[int, torch.Generator], Tasks],
    n: int,
    split: Split,
    generator: torch.Generator,
) -> Tasks:
    """Draw ``n`` tasks of ``split`` by rejection from ``draw(m, generator)``, the prior.

    ``draw`` must return tasks on the CPU whose parameters are exactly representable
    in float32 (they are hashed as float32).
    """
    want = 1 if check_split(split) == "test" else 0
    kept: list[Tasks] = []
    have = 0
    while have < n:
        cand = draw(max(2 * (n - have) + 8, 16), generator)
        cand = Tasks({k: v.to(torch.float32) if v.is_floating_point() else v
                      for k, v in cand.params.items()})
        sel = torch.nonzero(task_hash_bit(cand) == want).flatten()
        if len(sel):
            kept.append(cand[sel])
            have += len(sel)
    return Tasks.cat(kept)[:n]


@dataclass(frozen=True)
class HashSplit:
    """The default split of a family: a task's side is a hash bit of its parameters, so
    train and test come from one prior and never share a task (:func:`sample_split`)."""

    def sample(self, draw: Callable[[int, torch.Generator], Tasks], n: int, split: Split,
               generator: torch.Generator) -> Tasks:
        return sample_split(draw, n, split, generator)

    def split_of(self, tasks: Tasks) -> list[Split]:
        return split_of(tasks)


TrainGrid = Mapping[str, Sequence[float]]
"""``{parameter: values}``: train tasks take every combination, each value equally likely."""
TestBoxes = Sequence[Mapping[str, Range]]
"""``[{parameter: (low, high)}, ...]``: a test task is uniform in one box, boxes equally likely."""


@dataclass(frozen=True)
class GridBoxSplit:
    """Separate train and test parameter sets: the protocol of context-aware model-based
    RL (Lee et al. 2020, CaDM; its ``cadm/envs/config.py``).

    A train task draws each grid parameter uniformly from its values, independently (so
    every point of the product grid is equally likely: CaDM draws an index per parameter).
    A test task picks one box uniformly, then each parameter uniformly within the box's
    interval. No grid point lies in a box (checked by :func:`grid_box_split`), so the two
    splits never share a task, by construction. Values are float32, as every task's are;
    ``grid`` and ``boxes`` hold their float32 roundings.

    Parameters the grid does not name keep the family's prior: :meth:`sample` draws them
    with the family's own ``draw`` and replaces only the grid's keys.
    """

    grid: dict[str, torch.Tensor]  # key -> float32 values, keys sorted
    boxes: tuple[dict[str, tuple[float, float]], ...]  # float32-rounded bounds

    @property
    def keys(self) -> list[str]:
        return sorted(self.grid)

    def _box_bounds(self, key: str) -> tuple[torch.Tensor, torch.Tensor]:
        low = torch.tensor([box[key][0] for box in self.boxes], dtype=torch.float32)
        high = torch.tensor([box[key][1] for box in self.boxes], dtype=torch.float32)
        return low, high

    def draw_grid(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``n`` train parameter sets: each key's value uniform over its grid values."""
        out = {}
        for key in self.keys:
            values = self.grid[key]
            out[key] = values[torch.randint(len(values), (n,), generator=generator)]
        return out

    def draw_boxes(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``n`` test parameter sets: a box uniformly, then uniform inside it."""
        which = torch.randint(len(self.boxes), (n,), generator=generator)
        out = {}
        for key in self.keys:
            low, high = (b[which] for b in self._box_bounds(key))
            u = torch.rand(n, generator=generator)
            # float32 rounding of low + (high - low) u may step an ulp past high: clamp
            out[key] = torch.minimum(torch.maximum(low + (high - low) * u, low), high)
        return out

    def sample(self, draw: Callable[[int, torch.Generator], Tasks], n: int, split: Split,
               generator: torch.Generator) -> Tasks:
        """``n`` tasks of ``split``: the family's prior ``draw`` for the parameters the grid
        does not name, the grid (``train``) or the boxes (``test``) for those it does."""
        train = check_split(split) == "train"
        base = draw(n, generator)
        named = self.draw_grid(n, generator) if train else self.draw_boxes(n, generator)
        return Tasks({**base.params, **named})

    def box_index(self, tasks: Tasks) -> torch.Tensor:
        """``[n]`` int64: the first test box each task lies in, -1 for none."""
        n = len(tasks)
        inside = torch.ones(n, len(self.boxes), dtype=torch.bool)
        for key in self.keys:
            value = tasks.params[key].detach().to("cpu", torch.float32).reshape(n, 1)
            low, high = self._box_bounds(key)
            inside &= (value >= low) & (value <= high)
        first = torch.where(inside.any(1), inside.float().argmax(1), -1)
        return first.long()

    def on_grid(self, tasks: Tasks) -> torch.Tensor:
        """``[n]`` bool: every grid parameter of the task is one of its grid values."""
        n = len(tasks)
        hit = torch.ones(n, dtype=torch.bool)
        for key in self.keys:
            value = tasks.params[key].detach().to("cpu", torch.float32).reshape(n, 1)
            hit &= (value == self.grid[key]).any(1)
        return hit

    def split_of(self, tasks: Tasks) -> list[Split]:
        """``test`` for a task inside a test box, ``train`` otherwise."""
        return ["test" if i >= 0 else "train" for i in self.box_index(tasks).tolist()]

    def hull(self) -> dict[str, Range]:
        """Per key, the interval holding every train and test value (a family's ``ranges``)."""
        out = {}
        for key in self.keys:
            low, high = self._box_bounds(key)
            out[key] = (float(min(self.grid[key].min(), low.min())),
                        float(max(self.grid[key].max(), high.max())))
        return out


TaskSplit = HashSplit | GridBoxSplit
"""How a family turns its prior into train and test tasks: ``sample(draw, n, split,
generator)`` and ``split_of(tasks)``, the same for both kinds."""


def grid_box_split(family: str, train_grid: TrainGrid | None, test_boxes: TestBoxes | None,
                   allowed: Collection[str], minimum: float | None = None,
                   strict_minimum: bool = False) -> GridBoxSplit | None:
    """The family's ``train_grid`` / ``test_boxes`` constructor arguments checked and built
    into a :class:`GridBoxSplit`; ``None`` when both are ``None`` (the hashed split).

    ``allowed``: the parameters a grid may name; ``minimum`` / ``strict_minimum`` bound
    every value as :func:`~adaptrl.tasks.common.check_range` does. A ``ValueError`` names
    the argument: one given without the other, an unknown or missing key, an empty or
    repeated grid, a bad interval, a grid point inside a test box.
    """
    if train_grid is None and test_boxes is None:
        return None
    if train_grid is None or test_boxes is None:
        raise ValueError(f"{family}: train_grid and test_boxes go together (separate train "
                         "and test parameter sets); give both or neither")
    if not isinstance(train_grid, Mapping) or not train_grid:
        raise ValueError(f"train_grid must be a non-empty mapping {{parameter: [values]}}, "
                         f"got {train_grid!r}")
    unknown = sorted(set(train_grid) - set(allowed))
    if unknown:
        raise ValueError(f"train_grid: unknown parameter(s) {unknown}; allowed: "
                         f"{sorted(allowed)}")
    grid = {}
    for key in sorted(train_grid):
        values = train_grid[key]
        where = f"train_grid.{key}"
        if isinstance(values, (str, Mapping)) or not isinstance(values, Sequence) or not values:
            raise ValueError(f"{where} must be a non-empty list of numbers, got {values!r}")
        for v in values:  # each value checked as the one-point range (v, v)
            check_range(where, (v, v), minimum, strict_minimum=strict_minimum)
        tensor = torch.tensor([float(v) for v in values], dtype=torch.float32)
        if len(tensor.unique()) != len(tensor):
            raise ValueError(f"{where} repeats a value (in float32): {list(values)!r}")
        grid[key] = tensor
    if isinstance(test_boxes, (str, Mapping)) or not isinstance(test_boxes, Sequence) \
            or not test_boxes:
        raise ValueError(f"test_boxes must be a non-empty list of {{parameter: [low, high]}}, "
                         f"got {test_boxes!r}")
    boxes = []
    for i, box in enumerate(test_boxes):
        if not isinstance(box, Mapping) or set(box) != set(grid):
            raise ValueError(f"test_boxes[{i}] must give an interval for exactly the "
                             f"parameters of train_grid {sorted(grid)}, got {box!r}")
        checked = {}
        for key in sorted(grid):
            lo, hi = check_range(f"test_boxes[{i}].{key}", box[key], minimum,
                                 strict_minimum=strict_minimum)
            f32 = torch.tensor([lo, hi], dtype=torch.float32).tolist()
            checked[key] = (f32[0], f32[1])
        # the grid is a product: some grid point is in the box iff every key has a value in it
        if all(((grid[k] >= lo) & (grid[k] <= hi)).any() for k, (lo, hi) in checked.items()):
            raise ValueError(f"test_boxes[{i}] {box!r} contains points of train_grid: the "
                             "train and test tasks must be disjoint")
        if not all(math.isfinite(b) for lo_hi in checked.values() for b in lo_hi):
            raise ValueError(f"test_boxes[{i}] overflows float32: {box!r}")
        boxes.append(checked)
    return GridBoxSplit(grid, tuple(boxes))
