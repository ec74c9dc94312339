"""The task-family registry: ``adaptrl.tasks.make(name, **params)``, and the families
named by an entry point (``package.module:factory``, :func:`load_entry_point`)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

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


def load_entry_point(entry_point: str) -> Callable[..., Any]:
    """The callable named by ``entry_point`` (``package.module:factory``, the attribute may
    be dotted: ``module:Class.create``), imported as gymnasium's ``register(entry_point=...)``
    does. Importing runs the module's code: that is what naming it asks for.

    Every way it can fail is a ``ValueError`` naming the module or attribute: no colon,
    a module that cannot be imported (or raises while importing), a missing attribute, an
    attribute that is not callable.
    """
    import importlib

    module_name, sep, attr = entry_point.partition(":")
    module_name, attr = module_name.strip(), attr.strip()
    if not sep or not module_name or not attr:
        raise ValueError("must be 'package.module:factory' (a module, a colon, the callable "
                         "in it that makes the family)")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and err.name != module_name and not module_name.startswith(f"{err.name}."):
            raise ValueError(f"cannot import module {module_name!r}: it imports {err.name!r}, "
                             "which is not installed") from err
        raise ValueError(f"cannot import module {module_name!r}: no such module; is it "
                         "installed, or its folder on PYTHONPATH?") from err
    except Exception as err:  # noqa: BLE001 - the user's module failed while importing
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise ValueError(f"importing module {module_name!r} raised {type(err).__name__}: "
                         f"{first}") from err
    parts = attr.split(".")
    for i, part in enumerate(parts):
        if not hasattr(obj, part):
            owner = (f"module {module_name!r}" if i == 0
                     else repr(f"{module_name}:{'.'.join(parts[:i])}"))
            raise ValueError(f"{owner} has no attribute {part!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{attr!r} in module {module_name!r} is a {type(obj).__name__}, not "
                         "callable; name the function or class that makes the family")
    return cast(Callable[..., Any], obj)
