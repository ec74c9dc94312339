"""Proximal policy optimisation update (Schulman et al. 2017, Algorithm 1), model-agnostic.

One call to :func:`ppo_update` runs ``epochs`` passes over a fixed batch of experience,
each split into ``minibatches`` random subsets of *rows* (dimension 1 of the time-major
``[T, rows, episodes]`` tensors: tasks, or whole trials for a recurrent policy), and
takes one Adam step per minibatch on

    L = L_clip + c_v * L_value - c_e * H[pi]                 (eq. 9, as a loss)

with the clipped surrogate ``L_clip`` of :func:`adaptrl.rollouts.losses.clipped_loss`
(eq. 7), the squared error of the value predictions against the return targets, and the
policy entropy; gradients are clipped to a global norm. The caller supplies
``evaluate(rows) -> (distribution, values)``, so the same update serves a feed-forward
policy (evaluate the selected rows' observations) and a recurrent one (re-run the GRU
over the selected trials, i.e. backpropagation through the whole trial).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from pydantic import Field
from torch import nn
from torch.distributions import Distribution

from adaptrl.optim.minibatches import minibatch_epochs
from adaptrl.rollouts.losses import clipped_loss, entropy
from adaptrl.rollouts.returns import masked_mean, normalize
from adaptrl.rollouts.trajectories import Trajectories
from adaptrl.schema import ConfigModel

Evaluate = Callable[[torch.Tensor], tuple[Distribution, torch.Tensor]]
"""``evaluate(rows)``: action distributions and values ``[T, len(rows), e]`` for those rows."""


class PPOConfig(ConfigModel):
    """PPO settings (defaults: Schulman et al. 2017's Atari/MuJoCo values where they agree)."""

    clip: float = Field(0.2, gt=0, lt=1, description="clip range epsilon of the ratio")
    epochs: int = Field(4, ge=1, description="passes over each batch of experience")
    minibatches: int = Field(4, ge=1, description="minibatches per epoch (split over rows)")
    lr: float = Field(3e-4, gt=0, description="Adam learning rate")
    adam_eps: float = Field(1e-5, gt=0, description="Adam epsilon")
    value_coef: float = Field(0.5, ge=0, description="weight c_v of the value loss")
    entropy_coef: float = Field(0.01, ge=0, description="weight c_e of the entropy bonus")
    max_grad_norm: float = Field(0.5, gt=0, description="global gradient-norm clip")
    normalize_advantages: bool = Field(
        True, description="standardise advantages over the whole batch (live steps)")


def make_optimizer(parameters: list[nn.Parameter], config: PPOConfig) -> torch.optim.Adam:
    """The Adam optimiser the PPO update steps."""
    return torch.optim.Adam(parameters, lr=config.lr, eps=config.adam_eps)


def hand_over_state(source: torch.optim.Optimizer, target: torch.optim.Optimizer,
                    parameters: list[nn.Parameter]) -> None:
    """Give ``target`` the per-parameter state (Adam's moments, step counts) that ``source``
    holds for ``parameters``, as copies.

    When a second optimiser takes over parameters the first has been stepping (the critic
    after RL²'s critic warm-up), a fresh Adam state would make its first step
    ``lr * sign(g)`` on every one of them at once, a jolt that undoes the warm-up's fit.
    """
    for p in parameters:
        if p in source.state:
            target.state[p] = {k: v.clone() if torch.is_tensor(v) else v
                               for k, v in source.state[p].items()}


def optimizer_state(optimizer: torch.optim.Optimizer) -> dict[int, dict[str, Any]]:
    """The optimiser's per-parameter state (tensors only: moments and step counts).

    The hyperparameters (``param_groups``) come from the config, so a checkpoint holds
    only tensors and loads with ``torch.load(weights_only=True)``.
    """
    return {int(k): dict(v) for k, v in optimizer.state_dict()["state"].items()}


def load_optimizer_state(optimizer: torch.optim.Optimizer,
                         state: dict[int, dict[str, Any]]) -> None:
    """Restore what :func:`optimizer_state` saved (hyperparameters stay the optimiser's)."""
    groups = optimizer.state_dict()["param_groups"]
    optimizer.load_state_dict({"state": {int(k): v for k, v in state.items()},
                               "param_groups": groups})


def ppo_loss(dist: Distribution, values: torch.Tensor, batch: Trajectories,
             adv: torch.Tensor, returns: torch.Tensor, config: PPOConfig,
             value_only: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The PPO objective (eq. 9) as a scalar loss, plus detached diagnostics.

    ``value_only``: the loss is the value term alone (``c_v * L_value``), for fitting a
    critic while the policy stays as it is (e.g. after the discount changed).
    """
    policy_loss = clipped_loss(dist, batch, adv, config.clip).mean()
    value_loss = masked_mean((values - returns) ** 2, batch.masks)
    ent = entropy(dist, batch.masks).mean()
    if value_only:
        loss = config.value_coef * value_loss
    else:
        loss = policy_loss + config.value_coef * value_loss - config.entropy_coef * ent
    with torch.no_grad():
        log_ratio = dist.log_prob(batch.actions) - batch.log_probs
        stats = {"policy_loss": policy_loss.detach(), "value_loss": value_loss.detach(),
                 "entropy": ent.detach(),
                 # the low-variance KL estimator E[(r - 1) - log r] (Schulman 2020)
                 "approx_kl": masked_mean(log_ratio.exp() - 1 - log_ratio, batch.masks),
                 "clip_fraction": masked_mean(
                     ((log_ratio.exp() - 1).abs() > config.clip).float(), batch.masks)}
    return loss, stats


def ppo_update(parameters: list[nn.Parameter], optimizer: torch.optim.Optimizer,
               batch: Trajectories, adv: torch.Tensor, returns: torch.Tensor,
               evaluate: Evaluate, config: PPOConfig, generator: torch.Generator,
               value_only: bool = False) -> dict[str, float]:
    """Run the PPO epochs on ``batch``; updates ``parameters`` in place, returns mean stats.

    ``adv`` and ``returns`` are ``[T, rows, e]`` like ``batch.rewards``; the minibatch
    split is a fresh random permutation of the rows per epoch drawn from ``generator``.
    ``value_only`` minimises the value loss alone (:func:`ppo_loss`); pass the critic's
    parameters and an optimiser over them.
    """
    rows = batch.num_tasks
    if config.minibatches > rows:
        raise ValueError(f"ppo.minibatches must be <= the number of rows in the batch "
                         f"({rows}), got {config.minibatches}")
    if config.normalize_advantages:
        adv = normalize(adv, batch.masks, dims=tuple(range(adv.dim())))
    def step(index: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        dist, values = evaluate(index)
        return ppo_loss(dist, values, batch.select_tasks(index), adv[:, index],
                        returns[:, index], config, value_only)
    return minibatch_epochs(step, parameters, optimizer, rows, config.epochs,
                            config.minibatches, config.max_grad_norm, generator, adv.device)
