"""Disjoint train / test splits for task families with continuous parameters.

A task's split is a pure function of its parameters: the parameters' float32 bit
patterns are hashed, and the low bit of the hash assigns the task to ``train`` (0) or
``test`` (1). Sampling a split is rejection sampling from the family's prior, so both
splits follow the prior (each keeps half of it, interleaved at the finest scale), and
no parameter vector can ever be drawn by both splits: disjointness holds by
construction, not by luck.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from adaptrl.tasks.base import Split, Tasks, check_split

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
