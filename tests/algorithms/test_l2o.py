"""The learned-optimizer meta-learner (``l2o``), its tuned baselines and the learned optimizer
as MAML's inner optimizer: ES and TBPTT move the optimizer, exact resume, the agent is a fresh
policy trained by the learned optimizer, the step-size tuning is a reproducible function with
a known answer, paired starts, MAML's meta-gradient into the optimizer's weights against
finite differences, and a CLI run with its baselines."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from adaptrl.adaptation.learned_optimizer import LearnedOptimizer, LearnedStep
from adaptrl.agents.contract import AdaptationUnit
from adaptrl.algorithms.baselines import baseline_config
from adaptrl.algorithms.learned_optimizer import L2OConfig, LearnedOptimizerLearner
from adaptrl.algorithms.maml import MAML, MAMLConfig
from adaptrl.algorithms.registry import algorithm_spec
from adaptrl.algorithms.tuned_optimizer import (
    TunedOptimizer,
    TunedOptimizerConfig,
    tune_learning_rate,
)
from adaptrl.cli.main import app
from adaptrl.models.functional import named_params
from adaptrl.rollouts.losses import importance_loss
from adaptrl.rollouts.sampler import trajectory_distribution
from adaptrl.rollouts.trajectories import Trajectories
from adaptrl.tasks import make
from adaptrl.tasks.base import TaskFamily, Tasks

CPU = torch.device("cpu")
TINY = {"meta_batch_size": 2, "episodes_per_task": 4, "policy": {"hidden": [8]},
        "inner": {"updates": 3}, "es": {"population": 4, "sigma": 0.1, "lr": 0.05},
        "tbptt": {"unroll": 2, "lr": 0.05},
        "tuning": {"lr_grid": [0.01, 0.1], "tasks": 2, "seeds": 1}}


def _family() -> TaskFamily:
    return make("catch-grid")


def _build(method: str, seed: int = 0) -> LearnedOptimizerLearner:
    cfg = L2OConfig(**TINY, method=method)
    return LearnedOptimizerLearner(_family(), cfg, torch.Generator().manual_seed(seed), CPU)


def _tasks(seed: int = 1, n: int = 2) -> Tasks:
    return _family().sample(n, "train", torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("method", ["es", "tbptt"])
def test_meta_update_moves_the_optimizer(method: str) -> None:
    learner = _build(method)
    before = learner.optimizer.flat()
    metrics = learner.meta_update(_tasks())
    assert {"return_pre", "return_post", "fitness", "l2o/lr"} <= set(metrics)
    assert not torch.equal(before, learner.optimizer.flat())
    # N + 1 batches of 2 tasks x 4 episodes x 9 steps (ES: for every member)
    members = 4 if method == "es" else 1
    assert learner.env_steps == 4 * 2 * 9 * 4 * members


@pytest.mark.parametrize("method", ["es", "tbptt"])
def test_exact_resume(method: str) -> None:
    a = _build(method)
    a.meta_update(_tasks())
    saved = copy.deepcopy(a.state_dict())
    gen = a.generator.get_state()
    expected = a.meta_update(_tasks(2))
    b = _build(method, seed=5)
    b.optimizer.load_flat(torch.zeros_like(b.optimizer.flat()))
    b.load_state_dict(saved)
    b.generator.set_state(gen)
    assert b.meta_update(_tasks(2)) == expected
    assert torch.equal(a.optimizer.flat(), b.optimizer.flat())
    assert b.env_steps == a.env_steps


def test_es_mean_is_the_optimizer() -> None:
    learner = _build("es")
    learner.meta_update(_tasks())
    assert learner.es is not None
    assert torch.equal(learner.es.mean.detach(), learner.optimizer.flat())


def test_agent_is_a_fresh_policy_trained_by_the_learned_optimizer() -> None:
    learner = _build("es")
    learner.meta_update(_tasks())
    agent = learner.agent([0.1])
    assert agent.unit == AdaptationUnit.GRADIENT_STEPS
    assert isinstance(agent.schedule[0], LearnedStep)
    assert torch.equal(torch.cat([w.reshape(-1) for w in agent.schedule[0].weights.values()]),
                       learner.optimizer.flat())
    fresh = learner.config.fresh_policy(_family(), learner.config.test_init_seed)
    for k, v in named_params(fresh).items():
        assert torch.equal(agent.initial_params()[k], v.detach())
    # the tuned baselines start from the very same policy: paired runs
    tuned = baseline_config("adam_tuned", learner.config)
    assert isinstance(tuned, TunedOptimizerConfig) and tuned.optimizer == "adam"
    assert tuned.policy == learner.config.policy and tuned.inner == learner.config.inner
    assert tuned.test_init_seed == learner.config.test_init_seed


def test_step_size_tuning_is_a_reproducible_function_with_a_known_answer() -> None:
    """A step size of 1e-7 cannot train a policy in 3 updates; 0.05 can: tuning picks 0.05,
    and the same config gives the same table twice."""
    cfg = TunedOptimizerConfig(meta_batch_size=2, episodes_per_task=8, policy={"hidden": [8]},
                               inner={"updates": 3},
                               tuning={"lr_grid": [1e-7, 0.05], "tasks": 4})
    lr, table = tune_learning_rate(_family(), cfg, CPU)
    assert lr == 0.05 and table[0.05] > table[1e-7]
    assert tune_learning_rate(_family(), cfg, CPU) == (lr, table)
    learner = TunedOptimizer(_family(), cfg.model_copy(update={"optimizer": "rmsprop"}),
                             torch.Generator(), CPU)
    assert learner.agent().schedule[0].lr == learner.lr  # type: ignore[attr-defined]


def test_spec_and_config_errors() -> None:
    spec = algorithm_spec("l2o")
    assert spec.unit == AdaptationUnit.GRADIENT_STEPS
    assert spec.baselines == ("adam_tuned", "rmsprop_tuned")
    with pytest.raises(ValidationError, match="method"):
        L2OConfig(method="sgd")
    with pytest.raises(ValidationError, match="population must be even"):
        L2OConfig(es={"population": 5})
    with pytest.raises(ValidationError, match="init_from"):
        L2OConfig(init_from="runs/x")
    with pytest.raises(ValidationError, match="lr_grid"):
        TunedOptimizerConfig(tuning={"lr_grid": [0.1, -1.0]})
    with pytest.raises(ValueError, match="DQN|gradient"):
        baseline_config("adam_tuned", MAMLConfig())


# -- the learned optimizer as MAML's inner optimizer ---------------------------------------
T, N, E = 4, 3, 3  # time steps, tasks, episodes


def _traj(seed: int) -> tuple[Trajectories, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(T, N, E, 2, generator=g, dtype=torch.float64)
    actions = torch.randn(T, N, E, 2, generator=g, dtype=torch.float64)
    masks = torch.ones(T, N, E, dtype=torch.float64)
    log_probs = 0.3 * torch.randn(T, N, E, generator=g, dtype=torch.float64) - 2.0
    traj = Trajectories(obs, actions, torch.zeros(T, N, E, dtype=torch.float64), masks,
                        torch.zeros(T, N, E, dtype=torch.bool), log_probs)
    return traj, torch.randn(T, N, E, generator=g, dtype=torch.float64)


def _maml(outer: str = "adam") -> MAML:
    cfg = MAMLConfig(meta_batch_size=2, episodes_per_task=2, outer=outer,
                     policy={"hidden": [5], "activation": "tanh"},
                     inner={"steps": 2, "optimizer": "learned",
                            "learned": {"hidden": 4, "lr": 0.05}})
    torch.manual_seed(0)
    return MAML(make("navigation-2d"), cfg, torch.Generator().manual_seed(0), CPU)


def test_maml_meta_gradient_flows_into_the_learned_optimizer() -> None:
    """d(outer loss after two learned inner steps)/d(optimizer weights), by MAML's own
    replay of the inner loop, equals central finite differences (float64), along random
    directions; the last layer is moved off zero first so every weight matters."""
    maml = _maml()
    opt = maml.update.optimizer
    assert isinstance(opt, LearnedOptimizer)
    maml.policy.double()
    opt.double()
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        opt.w2.copy_(0.3 * torch.randn(opt.w2.shape, generator=g, dtype=torch.float64))
    assert set(map(id, opt.parameters())) <= set(map(id, maml.meta_parameters()))
    supports, (query, q_adv) = [_traj(1), _traj(2)], _traj(3)

    def loss() -> torch.Tensor:
        phi = maml.replay(supports, differentiable=True)
        dist = trajectory_distribution(maml.policy, query, phi)
        return importance_loss(dist, query, q_adv).mean()

    grads = torch.autograd.grad(loss(), list(opt.parameters()))
    analytic = torch.cat([gr.reshape(-1) for gr in grads])
    assert float(analytic.abs().max()) > 0
    flat = opt.flat()
    for _ in range(3):
        d = torch.randn(flat.shape, generator=g, dtype=torch.float64)
        h = 1e-6
        values = []
        for sign in (1, -1):
            opt.load_flat(flat + sign * h * d)
            values.append(loss().detach())
        opt.load_flat(flat)
        torch.testing.assert_close(analytic @ d, (values[0] - values[1]) / (2 * h),
                                   rtol=1e-5, atol=1e-9)


def test_maml_trains_and_checkpoints_the_learned_optimizer() -> None:
    maml = _maml()
    opt = maml.update.optimizer
    assert isinstance(opt, LearnedOptimizer) and opt.config.horizon == 2
    before = opt.flat()
    tasks = make("navigation-2d").sample(2, "train", torch.Generator().manual_seed(0))
    maml.meta_update(tasks)
    assert not torch.equal(before, opt.flat())
    state = maml.state_dict()
    other = _maml()
    other.load_state_dict(state)
    assert isinstance(other.update.optimizer, LearnedOptimizer)
    assert torch.equal(other.update.optimizer.flat(), opt.flat())
    agent = maml.agent([0.1, 0.05])  # a learned optimizer ignores the step-size schedule
    assert isinstance(agent.schedule[0], LearnedStep) and len(agent.schedule) == 1


def test_train_and_evaluate_through_the_cli(tmp_path: Path) -> None:
    config = {
        "name": "l2o-tiny", "seed": 3, "iterations": 2, "checkpoint_every": 1,
        "family": {"name": "catch-grid"},
        "algorithm": {"name": "l2o", **TINY},
        "evaluation": {"num_tasks": 2, "steps": 3, "episodes": 4, "checkpoint": "latest",
                       "baselines": ["adam_tuned", "rmsprop_tuned", "oracle"]},
        "logging": {"tensorboard": False, "progress": False},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", str(path), "--run-dir", str(run),
                                   "--threads", "1"])
    assert res.exit_code == 0, res.output
    ev = json.loads((run / "eval.json").read_text())
    assert ev["algorithm"] == "l2o" and ev["unit"] == "gradient_steps"
    assert set(ev["methods"]) == {"agent", "adam_tuned", "rmsprop_tuned", "oracle"}
    assert set(ev["agent_minus"]) == {"adam_tuned", "rmsprop_tuned"}
    for name in ("agent", "adam_tuned", "rmsprop_tuned"):  # the same fresh policy at 0
        assert ev["methods"][name]["per_task"][0] == ev["methods"]["agent"]["per_task"][0]


@pytest.mark.slow
def test_es_meta_training_speeds_up_training_on_held_out_catch_tasks() -> None:
    """40 OpenES iterations on catch-grid (the preset's settings, fewer iterations): on 16
    held-out tasks the learned optimizer's mean return over updates 1..20 beats its starting
    point (Adam at lr 0.01) by a clear margin, paired over tasks."""
    from adaptrl.evaluation.protocol import adaptation_curve

    family = _family()
    cfg = L2OConfig(meta_batch_size=4, episodes_per_task=16,
                    policy={"hidden": [32], "activation": "tanh"},
                    es={"population": 16, "sigma": 0.05, "lr": 0.03})
    learner = LearnedOptimizerLearner(family, cfg, torch.Generator().manual_seed(0), CPU)
    tasks = family.sample(16, "test", torch.Generator().manual_seed(9))
    before = adaptation_curve(family, learner.agent(), tasks, 20, 16, 5, CPU)
    for _ in range(40):
        learner.meta_update(family.sample(4, "train", learner.generator))
    after = adaptation_curve(family, learner.agent(), tasks, 20, 16, 5, CPU)
    gain = (after[1:] - before[1:]).mean(0)  # per task
    assert float(gain.mean()) > 0.1 and float(gain.mean()) > 2 * float(gain.std() / 4)


def test_ppo_rule_inner_runs_with_the_learned_optimizer() -> None:
    """``inner.rule: ppo``: ``epochs`` learned steps on the clipped surrogate per batch, for
    the population (ES) and for the agent."""
    cfg = L2OConfig(**{**TINY, "inner": {"updates": 2, "rule": "ppo", "epochs": 2}})
    learner = LearnedOptimizerLearner(_family(), cfg, torch.Generator().manual_seed(0), CPU)
    before = learner.optimizer.flat()
    learner.meta_update(_tasks())
    assert not torch.equal(before, learner.optimizer.flat())
    agent = learner.agent()
    assert agent.update.epochs == 2
