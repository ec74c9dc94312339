"""GrBAL (algorithms/grbal.py): the meta-gradient equals finite differences (float64), the
inner step is SGD on the past window, windows never leave an episode, runs are deterministic
under a seed and resume exactly through the trainer's checkpoints, the agent adapts online
and plans, and the baselines are the same learner configured differently."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from grbal_tiny import REBAL_TINY, TINY
from grbal_tiny import build as _build
from grbal_tiny import pendulum as _family
from grbal_tiny import tasks as _tasks

from adaptrl.agents.contract import AdaptationUnit
from adaptrl.algorithms.baselines import TRAINED_BASELINES, baseline_config
from adaptrl.algorithms.grbal import ModelBasedAgent, adapt_model, live_steps
from adaptrl.algorithms.grbal_config import GrBALConfig, ModelInnerConfig, ReBALConfig
from adaptrl.algorithms.registry import algorithm_spec
from adaptrl.evaluation.protocol import adaptation_curves
from adaptrl.experiment.config import validate_config
from adaptrl.experiment.run_dir import read_metrics
from adaptrl.experiment.trainer import train
from adaptrl.models.functional import named_params
from adaptrl.planning.controller import Window
from adaptrl.tasks import CartPolePhysics

REBAL = ReBALConfig(**REBAL_TINY)


@pytest.mark.parametrize("config", [
    GrBALConfig(**TINY, inner=ModelInnerConfig(steps=2, lr=0.05)), REBAL],
    ids=["grbal", "rebal"])
def test_meta_gradient_equals_finite_differences(config: GrBALConfig) -> None:
    """d/dtheta of 1/B sum_j L(theta - alpha grad L(theta; past_j); future_j), second order
    (ReBAL: of L(theta, h(theta; past_j); future_j), the GRU's weights among theta),
    against central differences along random directions (float64)."""
    learner = _build(config)
    learner.meta_update(_tasks())  # fills the buffer, fits the normaliser
    model = learner.model.double()
    past, future = learner.windows(4)
    past, future = (Window(w.obs.double(), w.action.double(), w.next_obs.double(), w.mask)
                    for w in (past, future))
    theta = {k: v.detach().clone().requires_grad_(True) for k, v in named_params(model).items()}
    loss, _ = learner.meta_loss(theta, past, future)
    grads = torch.autograd.grad(loss, list(theta.values()))
    gen = torch.Generator().manual_seed(3)
    for _ in range(3):
        direction = {k: torch.randn(v.shape, generator=gen, dtype=v.dtype)
                     for k, v in theta.items()}
        eps = 1e-6

        def at(step: dict[str, torch.Tensor]) -> float:
            shifted = {k: (v + step[k]).detach() for k, v in theta.items()}
            return float(learner.meta_loss(shifted, past, future)[0].detach())
        numeric = (at({k: eps * d for k, d in direction.items()}) -
                   at({k: -eps * d for k, d in direction.items()})) / (2 * eps)
        analytic = sum(float((g * direction[k]).sum()) for g, k in zip(grads, theta))
        assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-9)
    if config.dynamics.context:
        return
    # and the inner step is what matters: first order differs from second order
    learner.config.inner.first_order = True
    fo = torch.autograd.grad(learner.meta_loss(theta, past, future)[0], list(theta.values()))
    assert any(not torch.allclose(a, b) for a, b in zip(fo, grads))


def test_inner_step_is_sgd_on_the_masked_window() -> None:
    learner = _build(GrBALConfig(**TINY))
    learner.meta_update(_tasks())
    past, _ = learner.windows(2)
    mask = past.mask.clone()
    mask[:, :2] = False  # the first two rows are "not yet seen"
    window = Window(past.obs, past.action, past.next_obs, mask)
    params = named_params(learner.model)
    inner = ModelInnerConfig(steps=1, lr=0.1)
    adapted = adapt_model(learner.model, params, window, inner, create_graph=False)
    for row in range(2):  # by hand: one SGD step on that row's last two transitions
        p = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        loss = learner.model.loss(p, past.obs[row:row + 1, 2:], past.action[row:row + 1, 2:],
                                  past.next_obs[row:row + 1, 2:]).sum()
        g = torch.autograd.grad(loss, list(p.values()))
        for (k, v), gk in zip(p.items(), g):
            assert torch.allclose(adapted[k][row], v - 0.1 * gk, atol=1e-6)
    after = learner.model.loss(adapted, window.obs, window.action, window.next_obs, mask)
    before = learner.model.loss(None, window.obs, window.action, window.next_obs, mask)
    assert (after < before).all()


def test_windows_stay_inside_one_episode() -> None:
    """Cart-pole episodes end early (terminal states): every window of M + K transitions is
    a run of consecutive live steps of one stored episode."""
    family = CartPolePhysics(horizon=40)
    cfg = GrBALConfig(**{**TINY, "past": 3, "future": 3})
    learner = _build(cfg, family=family)
    learner.meta_update(family.sample(6, "train", torch.Generator().manual_seed(0)))
    data = learner.buffer.data
    live = live_steps(data)[0]
    assert not bool(live.all())  # some episodes did end early
    past, future = learner.windows(50)
    obs = torch.cat([past.obs, future.obs], 1)
    nxt = torch.cat([past.next_obs, future.next_obs], 1)
    assert torch.equal(obs[:, 1:], nxt[:, :-1])  # consecutive steps of one episode
    stored = data.obs[0][live]
    for row in obs.reshape(-1, obs.shape[-1]):
        assert (stored == row).all(-1).any()


LEARNERS = pytest.mark.parametrize("cfg", [GrBALConfig(**TINY), REBAL], ids=["grbal", "rebal"])


@LEARNERS
def test_same_seed_same_run_and_exact_resume_of_the_learner(cfg: GrBALConfig) -> None:
    """GrBAL's, and ReBAL's whose MPC iteration reads the context online."""
    a, b = _build(cfg), _build(cfg)
    assert a.meta_update(_tasks(1)) == b.meta_update(_tasks(1))
    saved, gen = copy.deepcopy(a.state_dict()), a.generator.get_state()
    expected = a.meta_update(_tasks(2))  # an MPC iteration (random_iterations = 1)
    c = _build(cfg, seed=9)
    c.load_state_dict(saved)
    c.generator.set_state(gen)
    assert c.meta_update(_tasks(2)) == expected
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, c.model.state_dict()[k]), k
    assert c.env_steps == a.env_steps == 2 * 3 * 12


def _experiment(iterations: int, name: str = "grbal") -> dict[str, Any]:
    return {"name": f"{name}-tiny", "seed": 3, "iterations": iterations, "checkpoint_every": 1,
            "family": {"name": "pendulum-physics", "params": {"horizon": 12}},
            "algorithm": {"name": name, **(REBAL_TINY if name == "rebal" else TINY)},
            "evaluation": {"num_tasks": 2, "steps": 1, "episodes": 1, "baselines": ["mb"]}}


def _strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]


@pytest.mark.parametrize("name", ["grbal", "rebal"])
def test_trainer_resume_equals_unbroken_run(tmp_path: Path, name: str) -> None:
    """Resumed from its checkpoint a run equals the unbroken one; the unbroken one's mb
    baseline is GrBAL's model for both learners (no recurrent context)."""
    for path, iterations in (("full", 3), ("split", 2)):
        exp, algo = validate_config(_experiment(iterations, name))
        train(exp, algo, tmp_path / path, baselines=path == "full")
    exp, algo = validate_config(_experiment(3, name))
    train(exp, algo, tmp_path / "split", resume=True, baselines=False)
    full = _strip(read_metrics(tmp_path / "full" / "metrics.jsonl"))
    split = _strip(read_metrics(tmp_path / "split" / "metrics.jsonl"))
    assert len(full) == 3 and split == full
    assert full[0]["env_steps"] == 3 * 12 and full[2]["env_steps"] == 9 * 12
    weights = torch.load(tmp_path / "full" / "baselines" / "mb" / "checkpoints" / "latest.pt",
                         weights_only=True)["learner"]["model"]
    assert "members.0.layers.0.weight" in weights
    assert not any(k.startswith("encoder.") for k in weights)


def test_agent_adapts_online_and_is_scored_in_transitions() -> None:
    learner = _build(GrBALConfig(**TINY))
    learner.meta_update(_tasks())
    agent = learner.agent()
    assert isinstance(agent, ModelBasedAgent) and agent.unit == AdaptationUnit.TRANSITIONS
    assert agent.adapt and not agent.oracle and agent.memory == 4
    tasks = _tasks(5, 2, "test")
    calls: list[bool] = []
    actor = agent.actor(tasks)
    original = actor.dynamics

    def spy(window: Window | None, slots: int) -> Any:
        calls.append(window is not None and window.filled)
        return original(window, slots)
    object.__setattr__(actor, "dynamics", spy)
    object.__setattr__(agent, "actor", lambda t: actor)
    curves = adaptation_curves(_family(), agent, tasks, 1, 2, seed=0,
                               device=torch.device("cpu"))
    assert curves["return"].shape == (2, 2)
    # the first step of the trial plans with theta*, every later one after adapting
    assert calls[0] is False and all(calls[1:]) and len(calls) == 2 * 12


def test_oracle_plans_with_the_simulator_and_beats_random_actions() -> None:
    family = _family(horizon=40)
    cfg = GrBALConfig(**{**TINY, "oracle": True,
                         "planner": {"name": "mppi", "horizon": 10, "candidates": 64}})
    oracle = _build(cfg, family=family).agent()
    tasks = family.sample(3, "test", torch.Generator().manual_seed(0))
    planned = adaptation_curves(family, oracle, tasks, 0, 2, 0, torch.device("cpu"))["return"]
    random = adaptation_curves(family, _build(GrBALConfig(**TINY), family=family).agent(),
                               tasks, 0, 2, 0, torch.device("cpu"))["return"]
    assert oracle.oracle and (planned > random).all()


def test_spec_baselines_and_their_configs() -> None:
    spec = algorithm_spec("grbal")
    assert spec.unit == AdaptationUnit.TRANSITIONS
    assert spec.baselines == ("mb", "mb_finetune", "mpc_oracle")
    assert "mb" in TRAINED_BASELINES and "mpc_oracle" not in TRAINED_BASELINES
    cfg = GrBALConfig(**TINY)
    mb = baseline_config("mb", cfg)
    finetune = baseline_config("mb_finetune", cfg)
    oracle = baseline_config("mpc_oracle", cfg)
    assert isinstance(mb, GrBALConfig) and isinstance(finetune, GrBALConfig)
    assert mb.inner.steps == 0 and not mb.adapt_at_test
    assert finetune.inner.steps == 0 and finetune.adapt_at_test
    assert finetune.test_inner == cfg.inner
    assert isinstance(oracle, GrBALConfig) and oracle.oracle
    # the two non-meta-learned baselines train the very same model
    assert mb.model_copy(update={"adapt_at_test": True, "test_inner": cfg.inner}) == finetune
    family = _family()
    learners = [_build(c, family=family) for c in (mb, finetune)]
    for learner in learners:  # a random iteration, then one collected with MPC
        learner.meta_update(_tasks(1))
        learner.meta_update(_tasks(2))
    for k, v in learners[0].model.state_dict().items():
        assert torch.equal(v, learners[1].model.state_dict()[k]), k
    assert not learners[0].agent().adapt and learners[1].agent().adapt


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="past"):
        GrBALConfig(past=0)
    with pytest.raises(ValueError, match="planner.name"):
        GrBALConfig(planner={"name": "ilqr"})
    learner = _build(GrBALConfig(**{**TINY, "past": 10, "future": 10}))
    with pytest.raises(ValueError, match="lower algorithm.past"):
        learner.meta_update(_tasks())


def test_learned_step_sizes_are_meta_trained_saved_and_used_by_the_agent() -> None:
    cfg = GrBALConfig(**{**TINY, "inner": {"steps": 1, "lr": 0.01, "learn_lr": True}})
    learner = _build(cfg)
    assert learner.inner_optimizer is not None
    start = [a.detach().clone() for a in learner.inner_optimizer.alphas]
    metrics = learner.meta_update(_tasks())
    assert "inner_lr/alpha_mean" in metrics or any(k.startswith("inner_lr/") for k in metrics)
    moved = [not torch.equal(a, b) for a, b in zip(learner.inner_optimizer.alphas, start)]
    assert any(moved)
    state = learner.state_dict()
    other = _build(cfg, seed=4)
    other.load_state_dict(copy.deepcopy(state))
    for a, b in zip(learner.inner_optimizer.alphas, other.inner_optimizer.alphas):  # type: ignore[union-attr]
        assert torch.equal(a, b)
    agent = learner.agent()
    assert agent.optimizer is not None
    lr = agent.optimizer.lr  # type: ignore[attr-defined]
    assert isinstance(lr, dict) and not any(v.requires_grad for v in lr.values())


def test_train_with_baselines_then_evaluate_end_to_end(tmp_path: Path) -> None:
    """The preset's path at a tiny budget: GrBAL, then mb and mb_finetune trained as baseline
    runs (the same weights), scored with mpc_oracle in eval.json in unit transitions."""
    from adaptrl.experiment.evaluate import evaluate_run

    config = _experiment(2)
    config["evaluation"]["baselines"] = ["mb", "mb_finetune", "mpc_oracle"]
    exp, algo = validate_config(config)
    train(exp, algo, tmp_path / "run", baselines=True)
    result = evaluate_run(tmp_path / "run", write=True)
    assert result["unit"] == "transitions"
    assert set(result["methods"]) == {"agent", "mb", "mb_finetune", "mpc_oracle"}
    assert len(result["methods"]["agent"]["mean"]) == 2  # episodes 0 and 1 of the trial
    assert (tmp_path / "run" / "eval.json").exists()
    weights = [torch.load(tmp_path / "run" / "baselines" / name / "checkpoints" / "latest.pt",
                          weights_only=True)["learner"]["model"] for name in ("mb", "mb_finetune")]
    for k, v in weights[0].items():
        assert torch.equal(v, weights[1][k]), k
