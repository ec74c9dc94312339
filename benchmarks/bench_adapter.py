"""Overhead of the Gymnasium adapter over raw ``gymnasium.vector`` stepping.

Both sides step the same env (default ``Pendulum-v1``) in a ``SyncVectorEnv`` of the same
size (default 64 sub-envs) with the same ``NEXT_STEP`` autoreset mode, for whole episodes
of the same horizon:

* *raw*: ``vec.reset(seed=...)`` then ``vec.step(numpy_actions)``;
* *adapter*: ``env.reset(generator)`` then ``env.step(torch_actions)`` on a
  :class:`~adaptrl.tasks.adapters.GymnasiumBatchedEnv` (tasks x episodes = the same
  sub-envs, a task setter that changes gravity, freezing and horizon bookkeeping, numpy ->
  torch conversion).

Actions are precomputed on both sides so that only stepping is timed. Time is this
process's CPU time (``time.process_time``; everything runs in one thread), so that other
processes on a shared machine disturb the comparison less than wall-clock time would.
Episodes of the two sides alternate and the median episode is reported for each side.
The adapter's own work (its time per step outside the vector env's ``reset`` / ``step``,
two ``process_time`` calls of ~2 us each included) is also reported. Both figures move by
a few percent from run to run on a busy machine: interleaving torch with the env's Python
code makes each evict the other from the CPU caches, so the vector env also steps a little
slower inside the adapter than alone.
Use an env without early termination (Pendulum, HalfCheetah): with early ends the adapter
stops stepping frozen sub-envs while raw gymnasium keeps autoresetting them, which is no
longer a like-for-like comparison.

    python benchmarks/bench_adapter.py [--env Pendulum-v1] [--envs 64] [--episodes 30]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from adaptrl import runtime  # the CLI's runtime settings (adaptrl/runtime.py)

runtime.configure()
import torch  # noqa: E402

from adaptrl.tasks.adapters import GymnasiumFamily
from adaptrl.tasks.base import Tasks


def _sampler(n: int, generator: torch.Generator) -> Tasks:
    return Tasks({"gravity": 5.0 + 10.0 * torch.rand(n, generator=generator)})


def _set_gravity(env: gym.Env, task: dict) -> None:
    base = env.unwrapped
    if hasattr(base, "g"):
        base.g = task["gravity"]  # Pendulum
    elif hasattr(base, "gravity"):
        base.gravity = task["gravity"]  # CartPole, Acrobot ...


def _actions(space: gym.Space, steps: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if isinstance(space, gym.spaces.Discrete):
        return rng.integers(0, space.n, size=(steps, n)).astype(np.int64)
    return rng.uniform(space.low, space.high, size=(steps, n, *space.shape)).astype(space.dtype)


class RawSide:
    """Raw gymnasium: a ``SyncVectorEnv`` stepped with numpy actions."""

    def __init__(self, env_id: str, n: int, horizon: int) -> None:
        self.vec = gym.vector.SyncVectorEnv([lambda: gym.make(env_id) for _ in range(n)],
                                            autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)
        self.actions = _actions(self.vec.single_action_space, horizon, n, 0)
        self.episode = 0

    def run_episode(self) -> None:
        self.vec.reset(seed=self.episode)
        self.episode += 1
        for action in self.actions:
            self.vec.step(action)

    def close(self) -> None:
        self.vec.close()


class AdapterSide:
    """The adapter: a :class:`GymnasiumFamily` env stepped with torch actions."""

    def __init__(self, env_id: str, n: int, horizon: int) -> None:
        tasks_n = 8 if n % 8 == 0 else 1
        self.family = GymnasiumFamily(env_id, _sampler, _set_gravity, horizon=horizon)
        self.generator = torch.Generator().manual_seed(0)
        self.env = self.family.make_env(self.family.sample(tasks_n, "train", self.generator),
                                        n // tasks_n)
        acts = _actions(self.family.action_space, horizon, n, 0)
        self.actions = torch.from_numpy(acts).reshape(horizon, tasks_n, n // tasks_n,
                                                      *acts.shape[2:])
        # CPU time spent inside the vector env, to tell the adapter's own work apart
        self.inner_seconds = 0.0
        vec = self.env._vec
        vec.step = self._timed(vec.step)  # type: ignore[method-assign]
        vec.reset = self._timed(vec.reset)  # type: ignore[method-assign]

    def _timed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            out = method(*args, **kwargs)
            self.inner_seconds += time.process_time() - start
            return out

        return timed

    def run_episode(self) -> None:
        self.env.reset(self.generator)
        for action in self.actions:
            self.env.step(action)

    def close(self) -> None:
        self.env.close()
        self.family.close()


def _cpu_seconds(side: RawSide | AdapterSide) -> float:
    start = time.process_time()
    side.run_episode()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--envs", type=int, default=64, help="sub-envs (tasks x episodes)")
    parser.add_argument("--horizon", type=int, default=200)
    parser.add_argument("--episodes", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    raw, ada = RawSide(args.env, args.envs, args.horizon), AdapterSide(args.env, args.envs,
                                                                       args.horizon)
    raw.run_episode()  # warm-up (first-step checks of gymnasium's env checker)
    ada.run_episode()
    raw_t, ada_t = [], []
    ada.inner_seconds = 0.0
    for _ in range(args.episodes):  # alternate, so that background load hits both alike
        raw_t.append(_cpu_seconds(raw))
        ada_t.append(_cpu_seconds(ada))
    own = (sum(ada_t) - ada.inner_seconds) / (args.episodes * args.horizon)
    inner = ada.inner_seconds / (args.episodes * args.horizon)
    raw.close()
    ada.close()
    steps = args.horizon * args.envs
    raw_sps, ada_sps = steps / float(np.median(raw_t)), steps / float(np.median(ada_t))
    print(f"env {args.env}, {args.envs} sub-envs (sync), horizon {args.horizon}, "
          f"median over {args.episodes} alternating episodes (CPU time)")
    print(f"raw gymnasium.vector : {raw_sps:12,.0f} env steps/s")
    print(f"adaptrl adapter      : {ada_sps:12,.0f} env steps/s")
    print(f"adapter overhead     : {100 * (raw_sps / ada_sps - 1):+.1f} % "
          "(time per step; target <= 10 %)")
    print(f"adapter's own work   : {1e6 * own:8.1f} us per step = {100 * own / inner:.1f} % "
          f"of the {1e6 * inner:.0f} us spent in the vector env (reset + step)")


if __name__ == "__main__":
    main()
