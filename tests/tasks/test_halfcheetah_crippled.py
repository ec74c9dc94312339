"""``halfcheetah-crippled`` (tasks/adapters/halfcheetah_crippled.py): a disabled joint's
control has no effect and an intact joint's has; the splits hold out the test joints; the
model-based members equal the env (reward step by step, the oracle's MuJoCo step up to the
observation's float32 rounding); runs are deterministic. The slow test meta-trains GrBAL on
it for two tiny iterations and checks that the MPC oracle beats random actions."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from adaptrl.tasks.base import ModelBasedFamily, Tasks
from adaptrl.tasks.checker import check_task_family

pytestmark = pytest.mark.extra


@pytest.fixture(autouse=True)
def _needs_mujoco() -> None:
    pytest.importorskip("mujoco", exc_type=ImportError,
                        reason="needs the 'mujoco' extra: pip install adaptrl[mujoco]")


def _family(**kwargs: Any) -> Any:
    from adaptrl.tasks.adapters.halfcheetah_crippled import half_cheetah_crippled

    return half_cheetah_crippled(**{"horizon": 40, **kwargs})


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _joints(*joints: int) -> Tasks:
    return Tasks({"joint": torch.tensor(joints, dtype=torch.int64)})


def _play(family: Any, tasks: Tasks, actions: torch.Tensor, seed: int = 0
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Observations ``[T + 1, n, 1, 18]`` and rewards ``[T, n, 1]`` of one episode per task
    from a reset seeded ``seed`` (the same start for the same task index)."""
    env = family.make_env(tasks, 1)
    obs = [env.reset(_gen(seed))]
    rewards = []
    for a in actions:
        res = env.step(a)
        obs.append(res.observation)
        rewards.append(res.reward)
    env.close()
    return torch.stack(obs), torch.stack(rewards)


def test_passes_the_checker_and_is_registered() -> None:
    from adaptrl.tasks import make

    family = make("halfcheetah-crippled", horizon=12)
    assert family.name == "halfcheetah-crippled" and family.horizon == 12
    assert family.observation_space.shape == (18,) and family.action_space.shape == (6,)
    assert isinstance(family, ModelBasedFamily)
    check_task_family(family)


def test_splits_hold_out_the_test_joints() -> None:
    family = _family()
    train = family.sample(300, "train", _gen(0)).params["joint"]
    test = family.sample(50, "test", _gen(1)).params["joint"]
    assert set(train.tolist()) == {1, 2, 3, 4, 5} and set(test.tolist()) == {0}
    assert family.split_of(_joints(0, 3, 5)) == ["test", "train", "train"]
    custom = _family(train_joints=[0, 1, 2], test_joints=[4, 5])
    assert set(custom.sample(200, "test", _gen(2)).params["joint"].tolist()) == {4, 5}
    assert torch.equal(family.sample(20, "train", _gen(5)).params["joint"],
                       family.sample(20, "train", _gen(5)).params["joint"])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"train_joints": [1, 2], "test_joints": [2]}, "share joint"),
    ({"train_joints": [6]}, "train_joints must hold joint indices in \\[0, 6\\)"),
    ({"test_joints": []}, "test_joints must be a non-empty list"),
    ({"train_joints": [1, 1]}, "lists a joint twice"),
    ({"torque_scale": 1.0}, "torque_scale must be a number in \\[0, 1\\)"),
    ({"oracle_threads": 0}, "oracle_threads"),
    ({"horizon": 0}, "horizon"),
])
def test_bad_arguments_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _family(**kwargs)


def test_a_disabled_joint_has_no_effect_and_an_intact_one_has() -> None:
    """Same task, same start; actions that differ only on the crippled joint give the same
    states bit for bit (the rewards differ by the control cost of the command); actions that
    differ on an intact joint give other states."""
    family = _family()
    base = 2 * torch.rand(25, 1, 1, 6, generator=_gen(3)) - 1
    for joint in (0, 2, 5):
        tasks = _joints(joint)
        other = base.clone()
        other[..., joint] = -other[..., joint]
        obs_a, rew_a = _play(family, tasks, base)
        obs_b, rew_b = _play(family, tasks, other)
        assert torch.equal(obs_a, obs_b)
        intact = (joint + 1) % 6
        moved = base.clone()
        moved[..., intact] = -moved[..., intact]
        obs_c, _ = _play(family, tasks, moved)
        assert (obs_c[1:] - obs_a[1:]).abs().amax() > 1e-3
    # the oracle alike, on random states
    obs = obs_a[:10].reshape(1, 10, 18)
    dynamics = family.true_dynamics(_joints(4))
    a = 2 * torch.rand(1, 10, 6, generator=_gen(4)) - 1
    b = a.clone()
    b[..., 4] = 0.9
    assert torch.equal(dynamics(obs, a), dynamics(obs, b))
    b[..., 3] = -a[..., 3]
    assert not torch.allclose(dynamics(obs, a), dynamics(obs, b), atol=1e-3)


def test_a_weakened_joint_scales_its_control() -> None:
    """torque_scale 0.5: task "joint 2" commanded (a2 = 0.8, a3 = 0) drives the same controls
    as task "joint 3" commanded (a2 = 0.4, a3 = 0): the same states bit for bit."""
    family = _family(torque_scale=0.5, train_joints=[1, 2, 3, 4, 5])
    actions = 2 * torch.rand(20, 1, 1, 6, generator=_gen(6)) - 1
    actions[..., 2], actions[..., 3] = 0.8, 0.0
    halved = actions.clone()
    halved[..., 2] = 0.4
    obs_a, _ = _play(family, _joints(2), actions)
    obs_b, _ = _play(family, _joints(3), halved)
    assert torch.equal(obs_a, obs_b)
    obs_c, _ = _play(family, _joints(3), actions)
    assert (obs_c[1:] - obs_a[1:]).abs().amax() > 1e-3


@pytest.mark.parametrize("torque_scale", [0.0, 0.3])
def test_reward_terminal_and_oracle_equal_the_env(torque_scale: float) -> None:
    """Step by step over a random-action episode of 2 tasks x 3 slots: the batched reward
    of (s, a, s') equals the env's; nothing is terminal; the oracle's MuJoCo step from the
    observation equals the env's next observation up to float32 rounding of its start and
    the solver's warm start (bound 1e-3), for any batch size, and exactly the same outputs
    for the same inputs (any number of threads)."""
    family = _family(torque_scale=torque_scale)
    tasks = _joints(0, 3)
    env = family.make_env(tasks, 3)
    gen = _gen(7)
    obs = env.reset(gen)
    model = family.true_dynamics(tasks)
    threaded = _family(torque_scale=torque_scale, oracle_threads=2).true_dynamics(tasks)
    worst = 0.0
    for _ in range(40):
        a = 1.2 * (2 * torch.rand(2, 3, 6, generator=gen) - 1)  # some beyond the ctrlrange
        res = env.step(a)
        assert torch.allclose(family.reward(obs, a, res.observation), res.reward,
                              atol=1e-4, rtol=1e-5)
        assert not family.terminal(res.observation).any()
        nxt = model(obs, a)
        worst = max(worst, float((nxt - res.observation).abs().max()))
        assert torch.equal(model(obs[:, :1], a[:, :1]), nxt[:, :1])
        assert torch.equal(threaded(obs, a), nxt)
        obs = res.observation
    assert worst < 1e-3
    assert obs[..., 9].abs().max() > 0.1  # it did move (root x velocity)


def test_the_oracle_batches_tasks_by_candidates() -> None:
    """[tasks, candidates] in one call equals each task's candidates alone."""
    family = _family()
    start = _play(family, _joints(1, 5), torch.zeros(8, 2, 1, 6))[0][-1]  # [2, 1, 18]
    obs = start.expand(2, 7, 18).contiguous()
    a = 2 * torch.rand(2, 7, 6, generator=_gen(8)) - 1
    both = family.true_dynamics(_joints(1, 5))(obs, a)
    for i, joint in enumerate((1, 5)):
        alone = family.true_dynamics(_joints(joint))(obs[i:i + 1], a[i:i + 1])
        assert torch.equal(alone, both[i:i + 1])
    assert not torch.allclose(both[0], both[1])  # different joints crippled


@pytest.mark.slow
def test_grbal_meta_trains_on_it_and_the_oracle_beats_random_actions() -> None:
    """Two tiny GrBAL iterations (random, then MPC adapting online) run and fill the
    buffer; on the held-out joint the MPC oracle's return beats random actions'."""
    from adaptrl.algorithms.grbal import GrBAL, GrBALConfig
    from adaptrl.evaluation.protocol import adaptation_curves

    torch.set_num_threads(1)
    family = _family(horizon=30)
    tiny = {"meta_batch_size": 2, "past": 4, "future": 4, "outer_steps": 3,
            "batch_windows": 4, "dynamics": {"hidden": [32]},
            "planner": {"name": "random_shooting", "horizon": 5, "candidates": 64}}
    torch.manual_seed(0)
    learner = GrBAL(family, GrBALConfig(**tiny), _gen(0), torch.device("cpu"))
    for i in range(2):
        metrics = learner.meta_update(family.sample(2, "train", _gen(10 + i)))
        assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    assert learner.env_steps == 2 * 2 * 30 and learner.iterations == 2
    tasks = family.sample(2, "test", _gen(20))
    oracle = GrBAL(family, GrBALConfig(**{**tiny, "oracle": True}), _gen(1),
                   torch.device("cpu")).agent()
    planned = adaptation_curves(family, oracle, tasks, 0, 1, 0, torch.device("cpu"))["return"]
    agent = adaptation_curves(family, learner.agent(), tasks, 0, 1, 0,
                              torch.device("cpu"))["return"]
    random = [float(_play(family, tasks[i], 2 * torch.rand(30, 1, 1, 6, generator=_gen(30 + i))
                          - 1)[1].sum()) for i in range(2)]
    assert torch.isfinite(agent).all()
    assert (planned[0] > torch.tensor(random) + 5).all(), (planned, random)
