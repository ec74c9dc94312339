"""Ctrl-C / SIGTERM at every window of an iteration: the checkpoint saved on the way out
is one consistent state, and the resumed run equals an unbroken one (item 1)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_fault_support import assert_same_run, reference_run, run_train, tiny

from adaptrl.experiment import fault_points
from adaptrl.experiment.checkpoints import load_checkpoint
from adaptrl.experiment.run_dir import MetricsLog, read_metrics

WINDOWS = [  # (window, which time it is reached): all land mid-run (4 iterations)
    ("train.updated", 3),            # after meta_update, before anything is recorded
    ("train.logged", 2),             # metrics written, snapshot not yet in place
    ("train.snapshot", 3),           # best.pt (maybe) written, snapshot not yet in place
    ("train.committed", 3),          # snapshot in place, latest.pt not yet written
    ("atomic.written:latest.pt", 2),  # temp file written, not yet renamed
    ("atomic.rotated:latest.pt", 1),  # latest -> previous done, new latest not in place
    ("atomic.written:best.pt", 2),
]


def _at(window: str, hit: int, action: Callable[[], None]) -> Callable[[str], None]:
    count = {"n": 0}

    def hook(name: str) -> None:
        if name == window:
            count["n"] += 1
            if count["n"] == hit:
                action()
    return hook


def _ctrl_c() -> None:
    raise KeyboardInterrupt


def _interrupted_then_resumed(cfg: dict[str, Any], run: Path, window: str, hit: int,
                              action: Callable[[], None],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fault_points, "hook", _at(window, hit, action))
    with pytest.raises(KeyboardInterrupt):
        run_train(cfg, run)
    monkeypatch.setattr(fault_points, "hook", None)
    run_train(cfg, run, resume=True)


@pytest.mark.parametrize("algorithm", ["maml", "reptile", "rl2"])
@pytest.mark.parametrize("window,hit", WINDOWS)
def test_ctrl_c_at_every_window_resumes_exactly(algorithm: str, window: str, hit: int,
                                                tmp_path: Path, tmp_path_factory: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny(algorithm, checkpoint_every=3)  # latest written at 3 and 4: both kinds of step
    reference = reference_run(cfg, tmp_path_factory.mktemp("ref"))
    _interrupted_then_resumed(cfg, tmp_path / "run", window, hit, _ctrl_c, monkeypatch)
    assert_same_run(tmp_path / "run", reference)


@pytest.mark.parametrize("window,hit", [("train.updated", 2), ("train.logged", 3)])
def test_sigterm_at_a_window_resumes_exactly(window: str, hit: int, tmp_path: Path,
                                             tmp_path_factory: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny("maml", checkpoint_every=10)  # only the interrupt writes latest mid-run
    reference = reference_run(cfg, tmp_path_factory.mktemp("ref"))
    _interrupted_then_resumed(cfg, tmp_path / "run", window, hit,
                              lambda: os.kill(os.getpid(), signal.SIGTERM), monkeypatch)
    assert_same_run(tmp_path / "run", reference)


def test_interrupt_while_logging_saves_the_finished_iteration_only(
        tmp_path: Path, tmp_path_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit's case: Ctrl-C between the meta-update and the state refresh (here inside
    the metrics write) saved iteration N with the weights of N - 1."""
    cfg = tiny("maml", checkpoint_every=10)
    reference = reference_run(cfg, tmp_path_factory.mktemp("ref"))
    original, calls = MetricsLog.write, {"n": 0}

    def write(self: MetricsLog, record: dict[str, Any]) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        original(self, record)

    monkeypatch.setattr(MetricsLog, "write", write)
    with pytest.raises(KeyboardInterrupt):
        run_train(cfg, tmp_path / "run")
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["iteration"] == 2
    monkeypatch.undo()
    run_train(cfg, tmp_path / "run", resume=True)
    assert_same_run(tmp_path / "run", reference)


def test_second_ctrl_c_does_not_cut_the_save_short(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny("maml", checkpoint_every=10)
    state = {"interrupted": False}

    def hook(name: str) -> None:
        if name == "train.updated" and not state["interrupted"]:
            state["interrupted"] = True
            raise KeyboardInterrupt
        if name == "atomic.written:latest.pt" and state["interrupted"]:
            os.kill(os.getpid(), signal.SIGINT)  # impatient user: Ctrl-C again mid-save

    monkeypatch.setattr(fault_points, "hook", hook)
    with pytest.raises(KeyboardInterrupt):
        run_train(cfg, tmp_path / "run")
    latest = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert latest["iteration"] == 0 and read_metrics(tmp_path / "run" / "metrics.jsonl") == []
