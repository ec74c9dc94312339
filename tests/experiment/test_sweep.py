"""`adaptrl sweep`: --param parsing and its errors; a tiny sweep end to end on Ray Tune with
its report, best config and a re-run that skips the finished trials."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from adaptrl.cli.main import app
from adaptrl.errors import UserError
from adaptrl.experiment.config import ConfigError
from adaptrl.experiment.sweep import (
    Param,
    check_params,
    grid_points,
    parse_param,
    parse_params,
    point_name,
    sensitivity,
)

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="needs the ray extra: pip install 'adaptrl[ray]'")


def test_param_lists_and_ranges() -> None:
    assert parse_param("algorithm.inner.lr=0.05,0.1") == Param("algorithm.inner.lr",
                                                               values=(0.05, 0.1))
    assert parse_param("algorithm.policy.hidden=[8,8],[16,16]").values == ([8, 8], [16, 16])
    assert parse_param("algorithm.policy.activation=tanh,relu").values == ("tanh", "relu")
    p = parse_param("algorithm.inner.lr=loguniform(0.01, 0.3)")
    assert (p.kind, p.low, p.high, p.is_range) == ("loguniform", 0.01, 0.3, True)
    assert parse_param("algorithm.episodes_per_task=randint(2,5)").ends() == (2, 4)
    assert grid_points([Param("a", values=(1, 2)), Param("b", values=("x",))]) == [
        {"a": 1, "b": "x"}, {"a": 2, "b": "x"}]


@pytest.mark.parametrize("text, words", [
    ("algorithm.inner.lr", ["KEY=VALUES"]),
    ("=0.1", ["KEY=VALUES"]),
    ("algorithm..lr=0.1", ["malformed key"]),
    ("algorithm.inner.lr=", ["KEY=VALUES"]),
    ("algorithm.inner.lr=gaussian(0,1)", ["unknown range 'gaussian'", "uniform"]),
    ("algorithm.inner.lr=uniform(0.3,0.1)", ["low < high"]),
    ("algorithm.inner.lr=loguniform(0,1)", ["loguniform needs low > 0"]),
    ("algorithm.inner.lr=uniform(a,1)", ["'a' is not a number"]),
    ("algorithm.inner.lr=randint(1.5,3)", ["integer bounds"]),
    ("algorithm.inner.lr=0.1,0.1", ["given twice"]),
    ("algorithm.inner.lr=[0.1", ["not valid YAML"]),
])
def test_bad_param_is_a_clear_error(text: str, words: list[str]) -> None:
    with pytest.raises(UserError) as err:
        parse_param(text)
    assert f"--param {text!r}" in str(err.value)
    for word in words:
        assert word in str(err.value), str(err.value)


def test_param_values_are_checked_against_the_config(tiny_config: dict[str, Any]) -> None:
    with pytest.raises(UserError, match="given twice"):
        parse_params(["a=1", "a=2"])
    with pytest.raises(UserError, match="at least one --param"):
        parse_params([])
    with pytest.raises(ConfigError, match=r"--param algorithm.inner.lr: value -0.1 .*inner\.lr"):
        check_params(tiny_config, [parse_param("algorithm.inner.lr=0.1,-0.1")])
    with pytest.raises(ConfigError, match=r"--param algorithm.nope: .*unknown key"):
        check_params(tiny_config, [parse_param("algorithm.nope=1,2")])


def test_point_names_are_run_names() -> None:
    name = point_name("tiny", {"algorithm.inner.lr": 0.123456789, "x": [8, 8]}, hashed=True)
    assert "/" not in name and " " not in name and name.startswith("tiny-")
    assert name != point_name("tiny", {"algorithm.inner.lr": 0.1234567, "x": [8, 8]}, True)


def test_sensitivity_pools_seeds_per_value() -> None:
    records = [{"point": {"lr": 0.1, "h": 8}, "final_return": [1.0, 3.0]},
               {"point": {"lr": 0.1, "h": 16}, "final_return": [5.0, 7.0]},
               {"point": {"lr": 0.2, "h": 8}, "final_return": [0.0, 0.0]}]
    sens = sensitivity([Param("lr", values=(0.1, 0.2)), Param("h", values=(8, 16))], records)
    assert [(r["value"], r["mean"], r["runs"]) for r in sens["lr"]] == [(0.1, 4.0, 4),
                                                                        (0.2, 0.0, 2)]
    assert sens["h"][0]["value"] == 8 and sens["h"][0]["mean"] == 1.0
    assert sens["lr"][0]["ci95"] > 0


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_cli_bad_param_exits_2_with_one_line(tiny_config_file: Path, tmp_path: Path) -> None:
    result = _cli("sweep", str(tiny_config_file), "--param", "algorithm.inner.lr",
                  "--out", str(tmp_path / "s"))
    assert result.exit_code == 2
    assert "error: --param 'algorithm.inner.lr': expected KEY=VALUES" in result.output
    result = _cli("sweep", str(tiny_config_file), "--param", "algorithm.inner.lr=0.1,0.2",
                  "--samples", "3", "--out", str(tmp_path / "s"))
    assert result.exit_code == 2 and "--samples counts the points" in result.output
    result = _cli("sweep", str(tiny_config_file), "--param",
                  "algorithm.inner.lr=uniform(0.05,0.2)", "--out", str(tmp_path / "s"))
    assert result.exit_code == 2 and "--samples N (>= 1) is needed" in result.output
    result = _cli("sweep", str(tiny_config_file), "--param", "algorithm.inner.lr=0.1,0.2",
                  "--set", "sampler.backend=ray", "--out", str(tmp_path / "s"))
    assert result.exit_code == 2 and "trials sample locally" in result.output
    result = _cli("sweep", str(tiny_config_file), "--param", "algorithm.inner.lr=0.1,0.2",
                  "--seeds", "0", "--out", str(tmp_path / "s"))
    assert result.exit_code == 2 and "--seeds" in result.output
    assert not (tmp_path / "s").exists()


@needs_ray
@pytest.mark.extra
@pytest.mark.slow  # ~45 s on 2 busy cores: Ray and Tune start, four runs train and evaluate
def test_grid_sweep_end_to_end_and_resume(tiny_config_file: Path, tmp_path: Path) -> None:
    """2 step sizes x 2 seeds on Ray Tune (2 CPUs): four ordinary runs, the report, the best
    config; the same command again runs nothing."""
    out = tmp_path / "sweep"
    args = ("sweep", str(tiny_config_file), "--param", "algorithm.inner.lr=0.05,0.2",
            "--seeds", "2", "--cpus", "2", "--out", str(out))
    result = _cli(*args)
    assert result.exit_code == 0, result.output
    assert "2 trial(s) run" in result.output
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs == ["tiny-algorithm.inner.lr=0.05-s3", "tiny-algorithm.inner.lr=0.05-s4",
                    "tiny-algorithm.inner.lr=0.2-s3", "tiny-algorithm.inner.lr=0.2-s4"]
    for run in runs:  # ordinary run directories, trained to the end and evaluated
        assert (out / "runs" / run / "eval.json").is_file()
        assert (out / "runs" / run / "checkpoints" / "latest.pt").is_file()
    report = json.loads((out / "report.json").read_text())
    assert len(report["trials"]) == 2 and report["search"] == "grid"
    rows = report["sensitivity"]["algorithm.inner.lr"]
    assert [r["value"] for r in rows] == [0.05, 0.2] and all(r["runs"] == 2 for r in rows)
    for trial in report["trials"]:
        evals = [json.loads((Path(r) / "eval.json").read_text()) for r in trial["runs"]]
        finals = [e["methods"]["agent"]["mean"][-1] for e in evals]
        assert trial["final_return"] == finals and trial["ci95"] is not None
    best = max(report["trials"], key=lambda t: t["mean"])
    assert report["best"]["name"] == best["name"]
    best_cfg = yaml.safe_load((out / "best.yaml").read_text())
    assert best_cfg["algorithm"]["inner"]["lr"] == best["point"]["algorithm.inner.lr"]
    assert "algorithm.inner.lr" in (out / "report.md").read_text()
    assert (out / "sensitivity.png").stat().st_size > 0
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/checkpoints/latest.pt")}
    again = _cli(*args)
    assert again.exit_code == 0, again.output
    assert "0 trial(s) run, 2 finished before" in again.output
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


@needs_ray
@pytest.mark.extra
@pytest.mark.slow  # ~2 min on 2 busy cores: two Optuna sweeps of tiny runs
def test_optuna_sweep_continues_with_new_points(tiny_config_file: Path, tmp_path: Path
                                                ) -> None:
    """A range is searched by Optuna; asking for one more sample later runs one new point
    (the finished ones are told to Optuna, not run again)."""
    out = tmp_path / "sweep"
    base = ("sweep", str(tiny_config_file), "--param", "algorithm.inner.lr=loguniform(0.02,0.3)",
            "--seeds", "2", "--cpus", "2", "--out", str(out))
    first = _cli(*base, "--samples", "2")
    assert first.exit_code == 0, first.output
    before = sorted(p.name for p in (out / "trials").iterdir())
    assert len(before) == 2
    second = _cli(*base, "--samples", "3")
    assert second.exit_code == 0, second.output
    assert "1 trial(s) run, 2 finished before" in second.output
    after = sorted(p.name for p in (out / "trials").iterdir())
    assert len(after) == 3 and set(before) < set(after)
    report = json.loads((out / "report.json").read_text())
    assert report["search"] == "optuna TPE" and len(report["trials"]) == 3
    lrs = [t["point"]["algorithm.inner.lr"] for t in report["trials"]]
    assert all(0.02 <= lr <= 0.3 for lr in lrs) and len(set(lrs)) == 3
