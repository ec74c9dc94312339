"""The meta-learner registry: one typed :class:`AlgorithmSpec` per algorithm.

A spec names everything the experiment layer needs to drive an algorithm without asking
its config or learner what it happens to have: the config model, the builder of the
learner, the adaptation unit of its agent, and the baselines that are meaningful for it
(by name; :mod:`adaptrl.algorithms.baselines` says how each is built). Adding an algorithm
is one file that defines its config and learner and calls :func:`register_algorithm`
(docs/adding-an-algorithm.md).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch

from adaptrl.agents.contract import AdaptationUnit
from adaptrl.tasks.base import TaskFamily

if TYPE_CHECKING:
    from adaptrl.algorithms.base import AlgorithmConfig, MetaLearner


class Builder(Protocol):
    """``build(family, config, generator, device) -> learner``: a learner's constructor."""

    def __call__(self, family: TaskFamily, config: Any, generator: torch.Generator,
                 device: torch.device) -> MetaLearner: ...


@dataclass(frozen=True)
class AlgorithmSpec:
    """What the trainer and the evaluator know of an algorithm.

    ``baselines``: the names of the baselines scored beside its agent under the same
    protocol (:data:`adaptrl.algorithms.baselines.BASELINES`; ``oracle`` is the family's
    and always allowed where the family has one). A memory-based learner has none of the
    gradient family's: its comparison is the classic algorithms' table.
    """

    name: str
    config_cls: type[AlgorithmConfig]
    build: Builder
    description: str
    unit: AdaptationUnit
    baselines: tuple[str, ...] = ()


_REGISTRY: dict[str, AlgorithmSpec] = {}


def register_algorithm(name: str, config_cls: type[AlgorithmConfig], build: Builder,
                       description: str, *, unit: AdaptationUnit,
                       baselines: tuple[str, ...] = ()) -> AlgorithmSpec:
    """Register an algorithm under ``name`` (its config's ``name``); returns its spec."""
    if name in _REGISTRY:
        raise ValueError(f"algorithm {name!r} is already registered")
    spec = AlgorithmSpec(name, config_cls, build, description, AdaptationUnit(unit),
                         tuple(baselines))
    _REGISTRY[name] = spec
    return spec


def algorithms() -> dict[str, AlgorithmSpec]:
    """Every registered algorithm, by name."""
    return dict(sorted(_REGISTRY.items()))


def algorithm_spec(name: str) -> AlgorithmSpec:
    """The spec of ``name``; a ``ValueError`` naming the allowed ones (and the closest) if
    unknown."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown algorithm {name!r}{hint}; allowed: {sorted(_REGISTRY)}")
    return _REGISTRY[name]
