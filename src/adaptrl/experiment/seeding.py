"""Seeding: every random draw of a run comes from generators derived from its seed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """The run's generator (sampling happens on the CPU generator; envs copy to ``device``)."""
    return torch.Generator().manual_seed(seed)


@contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Make ``nn.Module`` initialisation (which uses torch's global RNG) depend only on ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
