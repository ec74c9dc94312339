"""One writer per run directory (item 2): a second ``train`` (or ``--resume``) on a
directory in use is refused with one line naming it and the owner's pid; a lock left by
a dead process is taken over with a warning."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import pytest
from test_fault_support import run_train, start_training, tiny, wait_for_pause

from adaptrl.errors import UserError
from adaptrl.experiment.lock import LOCK_NAME, run_lock
from adaptrl.experiment.run_dir import read_metrics


def test_second_writer_in_the_same_process_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    with run_lock(run):
        for resume in (False, True):
            with pytest.raises(UserError) as err:
                run_train(tiny(), run, resume=resume)
            message = str(err.value)
            assert str(run) in message and f"process {os.getpid()}" in message
            assert "\n" not in message
    assert list(run.iterdir()) == [run / LOCK_NAME]  # the refused runs wrote nothing


@pytest.mark.slow
def test_two_processes_on_one_run_dir(tmp_path: Path) -> None:
    """A second process (a new run, then a --resume) while the first trains: refused with
    exit code 2; the first finishes with a metrics log of its own rows only."""
    run, cfg = tmp_path / "run", tiny()
    first = start_training(cfg, run, pause="train.updated@2")
    assert wait_for_pause(first)
    for resume in (False, True):
        second = start_training(cfg, run, resume=resume)
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2, err
        assert f"{run} is in use by process {first.pid}" in err
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=60) == 130
    run_train(cfg, run, resume=True)
    assert [r["iteration"] for r in read_metrics(run / "metrics.jsonl")] == [0, 1, 2, 3]


def test_lock_of_a_dead_process_is_taken_over(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).write_text("999999999\n")  # its owner was killed (SIGKILL)
    with caplog.at_level(logging.WARNING):
        run_train(tiny(iterations=1), run)
    assert "taking over the lock of process 999999999" in caplog.text
    assert (run / LOCK_NAME).read_text() == ""  # released on exit


def test_released_lock_is_not_reported_stale(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    run = tmp_path / "run"
    run_train(tiny(iterations=1), run)
    with caplog.at_level(logging.WARNING):
        run_train(tiny(iterations=2), run, resume=True)
    assert "taking over" not in caplog.text
