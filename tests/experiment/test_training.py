"""Training plumbing: run directory, metrics, atomic checkpoints, exact resume, Ctrl-C."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import torch

from adaptrl.algorithms.maml import MAML
from adaptrl.experiment.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from adaptrl.experiment.config import ConfigError, validate_config
from adaptrl.experiment.evaluate import evaluate_run
from adaptrl.experiment.run_dir import read_metrics
from adaptrl.experiment.trainer import train


def _strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]


def _train(cfg: dict[str, Any], path: Path, resume: bool = False) -> None:
    exp, algo = validate_config(cfg)
    train(exp, algo, path, resume=resume, baselines=False)


def test_run_directory_and_metrics(tmp_path: Path, tiny_config: dict[str, Any]) -> None:
    _train(tiny_config, tmp_path / "run")
    run = tmp_path / "run"
    assert (run / "config.yaml").exists()
    assert (run / "checkpoints" / "latest.pt").exists()
    assert (run / "checkpoints" / "best.pt").exists()
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["iteration"] for r in rows] == [0, 1]
    for r in rows:
        for key in ("iteration", "wall_time_s", "env_steps", "return_pre", "return_post"):
            assert key in r
    assert rows[1]["env_steps"] > rows[0]["env_steps"] > 0
    assert rows[1]["wall_time_s"] >= rows[0]["wall_time_s"]
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["best_iteration"] in (0, 1)
    assert best["best_score"] == max(r["return_post"] for r in rows)


def test_same_seed_same_metrics(tmp_path: Path, tiny_config: dict[str, Any]) -> None:
    _train(tiny_config, tmp_path / "a")
    _train(tiny_config, tmp_path / "b")
    assert _strip(read_metrics(tmp_path / "a" / "metrics.jsonl")) == \
        _strip(read_metrics(tmp_path / "b" / "metrics.jsonl"))


def test_resume_equals_unbroken_run(tmp_path: Path, tiny_config: dict[str, Any]) -> None:
    tiny_config["iterations"] = 4
    _train(tiny_config, tmp_path / "full")
    tiny_config["iterations"] = 2
    _train(tiny_config, tmp_path / "split")
    tiny_config["iterations"] = 4
    _train(tiny_config, tmp_path / "split", resume=True)
    full = _strip(read_metrics(tmp_path / "full" / "metrics.jsonl"))
    split = _strip(read_metrics(tmp_path / "split" / "metrics.jsonl"))
    assert len(full) == 4 and split == full


def test_a_checkpoint_holding_the_removed_weight_average_still_loads(
        tmp_path: Path, tiny_config: dict[str, Any]) -> None:
    """A checkpoint of an older version may hold ``average`` (the policy's weight average
    of the removed ``averaging`` section): evaluating and resuming ignore it, and the next
    save leaves it out."""
    tiny_config["iterations"] = 4
    _train(tiny_config, tmp_path / "full")
    tiny_config["iterations"] = 2
    old = tmp_path / "old"
    _train(tiny_config, old)
    for name in ("latest.pt", "best.pt"):
        path = old / "checkpoints" / name
        state = load_checkpoint(path)
        model = {f"module.{k}": v for k, v in state["learner"]["policy"].items()}
        state["average"] = {"model": {**model, "n_averaged": torch.tensor(2)}, "last": 2,
                            "start": 1, "every": 1}
        save_checkpoint(state, path)
    assert evaluate_run(old, write=False, baselines=False)["checkpoint_iteration"] in (0, 1)
    tiny_config["iterations"] = 4
    _train(tiny_config, old, resume=True)
    assert _strip(read_metrics(old / "metrics.jsonl")) == \
        _strip(read_metrics(tmp_path / "full" / "metrics.jsonl"))
    assert "average" not in load_checkpoint(old / "checkpoints" / "latest.pt")


def _before_update(monkeypatch: pytest.MonkeyPatch, call: int,
                   action: Callable[[], None]) -> None:
    """Run ``action`` at the start of the ``call``-th MAML meta-update (1-based)."""
    original = MAML.meta_update
    calls = {"n": 0}

    def patched(self: MAML, tasks: Any) -> dict[str, float]:
        calls["n"] += 1
        if calls["n"] == call:
            action()
        return original(self, tasks)

    monkeypatch.setattr(MAML, "meta_update", patched)


def test_ctrl_c_leaves_a_resumable_run(tmp_path: Path, tiny_config: dict[str, Any],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    tiny_config["iterations"] = 4
    tiny_config["checkpoint_every"] = 10  # only the interrupt handler writes `latest`
    _train(tiny_config, tmp_path / "full")

    def ctrl_c() -> None:
        raise KeyboardInterrupt

    _before_update(monkeypatch, 3, ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        _train(tiny_config, tmp_path / "broken")
    assert load_checkpoint(tmp_path / "broken" / "checkpoints" / "latest.pt")["iteration"] == 2
    monkeypatch.undo()  # meta_update as it is
    _train(tiny_config, tmp_path / "broken", resume=True)
    assert _strip(read_metrics(tmp_path / "broken" / "metrics.jsonl")) == \
        _strip(read_metrics(tmp_path / "full" / "metrics.jsonl"))


def test_sigterm_checkpoints_like_ctrl_c(tmp_path: Path, tiny_config: dict[str, Any],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    tiny_config["iterations"] = 4
    tiny_config["checkpoint_every"] = 10  # only the interrupt handler writes `latest`
    # as `kill PID` or a scheduler sends it
    _before_update(monkeypatch, 2, lambda: os.kill(os.getpid(), signal.SIGTERM))
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        _train(tiny_config, tmp_path / "run")
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["iteration"] == 1
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is the trainer's only


def test_existing_run_needs_resume(tmp_path: Path, tiny_config: dict[str, Any]) -> None:
    _train(tiny_config, tmp_path / "run")
    with pytest.raises(ConfigError, match="--resume"):
        _train(tiny_config, tmp_path / "run")
    with pytest.raises(ConfigError, match="no checkpoint"):
        _train(tiny_config, tmp_path / "other", resume=True)


def test_atomic_checkpoint_keeps_old_file_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "ck.pt"
    save_checkpoint({"x": torch.ones(2)}, path)

    class Boom:
        def __reduce__(self) -> Any:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        save_checkpoint({"x": Boom()}, path)
    assert torch.equal(load_checkpoint(path)["x"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temp file left behind


def test_checkpoints_refuse_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"obj": Fraction(1, 3)}, path)  # a pickled arbitrary Python object
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(path)
