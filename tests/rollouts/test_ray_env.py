"""Envs stepped on Ray workers (``adaptrl.rollouts.ray_env``): the local env's exact steps,
RL² and DQN runs equal to local runs, and a worker killed mid-episode changes nothing.

Everything runs on one local Ray cluster with 2 CPUs for the module.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from adaptrl.errors import FaultError, UserError
from adaptrl.experiment.config import ConfigError, validate_config
from adaptrl.experiment.learners import build_learner
from adaptrl.experiment.run_dir import read_metrics
from adaptrl.experiment.sampling import check_sampler
from adaptrl.experiment.seeding import make_generator
from adaptrl.experiment.trainer import train
from adaptrl.rollouts.ray_env import RayBatchedEnv
from adaptrl.rollouts.ray_sampler import RaySampler, RaySampling
from adaptrl.tasks.adapters.gymnasium_adapter import GymnasiumFamily, single_env_family
from adaptrl.tasks.base import TaskFamily, Tasks

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                       reason="needs the ray extra: pip install 'adaptrl[ray]'"),
    pytest.mark.extra,
]

ONE_CARTPOLE = "adaptrl.tasks.adapters.gymnasium_adapter:single_env_family"
HORIZON = 20


def _gravity_tasks(n: int, generator: torch.Generator) -> Tasks:
    return Tasks({"gravity": 5.0 + 10.0 * torch.rand(n, generator=generator)})


def _set_gravity(env: Any, task: dict[str, Any]) -> None:
    env.unwrapped.gravity = task["gravity"]


def gravity_cartpole() -> GymnasiumFamily:
    """CartPole with a gravity per task: episodes end early, at different steps."""
    return GymnasiumFamily("CartPole-v1", _gravity_tasks, _set_gravity, horizon=40)


def _play(env: Any, seed: int, episodes: int = 2, steps: int = 45, kill: Any = None
          ) -> list[torch.Tensor]:
    """Every tensor ``env`` returns over ``episodes`` reset + ``steps`` random actions, and
    the generator's state after each reset; ``kill(t)`` is called before step ``t``."""
    g, ga = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    out: list[torch.Tensor] = []
    for _ in range(episodes):
        out += [env.reset(g), g.get_state()]
        for t in range(steps):
            if kill is not None:
                kill(t)
            out += list(env.step(torch.randint(0, 2, (env.num_tasks, env.episodes_per_task),
                                               generator=ga)))
    return out


def _kill(ray: Any, actor: Any) -> None:
    """Kill ``actor``'s process (Ray restarts it) and wait until it is gone: ``ray.kill``
    itself returns before the process dies."""
    pid = ray.get(actor.pid.remote())
    ray.kill(actor, no_restart=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if ray.get(actor.pid.remote(), timeout=30) != pid:
                return  # restarted already
        except ray.exceptions.RayActorError:
            return  # dead or restarting
        time.sleep(0.05)
    raise AssertionError("the killed worker did not die")


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("workers", [1, 2])
def test_ray_env_steps_exactly_as_the_local_env(ray_cluster: Any, workers: int) -> None:
    """Task blocks on the workers give the local env's observations, rewards and flags bit
    for bit (per-task gravity, early ends at different steps, frozen ended slots), and
    leave the generator where the local env leaves it; a task count that does not divide
    evenly into blocks included."""
    family = gravity_cartpole()
    tasks = family.sample(5, "train", torch.Generator().manual_seed(0))
    local = _play(family.make_env(tasks, 2), seed=3)
    sampler = RaySampler(gravity_cartpole, workers)
    try:
        env = RaySampling(family, sampler, remote_envs=True).make_env(tasks, 2)
        assert isinstance(env, RayBatchedEnv) and env.horizon == 40
        assert _same(_play(env, seed=3), local)
        assert env.last_success is None  # as the local env: no success tracked
        env.close()
        with pytest.raises(RuntimeError, match="closed"):
            env.reset(torch.Generator())
    finally:
        sampler.close()


def metaworld_reach() -> TaskFamily:
    from adaptrl.tasks import make

    return make("metaworld-ml1", horizon=30)


@pytest.mark.skipif(importlib.util.find_spec("metaworld") is None,
                    reason="needs the metaworld extra: pip install 'adaptrl[metaworld]'")
def test_metaworld_steps_and_success_equal_the_local_env(ray_cluster: Any) -> None:
    """Meta-World reach on 2 workers: observations, rewards and the success flags
    (``last_success``, ``episode_info_max``) equal the local env's."""
    family = metaworld_reach()
    tasks = family.sample(3, "train", torch.Generator().manual_seed(0))
    sampler = RaySampler(metaworld_reach, 2)
    try:
        out = []
        envs: list[Any] = [family.make_env(tasks, 2), sampler.make_env(tasks, 2)]
        for env in envs:
            g, ga = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
            seen = [env.reset(g)]
            for _ in range(30):
                seen += list(env.step(2 * torch.rand(3, 2, 4, generator=ga) - 1))
            success = env.last_success
            assert success is not None
            out.append([*seen, success, env.episode_info_max("success"), g.get_state()])
        assert _same(out[1], out[0])
    finally:
        sampler.close()


@pytest.mark.slow  # ~20 s: two restarts
def test_a_restarted_worker_has_its_block_replayed(ray_cluster: Any) -> None:
    """Ray restarts a worker killed mid-episode (``ray.kill(no_restart=False)``); its
    block is rebuilt and replayed from the episode's seeds and actions, and every later
    step equals the local env's."""
    family = gravity_cartpole()
    tasks = family.sample(4, "train", torch.Generator().manual_seed(1))
    local = _play(family.make_env(tasks, 2), seed=5)
    sampler = RaySampler(gravity_cartpole, 2)
    try:
        env = sampler.make_env(tasks, 2)
        actor = sampler.actor(0)

        def kill(t: int) -> None:
            if t == 7:
                _kill(ray_cluster, actor)

        assert _same(_play(env, seed=5, kill=kill), local)
        assert sampler.resamples == 2  # once per episode: worker 0's block was lost twice
    finally:
        sampler.close()


def test_a_lost_block_beyond_max_resamples_stops_with_a_fault(ray_cluster: Any) -> None:
    family = gravity_cartpole()
    sampler = RaySampler(gravity_cartpole, 1, max_resamples=0)
    try:
        env = sampler.make_env(family.sample(2, "train", torch.Generator().manual_seed(0)), 1)
        env.reset(torch.Generator().manual_seed(0))
        _kill(ray_cluster, sampler.actor(0))
        with pytest.raises(FaultError, match=r"lost 1 times in one episode \(sampler"
                                             r".max_resamples = 0\)"):
            env.step(torch.zeros(2, 1, dtype=torch.long))
    finally:
        sampler.close()


# ------------------------------------------------------------------ whole runs

def _config(algorithm: dict[str, Any], backend: str) -> dict[str, Any]:
    return {"name": "ray-env", "seed": 3, "iterations": 2, "checkpoint_every": 1,
            "family": {"name": "cartpole-one", "entry_point": ONE_CARTPOLE,
                       "params": {"env": "CartPole-v1", "horizon": HORIZON}},
            "algorithm": algorithm,
            "evaluation": {"num_tasks": 2, "steps": 1, "episodes": 1,
                           "env_steps_per_unit": 20, "baselines": []},
            "logging": {"tensorboard": False, "progress": False},
            "sampler": {"backend": backend, "workers": 2}}


RL2 = {"name": "rl2", "meta_batch_size": 3, "episodes_per_trial": 2,
       "policy": {"hidden_size": 8}, "ppo": {"minibatches": 1, "epochs": 1}}
DQN = {"name": "dqn-reptile", "meta_batch_size": 3,
       "dqn": {"hidden": [8], "buffer_size": 100, "batch_size": 8, "total_steps": 200,
               "learning_starts": 20, "target_period": 10},
       "inner": {"env_steps": 40, "learning_starts": 10}}
ER = {"name": "dqn-er", "meta_batch_size": 1, "env_steps": 40,
      "dqn": {"hidden": [8], "buffer_size": 100, "batch_size": 8, "total_steps": 80,
              "learning_starts": 10, "target_period": 10}}


def _metrics(run: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "wall_time_s"}
            for r in read_metrics(run / "metrics.jsonl")]


@pytest.mark.parametrize("algorithm", [RL2, DQN, ER], ids=["rl2", "dqn-reptile", "dqn-er"])
def test_stepping_learners_train_on_ray_to_the_local_metrics(
        ray_cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        algorithm: dict[str, Any]) -> None:
    """`sampler.backend: ray` trains RL² (trials), DQN-Reptile (online DQN runs,
    ``play_online``) and DQN with experience replay along a task stream on a Gymnasium
    family with their envs stepped on the workers, to the
    local run's metrics exactly."""
    steps = {"n": 0}
    real_step = RayBatchedEnv.step

    def counted(self: RayBatchedEnv, action: torch.Tensor) -> Any:
        steps["n"] += 1
        return real_step(self, action)

    monkeypatch.setattr(RayBatchedEnv, "step", counted)
    for backend in ("local", "ray"):
        exp, algo = validate_config(_config(algorithm, backend))
        check_sampler(exp, algo)
        train(exp, algo, tmp_path / backend, baselines=False)
    assert steps["n"] > 0  # the Ray run's envs were the workers'
    local = _metrics(tmp_path / "local")
    assert len(local) == 2 and _metrics(tmp_path / "ray") == local


# ------------------------------------------------------------------- the kill test

def _pause_worker_zero(marker_dir: str, at_step: int, index: int) -> None:
    """Worker setup: worker 0 stops at its ``at_step``-th env step (mid-episode) until it
    is killed, writing its pid; its restart steps on."""
    if index != 0:
        return
    from adaptrl.experiment import fault_points

    marker, seen = Path(marker_dir), {"steps": 0}

    def hook(name: str) -> None:
        if name != "ray_env.step" or (marker / "killed").exists():
            return
        seen["steps"] += 1
        if seen["steps"] == at_step:
            (marker / "pid").write_text(str(os.getpid()))
            time.sleep(120)

    fault_points.hook = hook


def _meta_updates(algorithm: dict[str, Any], family: TaskFamily, iterations: int = 2
                  ) -> list[dict[str, Any]]:
    exp, algo = validate_config(_config(algorithm, "local"))
    generator = make_generator(exp.seed)
    learner = build_learner(family, algo, generator, torch.device("cpu"), init_seed=exp.seed)
    return [learner.meta_update(family.sample(3, "train", generator))
            for _ in range(iterations)]


@pytest.mark.parametrize("algorithm", [RL2, DQN], ids=["rl2", "dqn-reptile"])
def test_a_worker_killed_mid_episode_changes_nothing(
        ray_cluster: Any, tmp_path: Path, algorithm: dict[str, Any],
        while_killing: Callable[..., Any]) -> None:
    """SIGKILL a worker in the middle of an episode (its 13th env step): Ray restarts it,
    the driver rebuilds its block and replays the episode from its seeds and actions, and
    the meta-updates' metrics equal an undisturbed run's."""
    make_family = functools.partial(single_env_family, "CartPole-v1", horizon=HORIZON)
    undisturbed = _meta_updates(algorithm, make_family())
    sampler = RaySampler(make_family, 2,
                         setup=functools.partial(_pause_worker_zero, str(tmp_path), 13))
    disturbed = while_killing(tmp_path, sampler, lambda: _meta_updates(
        algorithm, RaySampling(make_family(), sampler, remote_envs=True)))
    assert (tmp_path / "killed").exists()
    assert sampler.resamples == 1
    assert disturbed == undisturbed


# ------------------------------------------------------------------- validation

def test_ray_backend_admits_rl2_and_the_value_based_learners(tiny_config: dict[str, Any]
                                                            ) -> None:
    for algorithm in (RL2, DQN, ER, {"name": "dqn-fomaml"}, {"name": "dqn-mer"}):
        exp, algo = validate_config({**_config(algorithm, "ray")})
        check_sampler(exp, algo)  # no error
    grbal = {**tiny_config, "algorithm": {"name": "grbal"}, "sampler": {"backend": "ray"}}
    exp, algo = validate_config(grbal)
    with pytest.raises(ConfigError, match="rl2 and the value-based.*'grbal'.*'local'"):
        check_sampler(exp, algo)


def test_a_gpu_generator_is_refused(ray_cluster: Any) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device for a CUDA generator")
    family = gravity_cartpole()
    sampler = RaySampler(gravity_cartpole, 1)
    try:
        env = sampler.make_env(family.sample(1, "train", torch.Generator()), 1)
        with pytest.raises(UserError, match="CPU generator"):
            env.reset(torch.Generator(device="cuda"))
    finally:
        sampler.close()
