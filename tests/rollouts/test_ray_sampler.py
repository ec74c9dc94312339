"""The Ray sampler: the local sampler's exact batches, on any number of workers, through a
worker's death; config validation.

The block logic (a worker's share of the batch's random draws) is checked without Ray; the
rest runs on one local Ray cluster with 2 CPUs for the module.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import torch

from adaptrl.errors import UserError
from adaptrl.experiment.config import ConfigError, validate_config
from adaptrl.experiment.learners import build_learner
from adaptrl.experiment.run_dir import read_metrics
from adaptrl.experiment.sampling import check_sampler, sampling_family
from adaptrl.experiment.seeding import make_generator
from adaptrl.experiment.trainer import train
from adaptrl.models.functional import named_params
from adaptrl.models.policies import CategoricalMLPPolicy, GaussianMLPPolicy
from adaptrl.rollouts.ray_sampler import (
    BatchRequest,
    RaySampler,
    RaySampling,
    merge_slices,
    sample_slice,
    task_blocks,
)
from adaptrl.rollouts.sampler import BatchSampler, BatchUnit, rollout
from adaptrl.rollouts.trajectories import Trajectories
from adaptrl.tasks import make
from adaptrl.tasks.adapters import GymnasiumFamily
from adaptrl.tasks.base import TaskFamily, Tasks

needs_mujoco = pytest.mark.skipif(
    __import__("importlib").util.find_spec("mujoco") is None,
    reason="needs the mujoco extra: pip install 'adaptrl[mujoco]'")
needs_ray = pytest.mark.skipif(
    __import__("importlib").util.find_spec("ray") is None,
    reason="needs the ray extra: pip install 'adaptrl[ray]'")


# ------------------------------------------------------------ a family with early ends

def _gravity_tasks(n: int, generator: torch.Generator) -> Tasks:
    return Tasks({"gravity": 5.0 + 10.0 * torch.rand(n, generator=generator)})


def _set_gravity(env: gym.Env, task: dict[str, Any]) -> None:
    env.unwrapped.gravity = task["gravity"]  # type: ignore[attr-defined]


def cartpole_family(horizon: int = 40) -> GymnasiumFamily:
    """CartPole with a gravity per task: episodes end early, at different steps."""
    return GymnasiumFamily("CartPole-v1", _gravity_tasks, _set_gravity, horizon=horizon)


def _equal(a: Trajectories, b: Trajectories) -> bool:
    return all((x is None and y is None) or (x is not None and y is not None and torch.equal(x, y))
               for x, y in ((getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__))


def _per_task(params: dict[str, torch.Tensor], n: int, scale: float = 0.05
              ) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(99)
    return {k: v.detach().expand(n, *v.shape) + scale * torch.randn(n, *v.shape, generator=g)
            for k, v in params.items()}


def _blocks(family: TaskFamily, policy: Any, params: Any, tasks: Tasks, episodes: int,
            seed: int, workers: int) -> tuple[Trajectories, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    request = BatchRequest(policy, params, tasks, episodes, g.get_state())
    parts = [sample_slice(family, request, lo, hi)
             for lo, hi in task_blocks(len(tasks), workers)]
    return merge_slices(parts)


@pytest.mark.parametrize("workers", [1, 2, 3, 5])
def test_blocks_reproduce_the_local_rollout_exactly(workers: int) -> None:
    """Any split of the tasks into worker blocks gives the local batch bit for bit and
    leaves the generator where the local loop leaves it (early ends at different steps,
    per-task parameters, a categorical policy)."""
    family = cartpole_family()
    tasks = family.sample(5, "train", torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    policy = CategoricalMLPPolicy(4, 2, (8,))
    params = _per_task(named_params(policy), 5, scale=1.0)
    g = torch.Generator().manual_seed(7)
    local = rollout(family.make_env(tasks, 3), policy, params, g)
    lengths = local.masks.sum(0)
    assert lengths.min() < lengths.max() < 40  # early, uneven ends: the hard case
    traj, state = _blocks(family, policy, params, tasks, 3, 7, workers)
    assert _equal(traj, local)
    assert torch.equal(state, g.get_state())


def test_task_blocks_cover_every_task_once() -> None:
    assert task_blocks(5, 2) == [(0, 2), (2, 5)] or task_blocks(5, 2) == [(0, 3), (3, 5)]
    assert task_blocks(2, 4) == [(0, 1), (1, 2)]
    for n, w in [(40, 16), (7, 3), (1, 1)]:
        blocks = task_blocks(n, w)
        assert blocks[0][0] == 0 and blocks[-1][1] == n
        assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(blocks, blocks[1:]))


@needs_mujoco
def test_blocks_reproduce_halfcheetah_with_shared_parameters() -> None:
    family = make("halfcheetah-vel", horizon=8)
    tasks = family.sample(4, "train", torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(17, 6, (8, 8))
    g = torch.Generator().manual_seed(3)
    local = rollout(family.make_env(tasks, 2), policy, None, g)
    traj, state = _blocks(family, policy, None, tasks, 2, 3, 3)
    assert _equal(traj, local) and torch.equal(state, g.get_state())


# ---------------------------------------------------------------------- on Ray

@needs_ray
@pytest.mark.extra
@pytest.mark.parametrize("unit", ["episodes", "steps", "finished_steps"])
def test_ray_batches_equal_local_batches(ray_cluster: Any, unit: BatchUnit) -> None:
    """Two Ray workers give the local BatchSampler's batches and generator, in every batch
    unit (``steps`` and ``finished_steps`` sample extra rounds on the workers too)."""
    family = cartpole_family()
    tasks = family.sample(3, "train", torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    policy = CategoricalMLPPolicy(4, 2, (8,))
    params = _per_task(named_params(policy), 3)
    sampler = RaySampler(cartpole_family, 2)
    try:
        remote = RaySampling(family, sampler)
        g_local, g_ray = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        for _ in range(2):  # the second batch starts where the first left the generator
            local = BatchSampler(family, tasks, 3, unit=unit).sample(policy, params, g_local)
            ray_batch = BatchSampler(remote, tasks, 3, unit=unit).sample(policy, params, g_ray)
            assert _equal(ray_batch, local)
            assert torch.equal(g_ray.get_state(), g_local.get_state())
    finally:
        sampler.close()


@needs_ray
@pytest.mark.extra
def test_more_workers_than_the_cluster_has_cpus_is_refused(ray_cluster: Any) -> None:
    with pytest.raises(UserError, match="3 workers need 3 CPUs; the Ray cluster has 2"):
        RaySampler(cartpole_family, 3)


def _tiny_cheetah(backend: str, workers: int = 2) -> dict[str, Any]:
    return {"name": "ray-tiny", "seed": 4, "iterations": 2, "checkpoint_every": 1,
            "family": {"name": "halfcheetah-vel", "params": {"horizon": 8}},
            "algorithm": {"name": "maml", "meta_batch_size": 3, "episodes_per_task": 2,
                          "policy": {"hidden": [8, 8]}},
            "evaluation": {"num_tasks": 2, "steps": 1, "episodes": 2, "baselines": []},
            "logging": {"tensorboard": False, "progress": False},
            "sampler": {"backend": backend, "workers": workers}}


def _metrics(run: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "wall_time_s"}
            for r in read_metrics(run / "metrics.jsonl")]


@needs_mujoco
@needs_ray
@pytest.mark.extra
def test_maml_run_on_ray_equals_the_local_run(ray_cluster: Any, tmp_path: Path) -> None:
    """`sampler.backend: ray` trains MAML on halfcheetah-vel to the local run's metrics."""
    for backend in ("local", "ray", "ray-again"):
        exp, algo = validate_config(_tiny_cheetah(backend[:3] if backend != "local" else
                                                  backend))
        train(exp, algo, tmp_path / backend, baselines=False)  # its workers end with it
    assert _metrics(tmp_path / "ray") == _metrics(tmp_path / "local")
    assert _metrics(tmp_path / "ray-again") == _metrics(tmp_path / "local")
    assert len(_metrics(tmp_path / "ray")) == 2


def _pause_worker_zero(marker_dir: str, index: int) -> None:
    """Worker setup for the kill test: worker 0 stops at its first sampling call (until
    it is killed) and writes its pid; once ``killed`` exists, its restart samples."""
    if index != 0:
        return
    from adaptrl.experiment import fault_points

    marker = Path(marker_dir)

    def hook(name: str) -> None:
        if name == "ray_sampler.sample" and not (marker / "killed").exists():
            (marker / "pid").write_text(str(os.getpid()))
            time.sleep(120)

    fault_points.hook = hook


def _meta_updates(family: TaskFamily, iterations: int = 2) -> list[dict[str, Any]]:
    exp, algo = validate_config(_tiny_cheetah("local"))
    generator = make_generator(exp.seed)
    learner = build_learner(family, algo, generator, torch.device("cpu"), init_seed=exp.seed)
    return [learner.meta_update(family.sample(3, "train", generator))
            for _ in range(iterations)]


@needs_mujoco
@needs_ray
@pytest.mark.extra
def test_a_worker_killed_mid_sampling_changes_nothing(
        ray_cluster: Any, tmp_path: Path, while_killing: Callable[..., Any]) -> None:
    """SIGKILL a worker while it samples its block: Ray restarts it, its block is sampled
    again from the same request, and MAML's metrics equal an undisturbed run's."""
    make_family = functools.partial(make, "halfcheetah-vel", horizon=8)
    undisturbed = _meta_updates(make_family())
    sampler = RaySampler(make_family, 2, setup=functools.partial(_pause_worker_zero,
                                                                 str(tmp_path)))
    disturbed = while_killing(tmp_path, sampler,
                              lambda: _meta_updates(RaySampling(make_family(), sampler)))
    assert (tmp_path / "killed").exists()
    assert sampler.resamples == 1
    assert disturbed == undisturbed


# ------------------------------------------------------------------ validation

def test_sampler_config_errors_name_field_value_and_allowed(tiny_config: dict[str, Any]
                                                            ) -> None:
    for bad, words in [({"backend": "dask"}, ["sampler.backend", "dask", "local", "ray"]),
                       ({"workers": 0}, ["sampler.workers", "0"]),
                       ({"max_resamples": -1}, ["sampler.max_resamples"]),
                       ({"worker": 2}, ["sampler.worker", "unknown key", "workers"])]:
        with pytest.raises(ConfigError) as err:
            validate_config({**tiny_config, "sampler": bad})
        for word in words:
            assert word in str(err.value), (bad, str(err.value))


def test_ray_backend_refuses_what_it_cannot_sample(tiny_config: dict[str, Any]) -> None:
    # a tensor family: batched already, and its draws are not per-slot seeds
    exp, algo = validate_config({**tiny_config, "sampler": {"backend": "ray"}})
    if __import__("importlib").util.find_spec("ray") is not None:
        check_sampler(exp, algo)  # maml: fine
    with pytest.raises(ConfigError, match="Gymnasium families.*navigation-2d.*'local'"):
        sampling_family(exp, make("navigation-2d"))
    # a learner that is neither the gradient family, rl2 nor value-based (the latter two
    # step their envs on the workers: tests/rollouts/test_ray_env.py)
    grbal = {**tiny_config, "algorithm": {"name": "grbal"}, "sampler": {"backend": "ray"}}
    exp, algo = validate_config(grbal)
    with pytest.raises(ConfigError, match="'grbal' is none of them.*'local'"):
        check_sampler(exp, algo)


def test_missing_ray_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                      tiny_config: dict[str, Any]) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))
    exp, algo = validate_config({**tiny_config, "sampler": {"backend": "ray"}})
    with pytest.raises(ConfigError, match=r"pip install 'adaptrl\[ray\]'"):
        check_sampler(exp, algo)
    with pytest.raises(UserError, match=r"adaptrl\[ray\]"):
        RaySampler(cartpole_family, 1)
