"""Sampling Gymnasium families on Ray workers, with the local sampler's exact results.

A Gymnasium family (MuJoCo, Meta-World, a user's env: :mod:`adaptrl.tasks.adapters`)
steps its sub-envs one at a time in Python, so one process samples a MAML batch (meta-batch
40 x 20 episodes x 200 steps on HalfCheetah: 160k MuJoCo steps) slowly. The Ray backend
spreads a batch over ``N`` actors (garage's ``RaySampler`` design, on current Ray): each
actor owns its own copy of the family (its sub-envs, pooled across batches) and runs one
torch thread; per batch the driver makes **one** ``ray.put`` of the policy (a CPU copy),
the parameters (per-task adapted parameters for meta-RL carry a leading task dimension),
the tasks and the run generator's state, and every actor samples a contiguous block of
tasks from that object ref and returns its :class:`Trajectories`.

**Identical to the local sampler.** The local :func:`~adaptrl.rollouts.sampler.rollout`
draws, from the run's one generator, one seed per sub-env at ``reset`` (in slot order),
then at every time step one action draw for *all* slots. An actor that samples tasks
``[lo, hi)`` starts from the same generator state and makes the same draws: it skips the
seeds of the slots before and after its own (:class:`_SliceEnv`) and calls the policy on
the whole batch's observation tensor with its own rows filled in (:class:`_BatchPolicy`),
keeping its rows of the actions. So every slot sees exactly the numbers it sees locally,
whatever the number of workers or the order they finish in; and the actor whose episodes
ran longest leaves its generator exactly where the local loop (which stops once every slot
has ended) leaves the run's, so the driver takes that state. The price is a policy call on
the whole batch per step in every worker (an MLP on 800 rows: well under a MuJoCo step per
slot; ``benchmarks/bench_ray_sampler.py`` measures the overhead at one worker). Tested bit
for bit against the local sampler (``tests/rollouts/test_ray_sampler.py``).

**Fault tolerance.** A sampling call is a pure function of its object ref and its task
block, so repeating it is safe. Actors are created with ``max_restarts=-1`` (Ray restarts
a dead actor process, rerunning its constructor) and ``max_task_retries=0``: the driver
sees the failed call (``RayActorError``), logs it, and submits the same block again to the
restarted actor, up to ``max_resamples`` times per batch; the batch, and the iteration, is
then exactly what it would have been.

Needs the extra ``adaptrl[ray]``; this module imports Ray only when a sampler starts.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

import torch
from pydantic import Field
from torch.distributions import Distribution

from adaptrl.errors import FaultError, UserError
from adaptrl.models.functional import Params, detach_params
from adaptrl.rollouts.sampler import Policy, act, rollout
from adaptrl.rollouts.trajectories import Trajectories
from adaptrl.schema import ConfigModel
from adaptrl.tasks.adapters.gymnasium_adapter import _SEED_HIGH, GymnasiumFamily
from adaptrl.tasks.adapters.metaworld_family import MetaWorldFamily
from adaptrl.tasks.base import BatchedEnv, Split, StepResult, TaskFamily, Tasks

log = logging.getLogger(__name__)

FamilyFactory = Callable[[], TaskFamily]
"""Builds the family in a worker (picklable: e.g. ``functools.partial(build_family, config)``)."""
WorkerSetup = Callable[[int], None]
"""Run in every worker process before it builds its family, with the worker's index."""


class SamplerConfig(ConfigModel):
    """Where a run samples its episodes: here (``local``), or on Ray workers (``ray``)."""

    backend: Literal["local", "ray"] = Field(
        "local", description="local: in this process; ray: on `workers` Ray actors "
        "(Gymnasium families; the gradient family, rl2 and the value-based learners; "
        "needs adaptrl[ray])")
    workers: int = Field(2, ge=1, description="Ray actors sampling a batch (backend ray)")
    address: str | None = Field(
        None, description="an existing Ray cluster ('auto', 'ray://host:10001', "
        "'host:6379'); null: start a local one with `workers` CPUs")
    max_resamples: int = Field(
        3, ge=0, description="times a batch may re-sample a dead worker's tasks (an env "
        "stepped on the workers: restore them, per episode) before the run stops")


def require_ray() -> None:
    """Raise a :class:`UserError` naming the extra when Ray is missing."""
    if importlib.util.find_spec("ray") is None:
        raise UserError("sampler.backend: 'ray' needs the extra: pip install 'adaptrl[ray]'")


def _base_family(family: TaskFamily) -> TaskFamily:
    """The family under wrappers that keep one (``RescaledActions.family``)."""
    while (inner := getattr(family, "family", None)) is not None:
        family = inner
    return family


def check_ray_family(family: TaskFamily) -> None:
    """Refuse a family the Ray backend cannot sample identically (a tensor family)."""
    base = _base_family(family)
    if not isinstance(base, (GymnasiumFamily, MetaWorldFamily)):
        raise UserError(f"sampler.backend: 'ray' samples Gymnasium families (MuJoCo, "
                        f"Meta-World, adaptrl.tasks.adapters.GymnasiumFamily); family "
                        f"{family.name!r} steps batched tensors already: use backend 'local'")


# ------------------------------------------------------------------ one worker's share

@dataclass(frozen=True)
class BatchRequest:
    """What the driver puts in the object store once per batch."""

    policy: Any  # an nn.Module on the CPU
    params: Params | None  # on the CPU; per-task ones with a leading task dimension
    tasks: Tasks
    episodes: int
    generator_state: torch.Tensor


@dataclass(frozen=True)
class SliceResult:
    """One worker's tasks ``[lo, hi)``: their episodes, the time steps its loop ran, and its
    generator's state after them; ``cpu_s``: the worker's CPU time for them."""

    lo: int
    trajectories: Trajectories
    steps: int
    generator_state: torch.Tensor
    cpu_s: float = 0.0


class _SliceEnv:
    """Slots ``[lo, hi)`` (of ``n`` slots) of a batch, drawing the whole batch's seeds.

    The Gymnasium adapter's ``reset`` draws one seed per sub-env, in slot order, from the
    generator; torch draws integers one after another, so skipping the ``lo`` seeds before
    and the ``n - hi`` after this block leaves every slot its local seed and the generator
    where the whole batch's reset leaves it.
    """

    def __init__(self, env: BatchedEnv, lo: int, hi: int, n: int) -> None:
        self.env, self.lo, self.hi, self.n = env, lo, hi, n
        self.num_tasks, self.episodes_per_task = env.num_tasks, env.episodes_per_task
        self.horizon, self.device = env.horizon, env.device

    def reset(self, generator: torch.Generator | None = None) -> torch.Tensor:
        e = self.episodes_per_task
        if generator is not None:
            torch.randint(0, _SEED_HIGH, (self.lo * e,), generator=generator)
        obs = self.env.reset(generator)
        if generator is not None:
            torch.randint(0, _SEED_HIGH, ((self.n - self.hi) * e,), generator=generator)
        return obs

    def step(self, action: torch.Tensor) -> StepResult:
        return self.env.step(action)


class _BatchPolicy:
    """Acts for tasks ``[lo, hi)`` with the draws the whole batch of ``n`` tasks makes: the
    policy sees the batch's observation tensor (its own rows filled in, zeros elsewhere)
    and returns this block's rows."""

    def __init__(self, policy: Policy, lo: int, hi: int, n: int) -> None:
        self.policy, self.lo, self.hi, self.n = policy, lo, hi, n
        self.states: list[torch.Tensor] = []  # the generator's state before step t's draw

    def act(self, obs: torch.Tensor, params: Params | None, generator: torch.Generator,
            deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        self.states.append(generator.get_state())
        if self.hi - self.lo == self.n:
            return act(self.policy, obs, params, generator, deterministic)
        full = obs.new_zeros((self.n, *obs.shape[1:]))
        full[self.lo:self.hi] = obs
        action, log_prob = act(self.policy, full, params, generator, deterministic)
        return action[self.lo:self.hi], log_prob[self.lo:self.hi]

    def distribution(self, obs: torch.Tensor, params: Params | None = None,
                     task_dim: int = 0) -> Distribution:
        raise NotImplementedError("a worker's batch policy only acts (see _BatchPolicy)")

    @staticmethod
    def sample(dist: Distribution, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError("a worker's batch policy only acts (see _BatchPolicy)")


def sample_slice(family: TaskFamily, request: BatchRequest, lo: int, hi: int) -> SliceResult:
    """Tasks ``[lo, hi)`` of ``request``, exactly as the local sampler samples them within
    the whole batch (see the module doc).

    The local loop stops once *every* slot of the batch has ended, and until then draws
    actions for ended slots too (padding, masked out). This block cannot know when the
    others end, so it runs all ``H`` steps (an ended slot costs no env step), records the
    generator's state before each step's draw and reports its own end ``steps`` with the
    state there; :func:`merge_slices` cuts the batch at the longest block's end.
    """
    generator = torch.Generator()
    generator.set_state(request.generator_state)
    n = len(request.tasks)
    env = family.make_env(request.tasks[lo:hi], request.episodes, "cpu")
    policy = _BatchPolicy(request.policy, lo, hi, n)
    try:
        traj = rollout(_SliceEnv(env, lo, hi, n), policy, request.params, generator,
                       stop_when_ended=False)
    finally:
        close = getattr(env, "close", None)
        if close is not None:
            close()
    # the local loop would stop after this block's longest episode (if it were alone)
    steps = int(traj.masks.sum(0).max().item())
    state = policy.states[steps] if steps < len(policy.states) else generator.get_state()
    return SliceResult(lo, traj, steps, state)


def merge_slices(parts: list[SliceResult]) -> tuple[Trajectories, torch.Tensor]:
    """The whole batch (blocks side by side along the task dimension, in task order) and
    the generator state the local loop would leave: that of the longest-running block.

    The local loop ran ``T`` = the longest block's steps; its buffers are zero after ``T``
    (never written), so the steps the blocks ran beyond ``T`` are zeroed.
    """
    parts = sorted(parts, key=lambda p: p.lo)
    longest = max(parts, key=lambda p: p.steps)
    end = longest.steps
    trajs = [p.trajectories for p in parts]

    def cat(name: str) -> torch.Tensor | None:
        values = [getattr(t, name) for t in trajs]
        if any(v is None for v in values):
            return None
        out = torch.cat(values, dim=1)
        out[end:] = 0
        return out

    changes: dict[str, Any] = {f.name: cat(f.name) for f in fields(Trajectories)}
    return replace(trajs[0], **changes), longest.generator_state


def task_blocks(num_tasks: int, workers: int) -> list[tuple[int, int]]:
    """Contiguous blocks ``[lo, hi)`` of near-equal size, one per worker (fewer if there
    are fewer tasks)."""
    k = min(workers, num_tasks)
    bounds = [round(i * num_tasks / k) for i in range(k + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(k)]


class SamplerWorker:
    """A Ray actor's state: its own family (sub-envs pooled across batches), one thread."""

    def __init__(self, make_family: FamilyFactory, index: int,
                 setup: WorkerSetup | None = None) -> None:
        torch.set_num_threads(1)
        if setup is not None:
            setup(index)
        self.index = index
        self.family = make_family()
        self.envs: Any = None  # the envs it steps for RayBatchedEnvs (built on first use)

    def pid(self) -> int:
        return os.getpid()

    def cpu_time(self) -> float:
        """This worker process's CPU time so far (for benchmarks)."""
        return time.process_time()

    def env_call(self, method: str, env_id: int, *args: Any) -> Any:
        """A :class:`~adaptrl.rollouts.ray_env.RayBatchedEnv`'s call on its block here."""
        if self.envs is None:
            from adaptrl.rollouts.ray_env import EnvHost

            self.envs = EnvHost(self.family)
        return self.envs.call(method, env_id, *args)

    def sample(self, request: BatchRequest, lo: int, hi: int) -> SliceResult:
        from adaptrl.experiment.fault_points import reach

        reach("ray_sampler.sample")
        start = time.process_time()
        result = sample_slice(self.family, request, lo, hi)
        return replace(result, cpu_s=time.process_time() - start)


# ---------------------------------------------------------------------------- driver

class RaySampler:
    """``workers`` Ray actors sampling batches of a Gymnasium family (see the module doc).

    Args:
        make_family: builds the family in each worker (picklable).
        workers: actors (one CPU each).
        address: an existing cluster; ``None``: the cluster this process is connected to, or
            a new local one with ``workers`` CPUs.
        max_resamples: re-samplings of a dead worker's block allowed per batch.
        setup: run in each worker process first (e.g. to import a user's env module).
    """

    def __init__(self, make_family: FamilyFactory, workers: int, address: str | None = None,
                 max_resamples: int = 3, setup: WorkerSetup | None = None) -> None:
        require_ray()
        import ray

        if workers < 1:
            raise UserError(f"sampler.workers must be >= 1, got {workers}")
        self.workers, self.max_resamples = workers, max_resamples
        self.resamples = 0  # blocks re-sampled (or env blocks restored) after a worker died
        self.worker_cpu_s = 0.0  # the workers' CPU time sampling (over the sampler's life)
        self._started_ray = False
        if not ray.is_initialized():
            try:
                if address is None:
                    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
                else:
                    ray.init(address=address, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as err:
                where = f"at sampler.address {address!r}" if address else "locally"
                raise UserError(f"sampler: cannot start or reach a Ray cluster {where}: "
                                f"{err}") from err
            self._started_ray = True
        cpus = ray.cluster_resources().get("CPU", 0.0)
        if cpus < workers:  # the actors would wait for CPUs for ever
            raise UserError(f"sampler.workers: {workers} workers need {workers} CPUs; the Ray "
                            f"cluster has {cpus:g}")
        self._remote: Any = ray.remote(SamplerWorker).options(
            num_cpus=1, max_restarts=-1, max_task_retries=0)
        self._make_family, self._setup = make_family, setup
        self._actors: list[Any] = [self._remote.remote(make_family, i, setup)
                                   for i in range(workers)]
        self._epochs = [0] * workers  # restarts seen per worker (RayBatchedEnv restores)

    def actor(self, i: int) -> Any:
        """Worker ``i``'s actor handle."""
        return self._actors[i]

    def epoch(self, i: int) -> int:
        """How many times worker ``i`` was seen dead and restarted."""
        return self._epochs[i]

    def restart(self, i: int) -> None:
        """Worker ``i`` died: wait for its restart (its state, and every env block it
        held, is gone: :class:`~adaptrl.rollouts.ray_env.RayBatchedEnv` restores them)."""
        self._epochs[i] += 1
        self._wait_restarted(i)

    def make_env(self, tasks: Tasks, episodes_per_task: int,
                 device: torch.device | str = "cpu") -> BatchedEnv:
        """A batched env whose task blocks the workers step (``ray_env``)."""
        from adaptrl.rollouts.ray_env import RayBatchedEnv

        return RayBatchedEnv(self, tasks, episodes_per_task, device)

    def _wait_restarted(self, i: int, timeout_s: float = 300.0) -> None:
        """Wait until Ray has restarted worker ``i`` (calls to a restarting actor fail);
        if it does not come back, start a new one in its place."""
        import ray
        from ray.exceptions import RayActorError

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                ray.get(self._actors[i].pid.remote(), timeout=max(deadline - time.monotonic(),
                                                                  1.0))
                return
            except (RayActorError, ray.exceptions.GetTimeoutError):
                time.sleep(0.2)
        log.warning("Ray sampler: worker %d did not restart in %.0f s; starting a new one",
                    i, timeout_s)
        ray.kill(self._actors[i], no_restart=True)
        self._actors[i] = self._remote.remote(self._make_family, i, self._setup)

    def sample_episodes(self, tasks: Tasks, episodes: int, policy: Policy,
                        params: Params | None, generator: torch.Generator,
                        device: torch.device | str) -> Trajectories:
        """:func:`rollout` of ``policy`` on ``episodes`` slots of every task, on the
        workers; ``generator`` ends where the local sampler would leave it."""
        import ray
        from ray.exceptions import RayActorError

        if generator.device.type != "cpu":
            raise UserError("sampler.backend: 'ray' needs the run's CPU generator")
        module = policy if isinstance(policy, torch.nn.Module) else None
        if module is not None and any(p.device.type != "cpu" for p in module.parameters()):
            policy = copy.deepcopy(module).cpu()
        request = BatchRequest(policy, None if params is None else
                               {k: v.cpu() for k, v in detach_params(params).items()},
                               tasks.to("cpu"), episodes, generator.get_state())
        ref = ray.put(request)
        pending = {self._actors[i].sample.remote(ref, lo, hi): (i, lo, hi)
                   for i, (lo, hi) in enumerate(task_blocks(len(tasks), self.workers))}
        done: list[SliceResult] = []
        resampled = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            i, lo, hi = pending.pop(ready[0])
            try:
                done.append(ray.get(ready[0]))
            except RayActorError as err:
                resampled += 1
                self.resamples += 1
                if resampled > self.max_resamples:
                    raise FaultError(f"Ray sampler: workers died {resampled} times in one "
                                     f"batch (sampler.max_resamples = {self.max_resamples});"
                                     f" last: worker {i}: {err}") from err
                log.warning("Ray sampler: worker %d died while sampling tasks %d..%d; "
                            "re-sampling them from the same seeds on its restart", i, lo,
                            hi - 1)
                self.restart(i)
                pending[self._actors[i].sample.remote(ref, lo, hi)] = (i, lo, hi)
        traj, state = merge_slices(done)
        self.worker_cpu_s += sum(part.cpu_s for part in done)
        generator.set_state(state)
        return traj.to(device)

    def close(self) -> None:
        """Stop the workers (and the local cluster this sampler started)."""
        import ray

        if not self._actors and not self._started_ray:
            return  # closed already
        if ray.is_initialized():  # at exit Ray may have shut itself down first
            for actor in self._actors:
                ray.kill(actor, no_restart=True)
        self._actors = []
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False


class RaySampling:
    """``family`` whose gradient-family batches are sampled by ``sampler`` (an
    :class:`~adaptrl.rollouts.sampler.EpisodeSource`); everything else is ``family``'s,
    except, with ``remote_envs``, :meth:`make_env`: envs stepped on the workers
    (:class:`~adaptrl.rollouts.ray_env.RayBatchedEnv`, for RL² and the value-based
    learners, which act step by step)."""

    def __init__(self, family: TaskFamily, sampler: RaySampler,
                 remote_envs: bool = False) -> None:
        check_ray_family(family)
        self.family, self.sampler, self.remote_envs = family, sampler, remote_envs
        self.name, self.horizon = family.name, family.horizon
        self.observation_space, self.action_space = family.observation_space, family.action_space

    def sample(self, n: int, split: Split, generator: torch.Generator) -> Tasks:
        return self.family.sample(n, split, generator)

    def make_env(self, tasks: Tasks, episodes_per_task: int,
                 device: torch.device | str = "cpu") -> BatchedEnv:
        if self.remote_envs:
            return self.sampler.make_env(tasks, episodes_per_task, device)
        return self.family.make_env(tasks, episodes_per_task, device)

    def sample_episodes(self, tasks: Tasks, episodes: int, policy: Policy,
                        params: Params | None, generator: torch.Generator,
                        device: torch.device | str) -> Trajectories:
        return self.sampler.sample_episodes(tasks, episodes, policy, params, generator, device)

    def __getattr__(self, name: str) -> Any:  # the family's extras (ranges, oracle, ...)
        if name in ("family", "sampler", "remote_envs"):
            raise AttributeError(name)
        return getattr(self.family, name)
