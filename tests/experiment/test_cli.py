"""CLI smoke runs on tiny budgets: train -> evaluate -> plot, list, help, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from typer.testing import CliRunner

from adaptrl.cli.main import app
from adaptrl.tasks import make
from adaptrl.tasks.files import save_tasks

runner = CliRunner()


def test_train_evaluate_plot(tmp_path: Path, tiny_config_file: Path) -> None:
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", str(tiny_config_file), "--run-dir", str(run),
                              "--iterations", "2", "--seed", "5",
                              "--set", "baselines.pretrained_iterations=1"])
    assert res.exit_code == 0, res.output
    ev = json.loads((run / "eval.json").read_text())
    assert ev["family"] == "navigation-2d" and ev["split"] == "test"
    assert ev["unit"] == "gradient_steps" and ev["num_tasks"] == 3
    assert {"agent", "pretrained", "scratch"} <= set(ev["methods"])
    for m in ev["methods"].values():
        assert m["steps"] == [0, 1, 2] and len(m["mean"]) == 3 and len(m["ci95"]) == 3
    assert (run / "baselines" / "pretrained" / "checkpoints" / "best.pt").exists()
    assert set(ev["agent_minus"]) == set(ev["methods"]) - {"agent", "oracle"}
    assert "agent − baseline" in res.output

    default = (run / "eval.json").read_text()
    res = runner.invoke(app, ["evaluate", str(run), "--tasks", "4", "--steps", "1",
                              "--seed", "9"])
    assert res.exit_code == 0, res.output
    # other settings than the config's: their own file; the run's eval.json stays
    ev = json.loads((run / "eval-tasks4-steps1-seed9.json").read_text())
    assert ev["num_tasks"] == 4 and ev["methods"]["agent"]["steps"] == [0, 1]
    assert ev["seed"] == 9
    assert (run / "eval.json").read_text() == default

    res = runner.invoke(app, ["plot", str(run)])
    assert res.exit_code == 0, res.output
    for name in ("learning_curve.png", "adaptation_curve.png", "paths.png"):
        assert (run / "plots" / name).stat().st_size > 1000


def test_evaluation_is_deterministic(tmp_path: Path, tiny_config_file: Path) -> None:
    run = tmp_path / "run"
    assert runner.invoke(app, ["train", str(tiny_config_file), "--run-dir", str(run),
                               "--no-eval"]).exit_code == 0
    runner.invoke(app, ["evaluate", str(run), "--seed", "2"])
    first = (run / "eval-seed2.json").read_text()
    runner.invoke(app, ["evaluate", str(run), "--seed", "2"])
    assert (run / "eval-seed2.json").read_text() == first


def test_bad_input_is_a_clear_error(tmp_path: Path, tiny_config_file: Path) -> None:
    res = runner.invoke(app, ["train", str(tiny_config_file), "--run-dir", str(tmp_path / "r"),
                              "--set", "algorithm.inner.lr=-3"])
    assert res.exit_code == 2
    assert "algorithm.inner.lr" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["evaluate", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "not a run directory" in res.output
    res = runner.invoke(app, ["train", str(tmp_path / "missing.yaml")])
    assert res.exit_code == 2 and "cannot read" in res.output


def test_list_and_help() -> None:
    res = runner.invoke(app, ["list"])
    assert res.exit_code == 0 and "navigation-2d" in res.output and "maml" in res.output
    res = runner.invoke(app, ["train", "--help"])
    for opt in ("--run-dir", "--iterations", "--seed", "--set", "--resume", "--no-eval"):
        assert opt in res.output


def test_evaluate_on_a_tasks_file(tmp_path: Path, tiny_config_file: Path) -> None:
    """A file holding the test split's own draw scores exactly as the draw does; the result
    says where its tasks came from; asking more tasks than the file holds is an error."""
    run = tmp_path / "run"
    assert runner.invoke(app, ["train", str(tiny_config_file), "--run-dir", str(run),
                               "--no-eval"]).exit_code == 0
    drawn = make("navigation-2d").sample(3, "test", torch.Generator().manual_seed(9))
    path = tmp_path / "goals.json"
    save_tasks(path, "navigation-2d", drawn)
    res = runner.invoke(app, ["evaluate", str(run), "--tasks", "3", "--seed", "9"])
    assert res.exit_code == 0, res.output
    sampled = json.loads((run / "eval-seed9.json").read_text())
    res = runner.invoke(app, ["evaluate", str(run), "--tasks", "3", "--seed", "9",
                              "--tasks-file", str(path)])
    assert res.exit_code == 0, res.output
    fixed = json.loads((run / "eval-seed9-tasksfile-goals.json").read_text())
    assert sampled["split"] == "test" and "tasks_file" not in sampled
    assert fixed["split"] == "tasks_file" and fixed["tasks_file"] == str(path)
    assert fixed["methods"] == sampled["methods"]
    res = runner.invoke(app, ["evaluate", str(run), "--tasks", "4", "--tasks-file", str(path)])
    assert res.exit_code == 2 and "holds 3 tasks, 4 asked" in " ".join(res.output.split())
