"""NaN / Inf never pass silently (item 5): diverging settings stop training with one line
naming the iteration and the settings, the last finite state is kept (never a non-finite
one), and no file holds a NaN (JSON is written strictly)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from test_fault_support import run_train, tiny

from adaptrl.errors import FaultError, UserError
from adaptrl.experiment.atomic import atomic_write_json
from adaptrl.experiment.checkpoints import read_run_checkpoint
from adaptrl.experiment.evaluate import evaluate_run
from adaptrl.experiment.run_dir import MetricsLog, read_metrics
from adaptrl.experiment.trainer import DivergenceError

RELU = {"hidden": [4], "activation": "relu"}
DIVERGING: dict[str, tuple[str, dict[str, Any], str]] = {
    # name: (algorithm, algorithm settings, the setting the message must name)
    "maml inner lr 1e6": ("maml", {"inner": {"lr": 1e6}}, "algorithm.inner.lr = 1e+06"),
    "init_std 1e-300": ("maml", {"policy": {**RELU, "init_std": 1e-300}},
                        "algorithm.policy.init_std = 1e-300"),
    "init_std 1e300": ("maml", {"policy": {**RELU, "init_std": 1e300}},
                       "algorithm.policy.init_std = 1e+300"),
    "reptile outer lr 1e6": ("reptile", {"outer_lr": 1e6, "policy": RELU},
                             "algorithm.outer_lr = 1e+06"),
    "rl2 ppo lr 1e4": ("rl2", {"ppo": {"lr": 1e4, "minibatches": 1, "epochs": 1}},
                       "algorithm.ppo.lr = 10000"),
}


def _no_nan_anywhere(text: str) -> None:
    def refuse(token: str) -> Any:
        raise AssertionError(f"non-JSON token {token}")
    for line in text.splitlines():
        json.loads(line, parse_constant=refuse)


@pytest.mark.parametrize("case", sorted(DIVERGING))
def test_divergence_stops_training_and_keeps_the_last_finite_state(case: str,
                                                                   tmp_path: Path) -> None:
    algorithm, settings, setting = DIVERGING[case]
    cfg = tiny(algorithm, iterations=6)
    cfg["algorithm"].update(settings)
    run = tmp_path / "run"
    with pytest.raises(DivergenceError) as err:
        run_train(cfg, run)
    message = str(err.value)
    assert err.value.exit_code == 1 and "\n" not in message
    assert "diverged at iteration" in message and setting in message
    text = (run / "metrics.jsonl").read_text() if (run / "metrics.jsonl").exists() else ""
    _no_nan_anywhere(text)
    assert "null" not in text
    latest = run / "checkpoints" / "latest.pt"
    if latest.exists():  # diverged in training: the last finite state is kept, resumable
        state = read_run_checkpoint(latest)  # whole and finite
        assert state["iteration"] == len(read_metrics(run / "metrics.jsonl"))
        assert "holds the last finite state" in message
    else:  # the starting weights were already non-finite: nothing saved
        assert "starting weights" in message and "nothing was saved" in message


def test_an_infinite_step_size_is_refused_by_the_config(tmp_path: Path) -> None:
    cfg = tiny("maml")
    cfg["algorithm"]["inner"] = {"lr": math.inf}
    with pytest.raises(UserError, match="algorithm.inner.lr"):
        run_train(cfg, tmp_path / "run")


def test_evaluating_a_nearly_diverged_run_never_writes_nan(tmp_path: Path) -> None:
    """The last finite weights of a diverging run adapt into NaN at evaluation: a one-line
    fault, and no eval.json (it held bare NaN tokens before)."""
    algorithm, settings, _ = DIVERGING["reptile outer lr 1e6"]
    cfg = tiny(algorithm, iterations=6)
    cfg["algorithm"].update(settings)
    with pytest.raises(DivergenceError):
        run_train(cfg, tmp_path / "run")
    with pytest.raises(FaultError, match="non-finite scores in methods.agent.mean"):
        evaluate_run(tmp_path / "run", checkpoint="latest")
    assert not (tmp_path / "run" / "eval.json").exists()


def test_json_writers_refuse_nan(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path / "metrics.jsonl")
    with pytest.raises(ValueError):
        log.write({"iteration": 0, "loss": math.nan})
    log.close()
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "eval.json", {"mean": [math.inf]})
    assert not (tmp_path / "eval.json").exists()
    assert (tmp_path / "metrics.jsonl").read_text() == ""
