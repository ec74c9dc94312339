"""The Gymnasium adapter and the MuJoCo / Meta-World families built on it.

Core tests use small envs written here and Gymnasium's classic-control envs (no extra);
MuJoCo and Meta-World tests are marked ``extra`` and skip when the extra is missing.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from adaptrl.tasks.adapters import GymnasiumFamily, register_adapter_families
from adaptrl.tasks.base import BatchedEnv, Tasks
from adaptrl.tasks.checker import check_task_family
from adaptrl.tasks.registry import registered
from adaptrl.tasks.splits import split_of

# ------------------------------------------------------------------ small test envs

class GoalLine(gym.Env):
    """A walk on ``0..4``: actions 0 (left) / 1 (right), reward ``-|state - goal|`` after the
    move, terminated on reaching the goal. The goal arrives as ``reset(options={"task"})``.
    ``steps`` counts every ``step`` call (to see whether frozen slots are stepped)."""

    observation_space = gym.spaces.Discrete(5)
    action_space = gym.spaces.Discrete(2)

    def __init__(self) -> None:
        self.state, self.goal, self.steps = 0, 0, 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[int, dict[str, Any]]:
        super().reset(seed=seed)
        self.goal = int((options or {})["task"]["goal"])
        self.state = 0
        return self.state, {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict[str, Any]]:
        self.steps += 1
        self.state = int(np.clip(self.state + (1 if action == 1 else -1), 0, 4))
        reward = -float(abs(self.state - self.goal))
        return self.state, reward, self.state == self.goal, False, {"success": float(
            self.state == self.goal)}


class NoisyDrift(gym.Env):
    """``x' = x + a + drift + noise`` with a random start; the task sets ``drift`` (setter)."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def __init__(self) -> None:
        self.drift = np.zeros(2)
        self.x = np.zeros(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.x = self.np_random.normal(size=2)
        return self.x.copy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.x = self.x + action + self.drift + 0.1 * self.np_random.normal(size=2)
        return self.x.copy(), -float(np.linalg.norm(self.x)), False, False, {}


def goal_sampler(n: int, generator: torch.Generator) -> Tasks:
    return Tasks({"goal": torch.randint(1, 5, (n,), generator=generator).to(torch.float32)})


def drift_sampler(n: int, generator: torch.Generator) -> Tasks:
    return Tasks({"drift": 0.2 * torch.rand(n, 2, generator=generator) - 0.1})


def set_drift(env: gym.Env, task: dict[str, Any]) -> None:
    env.unwrapped.drift = np.asarray(task["drift"], dtype=np.float64)


def goal_family(horizon: int = 6, **kwargs: Any) -> GymnasiumFamily:
    return GymnasiumFamily(GoalLine, goal_sampler, "reset", horizon=horizon,
                           splits="shared", **kwargs)


def drift_family(horizon: int = 8, **kwargs: Any) -> GymnasiumFamily:
    return GymnasiumFamily(NoisyDrift, drift_sampler, set_drift, horizon=horizon, **kwargs)


def gravity_sampler(n: int, generator: torch.Generator) -> Tasks:
    return Tasks({"g": 5.0 + 10.0 * torch.rand(n, generator=generator)})


def set_gravity(env: gym.Env, task: dict[str, Any]) -> None:
    env.unwrapped.g = task["g"]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def play(env: BatchedEnv, actions: torch.Tensor, seed: int) -> list[torch.Tensor]:
    """Reset with ``seed``, play ``actions``; observations, rewards, flags stacked over time."""
    out = [[env.reset(gen(seed))], [], [], []]
    for a in actions:
        r = env.step(a)
        for store, x in zip(out, r, strict=True):
            store.append(x)
    return [torch.stack(x) for x in out]


# ---------------------------------------------------------------- the contract

def test_contract_shapes_and_dtypes_box_spaces() -> None:
    family = GymnasiumFamily("Pendulum-v1", gravity_sampler, set_gravity, horizon=5)
    assert family.observation_space.dtype == np.float32 and family.observation_space.shape == (3,)
    assert isinstance(family.action_space, gym.spaces.Box) and family.horizon == 5
    env = family.make_env(family.sample(3, "train", gen(0)), 2)
    assert isinstance(env, BatchedEnv)
    assert (env.num_tasks, env.episodes_per_task, env.horizon) == (3, 2, 5)
    obs = env.reset(gen(1))
    assert obs.shape == (3, 2, 3) and obs.dtype == torch.float32
    res = env.step(torch.zeros(3, 2, 1))
    assert res.observation.shape == (3, 2, 3) and res.observation.dtype == torch.float32
    assert res.reward.shape == (3, 2) and res.reward.dtype == torch.float32
    assert res.terminated.dtype == torch.bool and res.truncated.dtype == torch.bool
    with pytest.raises(ValueError, match=r"action must have shape \(3, 2, 1\)"):
        env.step(torch.zeros(3, 1))


def test_discrete_observations_are_one_hot_and_rewards_known() -> None:
    family = goal_family(horizon=6)
    assert isinstance(family.observation_space, gym.spaces.Discrete)
    env = family.make_env(Tasks({"goal": torch.tensor([2.0, 4.0])}), 1)
    obs = env.reset(gen(0))
    assert torch.equal(obs[:, 0], torch.eye(5)[[0, 0]])
    res = env.step(torch.ones(2, 1, dtype=torch.int64))  # both move right to state 1
    assert torch.equal(res.observation[:, 0], torch.eye(5)[[1, 1]])
    assert res.reward[:, 0].tolist() == [-1.0, -3.0]


def test_ended_slots_freeze_and_are_not_stepped() -> None:
    env = goal_family(horizon=6).make_env(Tasks({"goal": torch.tensor([2.0, 4.0])}), 1)
    env.reset(gen(0))
    right = torch.ones(2, 1, dtype=torch.int64)
    flags = []
    for _ in range(3):
        res = env.step(right)
        flags.append((res.terminated[:, 0].tolist(), res.truncated[:, 0].tolist()))
    # goal 2 reached at step 2, then frozen: same observation (state 2), zero reward
    assert flags[1][0] == [True, False] and flags[2][0] == [True, False]
    assert torch.equal(res.observation[0, 0], torch.eye(5)[2])
    assert res.reward[0, 0].item() == 0.0 and res.reward[1, 0].item() == -1.0
    for _ in range(2):  # goal 4 reached at step 4
        res = env.step(right)
    assert res.terminated.all() and not res.truncated.any()
    stepped = [e.unwrapped.steps for e in env._vec.envs]
    frozen = env.step(right)  # everything ended: no sub-env is touched any more
    assert [e.unwrapped.steps for e in env._vec.envs] == stepped
    assert torch.equal(frozen.observation, res.observation)
    assert torch.equal(frozen.reward, torch.zeros(2, 1))
    assert torch.equal(frozen.terminated, res.terminated)


def test_truncation_at_the_horizon_only_for_live_slots() -> None:
    env = goal_family(horizon=3).make_env(Tasks({"goal": torch.tensor([2.0, 4.0])}), 1)
    env.reset(gen(0))
    right = torch.ones(2, 1, dtype=torch.int64)
    truncated = [env.step(right).truncated[:, 0].tolist() for _ in range(4)]
    assert truncated == [[False, False], [False, False], [False, True], [False, True]]


def test_env_time_limit_before_the_horizon_is_passed_through() -> None:
    family = GymnasiumFamily("Pendulum-v1", gravity_sampler, set_gravity, horizon=10,
                             env_kwargs={"max_episode_steps": 4})
    env = family.make_env(family.sample(2, "train", gen(0)), 1)
    _, _, term, trunc = play(env, torch.zeros(6, 2, 1, 1), seed=0)
    assert not trunc[:3].any() and trunc[3:].all() and not term.any()


def test_determinism_under_a_seed_and_across_pooled_envs() -> None:
    family = drift_family()
    tasks = family.sample(3, "train", gen(0))
    actions = torch.rand(8, 3, 2, 2, generator=gen(5)) * 2 - 1
    first = play(family.make_env(tasks, 2), actions, seed=11)
    again = play(family.make_env(tasks, 2), actions, seed=11)  # sub-envs reused from the pool
    other = play(family.make_env(tasks, 2), actions, seed=12)
    for x, y in zip(first, again, strict=True):
        assert torch.equal(x, y)
    assert not torch.equal(first[0], other[0])
    # two episodes of one task start differently (each sub-env gets its own seed)
    assert not torch.equal(first[0][0, :, 0], first[0][0, :, 1])


def test_tasks_reach_their_sub_envs() -> None:
    family = drift_family()
    tasks = family.sample(3, "train", gen(0))
    env = family.make_env(tasks, 2)
    env.reset(gen(0))
    drifts = np.stack([e.unwrapped.drift for e in env._vec.envs]).reshape(3, 2, 2)
    np.testing.assert_allclose(drifts, tasks.params["drift"][:, None].expand(3, 2, 2).numpy(),
                               rtol=1e-6)


def test_closed_env_returns_its_sub_envs_to_the_pool() -> None:
    family = drift_family()
    tasks = family.sample(2, "train", gen(0))
    env = family.make_env(tasks, 2)
    held = {id(e) for e in env._vec.envs}
    other = family.make_env(tasks, 2)  # while env lives, other gets different sub-envs
    assert held.isdisjoint(id(e) for e in other._vec.envs)
    env.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.reset(gen(0))
    assert {id(e) for e in family.make_env(tasks, 2)._vec.envs} == held


def test_async_vectorization_matches_sync() -> None:
    tasks = drift_family().sample(2, "train", gen(0))
    actions = torch.rand(8, 2, 1, 2, generator=gen(5)) * 2 - 1
    sync = play(drift_family().make_env(tasks, 1), actions, seed=3)
    family = drift_family(vectorization="async")
    with family.make_env(tasks, 1) as env:
        run = play(env, actions, seed=3)
    family.close()
    for x, y in zip(sync, run, strict=True):
        assert torch.equal(x, y)


def test_success_tracking_is_the_max_over_the_episode() -> None:
    family = goal_family(horizon=6, track_info=("success",))
    env = family.make_env(Tasks({"goal": torch.tensor([1.0, 3.0])}), 2)
    env.reset(gen(0))
    # episode 0 of each task walks right twice, episode 1 stays left
    act = torch.tensor([[1, 0], [1, 0]])
    env.step(act)
    env.step(act)
    assert env.last_success.tolist() == [[1.0, 0.0], [0.0, 0.0]]  # goal 1 reached, then frozen
    env.step(act)
    assert env.last_success.tolist() == [[1.0, 0.0], [1.0, 0.0]]
    assert env.episode_info_max("success").tolist() == [[1.0, 0.0], [1.0, 0.0]]
    env.reset(gen(0))
    assert env.last_success.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert goal_family().make_env(Tasks({"goal": torch.tensor([1.0])}), 1).last_success is None


# ------------------------------------------------------------------------- splits

def test_hash_splits_are_disjoint_and_follow_split_of() -> None:
    family = drift_family()
    train = family.sample(200, "train", gen(0))
    test = family.sample(200, "test", gen(1))
    a, b = train.params["drift"], test.params["drift"]
    assert not (a[:, None] == b[None]).all(-1).any()
    assert split_of(train) == ["train"] * 200 and split_of(test) == ["test"] * 200


def test_shared_splits_draw_both_from_the_prior() -> None:
    family = goal_family()
    assert torch.equal(family.sample(50, "train", gen(3)).params["goal"],
                       family.sample(50, "test", gen(3)).params["goal"])


def test_sampler_splits_receive_the_split() -> None:
    def by_split(n: int, split: str, generator: torch.Generator) -> Tasks:
        return Tasks({"goal": torch.full((n,), 1.0 if split == "train" else 4.0)})

    family = GymnasiumFamily(GoalLine, by_split, "reset", horizon=4, splits="sampler")
    assert family.sample(3, "train", gen(0)).params["goal"].tolist() == [1.0] * 3
    assert family.sample(3, "test", gen(0)).params["goal"].tolist() == [4.0] * 3
    with pytest.raises(ValueError, match="split must be one of"):
        family.sample(3, "valid", gen(0))  # type: ignore[arg-type]


# -------------------------------------------------------------------- validation

def test_unknown_env_id_is_named() -> None:
    with pytest.raises(ValueError, match="unknown Gymnasium env id 'NoSuchEnv-v0'"):
        GymnasiumFamily("NoSuchEnv-v0", gravity_sampler)


@pytest.mark.parametrize("sampler, message", [
    (lambda n, g: {"g": torch.rand(n)}, r"must return adaptrl.tasks.Tasks .*n=2.*got dict"),
    (lambda n, g: Tasks({"g": torch.rand(n + 1)}), r"asked for n=2 tasks .* got 3"),
    (lambda n, g: Tasks({"g": np.ones(n)}), r"to torch tensors"),
    (lambda n, g: Tasks({}), r"to torch tensors"),
])
def test_bad_user_samplers_are_refused_at_construction(sampler: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GymnasiumFamily("Pendulum-v1", sampler, set_gravity)


def test_sampler_changing_shapes_later_is_refused() -> None:
    calls = []

    def fickle(n: int, generator: torch.Generator) -> Tasks:
        calls.append(n)
        return Tasks({"g": torch.rand(n, len(calls), generator=generator)})

    family = GymnasiumFamily("Pendulum-v1", fickle, set_gravity, splits="shared")
    expected = r"per-task shapes \{'g': \(2,\)\}; expected \{'g': \(1,\)\}"
    with pytest.raises(ValueError, match=expected):
        family.sample(4, "train", gen(0))


def test_make_env_refuses_foreign_tasks() -> None:
    family = drift_family()
    with pytest.raises(ValueError, match=r"expected \{'drift': \(2,\)\}"):
        family.make_env(Tasks({"goal": torch.zeros(2)}), 1)
    with pytest.raises(ValueError, match="episodes_per_task must be an integer >= 1"):
        family.make_env(family.sample(2, "train", gen(0)), 0)


@pytest.mark.parametrize("kwargs, message", [
    ({"vectorization": "threads"}, r"vectorization must be one of \('sync', 'async'\)"),
    ({"splits": "random"}, r"splits must be one of \('hash', 'shared', 'sampler'\)"),
    ({"apply_task": 3}, r"apply_task must be 'reset' or a callable"),
    ({"horizon": 0}, r"horizon must be an integer >= 1"),
    ({"env": 42}, r"env must be a Gymnasium env id"),
    ({"env": NoisyDrift, "env_kwargs": {"a": 1}}, r"env_kwargs is only for a Gymnasium env id"),
    ({"env": NoisyDrift, "horizon": None}, r"horizon must be given"),
    ({"task_sampler": 5}, r"task_sampler must be a callable"),
    ({"env": lambda: gym.make("Blackjack-v1")}, r"observation space must be a gymnasium Box"),
])
def test_bad_arguments_are_named(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"env": "Pendulum-v1", "task_sampler": gravity_sampler,
                            "apply_task": set_gravity, "horizon": 5}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        GymnasiumFamily(**args)


# -------------------------------------------------------------- checker, registry

@pytest.mark.parametrize("make", [
    lambda: GymnasiumFamily("Pendulum-v1", gravity_sampler, set_gravity, horizon=12),
    lambda: GymnasiumFamily("CartPole-v1", gravity_sampler,
                            lambda env, t: setattr(env.unwrapped, "gravity", t["g"]), horizon=30),
    lambda: drift_family(),
])
def test_adapter_families_pass_the_checker(make: Any) -> None:
    check_task_family(make())


def test_registration_is_lazy_and_names_extras() -> None:
    code = ("import sys; from adaptrl.tasks.adapters import register_adapter_families as r; "
            "r(); r(); from adaptrl.tasks.registry import registered; "
            "print(sorted((k, v.extra) for k, v in registered().items() if v.extra)); "
            "print('mujoco' in sys.modules, 'metaworld' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0] == str(sorted([
        ("ant-dir", "mujoco"), ("ant-vel", "mujoco"), ("halfcheetah-crippled", "mujoco"),
        ("halfcheetah-dir", "mujoco"), ("halfcheetah-vel", "mujoco"),
        ("metaworld-ml1", "metaworld"), ("metaworld-ml10", "metaworld")]))
    assert out[1] == "False False"
    register_adapter_families()  # idempotent in this process too
    assert "halfcheetah-vel" in registered()


# ------------------------------------------------------------------------ MuJoCo

@pytest.mark.extra
class TestMujocoLocomotion:
    @pytest.fixture(autouse=True)
    def _needs_mujoco(self) -> None:
        pytest.importorskip("mujoco", exc_type=ImportError,
                            reason="needs the 'mujoco' extra: pip install adaptrl[mujoco]")

    @staticmethod
    def _wrapper_step(env_id: str, kind: str, goal: float, action: np.ndarray
                      ) -> tuple[float, dict[str, Any], float]:
        from adaptrl.tasks.adapters.mujoco_locomotion import ANT, HALF_CHEETAH, make_locomotion_env

        robot = {"HalfCheetah-v5": HALF_CHEETAH, "Ant-v5": ANT}[env_id]
        env = make_locomotion_env(robot, kind, 200)  # type: ignore[arg-type]
        env.reset(seed=0, options={"task": {kind: goal}})
        x0 = env.unwrapped.data.qpos[0]
        _, reward, _, _, info = env.step(action)
        return float(reward), info, float((env.unwrapped.data.qpos[0] - x0) / env.unwrapped.dt)

    def test_half_cheetah_rewards_known_answer(self) -> None:
        a = np.linspace(-0.9, 0.9, 6).astype(np.float32)
        reward, info, v = self._wrapper_step("HalfCheetah-v5", "velocity", 1.5, a)
        ctrl = 0.05 * float(np.sum(a.astype(np.float64) ** 2))
        assert reward == pytest.approx(-abs(v - 1.5) - ctrl, rel=1e-6)
        assert ctrl == pytest.approx(-info["reward_ctrl"] / 2, rel=1e-6)  # gymnasium: 0.1 |a|^2
        fwd, _, _ = self._wrapper_step("HalfCheetah-v5", "direction", 1.0, a)
        bwd, _, _ = self._wrapper_step("HalfCheetah-v5", "direction", -1.0, a)
        assert fwd == pytest.approx(v - ctrl, rel=1e-6) and fwd + bwd == pytest.approx(-2 * ctrl)

    def test_ant_rewards_known_answer(self) -> None:
        a = np.linspace(-0.8, 0.8, 8).astype(np.float32)
        reward, info, _ = self._wrapper_step("Ant-v5", "velocity", 2.0, a)
        v = info["x_velocity"]
        ctrl = 0.005 * float(np.sum(a.astype(np.float64) ** 2))
        expected = -abs(v - 2.0) + 1.0 - ctrl + info["reward_contact"] + 0.05
        assert reward == pytest.approx(expected, rel=1e-6)
        assert ctrl == pytest.approx(-info["reward_ctrl"] / 100, rel=1e-6)  # gymnasium: 0.5 |a|^2
        fwd, info, _ = self._wrapper_step("Ant-v5", "direction", -1.0, a)
        assert fwd == pytest.approx(-info["x_velocity"] - ctrl + info["reward_contact"] + 0.05)

    @pytest.mark.parametrize("name", ["halfcheetah-vel", "ant-vel"])
    def test_velocity_families_pass_the_checker(self, name: str) -> None:
        from adaptrl.tasks.adapters import ant_vel, half_cheetah_vel

        family = {"halfcheetah-vel": half_cheetah_vel, "ant-vel": ant_vel}[name](horizon=15)
        assert family.name == name and family.horizon == 15
        check_task_family(family)
        low, high = (0.0, 2.0) if name == "halfcheetah-vel" else (0.0, 3.0)
        v = family.sample(500, "test", gen(0)).params["velocity"]
        assert low <= v.min() and v.max() <= high and v.max() - v.min() > 0.9 * (high - low)

    def test_direction_families_share_both_directions_across_splits(self) -> None:
        from adaptrl.tasks.adapters import ant_dir, half_cheetah_dir

        for family in (half_cheetah_dir(horizon=10), ant_dir(horizon=10)):
            assert family.horizon == 10 and family.splits == "shared"
            for split in ("train", "test"):
                d = family.sample(40, split, gen(1)).params["direction"]
                assert set(d.tolist()) == {-1.0, 1.0}
            env = family.make_env(Tasks({"direction": torch.tensor([1.0, -1.0])}), 2)
            obs = env.reset(gen(0))
            res = env.step(torch.zeros(2, 2, *family.action_space.shape))
            assert obs.shape[:2] == (2, 2) and res.reward.shape == (2, 2)

    def test_default_horizon_is_the_papers(self) -> None:
        from adaptrl.tasks.adapters import half_cheetah_vel

        assert half_cheetah_vel().horizon == 200
        with pytest.raises(ValueError, match="velocity_range"):
            half_cheetah_vel(velocity_range=(1.0, 1.0))


# --------------------------------------------------------------------- Meta-World

@pytest.fixture(scope="module")
def ml1() -> Any:
    pytest.importorskip("metaworld", exc_type=ImportError,
                        reason="needs the 'metaworld' extra: pip install adaptrl[metaworld]")
    from adaptrl.tasks.adapters import metaworld_ml1

    return metaworld_ml1("reach-v3", horizon=100)


@pytest.mark.extra
class TestMetaWorld:
    def test_ml1_splits_are_the_fixed_lists(self, ml1: Any) -> None:
        assert ml1.num_train == 50 and len(ml1.tasks) == 100
        train = ml1.sample(300, "train", gen(0)).params["task_id"]
        test = ml1.sample(300, "test", gen(0)).params["task_id"]
        assert train.dtype == torch.int64 and 0 <= train.min() and train.max() < 50
        assert 50 <= test.min() and test.max() < 100
        assert len(set(train.tolist())) > 40  # drawn with replacement over the whole list
        assert ml1.split_of(Tasks({"task_id": torch.tensor([0, 49, 50, 99])})) == [
            "train", "train", "test", "test"]
        assert set(ml1.skill_of(Tasks({"task_id": test}))) == {"reach-v3"}

    @pytest.mark.filterwarnings("ignore:Constant\\(s\\) may be too high")
    def test_ml1_expert_succeeds_and_idle_arm_does_not(self, ml1: Any) -> None:
        from metaworld.policies import SawyerReachV3Policy

        policy = SawyerReachV3Policy()
        env = ml1.make_env(ml1.sample(2, "test", gen(0)), 2)
        obs = env.reset(gen(0))
        goals = np.stack([e.unwrapped._target_pos for e in env._vec.envs])
        for _ in range(100):
            full = obs.reshape(4, 39).numpy().astype(np.float64)
            full[:, 36:39] = goals  # the scripted expert needs the (hidden) goal
            act = np.stack([policy.get_action(o) for o in full])
            obs = env.step(torch.as_tensor(act, dtype=torch.float32).reshape(2, 2, 4)).observation
        assert env.last_success.tolist() == [[1.0, 1.0], [1.0, 1.0]]
        env.reset(gen(0))
        for _ in range(20):
            env.step(torch.zeros(2, 2, 4))
        assert env.last_success.tolist() == [[0.0, 0.0], [0.0, 0.0]]

    def test_ml1_passes_the_checker(self, ml1: Any) -> None:
        from adaptrl.tasks.adapters import metaworld_ml1

        check_task_family(metaworld_ml1("reach-v3", horizon=8))

    def test_bad_arguments_are_named(self, ml1: Any) -> None:
        from adaptrl.tasks.adapters import metaworld_ml1

        with pytest.raises(ValueError, match="skill must be one of"):
            metaworld_ml1("juggle-v3")
        with pytest.raises(ValueError, match=r"horizon must be <= 500"):
            metaworld_ml1(horizon=501)
        with pytest.raises(ValueError, match=r"task_id must lie in \[0, 100\)"):
            ml1.make_env(Tasks({"task_id": torch.tensor([100])}), 1)

    def test_ml10_mixes_skills_in_one_env(self) -> None:
        pytest.importorskip("metaworld", exc_type=ImportError,
                            reason="needs the 'metaworld' extra: pip install adaptrl[metaworld]")
        from adaptrl.tasks.adapters import metaworld_ml10

        family = metaworld_ml10(horizon=5)
        assert len(family.train_skills) == 10 and len(family.test_skills) == 5
        assert set(family.train_skills).isdisjoint(family.test_skills)
        train = family.sample(6, "train", gen(0))
        test = family.sample(3, "test", gen(0))
        assert set(family.skill_of(train)) <= set(family.train_skills)
        assert set(family.skill_of(test)) <= set(family.test_skills)
        env = family.make_env(test, 1)
        _, rewards, _, truncated = play(env, torch.zeros(6, 3, 1, 4), seed=0)
        assert rewards.shape == (6, 3, 1) and truncated[4:].all() and not truncated[:4].any()
        assert env.last_success.shape == (3, 1)
