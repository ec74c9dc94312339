"""``halfcheetah-crippled``: HalfCheetah with one disabled joint, GrBAL's simulated task
(Nagabandi, Clavera et al., "Learning to Adapt in Dynamic, Real-World Environments through
Meta-Reinforcement Learning", ICLR 2019, §6; reference code ``iclavera/learning_to_adapt``,
``envs/half_cheetah_env.py``), on Gymnasium's ``HalfCheetah-v5``.

A task is the index ``joint`` of one of the six actuators (``bthigh, bshin, bfoot, fthigh,
fshin, ffoot``); its control is multiplied by ``torque_scale`` before MuJoCo sees it (0, the
default: the joint is disabled, as in the reference code's ``cripple_mask``; a value in
``(0, 1)`` weakens it instead). The other five act as usual.

Splits. The reference code draws the crippled joint uniformly from ``[1, action_dim)`` (so
``bthigh``, joint 0, is never crippled in training) and the paper tests on "a joint unseen
during training"; the default splits follow that reading: train joints ``(1, 2, 3, 4, 5)``,
test joint ``(0,)``. ``train_joints`` / ``test_joints`` set others (disjoint, both
non-empty); a task is drawn uniformly from its split's joints.

Observation: Gymnasium's ``qpos`` and ``qvel`` with the x position of the root kept
(``exclude_current_positions_from_observation=False``; 18-d), so that the reward is a function
of the transition (``ModelBasedFamily``)::

    reward(s, a, s') = (s'[0] - s[0]) / dt - 0.05 |a|^2,        dt = 0.05 s

the forward velocity of the root over the control step (Gymnasium's ``x_velocity``) minus the
reference code's control cost ``0.5 * 1e-1 |a|^2`` — the reward of ``halfcheetah-dir``'s
forward task (:class:`~adaptrl.tasks.adapters.mujoco_locomotion.LocomotionTaskReward`). The
cost is charged on the action as commanded, the disabled joint's included: that keeps the
reward independent of the task, as the planner must see it (the reference code's planner
charges the commanded action too, its env the masked one). The cheetah never terminates;
episodes are truncated at ``horizon``.

The MPC oracle (``true_dynamics``) sets MuJoCo's state to the observed ``(qpos, qvel)`` and
steps it ``frame_skip`` (5) times with the task's masked control, batched over tasks x
candidates in one :func:`mujoco.rollout.rollout` call (``oracle_threads`` MjData, one per
thread). It equals the env's step up to the float32 rounding of the observation it starts
from and MuJoCo's solver warm start, which an observation does not carry
(tests/tasks/test_halfcheetah_crippled.py bounds the difference).

Needs the extra ``adaptrl[mujoco]``; nothing imports MuJoCo until a family is built.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from adaptrl.tasks.adapters.gymnasium_adapter import (
    GymnasiumBatchedEnv,
    GymnasiumFamily,
    Vectorization,
)
from adaptrl.tasks.adapters.mujoco_locomotion import (
    HALF_CHEETAH,
    LocomotionTaskReward,
    require_mujoco,
)
from adaptrl.tasks.base import Split, Tasks, check_split
from adaptrl.tasks.common import check_int

JOINTS: tuple[str, ...] = ("bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot")
"""HalfCheetah's actuators, in action order (a task's ``joint`` indexes this)."""
TRAIN_JOINTS: tuple[int, ...] = (1, 2, 3, 4, 5)
TEST_JOINTS: tuple[int, ...] = (0,)
CTRL_COST = HALF_CHEETAH.ctrl_cost_weight  # 0.05 = 0.5 * 1e-1, the reference code's


class CrippledActuator(gym.ActionWrapper):
    """Multiplies actuator ``joint``'s control by ``torque_scale`` (no joint: unchanged)."""

    def __init__(self, env: gym.Env, torque_scale: float) -> None:
        super().__init__(env)
        self.torque_scale = torque_scale
        self.mask = np.ones(len(JOINTS), dtype=np.float64)
        self.joint: int | None = None

    def cripple(self, joint: int | None) -> None:
        self.joint = joint
        self.mask = np.ones_like(self.mask)
        if joint is not None:
            self.mask[joint] = self.torque_scale

    def action(self, action: np.ndarray) -> np.ndarray:
        return np.asarray(action, dtype=np.float64) * self.mask  # a new array


def make_crippled_env(horizon: int, torque_scale: float) -> gym.Env:
    """One ``HalfCheetah-v5`` with the root's x in its observation, a crippled actuator and
    the forward reward (module level: picklable for async vectorization)."""
    base = gym.make("HalfCheetah-v5", max_episode_steps=horizon,
                    exclude_current_positions_from_observation=False)
    return LocomotionTaskReward(CrippledActuator(base, torque_scale), HALF_CHEETAH, "direction")


def set_crippled_joint(env: gym.Env, params: dict[str, Any]) -> None:
    """The task setter: cripple ``params["joint"]`` in ``env``'s :class:`CrippledActuator`."""
    inner: Any = env
    while not isinstance(inner, CrippledActuator):
        if not isinstance(inner, gym.Wrapper):
            raise RuntimeError("the env has no CrippledActuator wrapper")
        inner = inner.env
    inner.cripple(int(params["joint"]))


def _joint_sampler(train: tuple[int, ...], test: tuple[int, ...], n: int, split: Split,
                   generator: torch.Generator) -> Tasks:
    joints = torch.tensor(train if check_split(split) == "train" else test, dtype=torch.int64)
    return Tasks({"joint": joints[torch.randint(len(joints), (n,), generator=generator)]})


def _check_joints(name: str, joints: Sequence[int]) -> tuple[int, ...]:
    if isinstance(joints, (str, bytes)) or not isinstance(joints, Sequence) or not joints:
        raise ValueError(f"{name} must be a non-empty list of joint indices in "
                         f"[0, {len(JOINTS)}) ({', '.join(JOINTS)}), got {joints!r}")
    for j in joints:
        if isinstance(j, bool) or not isinstance(j, int) or not 0 <= j < len(JOINTS):
            raise ValueError(f"{name} must hold joint indices in [0, {len(JOINTS)}) "
                             f"({', '.join(JOINTS)}), got {j!r} in {list(joints)!r}")
    if len(set(joints)) != len(joints):
        raise ValueError(f"{name} lists a joint twice: {list(joints)!r}")
    return tuple(joints)


class CrippledHalfCheetah:
    """Task family ``halfcheetah-crippled`` (module docstring): a
    :class:`~adaptrl.tasks.adapters.GymnasiumFamily` of crippled cheetahs, plus the
    model-based members (:class:`~adaptrl.tasks.base.ModelBasedFamily`) and ``split_of``."""

    name = "halfcheetah-crippled"

    def __init__(self, horizon: int = 1000, train_joints: Sequence[int] = TRAIN_JOINTS,
                 test_joints: Sequence[int] = TEST_JOINTS, torque_scale: float = 0.0,
                 vectorization: Vectorization = "sync", oracle_threads: int = 1) -> None:
        require_mujoco()
        train = _check_joints("train_joints", train_joints)
        test = _check_joints("test_joints", test_joints)
        if set(train) & set(test):
            raise ValueError(f"train_joints {list(train)} and test_joints {list(test)} share "
                             f"joint(s) {sorted(set(train) & set(test))}; the splits must be "
                             "disjoint")
        if isinstance(torque_scale, bool) or not isinstance(torque_scale, (int, float)) \
                or not 0.0 <= torque_scale < 1.0:
            raise ValueError(f"torque_scale must be a number in [0, 1) (0: the joint is "
                             f"disabled), got {torque_scale!r}")
        self.train_joints, self.test_joints = train, test
        self.torque_scale = float(torque_scale)
        self.oracle_threads = check_int("oracle_threads", oracle_threads, 1)
        self.family = GymnasiumFamily(
            functools.partial(make_crippled_env, check_int("horizon", horizon, 1),
                              self.torque_scale),
            functools.partial(_joint_sampler, train, test), set_crippled_joint,
            horizon=horizon, vectorization=vectorization, name=self.name, splits="sampler")
        self.observation_space = self.family.observation_space
        self.action_space = self.family.action_space
        self.horizon = self.family.horizon
        self._physics: tuple[Any, list[Any], float, int] | None = None

    # -- the task family --
    def sample(self, n: int, split: Split, generator: torch.Generator) -> Tasks:
        return self.family.sample(n, split, generator)

    def split_of(self, tasks: Tasks) -> list[Split]:
        """``test`` for a test joint, else ``train``."""
        return ["test" if j in self.test_joints else "train"
                for j in tasks.params["joint"].tolist()]

    def make_env(self, tasks: Tasks, episodes_per_task: int,
                 device: torch.device | str = "cpu") -> GymnasiumBatchedEnv:
        return self.family.make_env(tasks, episodes_per_task, device)

    def close(self) -> None:
        self.family.close()

    # -- model-based members (adaptrl.tasks.base.ModelBasedFamily) --
    @property
    def dt(self) -> float:
        """Seconds per control step (MuJoCo's timestep x frame_skip: 0.01 x 5)."""
        return self._mujoco()[2]

    def reward(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
               ) -> torch.Tensor:
        """``(s'[0] - s[0]) / dt - 0.05 |a|^2`` (module docstring), batched over leading
        dims; the action as commanded, not clipped (as the env charges it)."""
        forward = (next_obs[..., 0] - obs[..., 0]) / self.dt
        return forward - CTRL_COST * action.square().sum(-1)

    def terminal(self, next_obs: torch.Tensor) -> torch.Tensor:
        """No terminal states."""
        return torch.zeros(next_obs.shape[:-1], dtype=torch.bool, device=next_obs.device)

    def true_dynamics(self, tasks: Tasks, device: torch.device | str = "cpu"
                      ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """MuJoCo as a dynamics function ``(obs [n, batch, 18], action [n, batch, 6]) ->
        next_obs`` for the ``n`` tasks (module docstring: what it equals)."""
        from mujoco import rollout

        model, datas, _, frame_skip = self._mujoco()
        mask = np.ones((len(tasks), len(JOINTS)))
        mask[np.arange(len(tasks)), tasks.params["joint"].cpu().numpy()] = self.torque_scale
        nq = model.nq

        def step(obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
            n, batch = obs.shape[:2]
            flat = obs.detach().reshape(n * batch, -1).cpu().double().numpy()
            state = np.zeros((n * batch, 1 + flat.shape[1]))  # time, qpos, qvel
            state[:, 1:] = flat
            ctrl = action.detach().cpu().double().numpy() * mask[:, None, :]
            out, _ = rollout.rollout(model, datas if len(datas) > 1 else datas[0], state,
                                     ctrl.reshape(n * batch, 1, -1), nstep=frame_skip)
            nxt = out[:, -1, 1:1 + 2 * nq].astype(np.float32)
            return torch.from_numpy(nxt).reshape(obs.shape).to(obs.device)
        return step

    def _mujoco(self) -> tuple[Any, list[Any], float, int]:
        """MuJoCo's model of the env, ``oracle_threads`` MjData, dt and frame skip (built
        once, from a fresh env)."""
        if self._physics is None:
            import mujoco

            env = make_crippled_env(1, 0.0).unwrapped
            model = env.model  # type: ignore[attr-defined]
            size = mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_FULLPHYSICS)
            if size != 1 + 2 * model.nq or model.nq != model.nv:
                raise RuntimeError(f"HalfCheetah's MuJoCo state is not (time, qpos, qvel): "
                                   f"size {size}, nq {model.nq}, nv {model.nv}")
            datas = [mujoco.MjData(model) for _ in range(self.oracle_threads)]
            self._physics = (model, datas, float(env.dt),  # type: ignore[attr-defined]
                             int(env.frame_skip))  # type: ignore[attr-defined]
        return self._physics


def half_cheetah_crippled(horizon: int = 1000, train_joints: Sequence[int] = TRAIN_JOINTS,
                          test_joints: Sequence[int] = TEST_JOINTS, torque_scale: float = 0.0,
                          vectorization: Vectorization = "sync", oracle_threads: int = 1
                          ) -> CrippledHalfCheetah:
    """``halfcheetah-crippled``: run forward with one joint disabled (GrBAL, ICLR 2019)."""
    return CrippledHalfCheetah(horizon, train_joints, test_joints, torque_scale, vectorization,
                               oracle_threads)
