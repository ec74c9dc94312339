"""One writer per run directory: a lock file holding the owner's pid.

Two ``adaptrl train`` processes on one run directory (or a second ``--resume`` while the
first still runs) would interleave ``metrics.jsonl`` and overwrite each other's
checkpoints. :func:`run_lock` takes an exclusive ``fcntl.flock`` on ``<run>/.lock``: the
kernel grants it to one process at a time and drops it when the process ends however it
ends (even SIGKILL), so there is no hand-made test-and-set to race on and no lock is ever
stuck. The file holds the owner's pid, for the refusal message, while the lock is held
and is emptied on release; a pid still in it when the lock is free means its owner died
without releasing it, and the new owner takes over with a warning.

The file itself stays (deleting a flock-ed file would let two processes lock two
different inodes); :data:`LOCK_NAME` is not part of a run's results.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from adaptrl.errors import FaultError, UserError

LOCK_NAME = ".lock"

log = logging.getLogger(__name__)


def _read_owner(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 64).decode("ascii", "replace").strip()


def _write_owner(fd: int, text: str) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, text.encode("ascii"))
    os.fsync(fd)


def _acquire(run_path: Path, lock_path: Path) -> int:
    """Open and lock ``lock_path``; refuse (``UserError``) if another process holds it."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as err:
        raise FaultError(f"cannot create the lock file {lock_path}: "
                         f"{err.strerror or err}; nothing was changed") from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = _read_owner(fd) or "unknown"
        os.close(fd)
        raise UserError(f"{run_path} is in use by process {owner} (lock file {lock_path}); "
                        "wait for it to finish, or train in another --run-dir") from None
    except OSError as err:
        os.close(fd)
        raise FaultError(f"cannot lock {lock_path}: {err.strerror or err}") from err
    return fd


@contextmanager
def run_lock(run_path: Path) -> Iterator[None]:
    """Hold the exclusive lock of the run directory ``run_path`` (which must exist) for the
    block; raise :class:`UserError` naming the directory and the owner's pid if another
    process holds it."""
    run_path = Path(run_path)
    lock_path = run_path / LOCK_NAME
    fd = _acquire(run_path, lock_path)
    try:
        stale = _read_owner(fd)
        if stale:
            log.warning("%s: taking over the lock of process %s, which ended without "
                        "releasing it", run_path, stale)
        _write_owner(fd, f"{os.getpid()}\n")
        yield
    finally:
        try:
            _write_owner(fd, "")
        except OSError:
            pass  # the lock itself goes with the descriptor
        os.close(fd)
