"""Trained baselines are scored from the same checkpoint as the agent (best or latest)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from adaptrl.cli.main import app
from adaptrl.experiment.evaluate import evaluate_run

runner = CliRunner()


def test_baselines_follow_the_agents_checkpoint(tmp_path: Path, tiny_config_file: Path) -> None:
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", str(tiny_config_file), "--run-dir", str(run),
                              "--iterations", "2", "--no-eval",
                              "--set", "baselines.pretrained_iterations=2"])
    assert res.exit_code == 0, res.output
    ckpts = run / "baselines" / "pretrained" / "checkpoints"
    assert (ckpts / "latest.pt").exists()
    (ckpts / "best.pt").unlink()  # only the baseline's latest checkpoint is left
    latest = evaluate_run(run, steps=1, checkpoint="latest", write=False)
    assert "pretrained" in latest["methods"]
    best = evaluate_run(run, steps=1, checkpoint="best", write=False)
    assert "pretrained" not in best["methods"] and "agent" in best["methods"]
