"""The meta-learner registry: name -> (config schema, builder, description)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from pydantic import BaseModel

from adaptrl.tasks.base import TaskFamily


@dataclass(frozen=True)
class AlgorithmSpec:
    name: str
    config_cls: type[BaseModel]
    build: Callable[[TaskFamily, Any, torch.Generator, torch.device], Any]
    description: str


_REGISTRY: dict[str, AlgorithmSpec] = {}


def register_algorithm(name: str, config_cls: type[BaseModel],
                       build: Callable[[TaskFamily, Any, torch.Generator, torch.device], Any],
                       description: str) -> None:
    if name in _REGISTRY:
        raise ValueError(f"algorithm {name!r} is already registered")
    _REGISTRY[name] = AlgorithmSpec(name, config_cls, build, description)


def algorithms() -> dict[str, AlgorithmSpec]:
    return dict(sorted(_REGISTRY.items()))


def algorithm_spec(name: str) -> AlgorithmSpec:
    if name not in _REGISTRY:
        raise ValueError(f"unknown algorithm {name!r}; allowed: {sorted(_REGISTRY)}")
    return _REGISTRY[name]
