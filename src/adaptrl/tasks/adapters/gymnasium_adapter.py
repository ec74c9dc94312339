"""Any Gymnasium env plus a task sampler becomes an adaptrl task family.

:class:`GymnasiumFamily` turns ``(env, task_sampler, apply_task)`` into a
:class:`~adaptrl.tasks.base.TaskFamily`. Its :meth:`~GymnasiumFamily.make_env` steps
``tasks x episodes`` copies of the env in one ``gymnasium.vector`` env (sync or async)
and presents the :class:`~adaptrl.tasks.base.BatchedEnv` contract:

* tensors ``[tasks, episodes, ...]``: float32 observations (a ``Discrete`` observation
  becomes a one-hot vector), float32 rewards, bool ``terminated`` / ``truncated``;
* **no autoreset**. The vector env runs in gymnasium's ``AutoresetMode.NEXT_STEP``: a
  finished sub-env is reset by gymnasium on the step *after* its end and then runs on
  unobserved. :class:`GymnasiumBatchedEnv` hides this: an ended slot is *frozen* (same
  observation, zero reward, flags kept) until :meth:`~GymnasiumBatchedEnv.reset`. Once
  every slot has ended, ``step`` no longer touches the sub-envs at all. ``truncated`` is
  set at the family's horizon (and passed through when the env's own time limit fires
  first);
* seeding: ``reset(generator)`` draws one integer seed per sub-env from the torch
  generator and passes it to the sub-env's ``reset(seed=...)``, so a seeded generator
  makes the whole rollout reproducible (the env's own ``np_random`` drives the episode).

A *task* reaches its sub-env in one of two ways (``apply_task``):

* ``"reset"`` (default): the env's ``reset(options={"task": params})`` receives it;
* a setter ``apply_task(env, params)`` that changes the env in place (``env`` is the
  sub-env as built; use ``env.unwrapped`` for attributes of the base env). It is called
  before the first reset of a sub-env that was given a new task; the env must keep the
  task across later resets.

``params`` is a dict of one task's parameters: a Python scalar for a scalar parameter,
a numpy array otherwise.

Building sub-envs can cost far more than stepping them (a Meta-World env takes ~150 ms),
so a family keeps its sub-envs in a :class:`SlotPool` and hands them out again on the
next ``make_env``: a :class:`GymnasiumBatchedEnv` owns its sub-envs exclusively while it
lives, and gives them back on :meth:`~GymnasiumBatchedEnv.close` or when it is garbage
collected. Tasks are re-applied and every sub-env is re-seeded on ``reset``, so reuse
never changes a result.
"""

from __future__ import annotations

import functools
import weakref
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv
from gymnasium.vector.utils import batch_space

from adaptrl.tasks.base import Split, StepResult, Tasks, check_split
from adaptrl.tasks.common import check_int
from adaptrl.tasks.splits import sample_split

TaskSampler = Callable[[int, torch.Generator], Tasks]
"""``(n, generator) -> Tasks``: ``n`` tasks drawn from the family's prior."""
SplitTaskSampler = Callable[[int, Split, torch.Generator], Tasks]
"""``(n, split, generator) -> Tasks``: ``n`` tasks of ``split`` (for ``splits="sampler"``)."""
TaskSetter = Callable[[gym.Env, dict[str, Any]], None]
"""``(env, params) -> None``: put one task into one sub-env."""
Vectorization = Literal["sync", "async"]
Vector = SyncVectorEnv | AsyncVectorEnv
SplitMode = Literal["hash", "shared", "sampler"]

VECTORIZATIONS: tuple[str, ...] = ("sync", "async")
SPLIT_MODES: tuple[str, ...] = ("hash", "shared", "sampler")
_SEED_HIGH = 2**31 - 1


# ----------------------------------------------------------------------------- checks

def check_choice(name: str, value: object, allowed: Sequence[object]) -> Any:
    """``value`` if it is one of ``allowed``, else a ValueError naming ``name``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return value


class TaskChecker:
    """Checks that task batches have the parameters and shapes a family expects.

    The expected parameter names and per-task shapes are learned from the first batch
    (the family draws one at construction), so a user's sampler that later returns
    something else is caught with a message that says what was expected.
    """

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.shapes: dict[str, tuple[int, ...]] | None = None

    def __call__(self, tasks: object, n: int | None = None, source: str = "task_sampler"
                 ) -> Tasks:
        """``tasks`` on the CPU if valid (``n`` tasks, known names and shapes)."""
        want_n = f" with leading dimension n={n}" if n is not None else ""
        if not isinstance(tasks, Tasks):
            raise ValueError(f"{self.owner}: {source} must return adaptrl.tasks.Tasks (a dict "
                             f"of parameter tensors{want_n}), got {type(tasks).__name__}")
        bad = sorted(k for k, v in tasks.params.items() if not isinstance(v, torch.Tensor))
        if not tasks.params or bad:
            raise ValueError(f"{self.owner}: {source} must return Tasks whose params map names "
                             f"to torch tensors{want_n}; got params {sorted(tasks.params)} "
                             f"(not tensors: {bad})")
        if any(v.dim() == 0 for v in tasks.params.values()):
            raise ValueError(f"{self.owner}: {source} returned a 0-d parameter tensor; every "
                             f"parameter needs a leading task dimension{want_n}")
        if n is not None and len(tasks) != n:
            raise ValueError(f"{self.owner}: {source} was asked for n={n} tasks and must return "
                             f"Tasks with leading dimension {n}, got {len(tasks)}")
        shapes = {k: tuple(v.shape[1:]) for k, v in sorted(tasks.params.items())}
        if self.shapes is None:
            self.shapes = shapes
        elif shapes != self.shapes:
            raise ValueError(f"{self.owner}: {source} gave task parameters with per-task shapes "
                             f"{shapes}; expected {self.shapes}")
        return tasks.to("cpu")


def task_dicts(tasks: Tasks) -> list[dict[str, Any]]:
    """One plain dict per task: a Python scalar for a scalar parameter, else a numpy array."""
    arrays = {k: v.detach().cpu().numpy() for k, v in tasks.params.items()}
    return [{k: (a[i].item() if a.ndim == 1 else a[i]) for k, a in arrays.items()}
            for i in range(len(tasks))]


def float32_space(space: gym.Space, what: str) -> gym.Space:
    """The space a family reports: a float32 ``Box`` for a ``Box``; a ``Discrete`` as is.

    Other spaces are refused: wrap the env (e.g. ``gymnasium.wrappers.FlattenObservation``).
    """
    if isinstance(space, gym.spaces.Box):
        return gym.spaces.Box(space.low.astype(np.float32), space.high.astype(np.float32),
                              space.shape, np.float32)
    if isinstance(space, gym.spaces.Discrete):
        return space
    raise ValueError(f"{what} must be a gymnasium Box or Discrete space, got {space}; wrap the "
                     "env, e.g. with gymnasium.wrappers.FlattenObservation")


def _shape_of(space: gym.Space) -> tuple[int, ...]:
    if space.shape is None:
        raise ValueError(f"space {space} has no shape")
    return tuple(space.shape)


# -------------------------------------------------------------------------- sub-envs

class TaskSlot(gym.Wrapper):
    """One sub-env and the task it runs; applies the task on every ``reset``.

    ``task`` is set from outside (``VectorEnv.set_attr("task", ...)``, which also works
    across the process boundary of an ``AsyncVectorEnv``).
    """

    def __init__(self, env: gym.Env, apply_task: TaskSetter | Literal["reset"]) -> None:
        super().__init__(env)
        self.task: dict[str, Any] | None = None
        self._applied: dict[str, Any] | None = None
        self._apply_task = apply_task
        # Hot path: the vector env calls the wrapped env's step without an extra frame.
        self.step = env.step  # type: ignore[method-assign]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[Any, dict[str, Any]]:
        if self.task is None:
            raise RuntimeError("TaskSlot.reset before a task was assigned")
        if self._apply_task == "reset":
            options = {**(options or {}), "task": self.task}
        elif self._applied is not self.task:
            self._apply_task(self.env, self.task)
            self._applied = self.task
        return self.env.reset(seed=seed, options=options)


def make_slot(make_base: Callable[[], gym.Env], apply_task: TaskSetter | Literal["reset"],
              key: Hashable = None) -> TaskSlot:
    """Build one sub-env (module level, so that ``AsyncVectorEnv`` workers can pickle it)."""
    return TaskSlot(make_base(), apply_task)


def _same(env: gym.Env) -> gym.Env:
    return env


class SlotPool:
    """Sub-envs kept between ``make_env`` calls, handed out exclusively.

    ``sync``: single sub-envs, kept per *key* (the kind of env a task needs: one key for a
    plain family, one per skill for Meta-World ML10) and gathered into a fresh
    ``SyncVectorEnv`` (cheap) on each :meth:`acquire`. ``async``: whole ``AsyncVectorEnv``s
    (one worker process per sub-env), kept per tuple of keys.
    """

    def __init__(self, build: Callable[[Hashable], gym.Env], vectorization: Vectorization,
                 observation_space: gym.Space) -> None:
        self.build = build
        self.vectorization = check_choice("vectorization", vectorization, VECTORIZATIONS)
        self.observation_space = observation_space  # of one raw sub-env (dtype, shape)
        self._free_envs: dict[Hashable, list[gym.Env]] = defaultdict(list)
        self._free_vecs: dict[tuple[Hashable, ...], list[Vector]] = defaultdict(list)
        self._keys: dict[int, tuple[Hashable, ...]] = {}

    def put(self, env: gym.Env, key: Hashable = None) -> None:
        """Add a built sub-env (sync pools only; an async pool closes it)."""
        if self.vectorization == "sync":
            self._free_envs[key].append(env)
        else:
            env.close()

    def acquire(self, keys: Sequence[Hashable]) -> Vector:
        """A vector env with one sub-env per entry of ``keys`` (built when none is free)."""
        keys = tuple(keys)
        mode = (batch_space(self.observation_space, len(keys)), self.observation_space)
        vec: Vector
        if self.vectorization == "sync":
            envs = [self._free_envs[k].pop() if self._free_envs[k] else self.build(k)
                    for k in keys]
            vec = SyncVectorEnv([functools.partial(_same, e) for e in envs], copy=False,
                                observation_mode=mode, autoreset_mode=AutoresetMode.NEXT_STEP)
        elif self._free_vecs[keys]:
            vec = self._free_vecs[keys].pop()
        else:
            vec = AsyncVectorEnv([functools.partial(self.build, k) for k in keys], copy=False,
                                 observation_mode=mode,  # type: ignore[arg-type]
                                 autoreset_mode=AutoresetMode.NEXT_STEP)
        self._keys[id(vec)] = keys
        return vec

    def release(self, vec: Vector) -> None:
        """Take back what :meth:`acquire` gave (after which the caller must not use it)."""
        keys = self._keys.pop(id(vec))
        if isinstance(vec, SyncVectorEnv):
            for key, env in zip(keys, vec.envs, strict=True):
                self._free_envs[key].append(env)
        else:
            self._free_vecs[keys].append(vec)

    def close(self) -> None:
        """Close every free sub-env (those handed out are closed when given back later)."""
        for envs in self._free_envs.values():
            for env in envs:
                env.close()
        for vecs in self._free_vecs.values():
            for vec in vecs:
                vec.close()
        self._free_envs.clear()
        self._free_vecs.clear()


# ------------------------------------------------------------------------ batched env

class GymnasiumBatchedEnv:
    """A :class:`~adaptrl.tasks.base.BatchedEnv` over a ``gymnasium.vector`` env.

    Sub-env ``i`` runs task ``i // episodes_per_task``. See the module doc for the
    episode-end rules. ``track_info`` names info keys whose maximum over each episode's
    live steps is kept (:meth:`episode_info_max`); ``"success"`` also gives
    :attr:`last_success`.
    """

    def __init__(self, vec: Vector, tasks: Sequence[dict[str, Any]], episodes_per_task: int,
                 horizon: int, device: torch.device | str, observation_space: gym.Space,
                 action_space: gym.Space, track_info: Sequence[str] = (),
                 on_close: Callable[[Vector], None] | None = None) -> None:
        self.num_tasks = len(tasks)
        self.episodes_per_task = episodes_per_task
        self.horizon = horizon
        self.device = torch.device(device)
        self._on_cpu = self.device.type == "cpu"
        self._n = self.num_tasks * episodes_per_task
        if vec.num_envs != self._n:
            raise ValueError(f"vector env has {vec.num_envs} sub-envs; expected tasks x episodes "
                             f"= {self._n}")
        self._vec = vec
        self._shape = (self.num_tasks, episodes_per_task)
        vec.set_attr("task", [tasks[i // episodes_per_task] for i in range(self._n)])
        if isinstance(observation_space, gym.spaces.Discrete):
            self._one_hot: np.ndarray | None = np.eye(int(observation_space.n), dtype=np.float32)
            self._obs_start = int(observation_space.start)
            self._obs_shape: tuple[int, ...] = (int(observation_space.n),)
        else:
            self._one_hot, self._obs_start = None, 0
            self._obs_shape = _shape_of(observation_space)
        if isinstance(action_space, gym.spaces.Discrete):
            self._act_shape: tuple[int, ...] = self._shape
            self._act_flat: tuple[int, ...] = (self._n,)
            self._act_start = int(action_space.start)
            self._act_dtype: np.dtype[Any] = np.dtype(np.int64)
        else:
            self._act_shape = (*self._shape, *_shape_of(action_space))
            self._act_flat = (self._n, *_shape_of(action_space))
            self._act_start = 0
            self._act_dtype = np.dtype(action_space.dtype)
        # Episode bookkeeping in numpy (flat over the n sub-envs): gymnasium hands over
        # numpy flags, and a dozen small torch ops per step would cost more than the
        # adapter's whole budget; tensors are made once, on the way out.
        self._t = 0
        self._terminated = np.zeros(self._n, dtype=bool)
        self._truncated = np.zeros(self._n, dtype=bool)
        self._ended = np.zeros(self._n, dtype=bool)
        self._all_live = False  # no slot has ended (fast path)
        self._started = False  # step() needs a reset() first
        self._frozen = np.zeros((self._n, *self._obs_shape), dtype=np.float32)
        self._info_max = {key: np.full(self._n, -np.inf) for key in track_info}
        self._finalizer = weakref.finalize(self, on_close, vec) if on_close else None

    # -- conversions between gymnasium's numpy and the contract's torch --
    def _observation(self, obs: np.ndarray) -> np.ndarray:
        """Float32 ``[n, *obs]``, always a fresh array (never aliases the vec's buffer)."""
        if self._one_hot is not None:
            return self._one_hot[np.asarray(obs, dtype=np.int64) - self._obs_start]
        return obs.astype(np.float32)

    def _action(self, action: torch.Tensor) -> np.ndarray:
        try:  # one torch call on the hot path: a CPU tensor without grad
            arr = action.numpy()
        except (RuntimeError, TypeError):  # on a GPU, or requires grad
            arr = action.detach().cpu().numpy()
        if arr.shape != self._act_shape:
            raise ValueError(f"action must have shape {self._act_shape} ([tasks, episodes"
                             f"{', *action' if len(self._act_shape) > 2 else ''}]), "
                             f"got {tuple(action.shape)}")
        # a copy: sub-envs may write into their action, the caller's tensor must not change
        out = arr.reshape(self._act_flat).astype(self._act_dtype, copy=True)
        if self._act_start:
            out += self._act_start
        return out

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        """``[n, ...]`` numpy -> ``[tasks, episodes, ...]`` tensor on the env's device."""
        t = torch.from_numpy(x.reshape(self._shape + x.shape[1:]))
        return t if self._on_cpu else t.to(self.device)

    def _result(self, obs: np.ndarray, reward: np.ndarray) -> StepResult:
        return StepResult(self._tensor(obs), self._tensor(reward),
                          self._tensor(self._terminated.copy()),
                          self._tensor(self._truncated.copy()))

    # -- the BatchedEnv contract --
    def reset(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Start new episodes everywhere; sub-env seeds are drawn from ``generator``."""
        if self._finalizer is not None and not self._finalizer.alive:
            raise RuntimeError("this env was closed; build a new one with make_env")
        seeds: list[int | None] | None = None
        if generator is not None:
            seeds = torch.randint(0, _SEED_HIGH, (self._n,), generator=generator,
                                  device=generator.device).tolist()
        obs, _ = self._vec.reset(seed=seeds)
        self._t = 0
        for flags in (self._terminated, self._truncated, self._ended):
            flags.fill(False)
        self._all_live = self._started = True
        for best in self._info_max.values():
            best.fill(-np.inf)
        return self._tensor(self._observation(obs))

    def step(self, action: torch.Tensor) -> StepResult:
        """Step every live episode; ended ones stay frozen (no autoreset)."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if not self._all_live and self._ended.all():
            # every episode has ended: nothing to simulate (and no sub-env is stepped)
            return self._result(self._frozen.copy(), np.zeros(self._n, dtype=np.float32))
        obs_np, reward_np, term_np, trunc_np, info = self._vec.step(self._action(action))
        obs = self._observation(obs_np)
        reward = reward_np.astype(np.float32)
        self._t += 1
        if (self._all_live and self._t < self.horizon and not self._info_max
                and not term_np.any() and not trunc_np.any()):
            # fast path, most steps: nothing has ended and nothing ends now
            return self._result(obs, reward)
        live = ~self._ended
        if self._all_live:
            self._terminated = term_np.astype(bool)  # a copy
            self._truncated = trunc_np & ~term_np
        else:
            ended = self._ended
            obs[ended] = self._frozen[ended]
            reward[ended] = 0.0
            self._terminated = self._terminated | (term_np & live)
            self._truncated = self._truncated | (trunc_np & live & ~self._terminated)
        if self._t >= self.horizon:
            self._truncated |= ~self._terminated
        if self._info_max:
            self._track(info, live)
        ended = self._terminated | self._truncated
        newly = ended & live
        if newly.any():
            self._frozen[newly] = obs[newly]
            self._all_live = False
        self._ended = ended
        return self._result(obs, reward)

    def _track(self, info: dict[str, Any], live: np.ndarray) -> None:
        for key, best in self._info_max.items():
            if key in info:
                seen = np.asarray(info[f"_{key}"], dtype=bool) & live
                values = np.asarray(info[key], dtype=np.float64)
                np.maximum(best, np.where(seen, values, -np.inf), out=best)

    # -- extras --
    def episode_info_max(self, key: str) -> torch.Tensor:
        """``[tasks, episodes]`` float: the largest ``info[key]`` of each episode so far
        (``-inf`` where the env never reported it)."""
        if key not in self._info_max:
            raise ValueError(f"info key {key!r} is not tracked; tracked: {sorted(self._info_max)}")
        return self._tensor(self._info_max[key].astype(np.float32))

    @property
    def last_success(self) -> torch.Tensor | None:
        """``[tasks, episodes]`` float in {0, 1}: did ``info["success"]`` become true during
        the current (or last) episode? ``None`` when the family does not track success."""
        if "success" not in self._info_max:
            return None
        return self._tensor((self._info_max["success"] > 0).astype(np.float32))

    def close(self) -> None:
        """Give the sub-envs back to the family's pool (also done on garbage collection)."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> GymnasiumBatchedEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- family

def _resolve_env(env: str | Callable[[], gym.Env], env_kwargs: dict[str, Any] | None
                 ) -> tuple[Callable[[], gym.Env], str]:
    """A zero-argument env constructor and a readable name for ``env``."""
    if isinstance(env, str):
        try:
            gym.spec(env)
        except gym.error.Error as err:
            raise ValueError(f"unknown Gymnasium env id {env!r} ({err}); see "
                             "gymnasium.pprint_registry() for the registered ids") from None
        return functools.partial(gym.make, env, **(env_kwargs or {})), env
    if callable(env):
        if env_kwargs:
            raise ValueError("env_kwargs is only for a Gymnasium env id; bind arguments into "
                             "the env constructor instead")
        return env, getattr(env, "__name__", type(env).__name__)
    raise ValueError(f"env must be a Gymnasium env id (str) or a callable returning a "
                     f"gymnasium.Env, got {type(env).__name__}")


class GymnasiumFamily:
    """A task family from any Gymnasium env and a task sampler.

    Args:
        env: a registered Gymnasium env id, or a zero-argument callable returning a
            ``gymnasium.Env`` (picklable, or a lambda, when ``vectorization="async"``).
        task_sampler: ``(n, generator) -> Tasks``, ``n`` tasks from the prior, drawn on the
            CPU from ``generator`` only. With ``splits="sampler"`` it is
            ``(n, split, generator) -> Tasks`` instead.
        apply_task: ``"reset"`` (the env reads ``options["task"]`` in ``reset``) or a setter
            ``(env, params) -> None`` (see the module doc).
        horizon: episode length; default: the env's ``max_episode_steps``.
        vectorization: ``"sync"`` (one process; best for fast envs) or ``"async"`` (one
            worker process per sub-env; for slow envs and few of them).
        name: the family's name (default ``"gym:<env>"``).
        splits: how train / test are kept apart.
            ``"hash"`` (default): rejection sampling by a hash of the parameters
            (:func:`~adaptrl.tasks.splits.sample_split`); disjoint by construction, for a
            continuous prior. ``"shared"``: both splits draw from the same prior — only for a
            small finite task set that a benchmark meta-tests on itself (e.g. run forward /
            backward); the splits then overlap, by design. ``"sampler"``: the sampler takes
            the split and keeps them apart itself (e.g. fixed task lists).
        env_kwargs: keyword arguments for ``gymnasium.make`` (env ids only).
        track_info: info keys whose per-episode maximum the env keeps (``"success"`` gives
            ``env.last_success``).
    """

    def __init__(self, env: str | Callable[[], gym.Env],
                 task_sampler: TaskSampler | SplitTaskSampler,
                 apply_task: TaskSetter | Literal["reset"] = "reset", *,
                 horizon: int | None = None, vectorization: Vectorization = "sync",
                 name: str | None = None, splits: SplitMode = "hash",
                 env_kwargs: dict[str, Any] | None = None,
                 track_info: Sequence[str] = ()) -> None:
        make_base, env_name = _resolve_env(env, env_kwargs)
        if not callable(task_sampler):
            raise ValueError(f"task_sampler must be a callable (n, generator) -> Tasks, got "
                             f"{type(task_sampler).__name__}")
        if apply_task != "reset" and not callable(apply_task):
            raise ValueError(f"apply_task must be 'reset' or a callable (env, params) -> None, "
                             f"got {apply_task!r}")
        self.vectorization: Vectorization = check_choice("vectorization", vectorization,
                                                         VECTORIZATIONS)
        self.splits: SplitMode = check_choice("splits", splits, SPLIT_MODES)
        self.name = name if name is not None else f"gym:{env_name}"
        self.track_info = tuple(track_info)
        self._sampler = task_sampler
        self._check = TaskChecker(f"family {self.name!r}")
        self._check(self._call_sampler(2, "train", torch.Generator().manual_seed(0)), 2)

        build = functools.partial(make_slot, make_base, apply_task)
        probe = build(None)
        self.observation_space = float32_space(probe.observation_space, "observation space")
        self.action_space = float32_space(probe.action_space, "action space")
        if horizon is None:
            horizon = probe.spec.max_episode_steps if probe.spec is not None else None
            if horizon is None:
                raise ValueError(f"horizon must be given: env {env_name!r} has no "
                                 "max_episode_steps")
        self.horizon = check_int("horizon", horizon, 1)
        self._pool = SlotPool(build, self.vectorization, probe.observation_space)
        self._pool.put(probe)

    def _call_sampler(self, n: int, split: Split, generator: torch.Generator) -> Tasks:
        if self.splits == "sampler":
            return self._sampler(n, split, generator)  # type: ignore[call-arg, arg-type]
        return self._sampler(n, generator)  # type: ignore[call-arg, arg-type]

    def _draw(self, n: int, generator: torch.Generator) -> Tasks:
        """``n`` tasks from the prior, checked."""
        return self._check(self._call_sampler(n, "train", generator), n)

    def sample(self, n: int, split: Split, generator: torch.Generator) -> Tasks:
        """``n`` tasks of ``split`` (see ``splits`` for how the two are kept apart)."""
        check_int("n", n, 1)
        split = check_split(split)
        if self.splits == "hash":
            return sample_split(self._draw, n, split, generator)
        if self.splits == "shared":
            return self._draw(n, generator)
        return self._check(self._call_sampler(n, split, generator), n)

    def make_env(self, tasks: Tasks, episodes_per_task: int,
                 device: torch.device | str = "cpu") -> GymnasiumBatchedEnv:
        """A batched env: ``len(tasks) x episodes_per_task`` sub-envs of the pool."""
        tasks = self._check(tasks, source="make_env(tasks)")
        check_int("episodes_per_task", episodes_per_task, 1)
        vec = self._pool.acquire([None] * (len(tasks) * episodes_per_task))
        return GymnasiumBatchedEnv(vec, task_dicts(tasks), episodes_per_task, self.horizon,
                                   device, self.observation_space, self.action_space,
                                   self.track_info, on_close=self._pool.release)

    def close(self) -> None:
        """Close the pooled sub-envs; close the family's live envs first."""
        self._pool.close()



def single_env_family(env: str | Callable[[], gym.Env], horizon: int | None = None
                      ) -> GymnasiumFamily:
    """A Gymnasium env with no task parameters as a family of one task (train and test
    share it): how a single-task RL baseline, e.g. CleanRL's DQN on CartPole-v1, runs
    through adaptrl's samplers and agents. ``horizon``: default, the env's time limit.
    As a config's family: ``entry_point:
    adaptrl.tasks.adapters.gymnasium_adapter:single_env_family``, ``params: {env: ...}``."""
    return GymnasiumFamily(env, lambda n, g: Tasks({"none": torch.zeros(n)}),
                           lambda env_, task: None, splits="shared", horizon=horizon)
