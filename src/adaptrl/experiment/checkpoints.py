"""Checkpoints: written atomically, read defensively, with a fallback when one is damaged.

Writing goes through :func:`adaptrl.experiment.atomic.atomic_write`; the latest checkpoint
is rotated (``latest.pt`` -> ``previous.pt``) when a new one replaces it, so one damaged
file (a disk error, a copy cut short) does not lose the run. Reading uses
``torch.load(weights_only=True)``: checkpoints hold tensors and plain Python values only,
and a file holding anything else (a pickled object, possibly malicious) is refused.

Before torch sees a file it is checked to be a complete, undamaged zip archive (the format
``torch.save`` writes, with a CRC per entry): torch itself does not verify the CRCs, so a
file with zeroed bytes inside a tensor loads "fine" with wrong weights. Every problem is
one line naming the file: :class:`CheckpointError` (a :class:`FaultError`) for a damaged or
refused file, :class:`~adaptrl.errors.UserError` for a checkpoint that does not fit the
learner the run's config builds.
"""

from __future__ import annotations

import logging
import math
import pickle
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from adaptrl.errors import FaultError, UserError
from adaptrl.experiment.atomic import atomic_write

log = logging.getLogger(__name__)


class CheckpointError(FaultError):
    """A checkpoint file that cannot be used: missing, damaged, refused or non-finite."""


def save_checkpoint(state: dict[str, Any], path: Path, keep_previous: Path | None = None
                    ) -> None:
    """Write ``state`` to ``path`` atomically; with ``keep_previous`` the file it replaces
    is kept there (:func:`adaptrl.experiment.atomic.atomic_write`)."""
    atomic_write(path, lambda f: torch.save(state, f), keep_previous=keep_previous)


def _check_archive(path: Path) -> None:
    """Refuse a file that is not a complete, undamaged ``torch.save`` zip archive."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read it: {err.strerror or err}") from err
    if size == 0:
        raise CheckpointError(f"{path}: damaged checkpoint (empty file, 0 bytes)")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile:
        raise CheckpointError(f"{path}: damaged checkpoint (not a complete torch.save "
                              f"archive, {size} bytes)") from None
    except (OSError, EOFError, ValueError, RuntimeError) as err:  # e.g. a bad header field
        raise CheckpointError(f"{path}: damaged checkpoint ({err})") from None
    if bad is not None:
        raise CheckpointError(f"{path}: damaged checkpoint (entry {bad} fails its CRC check)")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint file safely (tensors and plain values only) into a dict; raise
    :class:`CheckpointError` in one line if it is missing, damaged or refused."""
    path = Path(path)
    _check_archive(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: refused: it holds more than tensors and plain values "
                              f"(torch.load weights_only: {first[:160]})") from None
    except Exception as err:  # torch raises many kinds on a damaged archive
        raise CheckpointError(f"{path}: damaged checkpoint ({type(err).__name__}: "
                              f"{str(err).splitlines()[0][:160] if str(err) else ''})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a checkpoint (holds a {type(state).__name__}, "
                              "not a dict)")
    return state


def _leaves(value: Any, name: str = "") -> Iterator[tuple[str, Any]]:
    """The (dotted name, value) leaves of a nested dict / list of tensors and plain values."""
    if isinstance(value, Mapping):
        for k, item in value.items():
            yield from _leaves(item, f"{name}.{k}" if name else str(k))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _leaves(item, f"{name}[{i}]")
    else:
        yield name, value


def _finite(v: Any) -> bool | torch.Tensor:
    if isinstance(v, torch.Tensor):
        return torch.isfinite(v).all() if v.is_floating_point() or v.is_complex() else True
    return not isinstance(v, float) or math.isfinite(v)


def non_finite(value: Any, prefix: str = "", limit: int = 3) -> list[str]:
    """The names (dotted paths) of up to ``limit`` non-finite floating tensors or floats in
    a nested dict / list of tensors and plain values (a state dict, a metrics dict). Runs
    every iteration, so the tensors are checked with one device synchronisation per device
    and named only when something is wrong."""
    leaves = list(_leaves(value, prefix))
    checks = [(name, _finite(v)) for name, v in leaves]
    by_device: dict[torch.device, list[torch.Tensor]] = {}
    for _, ok in checks:
        if isinstance(ok, torch.Tensor):
            by_device.setdefault(ok.device, []).append(ok)
    if all(ok for _, ok in checks if not isinstance(ok, torch.Tensor)) and \
            all(bool(torch.stack(flags).all()) for flags in by_device.values()):
        return []
    return [name for name, ok in checks if not bool(ok)][:limit]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_FIELDS: dict[str, tuple[str, Any]] = {
    "iteration": ("an integer >= 0", lambda v: _is_int(v) and v >= 0),
    "learner": ("a dict", lambda v: isinstance(v, dict)),
    "generator": ("a uint8 tensor", lambda v: isinstance(v, torch.Tensor)
                  and v.dtype == torch.uint8),
    "wall_time_s": ("a number >= 0", lambda v: _is_number(v) and v >= 0),
    "best_score": ("null or a number", lambda v: v is None or _is_number(v)),
    "best_iteration": ("null or an integer", lambda v: v is None or _is_int(v)),
    "stream": ("null or a dict", lambda v: v is None or isinstance(v, dict)),
}
"""What a run checkpoint holds: key -> (what is allowed, test). Other keys are ignored: a
checkpoint of an older version may hold ``average`` (the weight average of the removed
``averaging`` section)."""

_OPTIONAL = ("best_score", "best_iteration", "stream")


def check_run_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Raise :class:`CheckpointError` unless ``state`` is a whole, finite run checkpoint
    (every key the trainer writes, of the right type, no NaN / Inf anywhere)."""
    for key, (allowed, ok) in _FIELDS.items():
        if key not in state:
            if key in _OPTIONAL:
                continue
            raise CheckpointError(f"{path}: damaged checkpoint (no {key!r} entry)")
        if not ok(state[key]):
            shown = repr(state[key])[:40]
            raise CheckpointError(f"{path}: damaged checkpoint ({key} = {shown}; "
                                  f"must be {allowed})")
    bad = non_finite(state)
    if bad:
        raise CheckpointError(f"{path}: holds non-finite values (NaN or Inf) in "
                              f"{', '.join(bad)}; it cannot be used")


def read_run_checkpoint(path: Path) -> dict[str, Any]:
    """A run checkpoint from ``path``, checked whole and finite (:class:`CheckpointError`)."""
    state = load_checkpoint(path)
    check_run_checkpoint(state, Path(path))
    return state


def newest_good_checkpoint(candidates: Sequence[Path]) -> tuple[Path, dict[str, Any]]:
    """The first of ``candidates`` that is a good run checkpoint, or, if it is not, the one
    with the most iterations among the others that are; each one passed over is reported
    as a warning. Raise :class:`CheckpointError` (one line per file) if none is good."""
    problems: list[str] = []
    good: list[tuple[Path, dict[str, Any]]] = []
    for i, path in enumerate(candidates):
        if not path.exists() and i > 0:
            continue
        try:
            state = read_run_checkpoint(path)
        except CheckpointError as err:
            problems.append(str(err))
            continue
        if i == 0:
            return path, state
        good.append((path, state))
    if not good:
        raise CheckpointError("no usable checkpoint: " + "; ".join(problems))
    path, state = max(good, key=lambda ps: ps[1]["iteration"])  # max keeps the first of ties
    for problem in problems:
        log.warning("%s; using %s (iteration %d) instead", problem, path, state["iteration"])
    return path, state


def restore(target: Any, state: dict[str, Any], path: Path, config_file: Path | None = None
            ) -> None:
    """``target.load_state_dict(state)``; a state that does not fit (other network sizes,
    missing entries) is a :class:`UserError` naming the checkpoint and the config."""
    try:
        target.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        detail = "; ".join(lines[:3])[:300] or type(err).__name__
        source = f"the config {config_file}" if config_file else "this config"
        raise UserError(f"{path} does not fit the learner {source} builds ({detail}); "
                        "train with the settings the run was trained with, or start a "
                        "new run (--run-dir)") from None
