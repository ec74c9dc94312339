"""The task-family registry: ``adaptrl.tasks.make(name, **params)``."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

from adaptrl.tasks.base import TaskFamily


@dataclass(frozen=True)
class FamilySpec:
    """How to build a registered family, and a one-line description for ``adaptrl list``."""

    name: str
    factory: Callable[..., TaskFamily]
    description: str
    extra: str | None = None  # the pip extra it needs, if any


_REGISTRY: dict[str, FamilySpec] = {}


def register(name: str, factory: Callable[..., TaskFamily], description: str,
             extra: str | None = None) -> None:
    """Register a task family under ``name`` (names are unique)."""
    if name in _REGISTRY:
        raise ValueError(f"task family {name!r} is already registered")
    _REGISTRY[name] = FamilySpec(name, factory, description, extra)


def registered() -> dict[str, FamilySpec]:
    """All registered families, by name."""
    return dict(sorted(_REGISTRY.items()))


def make(name: str, **params: Any) -> TaskFamily:
    """Build the family ``name`` with ``params``; unknown names or parameters are clear errors."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown task family {name!r}; allowed: {sorted(_REGISTRY)}")
    factory = _REGISTRY[name].factory
    sig = inspect.signature(factory)
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    if not accepts_any:
        unknown = sorted(set(params) - set(sig.parameters))
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown} for task family {name!r}; "
                             f"allowed: {sorted(sig.parameters)}")
    return factory(**params)
