"""Training along a task stream: the schedule's stages, every stage scored after each stage
ends, the record checkpointed (exact resume) and reported in eval.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from test_fault_support import assert_same_run, run_train, tiny  # noqa: I001

from adaptrl.algorithms.maml import MAML
from adaptrl.experiment import fault_points
from adaptrl.experiment.checkpoints import load_checkpoint
from adaptrl.experiment.config import validate_config
from adaptrl.experiment.evaluate import evaluate_run
from adaptrl.experiment.run_dir import read_metrics
from adaptrl.tasks.base import Tasks

STREAM = {"kind": "stages", "parameter": "goal[0]", "num_stages": 2, "iterations_per_stage": 2,
          "eval_tasks_per_stage": 2}


def stream_config() -> dict[str, Any]:
    return tiny("maml", schedule=dict(STREAM))


def test_stages_draw_their_tasks_and_every_stage_is_scored_when_one_ends(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[Tasks] = []
    original = MAML.meta_update

    def spy(self: MAML, tasks: Tasks) -> dict[str, float]:
        drawn.append(tasks)
        return original(self, tasks)

    monkeypatch.setattr(MAML, "meta_update", spy)
    run_train(stream_config(), tmp_path / "run")
    goals = [t.params["goal"][:, 0] for t in drawn]
    assert all(bool((g < 0.0).all()) for g in goals[:2])  # stage 0: goal x in [-0.5, 0)
    assert all(bool((g >= 0.0).all()) for g in goals[2:])  # stage 1: [0, 0.5]
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["stage"] for r in rows] == [0, 0, 1, 1]
    scored = [r for r in rows if "stream/retained" in r]
    assert [r["iteration"] for r in scored] == [1, 3]  # at the end of each stage
    assert scored[0]["stream/backward_transfer"] is None  # nothing learned before stage 0
    assert isinstance(scored[1]["stream/backward_transfer"], float)
    record = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["stream"]
    assert record is not None


def test_a_stream_resumes_exactly_across_a_stage_boundary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_train(stream_config(), tmp_path / "unbroken")
    hits = {"n": 0}

    def stop_after_the_first_stage(name: str) -> None:
        if name == "train.committed":
            hits["n"] += 1
            if hits["n"] == 3:  # iteration 2 of 4 finished: stage 0 scored, stage 1 begun
                raise KeyboardInterrupt

    monkeypatch.setattr(fault_points, "hook", stop_after_the_first_stage)
    with pytest.raises(KeyboardInterrupt):
        run_train(stream_config(), tmp_path / "resumed")
    monkeypatch.setattr(fault_points, "hook", None)
    run_train(stream_config(), tmp_path / "resumed", resume=True)
    assert_same_run(tmp_path / "resumed", tmp_path / "unbroken")
    a = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "latest.pt")["stream"]
    b = load_checkpoint(tmp_path / "unbroken" / "checkpoints" / "latest.pt")["stream"]
    assert a.keys() == b.keys()
    for key in a:
        assert str(a[key]) == str(b[key]), key


def test_eval_json_reports_the_stream_and_its_stages(tmp_path: Path) -> None:
    run_train(stream_config(), tmp_path / "run")
    evaluate_run(tmp_path / "run")
    result = json.loads((tmp_path / "run" / "eval.json").read_text())
    stream = result["stream"]
    assert len(stream["mean"]) == 2 and all(len(row) == 2 for row in stream["mean"])
    assert set(stream["metrics"]) == {"retained", "learning", "backward_transfer",
                                      "forgetting"}
    assert len(result["stages"]) == 2


def test_an_iid_run_keeps_no_stream_record(tmp_path: Path) -> None:
    run_train(tiny("maml"), tmp_path / "run")
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert "stream" not in state
    assert "stage" not in read_metrics(tmp_path / "run" / "metrics.jsonl")[0]
    evaluate_run(tmp_path / "run")
    assert "stream" not in json.loads((tmp_path / "run" / "eval.json").read_text())


def test_the_stream_must_fill_the_run() -> None:
    with pytest.raises((ValidationError, ValueError), match="schedule: the stream lasts 4"):
        validate_config(tiny("maml", iterations=5, schedule=dict(STREAM)))
