"""Meta-World ML1 and ML10 as adaptrl task families (extra ``adaptrl[metaworld]``).

Meta-World (Yu et al. 2019; Farama's v3 envs) defines each benchmark by *fixed* task
lists, built by its benchmark classes from a seed:

* ``metaworld-ml1``: one skill (``skill=``, e.g. ``"reach-v3"``), 50 train and 50 test
  goal positions;
* ``metaworld-ml10``: 10 training skills and 5 held-out test skills, 50 goal positions
  each (500 train tasks, 250 test tasks).

A task here is an index into those lists: parameter ``task_id`` (int64), with the train
tasks first (``0 .. n_train - 1``) and the test tasks after them, so the splits are
disjoint by construction. ``sample(n, split, generator)`` draws ``n`` of the split's tasks
uniformly *with replacement*. The benchmark's ``seed`` (default 0) fixes the lists; the
same seed gives the same tasks in every process.

Observations are 39-d with the goal hidden (Meta-World's ML setting); episodes last 500
steps (Meta-World's ``max_path_length``, the default horizon) and never terminate on
success. Besides the reward, Meta-World reports ``info["success"]``: every env of these
families exposes ``env.last_success``, a ``[tasks, episodes]`` float tensor in {0, 1} that
is 1 where the episode succeeded at any step (the max over the episode), so evaluation
can report the success rate (Meta-World's own score) beside the return.

Building a Meta-World env takes ~150 ms, so the sub-envs are pooled per skill and reused
across ``make_env`` calls (see :class:`~adaptrl.tasks.adapters.gymnasium_adapter.SlotPool`).
Version pinned by the extra: ``metaworld==3.1.1`` (which pins ``mujoco==3.3.0``; 3.0.0 does
not run on mujoco 4).
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any, Literal, cast

import gymnasium as gym
import numpy as np
import torch

from adaptrl.tasks.adapters.gymnasium_adapter import (
    GymnasiumBatchedEnv,
    SlotPool,
    TaskChecker,
    TaskSlot,
    Vectorization,
    check_choice,
    float32_space,
    task_dicts,
)
from adaptrl.tasks.base import Split, Tasks, check_split
from adaptrl.tasks.common import check_int

Benchmark = Literal["ML1", "ML10"]
BENCHMARKS: tuple[str, ...] = ("ML1", "ML10")
OBSERVATION_DIM = 39


def require_metaworld() -> None:
    """Raise a clear ImportError when the Meta-World extra is missing."""
    if importlib.util.find_spec("metaworld") is None:
        raise ImportError("the Meta-World families need the extra: "
                          "pip install 'adaptrl[metaworld]'")


@functools.lru_cache(maxsize=8)
def load_benchmark(benchmark: Benchmark, skill: str | None, seed: int) -> Any:
    """Meta-World's benchmark object (cached: building ML10 takes seconds)."""
    import metaworld

    if benchmark == "ML1":
        if skill not in metaworld.ML1.ENV_NAMES:
            raise ValueError(f"skill must be one of {sorted(metaworld.ML1.ENV_NAMES)}, "
                             f"got {skill!r}")
        return metaworld.ML1(skill, seed=seed)
    return metaworld.ML10(seed=seed)


class SeededReset(gym.Wrapper):
    """Meta-World ignores ``reset(seed=...)``; this seeds it through ``env.seed`` first."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            cast(Any, self.env.unwrapped).seed(seed)
        return self.env.reset(seed=seed, options=options)


def set_metaworld_task(tasks: list[Any], env: gym.Env, params: dict[str, Any]) -> None:
    """The task setter: Meta-World's ``set_task`` with the ``task_id``-th task."""
    cast(Any, env.unwrapped).set_task(tasks[int(params["task_id"])])


def build_slot(classes: dict[str, type], tasks: list[Any], skill: str) -> TaskSlot:
    """One pooled sub-env of ``skill`` (module level: picklable for async workers)."""
    return TaskSlot(SeededReset(classes[skill]()), functools.partial(set_metaworld_task, tasks))


class MetaWorldFamily:
    """Meta-World ``ML1`` (one ``skill``) or ``ML10`` as a task family (see the module doc)."""

    def __init__(self, benchmark: Benchmark = "ML1", skill: str | None = "reach-v3",
                 seed: int = 0, horizon: int = 500, vectorization: Vectorization = "sync"
                 ) -> None:
        require_metaworld()
        check_choice("benchmark", benchmark, BENCHMARKS)
        if benchmark == "ML10":
            skill = None
        self.benchmark = benchmark
        self.skill = skill
        self.name = f"metaworld-{benchmark.lower()}"
        bench = load_benchmark(benchmark, skill, check_int("seed", seed, 0))
        self.tasks: list[Any] = list(bench.train_tasks) + list(bench.test_tasks)
        self.num_train = len(bench.train_tasks)
        self.train_skills = sorted(bench.train_classes)
        self.test_skills = sorted(bench.test_classes)
        classes = {**dict(bench.train_classes), **dict(bench.test_classes)}
        self._skills = [t.env_name for t in self.tasks]
        build = functools.partial(build_slot, classes, self.tasks)
        probe_skill = self._skills[0]
        probe = build(probe_skill)
        max_len = int(cast(Any, probe.unwrapped).max_path_length)
        self.horizon = check_int("horizon", horizon, 1)
        if self.horizon > max_len:
            raise ValueError(f"horizon must be <= {max_len} (Meta-World's max_path_length), "
                             f"got {horizon}")
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (OBSERVATION_DIM,), np.float32)
        self.action_space = float32_space(probe.action_space, "action space")
        self._check = TaskChecker(f"family {self.name!r}")
        self._check(Tasks({"task_id": torch.zeros(1, dtype=torch.int64)}), 1)
        self._pool = SlotPool(build, vectorization, probe.observation_space)
        self._pool.put(probe, probe_skill)

    def split_range(self, split: Split) -> tuple[int, int]:
        """``[start, stop)`` of the split's ``task_id``s."""
        if check_split(split) == "train":
            return 0, self.num_train
        return self.num_train, len(self.tasks)

    def split_of(self, tasks: Tasks) -> list[Split]:
        """The split each task belongs to (train ids come first)."""
        return ["train" if i < self.num_train else "test" for i in self._task_ids(tasks)]

    def sample(self, n: int, split: Split, generator: torch.Generator) -> Tasks:
        """``n`` of the split's fixed tasks, uniformly with replacement."""
        check_int("n", n, 1)
        start, stop = self.split_range(split)
        ids = torch.randint(start, stop, (n,), generator=generator, dtype=torch.int64,
                            device=generator.device)
        return Tasks({"task_id": ids.cpu()})

    def skill_of(self, tasks: Tasks) -> list[str]:
        """The Meta-World skill (env name) of each task."""
        return [self._skills[i] for i in self._task_ids(tasks)]

    def _task_ids(self, tasks: Tasks) -> list[int]:
        ids = self._check(tasks, source="make_env(tasks)").params["task_id"].tolist()
        bad = [i for i in ids if not 0 <= int(i) < len(self.tasks)]
        if bad:
            raise ValueError(f"task_id must lie in [0, {len(self.tasks)}), got {bad}")
        return [int(i) for i in ids]

    def make_env(self, tasks: Tasks, episodes_per_task: int,
                 device: torch.device | str = "cpu") -> GymnasiumBatchedEnv:
        """A batched env whose sub-envs are pooled Meta-World envs of the tasks' skills."""
        skills = self.skill_of(tasks)
        check_int("episodes_per_task", episodes_per_task, 1)
        vec = self._pool.acquire([s for s in skills for _ in range(episodes_per_task)])
        return GymnasiumBatchedEnv(vec, task_dicts(tasks), episodes_per_task, self.horizon,
                                   device, self.observation_space, self.action_space,
                                   track_info=("success",), on_close=self._pool.release)

    def close(self) -> None:
        """Close the pooled sub-envs."""
        self._pool.close()


def metaworld_ml1(skill: str = "reach-v3", seed: int = 0, horizon: int = 500,
                  vectorization: Vectorization = "sync") -> MetaWorldFamily:
    """``metaworld-ml1``: one skill, 50 train / 50 test goal positions."""
    return MetaWorldFamily("ML1", skill, seed, horizon, vectorization)


def metaworld_ml10(seed: int = 0, horizon: int = 500, vectorization: Vectorization = "sync"
                   ) -> MetaWorldFamily:
    """``metaworld-ml10``: 10 train skills, 5 held-out test skills, 50 goals each."""
    return MetaWorldFamily("ML10", None, seed, horizon, vectorization)
