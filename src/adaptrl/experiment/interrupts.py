"""Stop requests that end a training run the way Ctrl-C does: checkpoint, then exit.

``kill``, ``timeout``, ``docker stop`` and cluster schedulers (on pre-emption) send
SIGTERM, whose default action kills the process with no chance to save. While training
runs, :func:`terminate_as_interrupt` turns it into the ``KeyboardInterrupt`` the trainer
already answers by writing the last finished iteration's checkpoint, so such a run
resumes like one stopped with Ctrl-C.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from types import FrameType
from typing import Iterator


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
