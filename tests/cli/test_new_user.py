"""What a new user hit, one test per report: evaluations under other settings kept apart
from eval.json, compare re-evaluating under one protocol, RL²'s table at 80 columns,
``--no-eval`` still drawing the learning curve, ``--iterations`` capping the trained
baselines, formatted numbers, and Meta-World's success rate printed."""

from __future__ import annotations

import copy
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from conftest import TINY
from rich.console import Console
from typer.testing import CliRunner

from adaptrl.cli import main
from adaptrl.cli.main import app
from adaptrl.evaluation.classic_tables import render_table
from adaptrl.experiment.config import validate_config
from adaptrl.experiment.evaluate import evaluation_name

runner = CliRunner()
RAW_FLOAT = re.compile(r"\d\.\d{5,}")
"""A float printed unformatted (``-48.11217498779297``)."""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny MAML run with its pretrained baseline, trained and evaluated by the CLI."""
    root = tmp_path_factory.mktemp("new-user")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    run = root / "run"
    res = runner.invoke(app, ["train", str(config), "--run-dir", str(run),
                              "--set", "baselines.pretrained_iterations=1"])
    assert res.exit_code == 0, res.output
    return {"root": root, "config": config, "run": run, "output": res.output}


def _copy(run: Path, to: Path, change: dict[str, Any]) -> Path:
    """A copy of ``run`` whose config.yaml has ``change`` (dotted keys) applied."""
    shutil.copytree(run, to)
    config = yaml.safe_load((to / "config.yaml").read_text())
    for key, value in change.items():
        *path, last = key.split(".")
        node = config
        for part in path:
            node = node[part]
        node[last] = value
    (to / "config.yaml").write_text(yaml.safe_dump(config))
    (to / "eval.json").unlink(missing_ok=True)
    return to


def _one_line(text: str) -> str:
    return " ".join(text.split())


# 1 -------------------------------------------------------------------------------------------
def test_evaluate_with_other_settings_writes_its_own_file(trained: dict[str, Any],
                                                          tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Other settings than the config's go to eval-<settings>.json (said in the output),
    --out to the named file; eval.json, which plots and the report read, stays; the
    config's own settings still write eval.json; compare reuses a matching file."""
    run = trained["run"]
    default = (run / "eval.json").read_text()
    res = runner.invoke(app, ["evaluate", str(run), "--tasks", "4", "--seed", "9"])
    assert res.exit_code == 0, res.output
    named = run / "eval-tasks4-seed9.json"
    assert f"wrote {named}" in _one_line(res.output)
    assert "left as it was" in res.output
    assert json.loads(named.read_text())["num_tasks"] == 4
    assert (run / "eval.json").read_text() == default

    out = tmp_path / "mine.json"
    res = runner.invoke(app, ["evaluate", str(run), "--steps", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["methods"]["agent"]["steps"] == [0, 1]
    assert (run / "eval.json").read_text() == default

    res = runner.invoke(app, ["evaluate", str(run), "--seed", "12345", "--tasks", "3"])
    assert res.exit_code == 0, res.output  # the config's own settings: the default file
    assert f"wrote {run / 'eval.json'}" in _one_line(res.output)
    assert json.loads((run / "eval.json").read_text()) == json.loads(default)

    config, _ = validate_config(yaml.safe_load((run / "config.yaml").read_text()))
    assert evaluation_name(config) == "eval.json"
    assert evaluation_name(config, 40, 3, 12345) == "eval-tasks40-steps3.json"
    assert evaluation_name(config, checkpoint="latest",
                           tasks_file="configs/tasks/a b.json") == "eval-latest-tasksfile-a_b.json"

    # compare under these settings reuses eval-tasks4-seed9.json instead of re-evaluating
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("re-evaluated a run whose eval-<settings>.json fits")

    monkeypatch.setattr("adaptrl.experiment.compare.evaluate_run", refuse)
    res = runner.invoke(app, ["compare", str(run), "--tasks", "4", "--seed", "9"])
    assert res.exit_code == 0, res.output


# 2 -------------------------------------------------------------------------------------------
def test_compare_reevaluates_runs_evaluated_differently(trained: dict[str, Any],
                                                        tmp_path: Path) -> None:
    """Runs evaluated with other episodes / batch unit / tasks file are refused with a way
    out; --reevaluate scores them under the first run's protocol (the same weights then
    score the same); a run on another family stays refused."""
    run = trained["run"]
    other = _copy(run, tmp_path / "other", {"evaluation.episodes": 5,
                                            "evaluation.batch_unit": "steps"})
    res = runner.invoke(app, ["compare", str(run), str(other)])
    assert res.exit_code == 2
    assert "--reevaluate" in _one_line(res.output)

    out = tmp_path / "cmp"
    res = runner.invoke(app, ["compare", str(run), str(other), "--reevaluate",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    said = _one_line(res.output)
    assert f"scored {other} under the common protocol" in said
    assert "evaluation.episodes 5 -> 3" in said and "batch_unit steps -> episodes" in said
    comparison = json.loads((out / "comparison.json").read_text())
    first, second = comparison["rows"][:2]
    assert second["run"] == str(other)
    assert second["per_task"] == first["per_task"]  # same weights, one protocol
    assert set(comparison["reevaluated"]) == {str(other)}
    assert not (other / "eval.json").exists()  # compare writes no run's evaluation

    # a tasks file differs: refused, then scored on the first run's test split
    from adaptrl.tasks import make
    from adaptrl.tasks.files import save_tasks

    goals = tmp_path / "goals.json"
    save_tasks(goals, "navigation-2d",
               make("navigation-2d").sample(3, "test", torch.Generator().manual_seed(1)))
    filed = _copy(run, tmp_path / "filed", {"evaluation.tasks_file": str(goals)})
    res = runner.invoke(app, ["compare", str(run), str(filed)])
    assert res.exit_code == 2 and "--reevaluate" in _one_line(res.output)
    res = runner.invoke(app, ["compare", str(run), str(filed), "--reevaluate"])
    assert res.exit_code == 0, res.output
    assert f"evaluation.tasks_file {goals} -> None" in _one_line(res.output)

    # another family cannot be re-evaluated
    moved = _copy(run, tmp_path / "moved", {"family.params.horizon": 10})
    res = runner.invoke(app, ["compare", str(run), str(moved), "--reevaluate"])
    assert res.exit_code == 2
    assert "runs must share the task family" in _one_line(res.output)
    assert "--reevaluate cannot help" in _one_line(res.output)


# 3 -------------------------------------------------------------------------------------------
def _classic(settings: list[int]) -> dict[str, Any]:
    from adaptrl.agents.classic.methods import PAPER_MDP_METHODS

    methods = [*PAPER_MDP_METHODS, "beb_per_step", "rl2"]
    return {"family": "tabular-mdp", "score": "total reward per trial", "settings": [
        {"n": n, "methods": {m: {"mean": 100.0 * n + 1.37 * i, "ci95": 2.5 + i / 10}
                             for i, m in enumerate(methods)}} for n in settings]}


@pytest.mark.parametrize("settings", [[25], [10, 25, 50, 75, 100, 500]])
def test_the_rl2_table_shows_every_number_at_80_columns(settings: list[int],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """render_table at 80 columns: every method's mean (and CI) whole, no line wider."""
    table = _classic(settings)
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(render_table(table, width=console.width))
    text = console.export_text()
    for setting in table["settings"]:
        for name, r in setting["methods"].items():
            assert name in text
            assert f"{r['mean']:.1f} ± {r['ci95']:.1f}" in text, (name, setting["n"])
    assert "…" not in text and max(map(len, text.splitlines())) <= 80
    # as the CLI prints an eval.json's table, on an 80-column terminal
    monkeypatch.setattr(main, "console", Console(width=80, record=True, file=io.StringIO()))
    main._print_eval({"family": "tabular-mdp", "num_tasks": 2, "unit": "episodes",
                      "methods": {"agent": {"steps": [0], "mean": [1.0], "ci95": [0.5]}},
                      "table": table})
    printed = main.console.export_text()
    for name, r in table["settings"][0]["methods"].items():
        assert f"{r['mean']:.1f} ± {r['ci95']:.1f}" in printed, name


# 4 -------------------------------------------------------------------------------------------
def test_no_eval_draws_the_learning_curve_and_says_what_it_skipped(
        tmp_path: Path, tiny_config_file: Path) -> None:
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", str(tiny_config_file), "--run-dir", str(run),
                              "--no-eval"])
    assert res.exit_code == 0, res.output
    assert (run / "plots" / "learning_curve.png").stat().st_size > 1000
    assert not (run / "plots" / "adaptation_curve.png").exists()
    said = _one_line(res.output)
    assert "skipped (--no-eval)" in said and "adaptation curve" in said
    assert f"adaptrl evaluate {run}" in said


# 5 -------------------------------------------------------------------------------------------
def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_iterations_caps_the_trained_baselines(tmp_path: Path,
                                               tiny_config: dict[str, Any]) -> None:
    """A config's longer baselines.pretrained_iterations is capped at --iterations (said in
    one line, recorded in the run's config.yaml); one given with --set is kept."""
    config = copy.deepcopy(tiny_config)
    config.update(iterations=10, baselines={"pretrained_iterations": 6})
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", str(path), "--run-dir", str(run), "--iterations", "1",
                              "--no-eval"])
    assert res.exit_code == 0, res.output
    said = _one_line(res.output)
    assert "--iterations 1: the trained baselines train at most as long as the run" in said
    assert "pretrained (6 in the config)" in said
    assert _lines(run / "metrics.jsonl") == 1
    assert _lines(run / "baselines" / "pretrained" / "metrics.jsonl") == 1
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["baselines"]["pretrained_iterations"] == 1

    kept = tmp_path / "kept"
    res = runner.invoke(app, ["train", str(path), "--run-dir", str(kept), "--iterations", "1",
                              "--set", "baselines.pretrained_iterations=2", "--no-eval"])
    assert res.exit_code == 0, res.output
    assert "at most as long" not in res.output
    assert _lines(kept / "baselines" / "pretrained" / "metrics.jsonl") == 2


# 6 -------------------------------------------------------------------------------------------
def test_every_printed_number_is_formatted(trained: dict[str, Any]) -> None:
    output = trained["output"]
    assert re.search(r"best iteration \d+ \(score -?\d+\.\d\d\)", output), output
    assert not RAW_FLOAT.search(output), RAW_FLOAT.search(output)
    assert main.number(-48.11217498779297) == "-48.11"
    assert main.number(0.000123456) == "0.000123" and main.number(None) == "—"


# 7 -------------------------------------------------------------------------------------------
def test_the_success_rate_is_printed_beside_the_return(monkeypatch: pytest.MonkeyPatch) -> None:
    """An eval.json with Meta-World's success rate prints it in its own table."""
    monkeypatch.setattr(main, "console", Console(width=100, record=True, file=io.StringIO()))
    method = {"steps": [0, 1], "mean": [-120.5, -80.25], "ci95": [10.0, 8.0],
              "success_mean": [0.125, 0.6], "success_ci95": [0.05, 0.1]}
    main._print_eval({"family": "metaworld-ml1", "num_tasks": 4, "unit": "gradient_steps",
                      "methods": {"agent": method,
                                  "oracle": {"steps": [0, 1], "mean": [1.0, 1.0],
                                             "ci95": [0.0, 0.0]}}})
    text = main.console.export_text()
    assert "-80.25 ± 8.00" in text
    assert "success rate" in text and "0.12 ± 0.05" in text and "0.60 ± 0.10" in text
