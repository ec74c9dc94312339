"""SIGKILL (no chance to save), SIGINT and SIGTERM of a training process, at every known
window and at random moments: the run resumes to exactly what an unbroken run writes, and
no temporary file is left behind (items 1, 4 and 8)."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from test_fault_support import (
    assert_same_run,
    reference_run,
    run_train,
    start_training,
    tiny,
    wait_for_pause,
)

from adaptrl.experiment.run_dir import read_metrics

KILL_WINDOWS = [
    "train.locked",                  # before config.yaml is written
    "atomic.written:config.yaml",
    "atomic.written:latest.pt@1",    # the first checkpoint (iteration 0)
    "train.updated@2",
    "train.logged@3",
    "train.snapshot@3",
    "train.committed@3",
    "atomic.written:latest.pt@2",
    "atomic.rotated:latest.pt@1",
    "atomic.written:best.pt@2",
]
FAST = {"atomic.written:latest.pt@2"}  # one subprocess in the default run (~3-8 s)


def _no_temps(run: Path) -> None:
    left = [p.name for p in run.rglob("*.tmp")]
    assert left == [], f"stray temporaries: {left}"


def _kill_at(cfg: dict[str, Any], run: Path, window: str, sig: int,
             resume: bool = False) -> int:
    proc = start_training(cfg, run, pause=window, resume=resume)
    assert wait_for_pause(proc), f"never reached {window}"
    proc.send_signal(sig)
    return proc.wait(timeout=60)


@pytest.mark.parametrize("window", [
    pytest.param(w, marks=[] if w in FAST else [pytest.mark.slow]) for w in KILL_WINDOWS])
def test_sigkill_at_a_window_resumes_exactly(window: str, tmp_path: Path,
                                             tmp_path_factory: Any) -> None:
    cfg = tiny("maml", checkpoint_every=3)
    reference = reference_run(cfg, tmp_path_factory.mktemp("ref"))
    assert _kill_at(cfg, tmp_path / "run", window, signal.SIGKILL) == -signal.SIGKILL
    # killed before config.yaml was in place, the run is started again, as advised
    run_train(cfg, tmp_path / "run", resume=(tmp_path / "run" / "config.yaml").exists())
    assert_same_run(tmp_path / "run", reference)
    _no_temps(tmp_path / "run")


@pytest.mark.slow
def test_sigkill_while_resume_rewrites_the_metrics(tmp_path: Path,
                                                  tmp_path_factory: Any) -> None:
    cfg = tiny("maml", checkpoint_every=2)
    reference = reference_run(cfg, tmp_path_factory.mktemp("ref"))
    run = tmp_path / "run"
    _kill_at(cfg, run, "train.logged@4", signal.SIGKILL)  # 4 rows, checkpoint at 2
    assert len(read_metrics(run / "metrics.jsonl")) == 4
    _kill_at(cfg, run, "atomic.written:metrics.jsonl", signal.SIGKILL, resume=True)
    assert len(read_metrics(run / "metrics.jsonl")) == 4  # not truncated in place
    run_train(cfg, run, resume=True)
    assert_same_run(run, reference)
    _no_temps(run)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("algorithm", ["maml", "reptile", "rl2"])
@pytest.mark.parametrize("window", ["train.updated@3", "train.logged@2", "train.committed@3"])
def test_sigint_sigterm_of_a_process_resume_exactly(sig: int, algorithm: str, window: str,
                                                    tmp_path: Path,
                                                    tmp_path_factory: Any) -> None:
    cfg = tiny(algorithm, checkpoint_every=10)  # only the interrupt writes latest mid-run
    reference = reference_run(cfg, tmp_path_factory.mktemp("ref"))
    assert _kill_at(cfg, tmp_path / "run", window, sig) == 130
    run_train(cfg, tmp_path / "run", resume=True)
    assert_same_run(tmp_path / "run", reference)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(12))
def test_sigkill_at_random_moments_resumes_exactly(seed: int, tmp_path: Path,
                                                   tmp_path_factory: Any) -> None:
    """Kill at a random moment, resume (killing again at random), until the run ends."""
    cfg = tiny("maml", iterations=6, checkpoint_every=2)
    reference = reference_run(cfg, tmp_path_factory.mktemp("ref"))
    rng, run, kills = random.Random(seed), tmp_path / "run", 0
    for attempt in range(4):
        proc = start_training(cfg, run, resume=attempt > 0)
        time.sleep(rng.uniform(1.0, 5.0))  # python + torch start takes ~1-3 s of it
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.wait(timeout=60)
    print(f"random kills (seed {seed}): {kills}")  # the figure, with pytest -s
    run_train(cfg, run, resume=(run / "config.yaml").exists())
    assert_same_run(run, reference)
    _no_temps(run)
