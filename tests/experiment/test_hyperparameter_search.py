"""DQN hyperparameters tuned on the training tasks (experiment/hyperparameter_search.py,
algorithms/dqn_hparams.py) and the ``dqn_tuned`` baseline that reads them: the file's
validation, the baseline's config, the search's determinism, its first trial (the preset's
own values) and its resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from pydantic import ValidationError

from adaptrl.agents.dqn import DQNConfig
from adaptrl.algorithms.baselines import baseline_config
from adaptrl.algorithms.dqn_hparams import (
    DQNSearchSpace,
    TunedDQN,
    read_tuned,
    tuned_dqn_config,
)
from adaptrl.algorithms.dqn_init import DQNInitConfig, DQNReptileConfig
from adaptrl.experiment.hyperparameter_search import (
    SearchConfig,
    base_params,
    run_search,
    score_dqn,
)
from adaptrl.tasks import make

HP = {"lr": 2e-3, "gamma": 0.97, "exploration_fraction": 0.2, "epsilon_end": 0.02,
      "target_period": 80, "train_frequency": 2}
SMALL = DQNConfig(lr=1e-3, batch_size=8, hidden=[8], total_steps=40, learning_starts=10,
                  train_frequency=4, target_period=200, buffer_size=100)


def _tuned_file(tmp_path: Path, **change: object) -> Path:
    data = {"family": "catcher", "preset": "p.yaml", "env_steps": 100, "tasks": 2,
            "seeds": [0], "sampler": "optuna TPESampler", "objective": "x", "best_value": 1.0,
            "hyperparameters": dict(HP), **change}
    path = tmp_path / "tuned.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_tuned_file_is_read_validated_and_applied(tmp_path: Path) -> None:
    tuned = read_tuned(_tuned_file(tmp_path))
    dqn = tuned_dqn_config(SMALL, tuned)
    assert {k: getattr(dqn, k) for k in HP} == HP
    assert (dqn.batch_size, dqn.hidden, dqn.total_steps) == (8, [8], 40)  # the preset's
    with pytest.raises(ValueError, match="family 'catcher'.*'cartpole-physics'"):
        tuned_dqn_config(SMALL, tuned, family="cartpole-physics")
    with pytest.raises(ValueError, match="no file"):
        read_tuned(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="unknown DQN field"):
        read_tuned(_tuned_file(tmp_path, hyperparameters={**HP, "tau": 0.5}))
    with pytest.raises(ValidationError, match="gamma"):  # the result must be a valid DQN
        tuned_dqn_config(SMALL, TunedDQN.model_validate(
            {**tuned.model_dump(), "hyperparameters": {"gamma": 1.5}}))


def test_dqn_tuned_baseline_reads_the_file(tmp_path: Path) -> None:
    cfg = DQNReptileConfig(meta_batch_size=3, dqn=SMALL, tuned=str(_tuned_file(tmp_path)))
    tuned = baseline_config("dqn_tuned", cfg)
    assert isinstance(tuned, DQNInitConfig)
    assert {k: getattr(tuned.dqn, k) for k in HP} == HP
    assert tuned.meta_batch_size == 3 and tuned.inner == cfg.inner
    scratch = baseline_config("dqn_scratch", cfg)
    assert isinstance(scratch, DQNInitConfig) and scratch.dqn == SMALL
    with pytest.raises(ValueError, match="algorithm.tuned"):
        baseline_config("dqn_tuned", DQNReptileConfig(dqn=SMALL))


def test_search_space_validation() -> None:
    with pytest.raises(ValidationError, match="lr"):
        DQNSearchSpace(lr=(1e-2, 1e-3))
    with pytest.raises(ValidationError, match="<= 1"):
        DQNSearchSpace(epsilon_end=(0.1, 1.5))
    with pytest.raises(ValidationError, match="train_frequency"):
        DQNSearchSpace(train_frequency=[0, 2])


def test_base_params_are_the_preset_values_or_none_outside_the_space() -> None:
    base = base_params(SMALL, DQNSearchSpace())
    assert base is not None and base["lr"] == SMALL.lr and base["train_frequency"] == 4
    assert base["one_minus_gamma"] == pytest.approx(1 - SMALL.gamma)
    assert base_params(SMALL.model_copy(update={"train_frequency": 3}), DQNSearchSpace()) \
        is None


def test_score_is_deterministic_under_a_seed() -> None:
    family = make("catcher", horizon=20)
    tasks = family.sample(2, "train", torch.Generator().manual_seed(0))
    a = score_dqn(family, SMALL, tasks, 40, 3, 2, checkpoints=2)
    b = score_dqn(family, SMALL, tasks, 40, 3, 2, checkpoints=2)
    assert a.shape == (2, 2)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="multiple"):
        score_dqn(family, SMALL, tasks, 41, 3, 2, checkpoints=2)


def _tiny_preset(tmp_path: Path) -> Path:
    """A dqn-reptile preset on short catcher episodes with the SMALL DQN."""
    preset = tmp_path / "preset.yaml"
    preset.write_text(yaml.safe_dump({
        "name": "t", "seed": 1, "iterations": 1, "family": {"name": "catcher",
                                                             "params": {"horizon": 20}},
        "algorithm": {"name": "dqn-reptile", "meta_batch_size": 2,
                      "dqn": SMALL.model_dump()},
        "evaluation": {"num_tasks": 2, "steps": 2, "episodes": 1, "env_steps_per_unit": 20}}))
    return preset


def test_search_writes_the_best_trial_and_resumes(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    preset = _tiny_preset(tmp_path)
    out = tmp_path / "tuned" / "dqn.yaml"
    search = SearchConfig(trials=2, startup_trials=1, tasks=2, episodes=1, checkpoints=2)
    result = run_search(preset, search, out)
    assert out.exists() and out.with_suffix(".db").exists()
    written = read_tuned(out)
    assert written == result and written.env_steps == 40 and len(written.trials) == 2
    first = written.trials[0]  # the preset's own values are the first trial
    assert first["lr"] == SMALL.lr and first["target_period"] == SMALL.target_period
    assert result.best_value == max(t["value"] for t in written.trials)
    best = next(t for t in written.trials if t["value"] == result.best_value)
    assert result.hyperparameters == {k: best[k] for k in result.hyperparameters}
    again = run_search(preset, search.model_copy(update={"trials": 3}), out)
    assert len(again.trials) == 3  # two kept, one more run
    assert again.trials[:2] == written.trials


def test_a_resumed_search_does_not_draw_the_first_runs_trials_again(tmp_path: Path) -> None:
    """Random (start-up) trials only: the resumed run's draw must be new (a resumed
    sampler seeded as the first run's repeated its first random trial)."""
    pytest.importorskip("optuna")
    preset = _tiny_preset(tmp_path)
    out = tmp_path / "dqn.yaml"
    search = SearchConfig(trials=2, startup_trials=8, tasks=2, episodes=1, checkpoints=2,
                          enqueue_base=False)
    first = run_search(preset, search, out).trials
    again = run_search(preset, search.model_copy(update={"trials": 3}), out).trials
    keys = [k for k in again[2] if k not in ("number", "value", "final", "wall_s", "cpu_s")]
    assert all({k: again[2][k] for k in keys} != {k: t[k] for k in keys} for t in first)


def test_dqn_tuned_is_scored_by_adaptrl_evaluate(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from adaptrl.cli.main import app

    tuned = _tuned_file(tmp_path)
    config = {
        "name": "dqn-tiny", "seed": 3, "iterations": 1, "checkpoint_every": 1,
        "family": {"name": "catcher", "params": {"horizon": 20}},
        "algorithm": {"name": "dqn-reptile", "meta_batch_size": 2, "tuned": str(tuned),
                      "dqn": SMALL.model_dump(), "inner": {"env_steps": 20}},
        "evaluation": {"num_tasks": 2, "steps": 1, "episodes": 1, "env_steps_per_unit": 40,
                       "baselines": ["dqn_scratch", "dqn_tuned"], "checkpoint": "latest"},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", str(path), "--run-dir", str(run),
                                   "--threads", "1"])
    assert res.exit_code == 0, res.output
    ev = json.loads((run / "eval.json").read_text())
    assert set(ev["methods"]) == {"agent", "dqn_scratch", "dqn_tuned"}
    assert set(ev["agent_minus"]) == {"dqn_scratch", "dqn_tuned"}
