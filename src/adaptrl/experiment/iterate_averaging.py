"""Iterate averaging: score the mean of the policy's weights over many iterations.

Stochastic weight averaging (Izmailov, Podoprikhin, Garipov, Vetrov, Wilson 2018,
"Averaging Weights Leads to Wider Optima and Better Generalization", Algorithm 1): with a
constant learning rate the iterates wander around a flat region of the loss; their running
mean ``w_avg <- (n w_avg + w) / (n + 1)`` sits nearer its centre than any single iterate.
With ``decay`` set, the average is exponential instead (Polyak averaging in the form
``w_avg <- decay w_avg + (1 - decay) w``).

Why the trainer offers it: some meta-learners' scores move between neighbouring
checkpoints by more than their own confidence interval (RL² on 25-episode tabular MDPs:
the arg-max score on one MDP set moves from -4.2 to -7.7 below BEB between iterations 500
and 650 of one run), so "the latest checkpoint" is one noisy draw. The average of the
policy after every ``every``-th iteration from ``start`` on is one well-defined agent
instead. (Measured there, it scores like the single checkpoints, 3-5 below BEB: the
README's RL² section and configs/rl2-mdp-n25-privileged.yaml.)

Counting: ``c`` is the number of finished meta-iterations (``c = 0`` is the initial
policy, e.g. one loaded through ``init_from``). The average includes the policy at every
``c >= start`` with ``(c - start) % every == 0``. Only the meta-learner's policy is
averaged (the trained baselines keep the paper's best-checkpoint rule). The trainer
stores the average in every checkpoint, so a resumed run averages exactly as an unbroken
one, and ``evaluation.checkpoint: average`` scores it. The library's
:class:`torch.optim.swa_utils.AveragedModel` keeps the running mean.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from adaptrl.schema import ConfigModel

_PREFIX = "module."


class AveragingConfig(ConfigModel):
    """Which iterations the averaged policy includes (module docstring above)."""

    start: int = Field(ge=0, description="first finished-iteration count included "
                       "(0 = the initial policy)")
    every: int = Field(10, ge=1, description="iterations between included policies")
    decay: float | None = Field(None, gt=0.0, lt=1.0, description="null: the uniform "
                                "mean (SWA); a value in (0, 1): the exponential average "
                                "w <- decay w + (1 - decay) w_new")


class PolicyAverage:
    """The running average of a learner's policy weights (buffers are copied, not averaged)."""

    def __init__(self, config: AveragingConfig, policy: nn.Module) -> None:
        self.config = config
        fn = None if config.decay is None else get_ema_multi_avg_fn(config.decay)
        self.model = AveragedModel(policy, multi_avg_fn=fn)
        self.last: int | None = None

    @property
    def count(self) -> int:
        """How many policies the average holds."""
        return int(self.model.n_averaged)

    def due(self, iteration: int) -> bool:
        start, every = self.config.start, self.config.every
        return iteration >= start and (iteration - start) % every == 0

    def update(self, policy: nn.Module, iteration: int) -> bool:
        """Add ``policy`` (after ``iteration`` finished meta-iterations) if it is due and not
        already in the average; returns whether it was added."""
        if not self.due(iteration) or (self.last is not None and iteration <= self.last):
            return False
        self.model.update_parameters(policy)
        self.last = iteration
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "last": self.last,
                "start": self.config.start, "every": self.config.every}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.last = state["last"]


def check_resumable(stored: dict[str, Any] | None, config: AveragingConfig | None) -> None:
    """Raise ``ValueError`` if a checkpoint's average (``stored``) was kept over another
    window than ``config`` asks for: resuming would mix two averaging rules."""
    if stored is None or config is None:
        return
    kept = (stored["start"], stored["every"])
    if kept != (config.start, config.every):
        raise ValueError(f"the run's average was kept with averaging.start = {kept[0]}, "
                         f"averaging.every = {kept[1]}; the config says {config.start}, "
                         f"{config.every}")


def averaged_policy_state(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The averaged policy's ``state_dict`` from a stored :meth:`PolicyAverage.state_dict`."""
    return {k[len(_PREFIX):]: v for k, v in state["model"].items() if k.startswith(_PREFIX)}


def describe(state: dict[str, Any]) -> dict[str, Any]:
    """What a stored average holds, for eval.json: how many policies, from which iterations."""
    return {"count": int(state["model"]["n_averaged"]), "start": state["start"],
            "every": state["every"], "last": state["last"]}
