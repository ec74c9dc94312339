"""A Gymnasium family's batched env stepped on Ray workers, for learners that act step by step.

RL² (its trials chain the episodes of a task through the GRU state) and the value-based
learners (online DQN learns between env steps) have no episode batch to ship to a worker:
the policy must see every step's observation before the next step exists. So the Ray
backend serves them one level lower, with :class:`RayBatchedEnv`: a
:class:`~adaptrl.tasks.base.BatchedEnv` whose ``reset`` / ``step`` run on the driver (the
policy, the agent and its replay buffer stay there) while the ``[tasks, episodes]`` slots
are split into contiguous task blocks (:func:`~adaptrl.rollouts.ray_sampler.task_blocks`),
each owned by one worker of a :class:`~adaptrl.rollouts.ray_sampler.RaySampler` that
builds and steps its block's Gymnasium sub-envs (the same workers, one torch thread each,
that sample the gradient family's batches). Every ``step`` sends each worker its rows of
the action and concatenates the rows it returns; the workers step in parallel.

**Identical to the local env.** The Gymnasium adapter's ``reset(generator)`` draws one
seed per sub-env, in slot order, from the run's generator. The driver draws those same
seeds (leaving its generator where the local env leaves it) and sends each worker the
generator's state from before the draw; the worker's block skips the seeds of the slots
before and after its own (:class:`~adaptrl.rollouts.ray_sampler._SliceEnv`). Every slot so
gets its local seed and its local actions, hence its local episode, bit for bit.

**Fault tolerance: replay.** A Gymnasium episode is a function of its reset seed and its
actions. The driver keeps, per env, the generator state of the last ``reset`` and the
actions sent to each block since then. The workers are created with ``max_restarts=-1``;
when a call to a worker fails because its process died (``RayActorError``), or reaches a
restarted worker that no longer holds the block (:class:`LostEnv`, e.g. it died while
idle), the driver waits for the restart, has the worker build the block again, reset it
from the recorded state and replay the recorded actions, then repeats the failed call.
The block is then exactly where it was, and the run goes on as if nothing had happened
(tested: a worker SIGKILLed mid-episode, the run's metrics equal an undisturbed run's).
``sampler.max_resamples`` bounds the restorations per episode (per ``reset``). An env
reset without a generator (``reset(None)``: unseeded sub-envs) cannot be replayed
exactly; the learners never do that.
"""

from __future__ import annotations

import itertools
import logging
import weakref
from typing import TYPE_CHECKING, Any

import torch

from adaptrl.errors import FaultError, UserError
from adaptrl.tasks.adapters.gymnasium_adapter import _SEED_HIGH
from adaptrl.tasks.base import StepResult, TaskFamily, Tasks

if TYPE_CHECKING:
    from adaptrl.rollouts.ray_sampler import RaySampler

log = logging.getLogger(__name__)

_env_ids = itertools.count()


class LostEnv(RuntimeError):
    """A worker was asked about an env it does not hold (it was restarted since)."""


# ------------------------------------------------------------------------ worker side

class EnvHost:
    """The envs one worker holds for :class:`RayBatchedEnv` s: each one block of tasks
    ``[lo, hi)`` of a batch of ``n``, built by the worker's own family."""

    def __init__(self, family: TaskFamily) -> None:
        self.family = family
        self.envs: dict[int, Any] = {}  # env id -> _SliceEnv

    def call(self, method: str, env_id: int, *args: Any) -> Any:
        """Run ``method`` on env ``env_id`` (``open`` builds it)."""
        from adaptrl.experiment.fault_points import reach

        if method == "open":
            return self.open(env_id, *args)
        env = self.envs.get(env_id)
        if env is None:
            if method == "close":
                return None
            raise LostEnv(f"worker holds no env {env_id} (it was restarted)")
        if method == "step":
            reach("ray_env.step")
            return tuple(env.step(args[0]))
        if method == "reset":
            return env.reset(_generator(args[0]))
        if method == "replay":
            state, actions = args
            env.reset(_generator(state))
            for action in actions:
                env.step(action)
            return None
        if method == "last_success":
            return getattr(env.env, "last_success", None)
        if method == "episode_info_max":
            return env.env.episode_info_max(args[0])
        if method == "close":
            self.envs.pop(env_id)
            close = getattr(env.env, "close", None)
            if close is not None:
                close()
            return None
        raise ValueError(f"unknown env method {method!r}")

    def open(self, env_id: int, tasks: Tasks, episodes: int, lo: int, hi: int, n: int
             ) -> int:
        """Build tasks ``[lo, hi)`` (given as ``tasks``) of an ``n``-task batch; returns
        the env's horizon."""
        from adaptrl.rollouts.ray_sampler import _SliceEnv

        old = self.envs.pop(env_id, None)
        if old is not None:
            getattr(old.env, "close", lambda: None)()
        env = self.family.make_env(tasks, episodes, "cpu")
        self.envs[env_id] = _SliceEnv(env, lo, hi, n)
        return int(env.horizon)


def _generator(state: torch.Tensor | None) -> torch.Generator | None:
    if state is None:
        return None
    generator = torch.Generator()
    generator.set_state(state)
    return generator


# ------------------------------------------------------------------------ driver side

def _close_remote(actors: list[Any], env_id: int) -> None:
    """Tell the workers to drop an env (fire and forget; nothing if Ray has stopped)."""
    try:
        import ray

        if not ray.is_initialized():
            return
        for actor in actors:
            actor.env_call.remote("close", env_id)
    except Exception:  # noqa: BLE001 - at interpreter exit anything may be gone
        pass


class RayBatchedEnv:
    """``len(tasks) x episodes`` Gymnasium sub-envs, split by task blocks over the
    workers of ``sampler``; see the module doc. Returned by
    :meth:`adaptrl.rollouts.ray_sampler.RaySampling.make_env`."""

    def __init__(self, sampler: RaySampler, tasks: Tasks, episodes_per_task: int,
                 device: torch.device | str = "cpu") -> None:
        from adaptrl.rollouts.ray_sampler import task_blocks

        self.sampler = sampler
        self.num_tasks, self.episodes_per_task = len(tasks), episodes_per_task
        self.device = torch.device(device)
        self._tasks = tasks.to("cpu")
        self._blocks = task_blocks(self.num_tasks, sampler.workers)
        self._id = next(_env_ids)
        self._epochs = [-1] * len(self._blocks)  # the worker incarnation each block is on
        self._state: torch.Tensor | None = None  # the generator's state at the last reset
        self._reset = False
        self._actions: list[list[torch.Tensor]] = [[] for _ in self._blocks]
        self._restores = 0  # since the last reset
        self.restores = 0  # over the env's life
        horizons = self._gather("open", [self._open_args(b) for b in range(len(self._blocks))])
        self.horizon = int(horizons[0])
        self._finalizer = weakref.finalize(self, _close_remote,
                                           [sampler.actor(b) for b in range(len(self._blocks))],
                                           self._id)

    # -- calls to the workers, restoring a block whose worker was restarted --
    def _open_args(self, b: int) -> tuple[Any, ...]:
        lo, hi = self._blocks[b]
        return (self._tasks[lo:hi], self.episodes_per_task, lo, hi, self.num_tasks)

    def _submit(self, b: int, method: str, args: tuple[Any, ...]) -> Any:
        return self.sampler.actor(b).env_call.remote(method, self._id, *args)

    def _restore(self, b: int) -> None:
        """Build block ``b`` again on its (restarted) worker and replay it to now."""
        import ray
        from ray.exceptions import RayActorError

        while True:
            try:
                ray.get(self._submit(b, "open", self._open_args(b)))
                if self._reset:
                    ray.get(self._submit(b, "replay", (self._state, self._actions[b])))
                self._epochs[b] = self.sampler.epoch(b)
                return
            except (RayActorError, LostEnv) as err:  # died again while restoring
                self._failed(b, err)

    def _failed(self, b: int, err: BaseException) -> None:
        """Count a lost block; wait for its worker's restart if the worker died."""
        from ray.exceptions import RayActorError

        self._restores += 1
        self.restores += 1
        self.sampler.resamples += 1
        if self._restores > self.sampler.max_resamples:
            raise FaultError(f"Ray env: a worker's block was lost {self._restores} times in "
                             f"one episode (sampler.max_resamples = "
                             f"{self.sampler.max_resamples}); last: worker {b}: {err}") from err
        lo, hi = self._blocks[b]
        log.warning("Ray env: worker %d lost tasks %d..%d (%s); restoring them by replaying "
                    "%d steps from the episode's seeds", b, lo, hi - 1, type(err).__name__,
                    len(self._actions[b]))
        if isinstance(err, RayActorError):
            self.sampler.restart(b)

    def _gather(self, method: str, args: list[tuple[Any, ...]]) -> list[Any]:
        """``method`` on every block (in parallel); results in block order."""
        import ray
        from ray.exceptions import RayActorError

        for b in range(len(self._blocks)):
            if method != "open" and self._epochs[b] != self.sampler.epoch(b):
                self._restore(b)  # its worker was restarted for another env
        refs = [self._submit(b, method, a) for b, a in enumerate(args)]
        try:  # the usual case: every block answers (one wait for all)
            out: list[Any] = ray.get(refs)
        except (RayActorError, LostEnv):
            pass  # restore the blocks that failed, one by one
        else:
            if method == "open":
                self._epochs = [self.sampler.epoch(b) for b in range(len(self._blocks))]
            return out
        out = []
        for b, ref in enumerate(refs):
            while True:
                try:
                    out.append(ray.get(ref))
                    break
                except (RayActorError, LostEnv) as err:
                    self._failed(b, err)
                    self._restore(b)
                    ref = self._submit(b, method, args[b])
            if method == "open":
                self._epochs[b] = self.sampler.epoch(b)
        return out

    def _cat(self, parts: list[torch.Tensor]) -> torch.Tensor:
        out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
        return out.to(self.device)

    # -- the BatchedEnv contract --
    def reset(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """New episodes everywhere, seeded exactly as the local adapter seeds them."""
        if not self._finalizer.alive:
            raise RuntimeError("this env was closed; build a new one with make_env")
        state = None
        if generator is not None:
            if generator.device.type != "cpu":
                raise UserError("sampler.backend: 'ray' needs the run's CPU generator")
            state = generator.get_state()
        obs = self._gather("reset", [(state,)] * len(self._blocks))
        if generator is not None:  # the seeds the local env draws, in slot order
            torch.randint(0, _SEED_HIGH, (self.num_tasks * self.episodes_per_task,),
                          generator=generator)
        self._state, self._reset, self._restores = state, True, 0
        self._actions = [[] for _ in self._blocks]
        return self._cat(obs)

    def step(self, action: torch.Tensor) -> StepResult:
        """Every worker steps its block's rows of ``action``."""
        if not self._reset:
            raise RuntimeError("call reset() before step()")
        if tuple(action.shape[:2]) != (self.num_tasks, self.episodes_per_task):
            raise ValueError(f"action must have shape [tasks, episodes, ...] = "
                             f"[{self.num_tasks}, {self.episodes_per_task}, ...], got "
                             f"{tuple(action.shape)}")
        action = action.detach().cpu()
        rows = [action[lo:hi].clone() for lo, hi in self._blocks]
        parts = self._gather("step", [(row,) for row in rows])
        for b, row in enumerate(rows):  # recorded once stepped: a restore replays to here
            self._actions[b].append(row)
        return StepResult(*(self._cat([p[k] for p in parts]) for k in range(4)))

    # -- extras of the Gymnasium adapter's env --
    @property
    def last_success(self) -> torch.Tensor | None:
        """As the local env's :attr:`last_success` (``None`` if the family has none)."""
        parts = self._gather("last_success", [()] * len(self._blocks))
        return None if parts[0] is None else self._cat(parts)

    def episode_info_max(self, key: str) -> torch.Tensor:
        """As the local env's :meth:`episode_info_max`."""
        return self._cat(self._gather("episode_info_max", [(key,)] * len(self._blocks)))

    def close(self) -> None:
        """Drop the blocks' sub-envs on the workers (also done on garbage collection)."""
        self._finalizer()

    def __enter__(self) -> RayBatchedEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

