"""The train grid and out-of-distribution test boxes of context-aware model-based RL
(Lee et al. 2020, CaDM) on ``cartpole-physics`` and ``pendulum-physics``.

Box membership and grid membership are recomputed here from the published numbers, not
through the family's own :class:`~adaptrl.tasks.splits.GridBoxSplit`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import torch

from adaptrl.experiment.config import load_config
from adaptrl.experiment.evaluate import evaluation_tasks
from adaptrl.experiment.learners import build_family
from adaptrl.experiment.trainer import train
from adaptrl.tasks import (
    CartPolePhysics,
    PendulumPhysics,
    Tasks,
    cartpole,
    check_task_family,
    pendulum,
)
from adaptrl.tasks.base import Split
from adaptrl.tasks.splits import HashSplit, split_of

Box = tuple[tuple[float, float], tuple[float, float]]

# the numbers of CaDM's cadm/envs/config.py, written out independently of CADM_PARAMS
FORCES = [5.0 + i for i in range(11)]
CARTPOLE_LENGTHS = [0.40, 0.45, 0.50, 0.55, 0.60]
CARTPOLE_BOXES: list[Box] = [((2.0, 2.5), (0.15, 0.2)), ((3.0, 3.5), (0.25, 0.3)),
                  ((16.5, 17.0), (0.7, 0.75)), ((17.5, 18.0), (0.8, 0.85))]
PENDULUM_SET = [round(0.75 + 0.05 * i, 2) for i in range(11)]
PENDULUM_BOXES: list[Box] = [((0.2, 0.4), (1.6, 1.8)), ((0.5, 0.7), (1.3, 1.5)),
                  ((1.3, 1.5), (0.5, 0.7)), ((1.6, 1.8), (0.2, 0.4))]

CASES: dict[str, tuple[str, dict[str, Any], tuple[str, str], tuple[list[float], list[float]],
                       list[Box]]] = {
    "cartpole": ("cartpole-physics", cartpole.CADM_PARAMS, ("force_mag", "length"),
                 (FORCES, CARTPOLE_LENGTHS), CARTPOLE_BOXES),
    "pendulum": ("pendulum-physics", pendulum.CADM_PARAMS, ("mass", "length"),
                 (PENDULUM_SET, PENDULUM_SET), PENDULUM_BOXES),
}


def _f32(values: list[float]) -> list[float]:
    return torch.tensor(values, dtype=torch.float32).tolist()


def _pairs(tasks: Tasks, keys: tuple[str, str]) -> list[tuple[float, float]]:
    a, b = (tasks.params[k].tolist() for k in keys)
    return list(zip(a, b, strict=True))


def _box_of(pair: tuple[float, float], boxes: list[Box]) -> int:
    """The index of the (float32-rounded) box holding ``pair``, -1 for none."""
    for i, box in enumerate(boxes):
        if all(lo <= v <= hi for v, (lo, hi) in zip(pair, (_f32(list(r)) for r in box),
                                                      strict=True)):
            return i
    return -1


def _family(case: str) -> CartPolePhysics | PendulumPhysics:
    params = CASES[case][1]
    return CartPolePhysics(**params) if case == "cartpole" else PendulumPhysics(**params)


def _sample(case: str, n: int, split: Split, seed: int) -> Tasks:
    return _family(case).sample(n, split, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("case", sorted(CASES))
def test_train_tasks_cover_the_grid_and_nothing_else(case: str) -> None:
    _, _, keys, grid, boxes = CASES[case]
    points = {(a, b) for a in _f32(grid[0]) for b in _f32(grid[1])}
    seen = _pairs(_sample(case, 3000, "train", 0), keys)
    assert set(seen) == points  # every grid point drawn, no value off the grid
    counts = torch.tensor([seen.count(p) for p in sorted(points)], dtype=torch.float64)
    expected = len(seen) / len(points)  # uniform over the product grid
    assert float(((counts - expected) ** 2 / expected).sum()) < 2 * len(points)
    assert all(_box_of(p, boxes) == -1 for p in seen)  # no train task in a test box


@pytest.mark.parametrize("case", sorted(CASES))
def test_test_tasks_fill_the_ood_boxes(case: str) -> None:
    _, _, keys, grid, boxes = CASES[case]
    seen = _pairs(_sample(case, 2000, "test", 1), keys)
    which = [_box_of(p, boxes) for p in seen]
    assert -1 not in which  # all in the union of the boxes
    shares = [which.count(i) / len(which) for i in range(len(boxes))]
    assert all(abs(s - 0.25) < 0.05 for s in shares), shares  # each box hit, equally often
    for i, box in enumerate(boxes):  # uniform inside: reaching near both ends of each side
        inside = [p for p, w in zip(seen, which, strict=True) if w == i]
        for d, (lo, hi) in enumerate(box):
            values = [p[d] for p in inside]
            assert min(values) < lo + 0.05 * (hi - lo) and max(values) > hi - 0.05 * (hi - lo)
    grid_points = {(a, b) for a in _f32(grid[0]) for b in _f32(grid[1])}
    assert not grid_points & set(seen)


@pytest.mark.parametrize("case", sorted(CASES))
def test_split_of_and_disjointness(case: str) -> None:
    family = _family(case)
    train, test = _sample(case, 500, "train", 2), _sample(case, 500, "test", 3)
    assert family.split_of(train) == ["train"] * 500
    assert family.split_of(test) == ["test"] * 500
    check_task_family(family)


@pytest.mark.parametrize("case", sorted(CASES))
def test_sampling_is_deterministic_under_a_generator(case: str) -> None:
    splits: tuple[Split, ...] = ("train", "test")
    for split in splits:
        a, b = _sample(case, 64, split, 7), _sample(case, 64, split, 7)
        c = _sample(case, 64, split, 8)
        assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)
        assert any(not torch.equal(a.params[k], c.params[k]) for k in a.params)


def test_cadm_cartpole_is_gyms_discrete_cartpole_with_masspole_0_1() -> None:
    family = CartPolePhysics(**cartpole.CADM_PARAMS)
    assert isinstance(family.action_space, gym.spaces.Discrete) and family.action_space.n == 2
    assert family.horizon == 200
    splits: tuple[Split, ...] = ("train", "test")
    for split in splits:
        tasks = family.sample(100, split, torch.Generator().manual_seed(4))
        fixed = {"gravity": 9.8, "cart_mass": 1.0, "pole_mass": 0.1, "force_sign": 1.0}
        for key, value in fixed.items():
            assert torch.equal(tasks.params[key], torch.full((100,), value))
    # one step from rest, upright, pushes by -+force_mag (action 0 / 1); by hand with
    # m_t = 1.1: temp = F / m_t, thetaacc = -temp / (l (4/3 - 0.1 / m_t)),
    # xacc = temp - 0.1 l thetaacc / m_t
    tasks = family.sample(2, "test", torch.Generator().manual_seed(5))
    env = family.make_env(tasks, 2)
    env.reset(torch.Generator().manual_seed(0))
    env.state.zero_()
    env.step(torch.tensor([[0, 1], [0, 1]]))
    force, length = (tasks.params[k].double() for k in ("force_mag", "length"))
    temp = force / 1.1
    theta_acc = -temp / (length * (4 / 3 - 0.1 / 1.1))
    x_acc = temp - 0.1 * length * theta_acc / 1.1
    for j, sign in ((0, -1.0), (1, 1.0)):
        torch.testing.assert_close(env.state[:, j, 1], sign * 0.02 * x_acc)
        torch.testing.assert_close(env.state[:, j, 3], sign * 0.02 * theta_acc)


def test_cadm_pendulum_starts_hanging_down() -> None:
    family = PendulumPhysics(**pendulum.CADM_PARAMS)
    env = family.make_env(family.sample(4, "train", torch.Generator().manual_seed(0)), 500)
    obs = env.reset(torch.Generator().manual_seed(1))
    theta, theta_dot = env.state[..., 0], env.state[..., 1]
    lo, hi = 7 * math.pi / 8, 9 * math.pi / 8
    assert float(theta.min()) >= lo and float(theta.max()) <= hi
    assert float(theta.min()) < lo + 0.01 and float(theta.max()) > hi - 0.01
    assert float(theta_dot.abs().max()) <= 0.2 and float(theta_dot.abs().max()) > 0.19
    assert abs(float(theta.mean()) - math.pi) < 0.01 and abs(float(theta_dot.mean())) < 0.01
    assert float(obs[..., 0].max()) < -0.92  # cos theta <= cos(pi / 8): the pole is down


def test_cadm_pendulum_one_step_by_hand() -> None:
    """cost theta^2 + 0.1 thetadot^2 + 0.001 u^2 (theta wrapped), Gymnasium's update."""
    family = PendulumPhysics(**pendulum.CADM_PARAMS)
    m, length = 0.8, 1.2
    tasks = Tasks({k: torch.tensor([v], dtype=torch.float64) for k, v in
                   {"gravity": 10.0, "mass": m, "length": length, "damping": 0.0}.items()})
    env = family.make_env(tasks, 1)
    env.reset(torch.Generator().manual_seed(0))
    theta, theta_dot, u = 3.0, 0.1, 1.5
    env.state = torch.tensor([[[theta, theta_dot]]], dtype=torch.float64)
    result = env.step(torch.tensor([[[u]]]))
    cost = theta**2 + 0.1 * theta_dot**2 + 0.001 * u**2  # 3.0 is within [-pi, pi)
    assert float(result.reward[0, 0]) == pytest.approx(-cost, rel=1e-6)
    new_dot = theta_dot + (3 * 10.0 / (2 * length) * math.sin(theta)
                           + 3.0 / (m * length**2) * u) * 0.05
    assert float(env.state[0, 0, 1]) == pytest.approx(new_dot, rel=1e-12)
    assert float(env.state[0, 0, 0]) == pytest.approx(theta + new_dot * 0.05, rel=1e-12)
    env.state = torch.tensor([[[3.5, 0.0]]], dtype=torch.float64)  # wraps to 3.5 - 2 pi
    env.clock.reset()
    result = env.step(torch.tensor([[[0.0]]]))
    assert float(result.reward[0, 0]) == pytest.approx(-(3.5 - 2 * math.pi) ** 2, rel=1e-6)


def test_defaults_keep_the_hashed_split() -> None:
    for family in (CartPolePhysics(), PendulumPhysics()):
        assert isinstance(family.splitter, HashSplit)
        tasks = family.sample(50, "test", torch.Generator().manual_seed(0))
        assert family.split_of(tasks) == split_of(tasks) == ["test"] * 50
    env = PendulumPhysics().make_env(
        PendulumPhysics().sample(1, "train", torch.Generator().manual_seed(0)), 2000)
    env.reset(torch.Generator().manual_seed(0))
    assert float(env.state[..., 0].abs().max()) > 3.1  # Gymnasium's U[-pi, pi] start


@pytest.mark.parametrize("change, message", [
    (lambda p: p.pop("test_boxes"), "give both or neither"),
    (lambda p: p["train_grid"].update(mass_cart=[1.0]), "unknown parameter"),
    (lambda p: p["train_grid"].update(force_mag=[]), "train_grid.force_mag"),
    (lambda p: p["train_grid"].update(length=[0.4, 0.4]), "repeats a value"),
    (lambda p: p["train_grid"].update(length=[0.0, 0.4]), "train_grid.length"),
    (lambda p: p["test_boxes"].append({"force_mag": (4.5, 5.5), "length": (0.3, 0.45)}),
     "contains points of train_grid"),
    (lambda p: p["test_boxes"].append({"force_mag": (2.0, 2.5)}), "exactly the parameters"),
    (lambda p: p["test_boxes"].append({"force_mag": (2.5, 2.0), "length": (0.1, 0.2)}),
     "inverted range"),
])
def test_bad_grid_or_boxes_name_the_argument(change: Any, message: str) -> None:
    params = {**cartpole.CADM_PARAMS, "train_grid": dict(cartpole.CADM_PARAMS["train_grid"]),
              "test_boxes": list(cartpole.CADM_PARAMS["test_boxes"])}
    change(params)
    with pytest.raises(ValueError, match=message):
        CartPolePhysics(**params)
    with pytest.raises(ValueError, match="mass"):  # a zero mass would divide
        PendulumPhysics(**{**pendulum.CADM_PARAMS, "test_boxes": [
            {"mass": (0.0, 0.4), "length": (1.6, 1.8)}]})


def _plain(value: Any) -> Any:
    """YAML lists and Python tuples compared alike."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else value


@pytest.mark.parametrize("case", sorted(CASES))
def test_preset_config_validates_and_trains(case: str, tmp_path: Path) -> None:
    name, params, keys, _, boxes = CASES[case]
    tiny = ["iterations=1", "algorithm.meta_batch_size=2", "algorithm.episodes_per_task=2",
            "algorithm.policy.hidden=[8]", "baselines.pretrained_iterations=1",
            "logging.progress=false", "logging.tensorboard=false", "family.params.horizon=20"]
    exp, algo = load_config(Path(f"configs/maml-{case}-cadm.yaml"), tiny)
    assert exp.family.name == name
    assert _plain(exp.family.params) == _plain({**params, "horizon": 20})
    family = build_family(exp)
    tasks, split = evaluation_tasks(family, 40, exp.evaluation.seed, None)
    assert split == "test" and all(_box_of(p, boxes) >= 0 for p in _pairs(tasks, keys))
    result = train(exp, algo, tmp_path / "run")
    assert result is not None and (tmp_path / "run" / "metrics.jsonl").is_file()
