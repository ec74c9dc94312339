"""Every family's MAML config in configs/ trains and evaluates end to end (tiny budget)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adaptrl.experiment.config import load_config
from adaptrl.experiment.evaluate import evaluate_run
from adaptrl.experiment.trainer import train
from adaptrl.tasks import registered

TINY = ["iterations=1", "algorithm.meta_batch_size=2", "algorithm.episodes_per_task=2",
        "algorithm.policy.hidden=[8]", "evaluation.num_tasks=2", "evaluation.episodes=2",
        "evaluation.steps=1", "baselines.pretrained_iterations=1", "logging.progress=false",
        "logging.tensorboard=false"]


def _family_configs() -> list[object]:
    params = []
    for path in sorted(Path("configs").glob("maml-*.yaml")):
        if path.name.startswith("maml-ppo"):
            continue
        exp, _ = load_config(path)
        spec = registered()[exp.family.name]
        marks = [pytest.mark.extra, pytest.mark.slow] if spec.extra else []
        params.append(pytest.param(path, id=path.stem, marks=marks))
    return params


def test_every_registered_family_has_a_maml_config() -> None:
    covered = {load_config(p)[0].family.name for p in Path("configs").glob("maml-*.yaml")
               if not p.name.startswith("maml-ppo")}
    assert set(registered()) <= covered, sorted(set(registered()) - covered)


@pytest.mark.parametrize("path", _family_configs())
def test_maml_config_trains_and_evaluates(path: Path, tmp_path: Path) -> None:
    exp, algo = load_config(path, TINY)
    spec = registered()[exp.family.name]
    if spec.extra:
        try:
            spec.factory()
        except ImportError as err:
            pytest.skip(f"needs the '{spec.extra}' extra: {err}")
    train(exp, algo, tmp_path / "run")
    result = evaluate_run(tmp_path / "run")
    assert result["family"] == exp.family.name
    assert {"agent", "pretrained", "scratch"} <= set(result["methods"])
