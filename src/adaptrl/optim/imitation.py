"""The supervised update of imitation (DAgger's learner step, Ross et al. 2011), model-agnostic.

:func:`imitation_update` runs ``epochs`` passes over a batch of labelled sequences, each
split into ``minibatches`` random subsets of rows (dimension 1 of the time-major tensors:
whole trials for a recurrent policy; PPO's loop,
:func:`~adaptrl.optim.minibatches.minibatch_epochs`),
one Adam step per minibatch on the cross-entropy of
:func:`adaptrl.rollouts.imitation.imitation_loss`, gradients clipped to a global norm. The
caller supplies ``distribution(inputs) -> Categorical`` over the selected rows, so a
recurrent policy re-runs whole trials (backpropagation through the trial), as in PPO.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from pydantic import Field
from torch import nn
from torch.distributions import Categorical, Distribution

from adaptrl.optim.minibatches import minibatch_epochs
from adaptrl.rollouts.imitation import imitation_loss
from adaptrl.schema import ConfigModel


class ImitationUpdate(ConfigModel):
    """The settings of :func:`imitation_update`."""

    lr: float = Field(1e-3, gt=0, description="Adam step size of the imitation updates")
    epochs: int = Field(4, ge=1, description="passes over each batch of labelled trials")
    minibatches: int = Field(4, ge=1, description="minibatches of trials per pass")
    max_grad_norm: float = Field(1.0, gt=0, description="global gradient-norm clip")


def imitation_update(parameters: list[nn.Parameter], optimizer: torch.optim.Optimizer,
                     inputs: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor,
                     distribution: Callable[[torch.Tensor], Distribution],
                     config: ImitationUpdate, generator: torch.Generator) -> dict[str, float]:
    """Fit ``distribution`` to the ``targets`` (``[T, rows, ..., A]`` probabilities) on the
    live steps (``masks [T, rows, ...]``) of ``inputs [T, rows, ..., d]``; returns the mean
    ``imitation_loss``, ``kl``, ``agreement`` and ``grad_norm`` over the steps taken."""
    rows = inputs.shape[1]
    if config.minibatches > rows:
        raise ValueError(f"imitation.minibatches must be <= the rows (trials) per batch "
                         f"({rows}), got {config.minibatches}")
    def step(index: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        dist = distribution(inputs[:, index])
        if not isinstance(dist, Categorical):  # the labels are action probabilities
            raise TypeError("imitation needs a policy over discrete actions (a Categorical), "
                            f"got {type(dist).__name__}")
        return imitation_loss(dist.logits, targets[:, index], masks[:, index])
    return minibatch_epochs(step, parameters, optimizer, rows, config.epochs,
                            config.minibatches, config.max_grad_norm, generator, inputs.device)
