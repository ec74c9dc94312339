"""Named windows in the write path where the fault-injection tests stop a run.

A crash-safety claim ("a kill at any moment leaves a resumable run") is only as good as
the moments it was tested at. The trainer and the atomic writer call :func:`reach` at
each window where a kill, Ctrl-C or SIGTERM could land between two related steps (after
the meta-update and before the state is recorded, between rotating and replacing a
checkpoint, ...). In normal runs it does nothing but one dictionary look-up.

Two ways to act at a window, both for tests only:

* in-process: set :data:`hook` to a function of the window's name (it may raise
  ``KeyboardInterrupt``, sleep, or count calls);
* in a subprocess: set ``ADAPTRL_FAULT_PAUSE=<name>[@<hit>][,...]``; at the ``hit``-th time
  (default the first) the process reaches ``name`` it prints
  ``adaptrl-fault-pause <name> <hit>`` on stderr and sleeps ``ADAPTRL_FAULT_PAUSE_S`` seconds
  (default 120), so the test can kill it exactly there.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Callable

PAUSE_ENV = "ADAPTRL_FAULT_PAUSE"
PAUSE_SECONDS_ENV = "ADAPTRL_FAULT_PAUSE_S"
PAUSE_MARK = "adaptrl-fault-pause"

hook: Callable[[str], None] | None = None
"""Called with the window's name at every window (tests set it; ``None`` in normal runs)."""

_hits: Counter[str] = Counter()


def reach(name: str) -> None:
    """Mark that the process is at window ``name`` (see the module docstring)."""
    if hook is not None:
        hook(name)
    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return
    _hits[name] += 1
    for item in spec.split(","):
        target, _, hit = item.partition("@")
        if target == name and _hits[name] == int(hit or 1):
            sys.stderr.write(f"{PAUSE_MARK} {name} {_hits[name]}\n")
            sys.stderr.flush()
            time.sleep(float(os.environ.get(PAUSE_SECONDS_ENV, "120")))
