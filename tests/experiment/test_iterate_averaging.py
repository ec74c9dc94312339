"""Iterate averaging (SWA): known answers, the trainer's counting, resume, evaluation, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from adaptrl.experiment.iterate_averaging import (AveragingConfig, PolicyAverage,
                                                   averaged_policy_state)
from adaptrl.experiment.checkpoints import load_checkpoint
from adaptrl.experiment.config import ConfigError, validate_config
from adaptrl.experiment.evaluate import evaluate_run
from adaptrl.experiment.learners import build_family, build_learner
from adaptrl.experiment.seeding import make_generator
from adaptrl.experiment.trainer import train


def _filled(value: float) -> nn.Linear:
    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.fill_(value)
        layer.bias.fill_(-value)
    return layer


def test_uniform_average_of_the_due_iterations() -> None:
    avg = PolicyAverage(AveragingConfig(start=1, every=2), _filled(0.0))
    for it, value in enumerate([10.0, 1.0, 20.0, 3.0, 30.0, 8.0]):
        avg.update(_filled(value), it)  # due: 1, 3, 5
    avg.update(_filled(100.0), 5)  # already in the average: ignored
    state = averaged_policy_state(avg.state_dict())
    assert avg.count == 3 and avg.state_dict()["last"] == 5
    assert torch.allclose(state["weight"], torch.full((1, 2), 4.0))  # (1 + 3 + 8) / 3
    assert torch.allclose(state["bias"], torch.tensor([-4.0]))


def test_exponential_average() -> None:
    avg = PolicyAverage(AveragingConfig(start=0, every=1, decay=0.5), _filled(0.0))
    for it, value in enumerate([1.0, 3.0, 5.0]):
        avg.update(_filled(value), it)
    # 1 -> 0.5 * 1 + 0.5 * 3 = 2 -> 0.5 * 2 + 0.5 * 5 = 3.5
    assert torch.allclose(averaged_policy_state(avg.state_dict())["weight"],
                          torch.full((1, 2), 3.5))


def _config(tiny_config: dict[str, Any], iterations: int, **averaging: Any) -> dict[str, Any]:
    cfg = {**tiny_config, "iterations": iterations}
    if averaging:
        cfg["averaging"] = averaging
    return cfg


def _train(cfg: dict[str, Any], path: Path, resume: bool = False) -> None:
    exp, algo = validate_config(cfg)
    train(exp, algo, path, resume=resume, baselines=False)


def _policy(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path / "checkpoints" / "latest.pt")["learner"]["policy"]


def test_trainer_averages_the_policies_after_the_due_iterations(
        tmp_path: Path, tiny_config: dict[str, Any]) -> None:
    # the policies after 2, 3 and 4 iterations, one resume at a time (resume is exact)
    snapshots = []
    for n in (2, 3, 4):
        _train(_config(tiny_config, n, start=2, every=1), tmp_path / "split", resume=n > 2)
        snapshots.append(_policy(tmp_path / "split"))
    _train(_config(tiny_config, 4, start=2, every=1), tmp_path / "full")
    for run in ("split", "full"):
        stored = load_checkpoint(tmp_path / run / "checkpoints" / "latest.pt")["average"]
        assert int(stored["model"]["n_averaged"]) == 3 and stored["last"] == 4
        average = averaged_policy_state(stored)
        assert average.keys() == snapshots[0].keys()
        for k, v in average.items():  # the MLP policy has parameters only, no buffers
            torch.testing.assert_close(v, sum(s[k] for s in snapshots) / 3)
    # an average is not one of the iterates
    key = "mean.layers.0.weight"
    assert not torch.allclose(average[key], snapshots[-1][key])


def test_start_zero_includes_the_initial_policy(tmp_path: Path,
                                               tiny_config: dict[str, Any]) -> None:
    cfg = _config(tiny_config, 2, start=0, every=100)
    _train(cfg, tmp_path / "run")
    exp, algo = validate_config(cfg)
    initial = build_learner(build_family(exp), algo, make_generator(exp.seed),
                            torch.device("cpu"), init_seed=exp.seed).policy.state_dict()
    average = averaged_policy_state(
        load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["average"])
    for k, v in initial.items():
        torch.testing.assert_close(average[k], v)


def test_evaluate_scores_the_average(tmp_path: Path, tiny_config: dict[str, Any]) -> None:
    _train(_config(tiny_config, 3, start=1, every=1), tmp_path / "run")
    avg = evaluate_run(tmp_path / "run", checkpoint="average", write=False, baselines=False)
    latest = evaluate_run(tmp_path / "run", checkpoint="latest", write=False, baselines=False)
    assert avg["checkpoint"] == "average"
    assert avg["average"] == {"count": 3, "start": 1, "every": 1, "last": 3}
    assert avg["methods"]["agent"]["mean"] != latest["methods"]["agent"]["mean"]


def test_average_needs_an_averaging_section(tmp_path: Path,
                                            tiny_config: dict[str, Any]) -> None:
    bad = {**tiny_config, "evaluation": {**tiny_config["evaluation"], "checkpoint": "average"}}
    with pytest.raises(ConfigError, match="averaging"):
        validate_config(bad)
    with pytest.raises(ConfigError, match=r"averaging.start must be <= iterations \(2\)"):
        validate_config(_config(tiny_config, 2, start=3))
    with pytest.raises(ConfigError, match="averaging.every"):
        validate_config(_config(tiny_config, 2, start=0, every=0))
    with pytest.raises(ConfigError, match=r"averaging.begin: unknown key; allowed keys: "
                       r"\['decay', 'every', 'start'\]"):
        validate_config(_config(tiny_config, 2, start=0, begin=1))
    with pytest.raises(ConfigError, match="decay"):
        validate_config(_config(tiny_config, 2, start=0, decay=1.5))
    _train(tiny_config, tmp_path / "plain")
    with pytest.raises(ConfigError, match="holds no averaged policy"):
        evaluate_run(tmp_path / "plain", checkpoint="average", write=False)


def test_resume_refuses_a_changed_averaging_window(tmp_path: Path,
                                                  tiny_config: dict[str, Any]) -> None:
    _train(_config(tiny_config, 2, start=1, every=1), tmp_path / "run")
    config_before = (tmp_path / "run" / "config.yaml").read_text()
    with pytest.raises(ConfigError, match="averaging.start = 1, averaging.every = 1"):
        _train(_config(tiny_config, 3, start=0, every=1), tmp_path / "run", resume=True)
    assert (tmp_path / "run" / "config.yaml").read_text() == config_before  # left as it was
