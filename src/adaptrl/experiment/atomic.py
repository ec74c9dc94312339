"""The one way a run writes a whole file: atomically, so a crash never leaves half a file.

:func:`atomic_write` writes to a temporary file in the target's folder (so the final
rename stays on one file system), flushes and fsyncs it, then ``os.replace``-s it over the
target: a reader sees the old file or the new one, never a mix, and a kill at any moment
leaves at worst a stray temporary file named ``.<target name>.<8 random chars>.tmp``,
which :func:`remove_stale_temps` clears when a run starts or resumes. The temporary file
is removed on any failure. An ``OSError`` (a full disk, a read-only folder) becomes a
:class:`~adaptrl.errors.FaultError` naming the file and what was kept.

JSON is written with ``allow_nan=False``: a file a run writes never holds the bare
``NaN`` / ``Infinity`` tokens that are not JSON. A number that is legitimately undefined
(a 95% CI over fewer than two values) is written as ``null``; :func:`undefined_as_null`
does that for the parts of a result where undefined numbers are expected.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from adaptrl.errors import FaultError
from adaptrl.experiment.fault_points import reach

_TEMP_SUFFIX = ".tmp"
_TEMP_RANDOM = re.compile(r"^[A-Za-z0-9_]{8}$")  # what tempfile.mkstemp puts in the middle


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def is_temp_of(name: str, target: str) -> bool:
    """Whether the file ``name`` is one of :func:`atomic_write`'s temporaries for ``target``."""
    prefix = f".{target}."
    if not (name.startswith(prefix) and name.endswith(_TEMP_SUFFIX)):
        return False
    return bool(_TEMP_RANDOM.match(name[len(prefix):-len(_TEMP_SUFFIX)]))


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: some file systems refuse)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _kept(path: Path) -> str:
    return f"the previous {path.name} is kept" if path.exists() else f"no {path.name} was written"


def write_fault(path: Path, err: OSError) -> FaultError:
    """The one-line :class:`FaultError` for an I/O error while writing ``path``."""
    reason = err.strerror or str(err)
    return FaultError(f"cannot write {path}: {reason}; {_kept(path)}")


def atomic_write(path: Path, write: Callable[[IO[bytes]], object],
                 keep_previous: Path | None = None) -> None:
    """Write ``path`` atomically: ``write(f)`` fills a temporary file in the same folder,
    which is fsynced and renamed over ``path``. With ``keep_previous`` the file ``path``
    held is first renamed to ``keep_previous`` (a fallback if the new one is later found
    damaged); between the two renames only ``keep_previous`` exists, never a torn file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path),
                                   suffix=_TEMP_SUFFIX)
    except OSError as err:
        raise write_fault(path, err) from err
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        reach(f"atomic.written:{path.name}")
        if keep_previous is not None and path.exists():
            os.replace(path, keep_previous)
            reach(f"atomic.rotated:{path.name}")
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as err:
        _remove_quietly(Path(tmp))
        raise write_fault(path, err) from err
    except BaseException:
        _remove_quietly(Path(tmp))
        raise


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    data = text.encode("utf-8")
    atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path: Path, value: Any, indent: int | None = 2) -> None:
    """Write ``value`` as JSON to ``path`` atomically; a non-finite float is an error
    (``ValueError``), never a bare ``NaN`` token (module docstring)."""
    atomic_write_text(path, json.dumps(value, indent=indent, allow_nan=False) + "\n")


def undefined_as_null(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (JSON ``null``): for the
    parts of a result whose numbers may be legitimately undefined."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: undefined_as_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [undefined_as_null(v) for v in value]
    return value


def check_writable(path: Path) -> None:
    """Raise :class:`FaultError` now if ``path`` could not be written atomically later
    (its folder is missing, read-only or full), before hours of work are spent."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path),
                                   suffix=_TEMP_SUFFIX)
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        raise FaultError(f"cannot write {path}: {err.strerror or err}; "
                         "nothing was done") from err


def remove_stale_temps(folder: Path, targets: Iterable[str]) -> list[Path]:
    """Delete the temporaries :func:`atomic_write` left in ``folder`` for the files named
    ``targets`` (a process killed mid-write leaves one); other files are never touched.
    Call it only while holding the run's lock, so no live writer owns them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    names = tuple(targets)
    removed = []
    for entry in folder.iterdir():
        if entry.is_file() and any(is_temp_of(entry.name, t) for t in names):
            _remove_quietly(entry)
            removed.append(entry)
    return removed
