"""Stop requests that end a training run the way Ctrl-C does: checkpoint, then exit.

``kill``, ``timeout``, ``docker stop`` and cluster schedulers (on pre-emption) send
SIGTERM, whose default action kills the process with no chance to save. While training
runs, :func:`terminate_as_interrupt` turns it into the ``KeyboardInterrupt`` the trainer
already answers by writing the last finished iteration's checkpoint, so such a run
resumes like one stopped with Ctrl-C. :func:`deferred_interrupts` holds a second Ctrl-C
or SIGTERM back while that checkpoint is written, so the save is not cut short.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises ``KeyboardInterrupt``; the previous handler is
    restored after it. Outside the main thread (where Python cannot set handlers) it
    changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM are noted instead of acted on; the first one
    noted is raised as ``KeyboardInterrupt`` when the block ends (the previous handlers are
    restored first). For short sections that must finish, such as the checkpoint written
    on the way out after an interrupt. Outside the main thread it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        noted.append(signum)

    previous = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if noted:
        raise KeyboardInterrupt(f"signal {signal.Signals(noted[0]).name}")
