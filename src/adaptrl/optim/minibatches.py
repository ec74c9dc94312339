"""The minibatch loop that PPO and imitation share: epochs over a fixed batch, each a fresh
random split of its rows, one clipped gradient step per minibatch, mean diagnostics."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Step = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]
"""``step(rows) -> (loss, diagnostics)`` on the selected rows of the batch."""


def minibatch_epochs(step: Step, parameters: list[nn.Parameter],
                     optimizer: torch.optim.Optimizer, rows: int, epochs: int,
                     minibatches: int, max_grad_norm: float, generator: torch.Generator,
                     device: torch.device) -> dict[str, float]:
    """Run ``epochs`` passes; each draws a permutation of ``rows`` from ``generator``, splits
    it into ``minibatches`` and takes one optimiser step per part on ``step``'s loss, the
    gradient clipped to ``max_grad_norm``. Returns each diagnostic (and ``grad_norm``)
    averaged over the steps."""
    totals: dict[str, float] = {}
    count = 0
    for _ in range(epochs):
        perm = torch.randperm(rows, generator=generator, device=generator.device)
        for index in perm.to(device).chunk(minibatches):
            loss, stats = step(index)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            stats["grad_norm"] = nn.utils.clip_grad_norm_(parameters, max_grad_norm).detach()
            optimizer.step()
            for key, value in stats.items():
                totals[key] = totals.get(key, 0.0) + float(value)
            count += 1
    return {key: value / count for key, value in totals.items()}
