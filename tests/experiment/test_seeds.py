"""The multi-seed launcher (``adaptrl train CONFIG --seeds SPEC``): seed specs, one run
directory per seed, an interrupted launcher that skips finished seeds and resumes a partial
one, and ``adaptrl compare`` finding the runs to be one group (Agarwal et al. 2021)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import TINY
from typer.testing import CliRunner

from adaptrl.cli.main import app
from adaptrl.errors import UserError
from adaptrl.experiment.checkpoints import load_checkpoint
from adaptrl.experiment.compare import compare_runs, markdown_table, write_comparison
from adaptrl.experiment.config import ConfigError, dump_config, validate_config
from adaptrl.experiment.run_dir import RunDir, read_metrics
from adaptrl.experiment.seeds import SeedState, parse_seeds, seed_configs, train_seeds
from adaptrl.experiment.trainer import train

REPS = 200  # bootstrap replications: enough to check the tables, fast


@pytest.mark.parametrize("spec, seeds", [
    ("1-5", [1, 2, 3, 4, 5]), ("1,3,7", [1, 3, 7]), ("1-3,8", [1, 2, 3, 8]),
    ("0", [0]), (" 4 , 2-3 ", [4, 2, 3]), ("7-7", [7]),
    (str(2**64 - 1), [2**64 - 1]),
])
def test_seed_specs(spec: str, seeds: list[int]) -> None:
    assert parse_seeds(spec) == seeds


@pytest.mark.parametrize("spec, message", [
    ("", "empty"), ("  ", "empty"), ("a", "'a' is not a seed"), ("1-", "'1-' is not"),
    ("-1", "'-1' is not"), ("1,,2", "'' is not"), ("1.5", "'1.5' is not"),
    ("5-3", "backwards; write 3-5"), ("1,1", "seed 1 given twice"),
    ("1-3,2", "seed 2 given twice"), (str(2**64), "is not a seed"),
    ("0-5000", "more than 1000 seeds"),
])
def test_bad_seed_specs(spec: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_seeds(spec)


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """TINY trained with seeds 1 and 2 by the launcher (each seed as the callback saw it)."""
    root = tmp_path_factory.mktemp("seeds")
    config = _write(root / "tiny.yaml", TINY)
    seen: list[tuple[int, Path, SeedState]] = []
    paths = train_seeds(config, [1, 2], root / "runs",
                        after_seed=lambda *args: seen.append(args))
    return {"root": root, "config": config, "paths": paths, "seen": seen}


def test_one_run_directory_per_seed(seeded: dict[str, Any]) -> None:
    runs = seeded["root"] / "runs"
    assert seeded["paths"] == [runs / "tiny-s1", runs / "tiny-s2"]
    assert [(s, state) for s, _, state in seeded["seen"]] == [(1, SeedState.NEW),
                                                              (2, SeedState.NEW)]
    for seed, path in zip([1, 2], seeded["paths"]):
        config = yaml.safe_load((path / "config.yaml").read_text())
        assert config["seed"] == seed and config["name"] == f"tiny-s{seed}"
        assert load_checkpoint(RunDir(path).latest)["iteration"] == TINY["iterations"]
        assert (path / "eval.json").is_file()
    first, second = (json.loads((p / "eval.json").read_text()) for p in seeded["paths"])
    assert first["methods"]["agent"]["per_task"] != second["methods"]["agent"]["per_task"]


def test_rerun_skips_finished_seeds(seeded: dict[str, Any], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(seeded["root"] / "runs", runs)  # keeps the files' times
    before = {p: p.stat().st_mtime_ns for p in runs.rglob("*") if p.is_file()}
    seen: list[tuple[int, Path, SeedState]] = []
    paths = train_seeds(seeded["config"], [1, 2], runs, after_seed=lambda *a: seen.append(a))
    assert paths == [runs / "tiny-s1", runs / "tiny-s2"]
    assert [state for _, _, state in seen] == [SeedState.FINISHED, SeedState.FINISHED]
    assert {p: p.stat().st_mtime_ns for p in runs.rglob("*") if p.is_file()} == before


def test_partial_seed_is_resumed_and_a_missing_evaluation_made(seeded: dict[str, Any],
                                                               tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copytree(seeded["root"] / "runs" / "tiny-s1", runs / "tiny-s1")
    (runs / "tiny-s1" / "eval.json").unlink()  # trained, not evaluated
    # seed 2 stopped after its first iteration: its checkpoint at 1, its config the full one
    (exp, algo), = seed_configs(seeded["config"], [2])
    partial = runs / "tiny-s2"
    train(exp.model_copy(update={"iterations": 1}), algo, partial, baselines=False)
    dump_config(exp, partial / "config.yaml")
    seen: list[tuple[int, Path, SeedState]] = []
    train_seeds(seeded["config"], [1, 2], runs, after_seed=lambda *a: seen.append(a))
    assert [state for _, _, state in seen] == [SeedState.PARTIAL, SeedState.PARTIAL]
    assert (runs / "tiny-s1" / "eval.json").is_file()
    assert load_checkpoint(RunDir(partial).latest)["iteration"] == TINY["iterations"]
    assert [m["iteration"] for m in read_metrics(partial / "metrics.jsonl")] == [0, 1]
    # the resumed run is the unbroken one (the trainer's resume is exact)
    unbroken = json.loads((seeded["paths"][1] / "eval.json").read_text())
    resumed = json.loads((partial / "eval.json").read_text())
    assert resumed["methods"]["agent"]["per_task"] == unbroken["methods"]["agent"]["per_task"]


def test_a_run_of_another_config_is_refused(seeded: dict[str, Any], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copytree(seeded["root"] / "runs" / "tiny-s1", runs / "tiny-s2")  # seed 1's run
    with pytest.raises(ConfigError, match=r"tiny-s2 holds a run of another config .*name, "
                                          r"seed"):
        train_seeds(seeded["config"], [1, 2], runs)
    assert not (runs / "tiny-s1").exists()  # checked before anything was trained


def test_compare_groups_the_seeds(seeded: dict[str, Any], tmp_path: Path) -> None:
    result = compare_runs(seeded["paths"], bootstrap_reps=REPS)
    assert [r["method"] for r in result["rows"]][:2] == ["tiny-s1", "tiny-s2"]  # as before
    (group,) = result["groups"]
    assert group["label"] == "tiny" and group["seeds"] == [1, 2]
    assert group["runs"] == ["tiny-s1", "tiny-s2"] and group["duplicates"] == []
    k = TINY["evaluation"]["steps"]
    for stat in ("iqm", "mean"):
        assert len(group[stat]["point"]) == k + 1
        assert all(lo <= p <= hi for p, lo, hi in
                   zip(group[stat]["point"], group[stat]["low"], group[stat]["high"]))
    rows = {r["method"]: r for r in result["rows"]}
    means = [(a + b) / 2 for a, b in zip(rows["tiny-s1"]["mean"], rows["tiny-s2"]["mean"])]
    assert group["mean"]["point"] == pytest.approx(means)  # mean over runs x tasks
    assert result["group_pairs"] == [] and result["bootstrap"]["reps"] == REPS
    table = markdown_table(result)
    assert "Across seeds" in table and "| tiny | maml | 2 (seeds 1, 2) | IQM |" in table
    assert "Probability of improvement" not in table  # one group: no pair

    written = write_comparison(result, tmp_path / "out")
    assert json.loads(written[0].read_text())["groups"][0]["label"] == "tiny"
    assert "Across seeds" in written[1].read_text()


def test_two_groups_a_duplicate_and_an_ungrouped_run(seeded: dict[str, Any],
                                                     tmp_path: Path) -> None:
    other = copy.deepcopy(TINY)
    other["name"] = "wide"
    other["algorithm"]["policy"]["hidden"] = [16, 16]
    wide = train_seeds(_write(tmp_path / "wide.yaml", other), [1, 2], tmp_path / "runs",
                       evaluate=True)
    lone_cfg = copy.deepcopy(TINY)
    lone_cfg["algorithm"]["policy"]["hidden"] = [4]
    lone = tmp_path / "runs" / "lone"
    exp, algo = validate_config(lone_cfg)
    train(exp, algo, lone)
    copy_of_s1 = tmp_path / "copy-s1"
    shutil.copytree(seeded["paths"][0], copy_of_s1)

    result = compare_runs([*seeded["paths"], *wide, lone, copy_of_s1], bootstrap_reps=REPS)
    assert len(result["rows"]) >= 6  # every run keeps its row
    tiny, wide_group = result["groups"]
    assert (tiny["label"], wide_group["label"]) == ("tiny", "wide")
    assert tiny["duplicates"] == [str(copy_of_s1)] and len(tiny["seeds"]) == 2
    (pair,) = result["group_pairs"]
    assert (pair["x"], pair["y"]) == ("tiny", "wide")
    probability = pair["probability"]
    assert all(0.0 <= lo <= p <= hi <= 1.0 for p, lo, hi in
               zip(probability["point"], probability["low"], probability["high"]))
    table = markdown_table(result)
    assert "Probability of improvement P(X > Y)" in table and "| tiny | wide |" in table
    assert "Left out of their group" in table


def test_ungrouped_runs_have_no_group_tables(seeded: dict[str, Any]) -> None:
    result = compare_runs(seeded["paths"][:1], bootstrap_reps=REPS)
    assert result["groups"] == [] and result["group_pairs"] == [] and "bootstrap" not in result
    assert "Across seeds" not in markdown_table(result)


runner = CliRunner()


def test_cli_seeds(seeded: dict[str, Any], tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    config = str(seeded["config"])
    for extra, message in [(["--seed", "3"], "without --seed and --run-dir"),
                           (["--run-dir", str(tmp_path / "r")], "without --seed"),
                           (["--seeds", "3-1"], "backwards")]:
        args = ["train", config, *(["--seeds", "1-2"] if "--seeds" not in extra else []),
                *extra]
        res = runner.invoke(app, args)
        assert res.exit_code == 2, res.output
        assert message in res.output
    monkeypatch.chdir(tmp_path)
    shutil.copytree(seeded["root"] / "runs", tmp_path / "runs")
    res = runner.invoke(app, ["train", config, "--seeds", "1-2"])
    assert res.exit_code == 0, res.output
    assert "seed 1: runs/tiny-s1 is finished; skipped" in res.output
    assert "Across seeds" in res.output and "IQM" in res.output
