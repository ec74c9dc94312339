"""Fixtures for the task tests: replaying one slot's random numbers to step it alone."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
import torch

from adaptrl.tasks import Tasks


class RandomReplay:
    """Records the uniforms an env module draws (through its module-level ``rand``) and
    plays a slice of them back, so that a slot stepped alone sees exactly the random numbers
    it saw in the batch: a stochastic env's "batched equals one at a time" test.

    Every draw must have the batch's ``[tasks, episodes, ...]`` as its leading dimensions.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> None:
        self.monkeypatch, self.module = monkeypatch, module
        self.real: Callable[..., torch.Tensor] = module.rand
        self.draws: list[torch.Tensor] = []

    def record(self) -> None:
        def rand(*args: Any, **kwargs: Any) -> torch.Tensor:
            out = self.real(*args, **kwargs)
            self.draws.append(out.clone())
            return out
        self.draws = []
        self.monkeypatch.setattr(self.module, "rand", rand)

    def replay(self, tasks: slice) -> None:
        """Play back the recorded draws of the tasks ``tasks`` (all their episodes)."""
        queue = iter(list(self.draws))

        def rand(shape: tuple[int, ...], generator: torch.Generator | None,
                 device: torch.device | str, dtype: torch.dtype = torch.float32
                 ) -> torch.Tensor:
            out = next(queue)[tasks]
            assert tuple(out.shape) == tuple(shape), (out.shape, shape)
            return out.to(device, dtype)
        self.monkeypatch.setattr(self.module, "rand", rand)

    def assert_batch_equals_alone(self, family: Any, tasks: Tasks, episodes: int,
                                  actions: torch.Tensor, seed: int = 0) -> None:
        """Each task of ``tasks``, stepped alone on its own recorded random numbers, gives
        exactly its slots' trajectories in the batch (``actions`` ``[T, tasks, episodes]``)."""
        self.record()
        batch = play(family.make_env(tasks, episodes), actions, seed)
        for i in range(len(tasks)):
            self.replay(slice(i, i + 1))
            alone = play(family.make_env(tasks[i], episodes), actions[:, i:i + 1], seed)
            for got, want in zip(alone, batch):
                assert torch.equal(got, want[:, i:i + 1]), f"task {i}"


def play(env: Any, actions: torch.Tensor, seed: int
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reset ``env`` with a generator seeded ``seed`` and play ``actions`` ``[T, ...]``:
    observations ``[T + 1, ...]``, rewards, terminated and truncated ``[T, ...]``."""
    obs = [env.reset(torch.Generator().manual_seed(seed))]
    results = [env.step(a) for a in actions]
    return (torch.stack(obs + [r.observation for r in results]),
            torch.stack([r.reward for r in results]),
            torch.stack([r.terminated for r in results]),
            torch.stack([r.truncated for r in results]))


@pytest.fixture
def random_replay(monkeypatch: pytest.MonkeyPatch) -> Callable[[ModuleType], RandomReplay]:
    """``random_replay(module)``: a :class:`RandomReplay` over ``module``'s ``rand``."""
    return lambda module: RandomReplay(monkeypatch, module)
