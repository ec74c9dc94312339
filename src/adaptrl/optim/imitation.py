"""The supervised update of imitation (DAgger's learner step, Ross et al. 2011), model-agnostic.

:func:`imitation_update` runs ``epochs`` passes over a batch of labelled sequences, each
split into ``minibatches`` random subsets of rows (dimension 1 of the time-major tensors:
whole trials for a recurrent policy), one Adam step per minibatch on the cross-entropy of
:func:`adaptrl.rollouts.imitation.imitation_loss`, gradients clipped to a global norm. The
caller supplies ``distribution(inputs) -> Categorical`` over the selected rows, so a
recurrent policy re-runs whole trials (backpropagation through the trial), as in PPO.
"""

from __future__ import annotations

from typing import Callable

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.distributions import Categorical

from adaptrl.rollouts.imitation import imitation_loss


class ImitationUpdate(BaseModel):
    """The settings of :func:`imitation_update`."""

    model_config = ConfigDict(extra="forbid")
    lr: float = Field(1e-3, gt=0, description="Adam step size of the imitation updates")
    epochs: int = Field(4, ge=1, description="passes over each batch of labelled trials")
    minibatches: int = Field(4, ge=1, description="minibatches of trials per pass")
    max_grad_norm: float = Field(1.0, gt=0, description="global gradient-norm clip")


def imitation_update(parameters: list[nn.Parameter], optimizer: torch.optim.Optimizer,
                     inputs: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor,
                     distribution: Callable[[torch.Tensor], Categorical],
                     config: ImitationUpdate, generator: torch.Generator) -> dict[str, float]:
    """Fit ``distribution`` to the ``targets`` (``[T, rows, ..., A]`` probabilities) on the
    live steps (``masks [T, rows, ...]``) of ``inputs [T, rows, ..., d]``; returns the mean
    ``imitation_loss``, ``kl``, ``agreement`` and ``grad_norm`` over the steps taken."""
    rows = inputs.shape[1]
    if config.minibatches > rows:
        raise ValueError(f"imitation.minibatches must be <= the rows (trials) per batch "
                         f"({rows}), got {config.minibatches}")
    totals: dict[str, float] = {}
    count = 0
    for _ in range(config.epochs):
        perm = torch.randperm(rows, generator=generator, device=generator.device)
        for index in perm.to(inputs.device).chunk(config.minibatches):
            loss, stats = imitation_loss(distribution(inputs[:, index]).logits,
                                         targets[:, index], masks[:, index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            stats["grad_norm"] = nn.utils.clip_grad_norm_(parameters, config.max_grad_norm)
            optimizer.step()
            for key, value in stats.items():
                totals[key] = totals.get(key, 0.0) + float(value)
            count += 1
    return {key: value / count for key, value in totals.items()}
