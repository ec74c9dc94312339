"""The gradient-based family: Reptile, Meta-SGD, first-order and PPO-outer MAML, aggregation.

Known-answer tests of each outer rule on problems with a closed form, plus for every new
algorithm a CLI smoke run (train, evaluate) and exact resume from a checkpoint.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

from adaptrl.adaptation.inner_optimizers import SGD, MetaSGD
from adaptrl.adaptation.inner_update import InnerUpdate
from adaptrl.adaptation.objectives import ClippedPolicyGradientObjective, PolicyGradientObjective
from adaptrl.algorithms.aggregation import Aggregation, AggregationConfig, aggregation_weights
from adaptrl.algorithms.common import InnerLoop, averaging_step
from adaptrl.algorithms.reptile import Reptile, ReptileConfig
from adaptrl.cli.main import app
from adaptrl.experiment.compare import compare_runs, markdown_table
from adaptrl.experiment.config import ConfigError, validate_config
from adaptrl.experiment.learners import apply_init_from
from adaptrl.experiment.run_dir import read_metrics
from adaptrl.experiment.trainer import train
from adaptrl.models.functional import Params, detach_params, is_batched, named_params
from adaptrl.models.policies import PolicyConfig
from adaptrl.optim.averaging import weighted_mean
from adaptrl.rollouts.sampler import rollout
from adaptrl.rollouts.trajectories import Trajectories
from adaptrl.tasks import make

runner = CliRunner()
TINY_POLICY = PolicyConfig(hidden=[8, 8], activation="tanh")
FAMILY = make("navigation-2d", horizon=10)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- Reptile ----------------------------------------------------------------------------
class QuadraticObjective:
    """Inner loss ``L_i(p) = 1/2 sum_k ||p_k - c_ik||^2`` per task; ignores the episodes.

    ``k`` SGD steps of size ``a`` from ``theta`` give ``c_i + (1 - a)^k (theta - c_i)``.
    """

    def __init__(self, policy: torch.nn.Module, centers: Params) -> None:
        self.policy, self.centers = policy, centers

    def prepare(self, traj: Trajectories) -> torch.Tensor:
        return torch.zeros_like(traj.rewards)

    def loss(self, params: Params, traj: Trajectories, data: torch.Tensor) -> torch.Tensor:
        return sum(0.5 * (p - self.centers[k]).pow(2).flatten(1).sum(1)  # type: ignore[return-value]
                   for k, p in params.items())


@pytest.mark.parametrize("steps,eps", [(1, 1.0), (3, 0.5)])
def test_reptile_outer_update_is_its_formula_on_a_quadratic(steps: int, eps: float) -> None:
    n, lr = 4, 0.3
    cfg = ReptileConfig(meta_batch_size=n, episodes_per_task=2, policy=TINY_POLICY,
                        outer_lr=eps, inner={"steps": steps, "lr": lr})
    learner = Reptile(FAMILY, cfg, _generator(), torch.device("cpu"))
    theta = {k: v.detach().clone() for k, v in named_params(learner.policy).items()}
    g = _generator(1)
    centers = {k: torch.randn(n, *v.shape, generator=g) for k, v in theta.items()}
    learner.inner.update = InnerUpdate(QuadraticObjective(learner.policy, centers), SGD(lr))
    learner.meta_update(FAMILY.sample(n, "train", _generator(2)))
    for k, t in theta.items():
        phi = centers[k] + (1 - lr) ** steps * (t - centers[k])
        expected = t + eps * (phi.mean(0) - t)
        torch.testing.assert_close(named_params(learner.policy)[k].detach(), expected,
                                   rtol=1e-5, atol=1e-6)


def test_reptile_needs_no_query_and_counts_its_env_steps() -> None:
    cfg = ReptileConfig(meta_batch_size=3, episodes_per_task=2, policy=TINY_POLICY,
                        inner={"steps": 2})
    learner = Reptile(FAMILY, cfg, _generator(), torch.device("cpu"))
    before = copy.deepcopy(learner.policy.state_dict())
    metrics = learner.meta_update(FAMILY.sample(3, "train", _generator(1)))
    assert learner.env_steps == 2 * 3 * 2 * FAMILY.horizon  # 2 support batches, no query
    assert {"return_pre", "return_post", "outer_distance"} <= set(metrics)
    assert any(not torch.equal(before[k], v) for k, v in learner.policy.state_dict().items())


# -- the shared inner loop --------------------------------------------------------------
def _support(policy: torch.nn.Module, n: int = 3, seed: int = 0) -> Trajectories:
    env = FAMILY.make_env(FAMILY.sample(n, "train", _generator(seed)), 4, "cpu")
    return rollout(env, policy, None, _generator(seed + 1))


def test_first_order_maml_gradient_is_the_detached_inner_gradient() -> None:
    """FOMAML: d L(phi(theta)) / d theta = sum_i (d L_i / d phi_i) at the adapted phi_i."""
    policy = TINY_POLICY.build(FAMILY.observation_space, FAMILY.action_space)
    objective = PolicyGradientObjective(policy)
    loop = InnerLoop(FAMILY, InnerUpdate(objective, SGD(0.1)), 4, _generator(),
                     torch.device("cpu"))
    support, query = _support(policy, seed=0), _support(policy, seed=5)
    supports = [(support, objective.prepare(support))]
    q_adv = objective.prepare(query)
    theta = named_params(policy)

    phi = loop.adapt(theta, supports, first_order=True, differentiable=True)
    grads = torch.autograd.grad(objective.loss(phi, query, q_adv).sum(), list(theta.values()))

    phi_leaf = {k: v.detach().requires_grad_(True) for k, v in phi.items()}
    per_task = torch.autograd.grad(objective.loss(phi_leaf, query, q_adv).sum(),
                                   list(phi_leaf.values()))
    for g, gp in zip(grads, per_task):
        torch.testing.assert_close(g, gp.sum(0), rtol=1e-5, atol=1e-7)
    # and the second-order gradient is a different one
    phi2 = loop.adapt(theta, supports, first_order=False, differentiable=True)
    grads2 = torch.autograd.grad(objective.loss(phi2, query, q_adv).sum(), list(theta.values()))
    assert any(not torch.allclose(a, b) for a, b in zip(grads, grads2))


def test_clipped_inner_step_with_one_epoch_is_the_vpg_step() -> None:
    policy = TINY_POLICY.build(FAMILY.observation_space, FAMILY.action_space)
    traj = _support(policy)
    vpg = InnerUpdate(PolicyGradientObjective(policy), SGD(0.1))
    clipped = ClippedPolicyGradientObjective(policy, clip=0.2)
    ppo = InnerUpdate(clipped, SGD(0.1), epochs=1)
    adv = vpg.prepare(traj)
    theta = detach_params(named_params(policy))
    a, _ = vpg.step(theta, traj, adv, {}, first_order=True, create_graph=False)
    b, _ = ppo.step(theta, traj, adv, {}, first_order=True, create_graph=False)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)
    c, _ = InnerUpdate(clipped, SGD(0.1), epochs=3).step(theta, traj, adv, {},
                                                         first_order=True, create_graph=False)
    assert is_batched(c, policy) and any(not torch.allclose(a[k], c[k]) for k in a)
    with pytest.raises(ValueError, match="epochs"):
        InnerUpdate(clipped, SGD(0.1), epochs=0)


# -- aggregation --------------------------------------------------------------------------
@pytest.mark.parametrize("weighting", ["uniform", "softmax", "topk"])
def test_aggregation_weights_sum_to_one(weighting: str) -> None:
    returns = torch.randn(7, generator=_generator(3)) * 30 - 50
    w = aggregation_weights(returns, weighting, temperature=0.5, top_k=3)  # type: ignore[arg-type]
    assert w.shape == (7,) and bool((w >= 0).all())
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-6)
    if weighting == "topk":
        best = set(torch.topk(returns, 3).indices.tolist())
        assert set(torch.nonzero(w).flatten().tolist()) == best
    if weighting == "softmax":  # a better validation return never gets less weight
        order = torch.argsort(returns)
        assert bool((w[order][1:] >= w[order][:-1]).all())
        # the temperature is relative to the spread of the returns: scale-free
        w10 = aggregation_weights(returns * 10, "softmax", temperature=0.5)
        torch.testing.assert_close(w, w10)


def test_aggregation_weights_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="top_k"):
        aggregation_weights(torch.zeros(3), "topk", top_k=4)
    with pytest.raises(ValueError, match="weighting"):
        aggregation_weights(torch.zeros(3), "median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sum to 1"):
        weighted_mean({"w": torch.zeros(2, 3)}, torch.tensor([0.5, 0.6]))


def test_one_weight_reproduces_that_policy_exactly() -> None:
    policy = TINY_POLICY.build(FAMILY.observation_space, FAMILY.action_space)
    g = _generator(4)
    members = {k: torch.randn(5, *v.shape, generator=g) for k, v in named_params(policy).items()}
    onehot = torch.zeros(5)
    onehot[2] = 1.0
    for k, v in weighted_mean(members, onehot).items():
        assert torch.equal(v, members[k][2])
    # the outer step with eps = 1 lands on it (theta - (theta - phi): up to rounding)
    theta = named_params(policy)
    optimizer = torch.optim.SGD(policy.parameters(), lr=1.0)
    averaging_step(optimizer, theta, members, onehot)
    for k, v in theta.items():
        torch.testing.assert_close(v.detach(), members[k][2], rtol=0, atol=1e-6)


def test_aggregation_round_with_top1_becomes_its_best_member(monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    cfg = AggregationConfig(meta_batch_size=3, episodes_per_task=2, policy=TINY_POLICY,
                            weighting="topk", top_k=1, inner={"steps": 1})
    learner = Aggregation(FAMILY, cfg, _generator(), torch.device("cpu"))
    seen: dict[str, Params] = {}
    original = learner._validate

    def spy(members: Params) -> torch.Tensor:
        seen.update(members)
        return original(members)

    monkeypatch.setattr(learner, "_validate", spy)
    metrics = learner.meta_update(FAMILY.sample(3, "train", _generator(1)))
    assert metrics["weight_max"] == 1.0
    now = named_params(learner.policy)
    matches = [i for i in range(3) if all(torch.allclose(now[k].detach(), v[i], rtol=0,
                                                         atol=1e-6) for k, v in seen.items())]
    assert len(matches) == 1


def test_aggregation_config_rejects_top_k_above_batch() -> None:
    with pytest.raises(ValueError, match="top_k"):
        AggregationConfig(meta_batch_size=3, weighting="topk", top_k=5)


# -- CLI smoke runs, exact resume, init_from, compare -------------------------------------
ALGORITHMS: dict[str, dict[str, Any]] = {
    "reptile": {"name": "reptile", "inner": {"steps": 2}},
    "reptile-ppo-adam": {"name": "reptile", "inner": {"steps": 2, "rule": "ppo", "epochs": 2},
                         "outer_optimizer": "adam", "outer_lr": 0.01},
    "aggregation": {"name": "aggregation", "inner": {"steps": 2}, "validation_tasks": 2,
                    "validation_episodes": 1},
    "metasgd": {"name": "metasgd"},
    "maml-ppo": {"name": "maml", "outer": "ppo", "ppo": {"epochs": 2, "minibatches": 3}},
    "maml-adam": {"name": "maml", "outer": "adam", "adam_lr": 0.01},
    "maml-step-batches": {"name": "maml", "batch_unit": "steps"},
}


def _config(tiny_config: dict[str, Any], algo: dict[str, Any]) -> dict[str, Any]:
    cfg = copy.deepcopy(tiny_config)
    cfg["algorithm"] = {**copy.deepcopy(algo), "meta_batch_size": 3, "episodes_per_task": 3,
                        "policy": {"hidden": [8, 8], "activation": "tanh"}}
    return cfg


@pytest.mark.parametrize("key", sorted(ALGORITHMS))
def test_cli_train_and_evaluate(key: str, tmp_path: Path, tiny_config: dict[str, Any]) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(_config(tiny_config, ALGORITHMS[key])))
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", str(path), "--run-dir", str(run), "--iterations", "2",
                              "--set", "baselines.pretrained_iterations=1"])
    assert res.exit_code == 0, res.output
    ev = json.loads((run / "eval.json").read_text())
    assert ev["algorithm"] == ALGORITHMS[key]["name"]
    assert {"agent", "pretrained", "scratch"} <= set(ev["methods"])
    res = runner.invoke(app, ["evaluate", str(run), "--tasks", "2", "--steps", "1"])
    assert res.exit_code == 0, res.output


def _strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]


def _train(cfg: dict[str, Any], path: Path, resume: bool = False) -> None:
    exp, algo = validate_config(cfg)
    train(exp, algo, path, resume=resume, baselines=False)


@pytest.mark.parametrize("key", sorted(ALGORITHMS))
def test_resume_is_exact(key: str, tmp_path: Path, tiny_config: dict[str, Any]) -> None:
    cfg = _config(tiny_config, ALGORITHMS[key])
    cfg["iterations"] = 3
    _train(cfg, tmp_path / "full")
    cfg["iterations"] = 1
    _train(cfg, tmp_path / "split")
    cfg["iterations"] = 3
    _train(cfg, tmp_path / "split", resume=True)
    full = _strip(read_metrics(tmp_path / "full" / "metrics.jsonl"))
    assert len(full) == 3
    assert _strip(read_metrics(tmp_path / "split" / "metrics.jsonl")) == full
    a = torch.load(tmp_path / "full" / "checkpoints" / "latest.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "checkpoints" / "latest.pt", weights_only=True)
    for k, v in a["learner"]["policy"].items():
        assert torch.equal(v, b["learner"]["policy"][k])


def test_init_from_loads_the_source_policy(tmp_path: Path, tiny_config: dict[str, Any]) -> None:
    _train(_config(tiny_config, ALGORITHMS["aggregation"]), tmp_path / "agg")
    cfg = _config(tiny_config, {**ALGORITHMS["reptile"], "init_from": str(tmp_path / "agg")})
    exp, algo = validate_config(cfg)
    learner = Reptile(FAMILY, algo, _generator(), torch.device("cpu"))  # type: ignore[arg-type]
    apply_init_from(learner, algo)
    source = torch.load(tmp_path / "agg" / "checkpoints" / "best.pt", weights_only=True)
    for k, v in learner.policy.state_dict().items():
        assert torch.equal(v, source["learner"]["policy"][k])
    # or from one checkpoint file of a run (here: a copy with shifted weights)
    shifted = {**source, "learner": {**source["learner"], "policy": {
        k: v + 1.0 for k, v in source["learner"]["policy"].items()}}}
    torch.save(shifted, tmp_path / "shifted.pt")
    algo.init_from = str(tmp_path / "shifted.pt")
    apply_init_from(learner, algo)
    for k, v in learner.policy.state_dict().items():
        assert torch.equal(v, shifted["learner"]["policy"][k])
    # training from it: iteration 0 starts at the aggregated policy
    cfg["iterations"] = 1
    _train(cfg, tmp_path / "rep")
    bad = _config(tiny_config, {**ALGORITHMS["reptile"], "init_from": str(tmp_path / "agg")})
    bad["algorithm"]["policy"]["hidden"] = [4]
    exp, algo = validate_config(bad)
    small = Reptile(FAMILY, algo, _generator(), torch.device("cpu"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="init_from"):
        apply_init_from(small, algo)
    exp, algo = validate_config(_config(tiny_config, {**ALGORITHMS["reptile"],
                                                      "init_from": str(tmp_path / "none")}))
    with pytest.raises(ConfigError, match="no checkpoints"):
        apply_init_from(small, algo)
    algo.init_from = str(tmp_path / "agg" / "checkpoints" / "lastest.pt")  # a typo
    with pytest.raises(ConfigError, match="lastest.pt: no such checkpoint file"):
        apply_init_from(small, algo)


def test_compare_scores_runs_on_the_same_tasks(tmp_path: Path,
                                               tiny_config: dict[str, Any]) -> None:
    for key in ("reptile", "aggregation"):
        cfg = _config(tiny_config, ALGORITHMS[key])
        exp, algo = validate_config(cfg)
        train(exp, algo, tmp_path / key, baselines=(key == "reptile"))
    runs = [tmp_path / "reptile", tmp_path / "aggregation"]
    result = compare_runs(runs, num_tasks=3, seed=7, steps=1)
    methods = [r["method"] for r in result["rows"]]
    assert methods[:2] == ["reptile", "aggregation"]
    assert {"pretrained", "scratch"} <= set(methods)
    for r in result["rows"]:
        assert r["steps"] == [0, 1] and len(r["mean"]) == 2
    rows = {r["method"]: r for r in result["rows"]}
    assert rows["reptile"]["env_steps"] == read_metrics(runs[0] / "metrics.jsonl")[-1]["env_steps"]
    assert rows["pretrained"]["iterations"] == 2 and rows["scratch"]["env_steps"] is None
    # paired lead over pretrained after one step: the per-task differences' mean and CI
    rep, pre = rows["reptile"], rows["pretrained"]
    diffs = torch.tensor(rep["per_task"][1]) - torch.tensor(pre["per_task"][1])
    assert rep["vs_pretrained"]["mean"][1] == pytest.approx(float(diffs.mean()), abs=1e-5)
    assert pre["vs_pretrained"] is None and rows["scratch"]["vs_pretrained"] is not None
    table = markdown_table(result)
    assert "| method | algorithm | 0 steps | 1 step | 1 step − pretrained (paired) |" in table
    assert table.count("\n| ") == len(result["rows"]) + 1
    # the same call again gives the same numbers (fixed evaluation seed)
    again = compare_runs(runs, num_tasks=3, seed=7, steps=1)
    assert again["rows"] == result["rows"]

    res = runner.invoke(app, ["compare", *map(str, runs), "--out", str(tmp_path / "cmp"),
                              "--tasks", "3", "--seed", "7", "--steps", "1"])
    assert res.exit_code == 0, res.output
    assert "| reptile | reptile |" in res.output
    assert (tmp_path / "cmp" / "adaptation_curves.png").stat().st_size > 1000
    assert json.loads((tmp_path / "cmp" / "comparison.json").read_text())["rows"] == result["rows"]


def test_compare_refuses_runs_on_different_families(tmp_path: Path,
                                                    tiny_config: dict[str, Any]) -> None:
    a = _config(tiny_config, ALGORITHMS["reptile"])
    b = copy.deepcopy(a)
    b["family"]["params"]["horizon"] = 12
    _train(a, tmp_path / "a")
    _train(b, tmp_path / "b")
    with pytest.raises(ConfigError, match="share the task family"):
        compare_runs([tmp_path / "a", tmp_path / "b"])
    res = runner.invoke(app, ["compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert res.exit_code == 2 and "family" in res.output


def test_compare_refuses_runs_scored_on_differently_counted_batches(
        tmp_path: Path, tiny_config: dict[str, Any]) -> None:
    a = _config(tiny_config, ALGORITHMS["reptile"])
    b = copy.deepcopy(a)
    b["evaluation"]["batch_unit"] = "steps"
    _train(a, tmp_path / "a")
    _train(b, tmp_path / "b")
    with pytest.raises(ConfigError, match="evaluation.batch_unit"):
        compare_runs([tmp_path / "a", tmp_path / "b"])


def test_aggregation_baseline_is_trained_and_evaluated(tmp_path: Path,
                                                       tiny_config: dict[str, Any]) -> None:
    cfg = _config(tiny_config, ALGORITHMS["reptile"])
    cfg["evaluation"]["baselines"] = ["aggregation", "scratch"]
    cfg["baselines"] = {"aggregation_iterations": 1}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", str(path), "--run-dir", str(run)])
    assert res.exit_code == 0, res.output
    assert len(read_metrics(run / "baselines" / "aggregation" / "metrics.jsonl")) == 1
    assert not (run / "baselines" / "pretrained").exists()
    ev = json.loads((run / "eval.json").read_text())
    assert set(ev["methods"]) == {"agent", "aggregation", "scratch"}


# -- Meta-SGD and PPO-outer MAML ---------------------------------------------------------
def _learner(algo: dict[str, Any], seed: int = 0) -> Any:
    from adaptrl.algorithms.registry import algorithm_spec

    spec = algorithm_spec(algo["name"])
    cfg = spec.config_cls.model_validate({**algo, "meta_batch_size": 3, "episodes_per_task": 3,
                                          "policy": {"hidden": [8, 8], "activation": "tanh"}})
    torch.manual_seed(seed)
    return spec.build(FAMILY, cfg, _generator(seed), torch.device("cpu"))


def test_metasgd_step_sizes_get_gradients_and_change() -> None:
    learner = _learner({"name": "metasgd", "alpha_init": 0.05})
    assert isinstance(learner.update.optimizer, MetaSGD)
    alpha = learner.update.optimizer.alpha()
    assert set(alpha) == set(named_params(learner.policy))
    assert all(bool((a == 0.05).all()) for a in alpha.values())
    # d L(phi(theta, alpha)) / d alpha = -grad L_inner (.) dL/dphi, nonzero
    support, query = _support(learner.policy, seed=0), _support(learner.policy, seed=5)
    objective = learner.update.objective
    supports = [(support, objective.prepare(support))]
    phi = learner.replay(supports, differentiable=True)
    loss = objective.loss(phi, query, objective.prepare(query)).sum()
    grads = torch.autograd.grad(loss, list(alpha.values()))
    assert all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)

    before = [a.detach().clone() for a in alpha.values()]
    metrics = learner.meta_update(FAMILY.sample(3, "train", _generator(1)))
    assert metrics["trpo/accepted"] == 1.0
    after = list(learner.update.optimizer.alpha().values())
    assert any(not torch.equal(b, a.detach()) for b, a in zip(before, after))
    assert {"alpha_mean", "alpha_std"} <= set(metrics)
    # evaluation adapts with the learned alpha, whatever the evaluation's schedule says
    agent = learner.agent([0.5, 0.25])
    assert len(agent.schedule) == 1
    step = agent.schedule[0]
    assert isinstance(step, SGD) and isinstance(step.lr, dict)
    for k, a in learner.update.optimizer.alpha().items():
        assert torch.equal(step.lr[k], a.detach()) and not step.lr[k].requires_grad


def _record_episodes(monkeypatch: pytest.MonkeyPatch, learner: Any) -> dict[str, Any]:
    """``seen["episodes"]``: what the learner's inner loop sampled last."""
    seen: dict[str, Any] = {}
    original = learner.inner.sample

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen["episodes"] = original(*args, **kwargs)
        return seen["episodes"]

    monkeypatch.setattr(learner.inner, "sample", spy)
    return seen


def test_ppo_outer_maml_improves_its_surrogate(monkeypatch: pytest.MonkeyPatch) -> None:
    from adaptrl.rollouts.losses import clipped_loss
    from adaptrl.rollouts.sampler import trajectory_distribution

    learner = _learner({"name": "maml", "outer": "ppo",
                        "ppo": {"lr": 3e-3, "epochs": 4, "minibatches": 1}})
    seen = _record_episodes(monkeypatch, learner)

    def surrogate() -> float:
        """The clipped surrogate of the sampled query episodes at the current theta."""
        episodes = seen["episodes"]
        theta = detach_params(named_params(learner.policy))
        phi = learner.inner.adapt(theta, episodes.supports, first_order=True,
                                  differentiable=False)
        query = episodes.query
        dist = trajectory_distribution(learner.policy, query, phi)
        return float(clipped_loss(dist, query, learner.update.prepare(query), 0.2).mean())

    theta0 = copy.deepcopy(learner.policy.state_dict())
    metrics = learner.meta_update(FAMILY.sample(3, "train", _generator(1)))
    after = surrogate()
    learner.policy.load_state_dict(theta0)
    before = surrogate()
    assert after < before
    assert {"return_pre", "return_post", "ppo/policy_loss", "ppo/approx_kl"} <= set(metrics)
    assert learner.env_steps == 2 * 3 * 3 * FAMILY.horizon


@pytest.mark.parametrize("inner_steps", [0, 1])
def test_adam_outer_step_is_one_adam_step_on_the_policy_gradient(
        monkeypatch: pytest.MonkeyPatch, inner_steps: int) -> None:
    """``outer: adam``: theta moves by exactly one Adam step on the gradient of the outer loss
    (the mean over tasks of the per-task surrogate at theta_old), i.e. by
    ``lr * g / (|g| + eps)`` per entry; with no inner step it is the multi-task VPG gradient
    (the MAML reference code's pretrained baseline)."""
    learner = _learner({"name": "maml", "outer": "adam", "adam_lr": 0.01,
                        "inner": {"steps": inner_steps}})
    seen = _record_episodes(monkeypatch, learner)
    theta0 = {k: v.detach().clone() for k, v in named_params(learner.policy).items()}
    metrics = learner.meta_update(FAMILY.sample(3, "train", _generator(1)))
    # the expected gradient, from scratch on the recorded episodes
    episodes = seen["episodes"]
    theta = {k: v.clone().requires_grad_(True) for k, v in theta0.items()}
    phi = learner.inner.adapt(theta, episodes.supports, first_order=False,
                              differentiable=True)
    query = episodes.query
    objective = learner.update.objective
    loss = objective.loss(phi, query, objective.prepare(query)).mean()
    grads = torch.autograd.grad(loss, list(theta.values()))
    for (k, t0), g in zip(theta0.items(), grads):
        step = named_params(learner.policy)[k].detach() - t0
        clear = g.abs() > 1e-5  # the sign of a vanishing gradient is float noise
        assert bool(clear.any()), k
        assert torch.allclose(step[clear], -0.01 * torch.sign(g[clear]), atol=1e-4), k
        assert bool((step.abs() <= 0.01 + 1e-6).all()), k
    assert {"return_pre", "adam/loss", "adam/grad_norm"} <= set(metrics)
    assert "optimizer" in learner.state_dict()  # Adam's moments are checkpointed


def test_pretrained_adam_baseline_is_trained_and_evaluated(tmp_path: Path,
                                                           tiny_config: dict[str, Any]) -> None:
    cfg = _config(tiny_config, {"name": "maml"})
    cfg["evaluation"]["baselines"] = ["pretrained", "pretrained_adam"]
    cfg["baselines"] = {"pretrained_iterations": 1, "pretrained_adam_iterations": 2}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    # its own count (2) within the run's (--iterations caps a longer baseline)
    res = runner.invoke(app, ["train", str(path), "--run-dir", str(run), "--iterations", "2"])
    assert res.exit_code == 0, res.output
    rows = read_metrics(run / "baselines" / "pretrained_adam" / "metrics.jsonl")
    assert len(rows) == 2 and "adam/grad_norm" in rows[0]
    ev = json.loads((run / "eval.json").read_text())
    assert set(ev["methods"]) == {"agent", "pretrained", "pretrained_adam"}
    assert set(ev["agent_minus"]) == {"pretrained", "pretrained_adam"}


def test_adam_inner_optimizer_trains_with_the_autograd_trpo_metric(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``inner.optimizer: adam``: MAML adapts with per-task Adam moments; with no cheap step
    Jacobian TRPO takes the KL Hessian through the inner loop by autograd; metasgd refuses
    it (its inner optimizer is the learned one)."""
    from adaptrl.adaptation.inner_optimizers import Adam

    learner = _learner({"name": "maml", "inner": {"optimizer": "adam", "lr": 0.01,
                                                   "adam_betas": [0.8, 0.9]}})
    assert learner.update.optimizer == Adam(0.01, (0.8, 0.9))
    seen = _record_episodes(monkeypatch, learner)
    before = copy.deepcopy(learner.policy.state_dict())
    metrics = learner.meta_update(FAMILY.sample(3, "train", _generator(1)))
    assert metrics["trpo/accepted"] == 1.0
    assert seen["episodes"].jacobians is None and learner._jacobians(seen["episodes"]) is None
    assert any(not torch.equal(before[k], v) for k, v in learner.policy.state_dict().items())
    with pytest.raises(ValueError, match="inner.optimizer must be sgd"):
        _learner({"name": "metasgd", "inner": {"optimizer": "adam"}})
    with pytest.raises(ValueError, match="adam_betas"):
        _learner({"name": "maml", "inner": {"optimizer": "adam", "adam_betas": [0.9, 1.0]}})
