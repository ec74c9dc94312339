"""Fixtures of the Ray tests (test_ray_sampler.py, test_ray_env.py): a local 2-CPU
cluster, and the harness of their worker-kill tests."""

from __future__ import annotations

import importlib.util
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


@pytest.fixture(scope="module")
def ray_cluster(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A local Ray with 2 CPUs for the requesting test module (skipped without the extra)."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("needs the ray extra: pip install 'adaptrl[ray]'")
    import ray
    import ray.cloudpickle

    # the workers cannot import the test module: ship its functions by value
    ray.cloudpickle.register_pickle_by_value(request.module)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _kill_when_paused(marker: Path) -> None:
    """Wait for a paused worker to write ``marker/pid``, mark it ``killed`` (its restart
    goes on) and SIGKILL it."""
    deadline = time.monotonic() + 120
    while not (marker / "pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int((marker / "pid").read_text())
    (marker / "killed").touch()
    os.kill(pid, signal.SIGKILL)


def _while_killing(marker: Path, sampler: Any, run: Callable[[], T]) -> T:
    """``run()`` while a thread kills the worker that pauses at ``marker``; the sampler is
    closed after it, and the thread joined."""
    killer = threading.Thread(target=_kill_when_paused, args=(marker,), daemon=True)
    killer.start()
    try:
        result = run()
    finally:
        sampler.close()
    killer.join(timeout=5)
    return result


@pytest.fixture
def while_killing() -> Callable[[Path, Any, Callable[[], T]], T]:
    """The worker-kill tests' harness: ``while_killing(marker, sampler, run)``."""
    return _while_killing
