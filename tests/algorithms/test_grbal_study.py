"""``benchmarks/grbal_study.py``'s test-time levers and diagnostics (docs/model_based.md,
"The pendulum: levers four to six"): the test-time inner step replaces the run's (a learned
step size too), a grid study pairs every setting with the same fixed agents (at the run's
own setting the difference is exactly 0), and the adaptation diagnostics are known answers
(no step changes nothing; the one-step error and window loss by hand; a small step fits the
window better)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from grbal_tiny import learner as _learner
from grbal_tiny import pendulum as _family

from adaptrl.algorithms.grbal_config import ModelInnerConfig, ReBALConfig
from adaptrl.models.dynamics import CONTEXT
from adaptrl.models.functional import expand_params
from adaptrl.planning.controller import Window
from adaptrl.tasks.pendulum import CADM_PARAMS

ROOT = Path(__file__).resolve().parents[2]
def _study() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "grbal_study", ROOT / "benchmarks" / "grbal_study.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_test_inner_replaces_the_runs_step_window_and_learned_step_sizes() -> None:
    study = _study()
    agent = _learner(_family(12), inner=ModelInnerConfig(lr=0.01, learn_lr=True)).agent()
    assert agent.optimizer is not None and agent.memory == 4
    assert study.with_test_inner(agent) == agent
    changed = study.with_test_inner(agent, lr=0.002, past=9)
    assert changed.inner.lr == 0.002 and changed.memory == 9 and changed.optimizer is None
    assert changed.inner.steps == agent.inner.steps
    deeper = study.with_test_inner(agent, steps=3)  # the learned step sizes stay
    assert deeper.inner.steps == 3 and deeper.optimizer is agent.optimizer
    mb = _learner(_family(12), inner=ModelInnerConfig(steps=0)).agent()
    finetune = study.finetuned(mb, changed)
    assert finetune.adapt and finetune.inner == changed.inner and finetune.memory == 9
    assert finetune.model is mb.model and finetune.optimizer is None


def test_grid_pairs_each_setting_with_the_same_fixed_agents() -> None:
    study = _study()
    family = _family(12)
    torch.set_num_threads(1)
    agent = _learner(family).agent()
    mb = _learner(family, inner=ModelInnerConfig(steps=0)).agent()
    tasks = family.sample(3, "test", torch.Generator().manual_seed(5))
    fixed_agents = {"grbal_preset": agent, "mb": mb, "mpc_oracle": study.replace(
        agent, oracle=True, adapt=False), "random": study.RandomAgent(
        study.ActionDomain.of(family.action_space))}
    seconds: dict[str, dict[str, float]] = {}
    fixed = study.score(family, fixed_agents, tasks, 1, 0, seconds)
    assert set(seconds) == set(fixed_agents) and all(v["cpu_s"] >= 0 for v in seconds.values())
    rows = study.test_grid(family, agent, mb, {"ood": tasks}, {"ood": fixed}, [4, 2],
                           [agent.inner.lr], 1, 0)
    assert [(r["past"], r["lr"]) for r in rows] == [(4, agent.inner.lr), (2, agent.inner.lr)]
    own = rows[0]["ood"]
    assert own["paired"]["grbal-grbal_preset"] == {"mean": [0.0], "ci95": [0.0]}
    assert own["per_task"]["grbal"] == own["per_task"]["grbal_preset"]
    for row in rows:  # the fixed agents are the same numbers in every row
        assert row["ood"]["per_task"]["mb"] == own["per_task"]["mb"]
        assert set(row["ood"]["paired"]) == {"grbal-mb", "grbal-mb_finetune",
                                             "grbal-grbal_preset"}
    # mb_finetune of a row is the non-meta-learned model adapted like that row's GrBAL
    alone = study.score(family, {"mb_finetune": study.finetuned(
        mb, study.with_test_inner(agent, past=2))}, tasks, 1, 0)["mb_finetune"]
    norm = study.normalised_to_oracle(alone, fixed["mpc_oracle"][0], fixed["random"][0])
    assert rows[1]["ood"]["per_task"]["mb_finetune"] == norm.tolist()


def test_adaptation_diagnostics_known_answers() -> None:
    study = _study()
    family = _family(30)
    learner = _learner(family)
    agent = learner.agent()
    tasks = family.sample(2, "test", torch.Generator().manual_seed(3))
    oracle = study.replace(agent, oracle=True, adapt=False)
    episodes = study.oracle_episodes(family, tasks, oracle, 0)
    obs, act, nxt = episodes
    assert obs.shape[:2] == (30, 2)
    starts, horizon, future = [6, 16], 5, 3
    # no inner step: nothing changes
    none = study.adaptation_diagnostics(study.with_test_inner(agent, steps=0), episodes,
                                        starts, horizon, future)
    for key in ("past", "future", "open_loop"):
        assert torch.equal(none[f"{key}_before"], none[f"{key}_after"])
    d = study.adaptation_diagnostics(study.with_test_inner(agent, lr=1e-3), episodes, starts,
                                     horizon, future)
    assert d["open_loop_before"].shape == (2, horizon) and d["past_before"].shape == (2,)
    # by hand: the one-step error and the window's loss from theta*, averaged over starts
    model, params = learner.model, expand_params(agent.params, 2)
    one_step = torch.stack([(model.predict(obs[t].unsqueeze(1), act[t].unsqueeze(1), params)[
        :, 0] - obs[t + 1]).norm(dim=-1) for t in starts]).mean(0)
    torch.testing.assert_close(d["open_loop_before"][:, 0], one_step)
    windows = [Window(obs[t - 4:t].transpose(0, 1), act[t - 4:t].transpose(0, 1),
                      nxt[t - 4:t].transpose(0, 1), torch.ones(2, 4, dtype=torch.bool))
               for t in starts]
    by_hand = torch.stack([model.loss(params, w.obs, w.action, w.next_obs)
                           for w in windows]).mean(0)
    torch.testing.assert_close(d["past_before"], by_hand)
    # a small gradient step on the window fits that window better, on every task
    assert (d["past_after"] < d["past_before"]).all()
    # the study's horizon-error curve is the diagnostics' open-loop error, over tasks
    before, after = study.horizon_errors(agent, family, tasks, oracle, horizon, 0)
    ref = study.adaptation_diagnostics(agent, episodes, list(range(4, 30 - horizon, 10)),
                                       horizon)
    torch.testing.assert_close(before, ref["open_loop_before"].mean(0))
    torch.testing.assert_close(after, ref["open_loop_after"].mean(0))


def test_adaptation_diagnostics_of_a_recurrent_model_use_its_context() -> None:
    """ReBAL's model is scored as its agent adapts: before, with the zero context of no
    transitions (the one-step error by hand); after, with the context of the window."""
    study = _study()
    family = _family(30)
    learner = _learner(family, ReBALConfig, dynamics={"hidden": [16], "context": 4})
    agent = learner.agent()
    tasks = family.sample(2, "test", torch.Generator().manual_seed(3))
    episodes = study.oracle_episodes(family, tasks, study.replace(agent, oracle=True,
                                                                  adapt=False), 0)
    obs, act, _ = episodes
    starts = [6, 16]
    d = study.adaptation_diagnostics(agent, episodes, starts, 5, 3)
    params = {**agent.params, CONTEXT: torch.zeros(2, 4)}
    one_step = torch.stack([(learner.model.predict(obs[t].unsqueeze(1), act[t].unsqueeze(1),
                                                   params)[:, 0] - obs[t + 1]).norm(dim=-1)
                            for t in starts]).mean(0)
    torch.testing.assert_close(d["open_loop_before"][:, 0], one_step)
    assert not torch.allclose(d["open_loop_after"], d["open_loop_before"])


def test_box_of_finds_each_ood_task_in_its_test_box() -> None:
    study = _study()
    family = _family(12)
    tasks = family.sample(40, "test", torch.Generator().manual_seed(7))
    boxes = [{k: tuple(v) for k, v in box.items()} for box in CADM_PARAMS["test_boxes"]]
    where = study.box_of(tasks, boxes)
    assert min(where) == 0 and max(where) == len(boxes) - 1  # every task in a box
    for i, j in enumerate(where):
        assert all(lo <= float(tasks.params[k][i]) <= hi for k, (lo, hi) in boxes[j].items())
    train = family.sample(5, "train", torch.Generator().manual_seed(7))
    assert study.box_of(train, boxes) == [-1] * 5  # the training grid is in no test box


def test_significant_rounds_every_float_and_nothing_else() -> None:
    study = _study()
    value = {"a": [1.23456789, 2, "x"], "b": {"c": 0.000123456789, "d": True}}
    assert study.significant(value) == {"a": [1.23457, 2, "x"],
                                        "b": {"c": 0.000123457, "d": True}}
    assert study.significant(123456789.0, 3) == 123000000.0


def test_pool_seeds_intervals_over_seeds_and_pairs_known_answer() -> None:
    """Two seeds x three tasks: the pooled mean is the mean of the seed means, its interval
    is the t-interval of the two seed means (t_{0.975, 1} = 12.706), the pairs' interval is
    over all six differences, and mb_finetune's difference is taken alike."""
    study = _study()

    def one(grbal: list[float], mb: list[float]) -> dict[str, Any]:
        per = {"grbal": [grbal], "mb": [mb], "mb_finetune": [[0.0, 0.0, 0.0]],
               "mpc_oracle": [[1.0] * 3], "random": [[0.0] * 3]}
        return {"held-out": {"per_task": per}, "ood": {"per_task": per}}

    pooled = study.pool_seeds([one([1.0, 1.0, 1.0], [0.9, 0.8, 1.0]),
                               one([0.9, 1.0, 0.8], [0.9, 0.9, 0.9])])
    diff = pooled["ood"]["paired"]["grbal-mb"]
    assert diff["per_seed"] == pytest.approx([0.1, 0.0])
    assert diff["mean"] == pytest.approx(0.05)
    spread = 0.1 / 2  # the std of two values / sqrt(2)
    assert diff["ci95_seeds"] == pytest.approx(12.706 * spread, rel=1e-4)
    six = torch.tensor([0.1, 0.2, 0.0, 0.0, 0.1, -0.1], dtype=torch.float64)
    assert diff["ci95_pairs"] == pytest.approx(
        float(six.std() / 6 ** 0.5) * 2.5706, rel=1e-4)
    assert pooled["held-out"]["paired"]["grbal-mb_finetune"]["mean"] == pytest.approx(
        (1.0 + 0.9) / 2)
    assert pooled["ood"]["normalised"]["mb"]["per_seed"] == pytest.approx([0.9, 0.9])
    assert pooled["seeds"] == 2


def test_pooled_by_box_averages_every_seeds_tasks_in_each_box() -> None:
    """Two seeds, three OOD tasks in boxes 0, 1, 0: box 0's mean is over four (seed, task)
    values, box 1's over two; GrBAL - mb alike; the task counts are kept."""
    study = _study()
    boxes = [{"mass": [0.0, 1.0]}, {"mass": [2.0, 3.0]}]

    def one(grbal: list[float], mb: list[float]) -> dict[str, Any]:
        return {"tasks": {"ood": {"mass": [0.5, 2.5, 0.7]}},
                "ood": {"per_task": {"grbal": [grbal], "mb": [mb]}}}

    got = study.pooled_by_box([one([1.0, 0.5, 0.9], [0.8, 0.5, 0.9]),
                               one([0.7, 0.3, 1.0], [0.7, 0.1, 0.6])], boxes)
    assert got["grbal"] == pytest.approx([(1.0 + 0.9 + 0.7 + 1.0) / 4, (0.5 + 0.3) / 2])
    assert got["grbal-mb"] == pytest.approx([(0.2 + 0.0 + 0.0 + 0.4) / 4, (0.0 + 0.2) / 2])
    assert got["tasks"] == [4.0, 2.0]
