"""``adaptrl compare`` across adaptation units: a MAML run (gradient steps) beside an RL²
run (episodes of a trial) on the same held-out navigation-2d tasks. One row per method in
its own unit, x positions in episodes of experience (MAML step k at k x E episodes, RL²
episode k+1 after k), pairing with *pretrained* within a unit only, and the refusals that
still hold (different family; different ``evaluation.episodes`` within one unit)."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

import adaptrl.experiment.compare as compare_mod
from adaptrl.cli.main import app
from adaptrl.evaluation.protocol import trial_curve
from adaptrl.experiment.compare import _curves, compare_runs, markdown_table, write_comparison
from adaptrl.experiment.config import ConfigError, validate_config
from adaptrl.experiment.evaluate import evaluate_run, load_learner, load_run
from adaptrl.experiment.learners import build_family
from adaptrl.experiment.trainer import train

MAML_EPISODES = 12  # support episodes per gradient step: MAML step k is at 12 k episodes
RL2_TRIALS = 2      # RL²'s evaluation.episodes: trials per task, a sample size
STEPS = 2
NUM_TASKS = 3
MAML = {"name": "maml", "meta_batch_size": 3, "episodes_per_task": 3,
        "policy": {"hidden": [8, 8], "activation": "tanh"}}
RL2 = {"name": "rl2", "meta_batch_size": 4, "policy": {"hidden_size": 8},
       "ppo": {"epochs": 1, "minibatches": 2}}


def _config(algorithm: dict[str, Any], episodes: int, baselines: list[str],
            horizon: int = 15) -> dict[str, Any]:
    """A one-iteration run on navigation-2d (tests/conftest.py's TINY, evaluation aside)."""
    return {"name": f"tiny-{algorithm['name']}", "seed": 3, "iterations": 1,
            "checkpoint_every": 1,
            "family": {"name": "navigation-2d", "params": {"horizon": horizon}},
            "algorithm": copy.deepcopy(algorithm),
            "evaluation": {"num_tasks": NUM_TASKS, "steps": STEPS, "episodes": episodes,
                           "baselines": baselines},
            "logging": {"tensorboard": False, "progress": False}}


def _maml_config() -> dict[str, Any]:
    return _config(MAML, MAML_EPISODES, ["pretrained", "scratch", "oracle"])


def _rl2_config(horizon: int = 15) -> dict[str, Any]:
    return _config(RL2, RL2_TRIALS, ["oracle"], horizon)


def _train_and_evaluate(cfg: dict[str, Any], path: Path) -> Path:
    exp, algo = validate_config(cfg)
    train(exp, algo, path)
    evaluate_run(path)  # eval.json with the run's own settings
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("units")
    return {"maml": _train_and_evaluate(_maml_config(), root / "maml"),
            "rl2": _train_and_evaluate(_rl2_config(), root / "rl2")}


def test_mixed_units_rows_positions_and_pairing(runs: dict[str, Path]) -> None:
    result = compare_runs([runs["maml"], runs["rl2"]], num_tasks=3, seed=7, steps=STEPS)
    assert result["unit"] == "mixed" and result["units"] == ["episodes", "gradient_steps"]
    assert result["episodes_per_step"] == MAML_EPISODES
    assert result["trials_per_task"] == RL2_TRIALS
    rows = {r["method"]: r for r in result["rows"]}
    assert [r["method"] for r in result["rows"]][:2] == ["maml", "rl2"]
    assert {"pretrained", "scratch", "oracle"} <= set(rows)
    maml, rl2 = rows["maml"], rows["rl2"]
    assert maml["unit"] == "gradient_steps" and rl2["unit"] == "episodes"
    assert maml["steps"] == rl2["steps"] == [0, 1, 2]
    # episodes of experience before the scored ones: k x E for MAML, k for RL²
    assert maml["experience"] == [0, MAML_EPISODES, 2 * MAML_EPISODES]
    assert rows["pretrained"]["experience"] == maml["experience"]
    assert rl2["experience"] == [0, 1, 2]
    # paired with pretrained only in pretrained's unit
    assert maml["vs_pretrained"] is not None and rows["scratch"]["vs_pretrained"] is not None
    assert rl2["vs_pretrained"] is None

    # the RL² row is scored on the held-out tasks of seed 7, with its own trials per task
    run, cfg, algo = load_run(runs["rl2"])
    agent = load_learner(run, cfg, algo, cfg.evaluation.checkpoint).agent()
    family = build_family(cfg)
    tasks = family.sample(3, "test", torch.Generator().manual_seed(7))
    direct = trial_curve(family, agent, tasks, STEPS, RL2_TRIALS,
                         torch.Generator().manual_seed(7), torch.device("cpu"))
    assert torch.allclose(torch.tensor(rl2["per_task"]), direct)

    table = markdown_table(result)
    assert ("| method | algorithm | unit | 0 | 1 | 2 | 1 step − pretrained (paired) |"
            in table)
    assert f"| maml | maml | gradient steps of {MAML_EPISODES} episodes |" in table
    rl2_line = next(line for line in table.splitlines() if line.startswith("| rl2 |"))
    assert "| episodes of a trial |" in rl2_line
    assert rl2_line.split(" | ")[6] == "—"  # no paired cell across units
    assert "| oracle | oracle | — (given the task) |" in table
    assert table.count("\n| ") == len(result["rows"]) + 1

    label, curves, symlog = _curves(result)
    assert symlog and "symlog" in label and "episodes" in label
    x = {r["method"]: c[0] for r, c in zip(result["rows"], curves)}
    assert x["maml"] == [0, 12, 24] and x["rl2"] == [0, 1, 2]
    assert x["oracle"] == [0, 24]  # the flat oracle spans the whole axis


def test_mixed_units_reuse_each_runs_eval_json(runs: dict[str, Path],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """With the runs' own settings nothing is re-evaluated: the RL² run's eval.json counts
    its trials per task, not MAML's episodes per step."""
    def fail(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("re-evaluated a run whose eval.json fits")

    monkeypatch.setattr(compare_mod, "evaluate_run", fail)
    result = compare_runs([runs["maml"], runs["rl2"]])
    assert result["num_tasks"] == NUM_TASKS
    assert [r["unit"] for r in result["rows"]][:2] == ["gradient_steps", "episodes"]


def test_mixed_units_cli_writes_table_and_plot(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    res = CliRunner().invoke(app, ["compare", str(runs["maml"]), str(runs["rl2"]),
                                   "--out", str(out), "--tasks", "3", "--seed", "7"])
    assert res.exit_code == 0, res.output
    assert "| rl2 | rl2 | episodes of a trial |" in res.output
    assert (out / "adaptation_curves.png").stat().st_size > 1000
    assert "unit" in (out / "comparison.md").read_text()


def test_single_unit_plot_keeps_the_unit_axis(runs: dict[str, Path], tmp_path: Path) -> None:
    result = compare_runs([runs["rl2"]], num_tasks=3, seed=7)
    assert result["unit"] == "episodes" and result["episodes_per_step"] is None
    label, curves, symlog = _curves(result)
    assert label == "episodes" and not symlog and curves[0][0] == [0, 1, 2]
    table = markdown_table(result)
    assert "| method | algorithm | 0 episodes | 1 episode | 2 episodes |" in table
    assert f"{RL2_TRIALS} trials per task" in table
    assert write_comparison(result, tmp_path)[2].stat().st_size > 1000


def test_mixed_units_still_need_one_family(runs: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "rl2-h12"
    exp, algo = validate_config(_rl2_config(horizon=12))
    train(exp, algo, other)
    with pytest.raises(ConfigError, match="share the task family"):
        compare_runs([runs["maml"], other])
    res = CliRunner().invoke(app, ["compare", str(runs["maml"]), str(other)])
    assert res.exit_code == 2 and "family" in res.output


def test_runs_of_one_unit_must_share_evaluation_episodes(runs: dict[str, Path],
                                                         tmp_path: Path) -> None:
    """Two RL² runs averaging different numbers of trials are refused (as two MAML runs
    with different support sizes are); RL² beside MAML is not."""
    copy_dir = tmp_path / "rl2-more-trials"
    shutil.copytree(runs["rl2"], copy_dir)
    cfg = yaml.safe_load((copy_dir / "config.yaml").read_text())
    cfg["evaluation"]["episodes"] = RL2_TRIALS + 1
    (copy_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="evaluation.episodes=3.*trials per task"):
        compare_runs([runs["maml"], runs["rl2"], copy_dir])


def test_runs_must_share_their_test_tasks(runs: dict[str, Path], tmp_path: Path) -> None:
    """A run scored on a tasks file is not compared with one scored on the test split:
    the paired differences would pair different tasks."""
    copy_dir = tmp_path / "maml-on-file"
    shutil.copytree(runs["maml"], copy_dir)
    cfg = yaml.safe_load((copy_dir / "config.yaml").read_text())
    cfg["evaluation"]["tasks_file"] = "configs/tasks/maml-navigation-paper-goals.json"
    (copy_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="must share their test tasks"):
        compare_runs([runs["maml"], copy_dir])
