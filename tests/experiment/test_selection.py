"""Best-checkpoint selection: by the training batch's return, or by validation runs of the
evaluation protocol on fixed train-split tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from adaptrl.evaluation.protocol import adaptation_curve
from adaptrl.experiment.checkpoints import load_checkpoint
from adaptrl.experiment.config import ConfigError, validate_config
from adaptrl.experiment.evaluate import load_learner, load_run
from adaptrl.experiment.learners import build_family
from adaptrl.experiment.run_dir import read_metrics
from adaptrl.experiment.trainer import train


def _validated(cfg: dict[str, Any]) -> dict[str, Any]:
    cfg["iterations"] = 4
    cfg["selection"] = {"by": "validation", "every": 2, "num_tasks": 3, "seed": 7}
    return cfg


def _train(cfg: dict[str, Any], path: Path, resume: bool = False) -> None:
    exp, algo = validate_config(cfg)
    train(exp, algo, path, resume=resume, baselines=False)


def test_validation_scores_are_logged_every_k_iterations_and_pick_the_best(
        tmp_path: Path, tiny_config: dict[str, Any]) -> None:
    _train(_validated(tiny_config), tmp_path / "run")
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    scored = {r["iteration"]: r["validation_return"] for r in rows if "validation_return" in r}
    assert sorted(scored) == [1, 3]  # after 2 and 4 finished iterations
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert best["best_score"] == max(scored.values())
    assert best["best_iteration"] == max(scored, key=scored.get)

    # the score is the protocol's mean return over units 1..K on the validation tasks,
    # recomputed here from the saved best checkpoint
    run, config, algo = load_run(tmp_path / "run")
    family = build_family(config)
    tasks = family.sample(3, "train", torch.Generator().manual_seed(7))
    learner = load_learner(run, config, algo, "best")
    curve = adaptation_curve(family, learner.agent(config.evaluation.step_sizes), tasks,
                             config.evaluation.steps, config.evaluation.episodes, 7,
                             torch.device("cpu"))
    assert float(curve[1:].mean()) == pytest.approx(best["best_score"], rel=1e-6)


def test_resume_with_validation_equals_unbroken_run(tmp_path: Path,
                                                    tiny_config: dict[str, Any]) -> None:
    _train(_validated(tiny_config), tmp_path / "full")
    tiny_config["iterations"] = 2
    _train(tiny_config, tmp_path / "split")
    tiny_config["iterations"] = 4
    _train(tiny_config, tmp_path / "split", resume=True)
    def strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]
    assert strip(read_metrics(tmp_path / "split" / "metrics.jsonl")) == \
        strip(read_metrics(tmp_path / "full" / "metrics.jsonl"))
    a = load_checkpoint(tmp_path / "full" / "checkpoints" / "best.pt")
    b = load_checkpoint(tmp_path / "split" / "checkpoints" / "best.pt")
    assert (a["best_iteration"], a["best_score"]) == (b["best_iteration"], b["best_score"])


def test_bad_selection_rule_names_the_field(tiny_config: dict[str, Any]) -> None:
    tiny_config["selection"] = {"by": "test_return"}
    with pytest.raises(ConfigError, match="selection.by"):
        validate_config(tiny_config)
