"""Hyperparameters meta-learned across tasks by meta-gradients (issue 28, item 5a:
algorithms/dqn_meta_hparams.py, experiment/dqn_meta_tune.py, ``share_eta`` of
agents/dqn_metagrad.py) and the ``dqn_metatuned`` / ``dqn_metagrad`` baselines: the shared
eta's meta-gradient against finite differences of the tasks' mean meta-objective, one Adam
step on the mean of the per-task meta-gradients, determinism and exact resume of the
meta-training, config validation, the paired initialisation, and ``adaptrl train``."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import torch
import yaml
from meta_gradient_chain import chain_agent, chain_batch
from pydantic import ValidationError

from adaptrl.adaptation.inner_optimizers import Adam
from adaptrl.adaptation.meta_gradient import (
    accumulate_trace,
    discount_logit,
    meta_gradient,
    shared_meta_gradient,
    update_with_tangents,
)
from adaptrl.agents.dqn import DQNAgent, DQNConfig, DQNState
from adaptrl.agents.dqn_metagrad import (
    MetaGradientConfig,
    MetaGradientDQN,
    MetaGradientDQNConfig,
    with_eta_input,
)
from adaptrl.algorithms import dqn_meta_hparams
from adaptrl.algorithms.baselines import baseline_config
from adaptrl.algorithms.dqn_init import DQNReptileConfig
from adaptrl.algorithms.dqn_meta_hparams import (
    MetaTuneConfig,
    MetaTunedDQN,
    meta_tune,
    read_meta_tuned,
)
from adaptrl.experiment.dqn_meta_tune import run_meta_tune
from adaptrl.experiment.learners import build_learner
from adaptrl.experiment.seeding import make_generator
from adaptrl.models.functional import named_params
from adaptrl.models.q_networks import QNetwork
from adaptrl.rollouts.online import play_online
from adaptrl.rollouts.replay import RingBuffer
from adaptrl.tasks import make
from adaptrl.tasks.base import TaskFamily

TASKS = 3
SMALL = DQNConfig(lr=1e-3, batch_size=16, hidden=[16], total_steps=400, learning_starts=40,
                  train_frequency=4, target_period=50, buffer_size=500)
HP = {"lr": 2e-3, "gamma": 0.97, "exploration_fraction": 0.2, "epsilon_end": 0.02,
      "target_period": 80, "train_frequency": 2}


def _chain_setup() -> tuple[MetaGradientDQN, DQNState]:
    cfg = MetaGradientDQNConfig(dqn=DQNConfig(hidden=[8], lr=0.05, gamma=0.9),
                                meta=MetaGradientConfig(gamma_bar=0.99, share_eta=True))
    agent, params, target, _ = chain_agent(cfg, TASKS)
    return agent, DQNState(params, target, agent.direction.init(params), RingBuffer(TASKS, 4),
                           TASKS, 1)


def test_shared_meta_gradient_equals_finite_differences_of_the_mean() -> None:
    """One eta for every task: dJ/d eta with J = mean_i J'_i(theta_i'(eta)) by central
    differences (float64) equals the mean of the per-task meta-gradients, for gamma and lr;
    the tasks' own meta-gradients differ (the mean is not trivially any one of them)."""
    agent, s = _chain_setup()
    eta = torch.stack([discount_logit(0.9), torch.log(torch.tensor(0.05, dtype=torch.float64))])
    etas = eta.expand(TASKS, 2).clone()
    g = torch.Generator().manual_seed(2)
    batch, query = chain_batch(g, TASKS), chain_batch(g, TASKS)
    update = agent.inner_update(s, batch, etas)
    new, _, tangents = update_with_tangents(update, etas, [0, 1])
    grads, _ = agent.meta_objective_grads(s, query, new)
    per_task = meta_gradient(grads, accumulate_trace(None, tangents, 0.0))
    analytic = shared_meta_gradient(per_task)
    assert analytic.shape == (TASKS, 2) and bool((analytic == analytic[:1]).all())
    assert not torch.allclose(per_task[0], per_task[1])
    h = 1e-6

    def mean_objective(e: torch.Tensor) -> float:
        return float(agent.meta_objective_grads(s, query, update(e.expand(TASKS, 2))[0])[1]
                     .mean())

    for j in range(2):
        step = torch.zeros(2, dtype=torch.float64)
        step[j] = h
        numeric = (mean_objective(eta + step) - mean_objective(eta - step)) / (2 * h)
        assert float(analytic[0, j]) == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def _family() -> TaskFamily:
    return make("catcher", horizon=30)


def _agent(share: bool, meta_lr: float = 1e-2) -> MetaGradientDQN:
    family = _family()
    torch.manual_seed(0)
    cfg = MetaGradientDQNConfig(dqn=SMALL, meta=MetaGradientConfig(meta_lr=meta_lr,
                                                                   share_eta=share))
    return MetaGradientDQN(cfg, family.observation_space, family.action_space)


def test_shared_eta_takes_adams_step_on_the_mean_and_stays_shared() -> None:
    family = _family()
    tasks = family.sample(TASKS, "train", torch.Generator().manual_seed(1))
    agent = _agent(share=True)
    state = play_online(family.make_env(tasks, 1), agent, 120,
                        torch.Generator().manual_seed(0)).state
    assert state.dqn.updates > 0
    assert bool((state.eta == state.eta[:1]).all())  # one eta for all tasks
    start = torch.tensor([float(discount_logit(SMALL.gamma)), float(torch.log(
        torch.tensor(SMALL.lr, dtype=torch.float64)))], dtype=torch.float64)
    assert not torch.allclose(state.eta[0].double(), start)
    # one more update: the per-task meta-gradients (eta_gradient on a copy), then the
    # shared agent's update from the same state and batches: Adam on their mean
    probe = copy.deepcopy(state)
    d_eta, _ = agent.eta_gradient(probe, torch.Generator().manual_seed(9))
    expected, _ = Adam(1e-2).step({"eta": state.eta}, {"eta": d_eta.mean(0, keepdim=True)
                                                       .expand_as(d_eta)}, state.eta_opt)
    agent.learn(state, torch.Generator().manual_seed(9))
    torch.testing.assert_close(state.eta, expected["eta"], rtol=0, atol=0)
    assert not torch.allclose(d_eta[0], d_eta[1])
    unshared = play_online(family.make_env(tasks, 1), _agent(share=False), 120,
                           torch.Generator().manual_seed(0)).state
    assert not bool((unshared.eta == unshared.eta[:1]).all())


def test_with_eta_input_keeps_the_plain_networks_values() -> None:
    torch.manual_seed(0)
    plain = QNetwork(4, 2, (8,))
    cond = with_eta_input(plain, QNetwork(4, 2, (8,), eta_dim=1))
    obs = torch.randn(5, 4)
    for gamma in (0.0, 0.9, 0.99):
        torch.testing.assert_close(cond(obs, None, torch.tensor([gamma])), plain(obs))
    with pytest.raises(ValueError, match="does not extend"):
        with_eta_input(QNetwork(3, 2, (8,)), QNetwork(4, 2, (8,), eta_dim=1))


def _config() -> MetaGradientDQNConfig:
    return MetaGradientDQNConfig(dqn=SMALL, meta=MetaGradientConfig(meta_lr=1e-2))


def test_meta_tune_is_deterministic_and_resumes_exactly(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    family = make("catcher", horizon=20)
    tasks = family.sample(2, "train", torch.Generator().manual_seed(0))
    eta, path = meta_tune(family, _config(), tasks, 120, 40, seed=3)
    again, path2 = meta_tune(family, _config(), tasks, 120, 40, seed=3)
    torch.testing.assert_close(eta, again, rtol=0, atol=0)
    assert path == path2 and [p["env_steps"] for p in path] == [0, 40, 80, 120]
    assert path[0]["gamma"] == pytest.approx(SMALL.gamma) and path[-1]["gamma"] != path[0][
        "gamma"]
    # interrupted after two units, then resumed from the checkpoint: the same result
    ckpt = tmp_path / "run.s3.pt"
    calls = {"n": 0}
    real = dqn_meta_hparams.play_online

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(dqn_meta_hparams, "play_online", interrupted)
    with pytest.raises(KeyboardInterrupt):
        meta_tune(family, _config(), tasks, 120, 40, seed=3, checkpoint=ckpt)
    monkeypatch.setattr(dqn_meta_hparams, "play_online", real)
    assert torch.load(ckpt, weights_only=True)["env_steps"] == 80
    resumed, path3 = meta_tune(family, _config(), tasks, 120, 40, seed=3, checkpoint=ckpt)
    torch.testing.assert_close(resumed, eta, rtol=0, atol=0)
    assert path3 == path
    with pytest.raises(ValueError, match="another run"):
        meta_tune(family, _config(), tasks, 120, 40, seed=4, checkpoint=ckpt)
    with pytest.raises(ValueError, match="unit"):
        meta_tune(family, _config(), tasks, 120, 0, seed=3)
    lam = _config().model_copy(update={"meta": MetaGradientConfig(window=3)})
    with pytest.raises(ValueError, match="metagrad.window"):
        meta_tune(family, lam, tasks, 120, 40, seed=3)


def _tuned_file(tmp_path: Path) -> Path:
    data = {"family": "catcher", "preset": "p.yaml", "env_steps": 100, "tasks": 2,
            "seeds": [0], "sampler": "optuna TPESampler", "objective": "x", "best_value": 1.0,
            "hyperparameters": dict(HP)}
    path = tmp_path / "tuned.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _preset(tmp_path: Path, **algorithm: Any) -> Path:
    dqn = SMALL.model_copy(update={"total_steps": 80, "learning_starts": 10})
    config = {
        "name": "dqn-tiny", "seed": 3, "iterations": 1, "checkpoint_every": 1,
        "family": {"name": "catcher", "params": {"horizon": 20}},
        "algorithm": {"name": "dqn-reptile", "meta_batch_size": 2, "dqn": dqn.model_dump(),
                      "inner": {"env_steps": 20}, "metagrad": {"meta_lr": 0.01},
                      **algorithm},
        "evaluation": {"num_tasks": 2, "steps": 2, "episodes": 1, "env_steps_per_unit": 40,
                       "baselines": ["dqn_tuned", "dqn_metatuned", "dqn_metagrad"],
                       "checkpoint": "latest"},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_run_meta_tune_writes_the_file_the_baseline_reads(tmp_path: Path) -> None:
    tuned = _tuned_file(tmp_path)
    preset = _preset(tmp_path, tuned=str(tuned))
    out = tmp_path / "tuned" / "meta.yaml"
    result = run_meta_tune(preset, MetaTuneConfig(tasks=2), out)
    written = read_meta_tuned(out)
    assert written == result and not out.with_suffix(".s0.pt").exists()
    assert result.env_steps == 80 and len(result.trajectory) == 3  # 2 units of 40 + start
    assert result.learned == ["gamma", "lr"] and str(tuned) in result.base
    hp = result.hyperparameters
    for k in ("exploration_fraction", "epsilon_end", "target_period", "train_frequency"):
        assert hp[k] == HP[k]  # the black-box search's
    assert result.trajectory[0]["gamma"] == pytest.approx(HP["gamma"])  # eta starts there
    assert hp["gamma"] != HP["gamma"] and hp["lr"] != HP["lr"]  # and moved
    assert hp["gamma"] == pytest.approx(result.trajectory[-1]["gamma"])
    cfg = DQNReptileConfig(meta_batch_size=2, dqn=SMALL, metatuned=str(out))
    metatuned = baseline_config("dqn_metatuned", cfg)
    assert isinstance(metatuned, DQNReptileConfig) and not metatuned.adapt_online
    assert {k: getattr(metatuned.dqn, k) for k in hp} == hp
    assert metatuned.dqn.batch_size == SMALL.batch_size  # the preset's


def test_validation_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="tasks"):
        MetaTuneConfig(tasks=0)
    with pytest.raises(ValidationError, match="seeds"):
        MetaTuneConfig(seeds=[])
    bad = {"family": "catcher", "preset": "p", "method": "m", "base": "b", "env_steps": 1,
           "tasks": 1, "task_seed": 0, "seeds": [0], "meta": {}, "learned": ["gamma"],
           "hyperparameters": {"gamma": 0.9, "tau": 0.5}, "wall_s": 0, "cpu_s": 0}
    with pytest.raises(ValidationError, match="unknown DQN field.*tau"):
        MetaTunedDQN.model_validate(bad)
    with pytest.raises(ValueError, match="no file.*dqn_meta_tune"):
        read_meta_tuned(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="algorithm.metatuned"):
        baseline_config("dqn_metatuned", DQNReptileConfig(dqn=SMALL))
    with pytest.raises(ValidationError, match="adapt_online.*dqn.n_step"):
        DQNReptileConfig(dqn=SMALL.model_copy(update={"n_step": 3}), adapt_online=True)


def test_baselines_start_from_dqn_tuneds_initialisation(tmp_path: Path) -> None:
    """dqn_metatuned and dqn_metagrad are built as dqn_tuned is (init seed, generator): the
    same initial Q-values, so that differences are paired."""
    tuned = _tuned_file(tmp_path)
    cfg = DQNReptileConfig(meta_batch_size=2, dqn=SMALL, tuned=str(tuned))
    family = _family()
    learner = {name: build_learner(family, baseline_config(name, cfg), make_generator(7),
                                   torch.device("cpu"), init_seed=7)
               for name in ("dqn_tuned", "dqn_metagrad")}
    plain = learner["dqn_tuned"].agent([])
    online = learner["dqn_metagrad"].agent([])
    assert isinstance(plain, DQNAgent) and isinstance(online, MetaGradientDQN)
    assert online.config.dqn == plain.config  # the tuned values are eta's start
    assert online.config.dqn.lr == HP["lr"]
    obs = torch.randn(6, gym.spaces.flatdim(family.observation_space))
    torch.testing.assert_close(online.network(obs, None, torch.tensor([HP["gamma"]])),
                               plain.network(obs))  # equal up to float rounding
    # the learner's theta is not shared with the agent (a copy)
    before = {k: v.clone() for k, v in named_params(learner["dqn_metagrad"].policy).items()}
    for p in online.network.parameters():
        p.data.add_(1.0)
    for k, v in named_params(learner["dqn_metagrad"].policy).items():
        assert torch.equal(v, before[k])


def test_adaptrl_train_scores_dqn_metagrad_and_dqn_metatuned(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from adaptrl.cli.main import app

    tuned = _tuned_file(tmp_path)
    out = tmp_path / "meta.yaml"
    preset = _preset(tmp_path, tuned=str(tuned))
    run_meta_tune(preset, MetaTuneConfig(tasks=2, env_steps=40), out)
    preset = _preset(tmp_path, tuned=str(tuned), metatuned=str(out))
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", str(preset), "--run-dir", str(run),
                                   "--threads", "1"])
    assert res.exit_code == 0, res.output
    ev = json.loads((run / "eval.json").read_text())
    assert set(ev["methods"]) == {"agent", "dqn_tuned", "dqn_metatuned", "dqn_metagrad"}
    assert set(ev["agent_minus"]) == {"dqn_tuned", "dqn_metatuned", "dqn_metagrad"}
