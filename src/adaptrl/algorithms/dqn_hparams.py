"""DQN hyperparameters tuned on the training tasks: the search space and the file that holds
the result, read by the ``dqn_tuned`` baseline (:mod:`adaptrl.algorithms.baselines`).

The issue's honest baseline is DQN from scratch with hyperparameters chosen on the
*training* tasks by a black-box search (:mod:`adaptrl.experiment.hyperparameter_search`
runs it). This module has no search in it, only what the search and the baseline share:

* :class:`DQNSearchSpace` — the ranges searched: the learning rate and ``1 - gamma`` on a
  log scale, the epsilon schedule (``exploration_fraction``, ``epsilon_end``), the target
  period (log scale) and the env steps per gradient step;
* :class:`TunedDQN` — the file (YAML): the family and preset it was tuned for, the budget,
  the best trial's hyperparameters and every trial's score;
* :func:`tuned_dqn_config` — a DQN config with the file's hyperparameters applied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, TypeVar

import yaml
from pydantic import Field, ValidationError, model_validator

from adaptrl.agents.dqn import DQNConfig
from adaptrl.schema import ConfigModel

TUNED_FIELDS = ("lr", "gamma", "exploration_fraction", "epsilon_end", "target_period",
                "train_frequency")
"""The DQN fields the search sets; every other field is the preset's."""


class DQNSearchSpace(ConfigModel):
    """The ranges of the search (``[low, high]`` each; the log-scale ones sampled
    log-uniformly, as is usual for step sizes and horizons ``1 / (1 - gamma)``)."""

    lr: tuple[float, float] = Field((1e-4, 3e-3), description="Adam step size (log scale)")
    one_minus_gamma: tuple[float, float] = Field(
        (0.005, 0.1), description="1 - gamma (log scale): gamma in [0.9, 0.995] by default")
    exploration_fraction: tuple[float, float] = Field(
        (0.05, 0.5), description="fraction of the run over which epsilon decays")
    epsilon_end: tuple[float, float] = Field((0.01, 0.2), description="final epsilon")
    target_period: tuple[int, int] = Field((50, 1000), description="env steps between "
                                           "target updates (log scale)")
    train_frequency: list[int] = Field(default_factory=lambda: [2, 4, 8],
                                       description="env steps per gradient step (a choice)")

    @model_validator(mode="after")
    def _ordered(self) -> DQNSearchSpace:
        for name in ("lr", "one_minus_gamma", "exploration_fraction", "epsilon_end",
                     "target_period"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name}: need 0 < low <= high, got [{low}, {high}]")
        if self.one_minus_gamma[1] > 1 or self.epsilon_end[1] > 1 \
                or self.exploration_fraction[1] > 1:
            raise ValueError("one_minus_gamma, epsilon_end and exploration_fraction must be "
                             "<= 1")
        if not self.train_frequency or min(self.train_frequency) < 1:
            raise ValueError(f"train_frequency: need a non-empty list of ints >= 1, got "
                             f"{self.train_frequency}")
        return self


class TunedDQN(ConfigModel):
    """What a search wrote (``adaptrl.experiment.hyperparameter_search``)."""

    family: str = Field(description="the task family tuned on")
    preset: str = Field(description="the experiment config whose DQN settings were the base")
    env_steps: int = Field(ge=1, description="env steps of online DQN per trial and task")
    tasks: int = Field(ge=1, description="training tasks per trial")
    seeds: list[int] = Field(description="seeds per trial (the score is their mean)")
    sampler: str = Field(description="the search algorithm")
    objective: str = Field(description="what was maximised")
    best_value: float
    hyperparameters: dict[str, float | int]
    trials: list[dict[str, Any]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_fields(self) -> TunedDQN:
        check_fields(self.hyperparameters)
        return self


File = TypeVar("File", bound=ConfigModel)


class Tuned(Protocol):
    """A file of DQN hyperparameters: the family they were learned on and the values."""

    family: str
    hyperparameters: dict[str, float | int]


def check_fields(hyperparameters: dict[str, float | int]) -> None:
    """A ``ValueError`` naming any key that is not a tuned DQN field."""
    unknown = sorted(set(hyperparameters) - set(TUNED_FIELDS))
    if unknown:
        raise ValueError(f"hyperparameters: unknown DQN field(s) {unknown}; allowed: "
                         f"{list(TUNED_FIELDS)}")


def read_tuned(path: str | Path) -> TunedDQN:
    """The tuned-hyperparameters file at ``path`` (YAML), validated; a missing or invalid
    file is a ``ValueError`` naming it."""
    return read_file(path, TunedDQN, "adaptrl.experiment.hyperparameter_search")


def read_file(path: str | Path, model: type[File], writer: str) -> File:
    """A file of tuned hyperparameters at ``path`` (YAML, a ``model``), validated; a
    missing or invalid file is a ``ValueError`` naming it (and ``writer``, the module that
    writes one)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"tuned DQN hyperparameters: no file {str(p)!r} (write one with "
                         f"python -m {writer})")
    try:
        return model.model_validate(yaml.safe_load(p.read_text()))
    except ValidationError as err:
        raise ValueError(f"tuned DQN hyperparameters {str(p)!r}: {err}") from err


def tuned_dqn_config(base: DQNConfig, tuned: Tuned, family: str | None = None
                     ) -> DQNConfig:
    """``base`` with the tuned hyperparameters (validated as a whole); with ``family``,
    a file tuned on another family is refused."""
    if family is not None and tuned.family != family:
        raise ValueError(f"the tuned DQN hyperparameters are for family {tuned.family!r}, "
                         f"this run's family is {family!r}")
    return DQNConfig.model_validate({**base.model_dump(), **tuned.hyperparameters})
