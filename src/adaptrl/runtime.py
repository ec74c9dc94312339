"""Process-wide settings that make torch fast on a small, shared CPU machine.

Opt-in: the ``adaptrl`` CLI applies them at start-up (``adaptrl/cli/main.py``), a script
calls :func:`configure` before it imports torch; ``import adaptrl`` alone changes nothing
process-wide. Each can be turned off.

* **OpenMP passive waiting.** OpenMP threads that spin while idle make torch 2-50x slower
  whenever another process shares the cores; passive waiting costs nothing on an idle
  machine. ``OMP_WAIT_POLICY`` must be set before torch is first imported; an exported
  value wins.
* **Allocator reuse of large blocks** (glibc only). glibc serves every block above
  ``M_MMAP_THRESHOLD`` (dynamic, from 128 KiB) with fresh ``mmap`` pages and returns the
  heap top to the OS above ``M_TRIM_THRESHOLD``. Meta-RL on CPU allocates and frees
  activations of a few MiB per op (a ``[40000, 64]`` float32 batch is 10 MiB) thousands of
  times per meta-iteration, and every one of them is then page-faulted in afresh. Fixing
  both thresholds (``mallopt``) keeps such blocks in the heap for reuse. Measured on this
  2-core machine: ``tanh`` over ``[40000, 64]`` 5.2 ms -> 1.6 ms; a MAML-TRPO meta-iteration
  on navigation-2d (``benchmarks/bench_maml.py``) about 20 % faster. The cost: freed memory
  stays with the process (the peak RSS is unchanged). ``ADAPTRL_MALLOC_TUNING=0`` disables it.
"""

from __future__ import annotations

import ctypes
import os

# glibc's mallopt parameters (malloc.h) and the largest mmap threshold it accepts (64-bit)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 1024 * 1024 * 1024


def use_passive_openmp() -> None:
    """Make idle OpenMP threads sleep, unless ``OMP_WAIT_POLICY`` is already set."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def tune_allocator() -> bool:
    """Keep freed blocks up to 32 MiB in the heap; returns whether the allocator took it."""
    if os.environ.get("ADAPTRL_MALLOC_TUNING", "1") == "0":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def configure() -> None:
    """Apply every setting above (idempotent)."""
    use_passive_openmp()
    tune_allocator()
