"""Meta-learned DQN initialisations (algorithms/dqn_init.py): Reptile's outer step against
its formula with phis from the DQN agent run directly, determinism, exact resume, the
spec, and a run through ``adaptrl train``."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

from adaptrl.agents.contract import AdaptationUnit
from adaptrl.agents.dqn import DQNAgent, DQNConfig
from adaptrl.algorithms.baselines import TRAINED_BASELINES, baseline_config
from adaptrl.algorithms.dqn_init import (
    DQNFOMAML,
    DQNFOMAMLConfig,
    DQNInitConfig,
    DQNInitLearner,
    DQNPretrained,
    DQNPretrainedConfig,
    DQNReptile,
    DQNReptileConfig,
    InnerDQNConfig,
    OuterConfig,
)
from adaptrl.algorithms.registry import algorithm_spec
from adaptrl.cli.main import app
from adaptrl.models.functional import named_params
from adaptrl.rollouts.online import play_online
from adaptrl.tasks import make
from adaptrl.tasks.base import TaskFamily, Tasks

CPU = torch.device("cpu")
DQN = DQNConfig(total_steps=400, learning_starts=40, train_frequency=4, batch_size=16,
                target_period=50, hidden=[16], buffer_size=500)
INNER = InnerDQNConfig(env_steps=60, gradient_steps=3)


def _family() -> TaskFamily:
    return make("catcher", horizon=30)


def _tasks(family: TaskFamily, n: int = 3, seed: int = 1) -> Tasks:
    return family.sample(n, "train", torch.Generator().manual_seed(seed))


def _build(cls: type[DQNInitLearner], config: DQNInitConfig, seed: int = 0) -> Any:
    torch.manual_seed(123)  # the network's initialisation (the trainer's seeded_init)
    return cls(_family(), config, torch.Generator().manual_seed(seed), CPU)


def _params(learner: DQNInitLearner) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in learner.policy.state_dict().items()}


def test_inner_dqn_scales_warmup_and_exploration_to_the_inner_budget() -> None:
    cfg = DQNReptileConfig(dqn=DQN, inner=INNER)
    inner = cfg.inner_dqn()
    assert inner.total_steps == 60 and inner.learning_starts == round(40 * 60 / 400) == 6
    assert inner.lr == DQN.lr and inner.hidden == DQN.hidden
    cfg = DQNReptileConfig(dqn=DQN, inner=INNER.model_copy(update={"learning_starts": 20}))
    assert cfg.inner_dqn().learning_starts == 20


@pytest.mark.parametrize("eps", [0.5, 1.0])
def test_reptile_outer_step_is_the_formula(eps: float) -> None:
    """theta' = theta + eps (mean_i phi_i - theta), the phi_i computed by running the
    DQN agent itself from theta on the same tasks and random numbers."""
    cfg = DQNReptileConfig(meta_batch_size=3, dqn=DQN, inner=INNER,
                           outer=OuterConfig(optimizer="sgd", lr=eps))
    learner = _build(DQNReptile, cfg)
    family, tasks = _family(), _tasks(_family())
    theta = _params(learner)
    # the phis, independently: DQNAgent with the inner settings from a copy of theta
    agent = DQNAgent(cfg.inner_dqn(), family.observation_space, family.action_space,
                     network=copy.deepcopy(learner.policy))
    generator = torch.Generator().manual_seed(0)
    run = play_online(family.make_env(tasks, 1, CPU), agent, INNER.env_steps, generator)
    phi = run.state.params
    assert run.state.updates > 0  # the inner runs learned something
    metrics = learner.meta_update(tasks)
    after = _params(learner)
    moved = 0.0
    for k, t in theta.items():
        expected = t + eps * (phi[k].mean(0) - t)
        torch.testing.assert_close(after[k], expected, rtol=1e-5, atol=1e-6)
        moved += float((after[k] - t).abs().sum())
    assert moved > 0
    assert learner.env_steps == len(tasks) * INNER.env_steps
    norm = sum(float((theta[k] - phi[k].mean(0)).square().sum()) for k in theta) ** 0.5
    assert metrics["outer_distance"] == pytest.approx(norm, rel=1e-5)
    assert {"return", "return_pre", "return_post", "td_loss"} <= set(metrics)


CASES: list[tuple[type[DQNInitLearner], DQNInitConfig]] = [
    (DQNReptile, DQNReptileConfig(meta_batch_size=3, dqn=DQN, inner=INNER,
                                  outer=OuterConfig(optimizer="adam", lr=1e-2))),
    (DQNFOMAML, DQNFOMAMLConfig(meta_batch_size=3, dqn=DQN, inner=INNER)),
    (DQNPretrained, DQNPretrainedConfig(meta_batch_size=3, dqn=DQN, inner=INNER)),
]
IDS = ["reptile", "fomaml", "pretrained"]


@pytest.mark.parametrize(("cls", "cfg"), CASES, ids=IDS)
def test_deterministic(cls: type[DQNInitLearner], cfg: DQNInitConfig) -> None:
    a, b = _build(cls, cfg), _build(cls, cfg)
    tasks = _tasks(_family())
    before = _params(a)
    for _ in range(2):
        assert a.meta_update(tasks) == b.meta_update(tasks)
    for k, v in _params(a).items():
        assert torch.equal(v, _params(b)[k])
        assert not torch.equal(v, before[k])  # theta was trained
    c = _build(cls, cfg, seed=1)  # another run generator: other episodes, other theta
    c.meta_update(tasks)
    c.meta_update(tasks)
    assert any(not torch.equal(v, _params(c)[k]) for k, v in _params(a).items())


@pytest.mark.parametrize(("cls", "cfg"), CASES, ids=IDS)
def test_exact_resume(cls: type[DQNInitLearner], cfg: DQNInitConfig) -> None:
    tasks, other = _tasks(_family()), _tasks(_family(), seed=2)
    a = _build(cls, cfg)
    a.meta_update(tasks)
    saved = copy.deepcopy(a.state_dict())
    gen = a.generator.get_state()
    expected = a.meta_update(other)
    b = _build(cls, cfg, seed=7)  # another generator and init, all restored below
    b.policy.load_state_dict({k: torch.zeros_like(v) for k, v in b.policy.state_dict().items()})
    b.load_state_dict(saved)
    b.generator.set_state(gen)
    assert b.env_steps == a.env_steps - len(other) * INNER.env_steps
    assert b.meta_update(other) == expected
    for k, v in _params(a).items():
        assert torch.equal(v, _params(b)[k])
    if cls is DQNPretrained:  # its DQN state (replay, Adam, clock) is carried and saved
        assert saved["dqn_state"]["steps"] == INNER.env_steps


def test_agent_is_online_dqn_from_theta() -> None:
    cfg = DQNReptileConfig(meta_batch_size=3, dqn=DQN, inner=INNER)
    learner = _build(DQNReptile, cfg)
    learner.meta_update(_tasks(_family()))
    agent = learner.agent([0.1])
    assert isinstance(agent, DQNAgent) and agent.unit == AdaptationUnit.ENV_STEPS
    assert agent.config == DQN
    for k, v in agent.initial_params().items():
        assert torch.equal(v, named_params(learner.policy)[k])
    learner.meta_update(_tasks(_family()))  # the agent keeps the theta it was given
    assert any(not torch.equal(v, named_params(learner.policy)[k])
               for k, v in agent.initial_params().items())


def test_spec_unit_and_baselines() -> None:
    for name in ("dqn-reptile", "dqn-fomaml"):
        spec = algorithm_spec(name)
        assert spec.unit == AdaptationUnit.ENV_STEPS
        assert set(spec.baselines) == {"dqn_pretrained", "dqn_scratch", "dqn_tuned",
                                       "dqn_metagrad", "dqn_metatuned"}
    assert algorithm_spec("reptile").baselines == ("pretrained", "pretrained_adam",
                                                   "aggregation", "scratch")
    assert "dqn_pretrained" in TRAINED_BASELINES and "dqn_scratch" not in TRAINED_BASELINES
    cfg = DQNReptileConfig(meta_batch_size=5, dqn=DQN, inner=INNER)
    pre = baseline_config("dqn_pretrained", cfg)
    assert isinstance(pre, DQNPretrainedConfig)
    assert (pre.meta_batch_size, pre.dqn, pre.inner) == (5, DQN, INNER)
    scratch = baseline_config("dqn_scratch", cfg)
    assert isinstance(scratch, DQNInitConfig) and scratch.dqn == DQN
    with pytest.raises(ValueError, match="gradient-family"):
        baseline_config("pretrained", cfg)
    with pytest.raises(ValueError, match="DQN-initialisation"):
        baseline_config("dqn_scratch", algorithm_spec("reptile").config_cls(name="reptile"))


def test_train_and_evaluate_through_the_cli(tmp_path: Path) -> None:
    config = {
        "name": "dqn-tiny", "seed": 3, "iterations": 2, "checkpoint_every": 1,
        "family": {"name": "catcher", "params": {"horizon": 30}},
        "algorithm": {"name": "dqn-reptile", "meta_batch_size": 2,
                      "dqn": DQN.model_dump(), "inner": {"env_steps": 40},
                      "outer": {"optimizer": "sgd", "lr": 0.5}},
        "evaluation": {"num_tasks": 2, "steps": 2, "episodes": 2, "env_steps_per_unit": 40,
                       "baselines": ["dqn_scratch", "dqn_pretrained", "oracle"],
                       "checkpoint": "latest"},
        "baselines": {"dqn_pretrained_iterations": 1},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", str(path), "--run-dir", str(run),
                                   "--threads", "1"])
    assert res.exit_code == 0, res.output
    ev = json.loads((run / "eval.json").read_text())
    assert ev["unit"] == "env_steps" and ev["algorithm"] == "dqn-reptile"
    assert set(ev["methods"]) == {"agent", "dqn_scratch", "dqn_pretrained"}  # no oracle
    for m in ev["methods"].values():
        assert m["steps"] == [0, 1, 2] and len(m["per_task"]) == 3
    assert set(ev["agent_minus"]) == {"dqn_scratch", "dqn_pretrained"}
    assert (run / "baselines" / "dqn_pretrained" / "checkpoints" / "latest.pt").exists()
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 2 and all("outer_distance" in m for m in metrics)


def test_pooled_tasks_is_the_same_env_as_one_task() -> None:
    from adaptrl.tasks.wrappers import PooledTasks

    family = _family()
    tasks = _tasks(family, n=3)
    plain, pooled = family.make_env(tasks, 2, CPU), PooledTasks(family.make_env(tasks, 2, CPU))
    assert (pooled.num_tasks, pooled.episodes_per_task) == (1, 6)
    obs = plain.reset(torch.Generator().manual_seed(4))
    assert torch.equal(pooled.reset(torch.Generator().manual_seed(4)), obs.reshape(1, 6, -1))
    action = torch.tensor([[0, 2], [1, 2], [2, 0]])
    for a, b in zip(plain.step(action), pooled.step(action.reshape(1, 6)), strict=True):
        assert torch.equal(a.reshape(1, 6, *a.shape[2:]), b)
