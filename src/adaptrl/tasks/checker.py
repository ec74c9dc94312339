"""``check_task_family``: does a family keep the task API's promises?

Run it on any family — built-in, adapter or your own — before training on it. It raises
``AssertionError`` (a broken promise) or ``ValueError`` (bad checker arguments) with a
message that names the promise, and returns ``None`` when all of them hold:

1. **spaces** — ``observation_space`` / ``action_space`` are Gymnasium ``Box`` or
   ``Discrete`` spaces; ``horizon`` is an int >= 1.
2. **sample** — ``sample(n, split, g)`` returns ``n`` tasks, the same ones for the same seed.
3. **splits** — 200 ``train`` and 200 ``test`` tasks share no parameter row, and
   ``split_of`` (the family's own if it has one) puts each in the split it came from.
   A family that declares ``splits = "shared"`` (a finite task set, such as forward /
   backward, that is meta-tested on its own tasks) is exempt.
4. **shapes** — ``reset``/``step`` give float32 observations ``[tasks, episodes, *obs]``
   (one-hot ``[.., n]`` for a ``Discrete`` space) inside the space's finite bounds, float32
   rewards and bool flags ``[tasks, episodes]``, all finite; ``step`` leaves its action
   tensor untouched.
5. **episode ends** — ``terminated`` and ``truncated`` are never both set; ``truncated``
   is set exactly at the horizon, for the slots that did not terminate; after the end a
   slot is frozen (same observation, zero reward, flags unchanged).
6. **determinism** — two rollouts with identically seeded generators (the second after
   a ``reset`` of the same env) are identical.
7. **task isolation** — a task's results do not depend on the other tasks in the batch:
   a batch that mixes two task batches slot by slot reproduces each slot's results, and a
   family that ignores the generator also gives the same results for each task alone.
8. **task effect** — a task changes the env: tasks with different parameters, each played
   alone with identically seeded generators and the same actions, do not all give the same
   rollout. This catches a task setter that writes an attribute the env never reads (e.g.
   ``env.unwrapped.gravity`` on Pendulum, whose gravity is ``g``); for a Gymnasium adapter
   family the message names the attributes the setter wrote. A family whose sampled tasks
   all share one parameter row (a one-task family) is exempt.

Actions are random (uniform over a ``Box``, widened by a quarter of its width on each side
to exercise clipping; standard normal on unbounded axes; uniform over a ``Discrete``).
"""

from __future__ import annotations

from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch

from adaptrl.tasks.base import BatchedEnv, TaskFamily, Tasks
from adaptrl.tasks.common import check_int
from adaptrl.tasks.splits import split_of

SPLIT_SAMPLES = 200


class Record(NamedTuple):
    """A rollout of a batched env: ``observations`` ``[T + 1, ...]``, the rest ``[T, ...]``."""

    observations: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor

    def slots(self, index: torch.Tensor | slice) -> Record:
        """The same rollout restricted to task slots ``index``."""
        return Record(*(x[:, index] for x in self))


def _seeded(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _check_spaces(family: TaskFamily) -> None:
    for attr in ("observation_space", "action_space"):
        space = getattr(family, attr, None)
        assert isinstance(space, (gym.spaces.Box, gym.spaces.Discrete)), (
            f"spaces: {attr} must be a gymnasium Box or Discrete space, got {space!r}")
    horizon = getattr(family, "horizon", None)
    assert isinstance(horizon, int) and horizon >= 1, (
        f"spaces: horizon must be an int >= 1, got {horizon!r}")


def _check_sample(family: TaskFamily, seed: int) -> None:
    for n in (1, 3, 7):
        tasks = family.sample(n, "train", _seeded(seed))
        assert isinstance(tasks, Tasks), f"sample: must return Tasks, got {type(tasks)}"
        assert len(tasks) == n, f"sample: asked for {n} tasks, got {len(tasks)}"
    again = family.sample(7, "train", _seeded(seed))
    for key, value in tasks.params.items():
        assert torch.equal(value, again.params[key]), (
            f"sample: parameter {key!r} differs between two identically seeded calls")


def _rows(tasks: Tasks) -> torch.Tensor:
    """Every task's parameters as one float64 row ``[n, D]``."""
    n = len(tasks)
    return torch.cat([tasks.params[k].detach().cpu().reshape(n, -1).double()
                      for k in sorted(tasks.params)], dim=1)


def _check_splits(family: TaskFamily, seed: int) -> None:
    train = family.sample(SPLIT_SAMPLES, "train", _seeded(seed))
    test = family.sample(SPLIT_SAMPLES, "test", _seeded(seed + 1))
    if getattr(family, "splits", None) == "shared":
        return  # a finite task set meta-tested on its own tasks (e.g. forward / backward)
    a, b = _rows(train), _rows(test)
    shared = (a.unsqueeze(1) == b.unsqueeze(0)).all(-1).nonzero()
    assert len(shared) == 0, (
        f"splits: {len(shared)} train/test pairs of tasks have identical parameters "
        f"(e.g. train #{int(shared[0, 0])} and test #{int(shared[0, 1])})")
    which = getattr(family, "split_of", split_of)
    for split, tasks in (("train", train), ("test", test)):
        wrong = [i for i, s in enumerate(which(tasks)) if s != split]
        assert not wrong, (f"splits: split_of puts {len(wrong)} of {SPLIT_SAMPLES} "
                           f"{split!r} tasks elsewhere (e.g. #{wrong[0]})")


def _box(space: gym.Space, what: str) -> gym.spaces.Box:
    """``space`` as the ``Box`` the checker handles beside ``Discrete``."""
    if not isinstance(space, gym.spaces.Box):
        raise TypeError(f"check_task_family handles Discrete and Box {what} spaces, "
                        f"got {type(space).__name__}")
    return space


def _random_actions(space: gym.Space, steps: int, n: int, e: int,
                    generator: torch.Generator) -> torch.Tensor:
    if isinstance(space, gym.spaces.Discrete):
        return torch.randint(int(space.start), int(space.start + space.n), (steps, n, e),
                             generator=generator)
    space = _box(space, "action")
    low = torch.as_tensor(space.low, dtype=torch.float32)
    high = torch.as_tensor(space.high, dtype=torch.float32)
    bounded = torch.isfinite(low) & torch.isfinite(high)
    width = torch.where(bounded, high - low, torch.zeros_like(low))
    u = torch.rand(steps, n, e, *space.shape, generator=generator)
    uniform = torch.where(bounded, low, 0.0) - width / 4 + 1.5 * width * u
    normal = torch.randn(steps, n, e, *space.shape, generator=generator)
    return torch.where(bounded, uniform, normal)


def _observation_shape(space: gym.Space) -> tuple[int, ...]:
    return (int(space.n),) if isinstance(space, gym.spaces.Discrete) else \
        _box(space, "observation").shape


def _expect(name: str, x: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype,
            where: str) -> None:
    assert isinstance(x, torch.Tensor) and tuple(x.shape) == shape and x.dtype == dtype, (
        f"shapes: {name} from {where} must be a {dtype} tensor of shape {list(shape)} "
        f"([tasks, episodes{', *obs' if name == 'observation' else ''}]), got "
        f"{getattr(x, 'dtype', type(x))} {list(getattr(x, 'shape', []))}")


def _rollout(env: BatchedEnv, actions: torch.Tensor, seed: int, device: torch.device,
             obs_shape: tuple[int, ...]) -> Record:
    """Reset with a generator seeded ``seed`` and play ``actions``; checks every shape."""
    n, e = actions.shape[1:3]
    first = env.reset(_seeded(seed, device))
    _expect("observation", first, (n, e, *obs_shape), torch.float32, "reset()")
    obs, rewards, terminated, truncated = [first], [], [], []
    for t, action in enumerate(actions):
        sent = action.to(device)
        kept = sent.clone()
        result = env.step(sent)
        assert torch.equal(sent, kept), "shapes: step() modified its action tensor in place"
        where = f"step() #{t + 1}"
        _expect("observation", result.observation, (n, e, *obs_shape), torch.float32, where)
        _expect("reward", result.reward, (n, e), torch.float32, where)
        _expect("terminated", result.terminated, (n, e), torch.bool, where)
        _expect("truncated", result.truncated, (n, e), torch.bool, where)
        obs.append(result.observation)
        rewards.append(result.reward)
        terminated.append(result.terminated)
        truncated.append(result.truncated)
    return Record(*(torch.stack(x).cpu() for x in (obs, rewards, terminated, truncated)))


def _check_env(env: BatchedEnv, family: TaskFamily, n: int, e: int) -> None:
    got = (env.num_tasks, env.episodes_per_task, env.horizon)
    assert got == (n, e, family.horizon), (
        f"shapes: env (num_tasks, episodes_per_task, horizon) = {got}, "
        f"expected {(n, e, family.horizon)}")


def _check_values(family: TaskFamily, rec: Record) -> None:
    """Finite values, one-hot observations of a Discrete space, the space's finite bounds."""
    space = family.observation_space
    for name, x in (("observation", rec.observations), ("reward", rec.rewards)):
        assert bool(torch.isfinite(x).all()), f"shapes: {name} has non-finite values"
    if isinstance(space, gym.spaces.Discrete):
        binary = ((rec.observations == 0) | (rec.observations == 1)).all(-1)
        one_hot = binary & (rec.observations.sum(-1) == 1)
        assert bool(one_hot.all()), "shapes: observations of a Discrete space must be one-hot"
        return
    space = _box(space, "observation")
    low = torch.as_tensor(space.low, dtype=torch.float32)
    high = torch.as_tensor(space.high, dtype=torch.float32)
    outside = (rec.observations < low) | (rec.observations > high)
    if bool(outside.any()):
        idx = outside.nonzero()[0].tolist()
        raise AssertionError(
            f"shapes: observation leaves observation_space at step {idx[0]}, task {idx[1]}, "
            f"episode {idx[2]}, component {idx[3:]}: {rec.observations[tuple(idx)].item()} "
            f"not in [{low[tuple(idx[3:])].item()}, {high[tuple(idx[3:])].item()}]")


def _check_episode_ends(rec: Record, horizon: int) -> None:
    term, trunc = rec.terminated, rec.truncated
    steps = term.shape[0]
    assert not bool((term & trunc).any()), (
        "episode ends: terminated and truncated are both set for one slot")
    early = trunc[: min(horizon - 1, steps)]
    if bool(early.any()):
        raise AssertionError(f"episode ends: truncated set before the horizon ({horizon}) "
                             f"at step {int(early.nonzero()[0, 0]) + 1}")
    ended = term | trunc
    before = torch.cat([torch.zeros_like(ended[:1]), ended[:-1]])  # ended before step t
    if steps >= horizon:
        h = horizon - 1
        live = ~before[h]
        assert bool(ended[h].all()), (
            f"episode ends: some slots neither terminated nor truncated at the horizon ({horizon})")
        assert bool((trunc[h][live] == ~term[h][live]).all()), (
            "episode ends: a slot live at the horizon must be truncated unless it terminated")
    for name, now, prev in (("terminated", term[1:], term[:-1]),
                            ("truncated", trunc[1:], trunc[:-1])):
        assert not bool((before[1:] & (now != prev)).any()), (
            f"episode ends: {name} changed after the episode had ended")
    assert not bool((rec.rewards[before] != 0).any()), (
        "episode ends: reward must be 0 after the episode ended (frozen slot)")
    obs_now, obs_prev = rec.observations[1:], rec.observations[:-1]
    frozen = before.reshape(*before.shape, *([1] * (obs_now.dim() - before.dim())))
    assert not bool(((obs_now != obs_prev) & frozen).any()), (
        "episode ends: observation changed after the episode ended (frozen slot)")


def _first_difference(a: Record, b: Record, exact: bool) -> str | None:
    """Where two rollouts first differ (``"<name>, first at step index <t>"``), or None."""
    names = ("observation", "reward", "terminated", "truncated")
    for name, x, y in zip(names, a, b):
        if x.dtype == torch.bool or exact:
            same = torch.equal(x, y)
        else:
            same = torch.allclose(x, y, rtol=1e-5, atol=1e-6)
        if not same:
            diff = (x != y) if x.dtype == torch.bool or exact else \
                ~torch.isclose(x, y, 1e-5, 1e-6)
            return f"{name} differs, first at step index {int(diff.nonzero()[0, 0])}"
    return None


def _assert_same(a: Record, b: Record, what: str, exact: bool) -> None:
    difference = _first_difference(a, b, exact)
    if difference is not None:
        raise AssertionError(f"{what}: {difference}")


def _mix(a: Tasks, b: Tasks, take_a: torch.Tensor) -> Tasks:
    def pick(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.where(take_a.reshape(-1, *([1] * (x.dim() - 1))), x, y)
    return Tasks({k: pick(a.params[k], b.params[k]) for k in a.params})


def _uses_generator(family: TaskFamily, tasks: Tasks, actions: torch.Tensor,
                    seed: int, device: torch.device) -> bool:
    """Whether a rollout draws from the generator given to ``reset`` (a stochastic env)."""
    generator = _seeded(seed, device)
    untouched = generator.get_state()
    env = family.make_env(tasks, actions.shape[2], device)
    env.reset(generator)
    for action in actions[: family.horizon]:
        env.step(action.to(device))
    return not torch.equal(generator.get_state(), untouched)


def _check_isolation(family: TaskFamily, tasks: Tasks, rec: Record, actions: torch.Tensor,
                     seed: int, device: torch.device) -> None:
    n, e = actions.shape[1:3]
    shape = _observation_shape(family.observation_space)

    def run(ts: Tasks, acts: torch.Tensor) -> Record:
        return _rollout(family.make_env(ts, e, device), acts, seed, device, shape)

    # Same batch size and seed, so each slot sees the same random numbers in both runs.
    others = family.sample(n, "test", _seeded(seed + 2))
    take = torch.arange(n) % 2 == 0
    rec_others = run(others, actions)
    mixed = run(_mix(tasks, others, take), actions)
    expected = Record(*(torch.where(take.reshape(1, -1, *([1] * (x.dim() - 2))), x, y)
                        for x, y in zip(rec, rec_others)))
    _assert_same(mixed, expected, "task isolation (a batch mixing two task batches slot "
                 "by slot must reproduce each slot's own results)", exact=False)
    if _uses_generator(family, tasks, actions, seed, device):
        return  # alone, a task would see other random numbers: only the mix applies
    for i in range(n):
        alone = run(tasks[i], actions[:, i:i + 1])
        _assert_same(alone, rec.slots(slice(i, i + 1)),
                     f"task isolation (task {i} stepped alone vs in the batch)", exact=False)


TASK_EFFECT_SAMPLES = 8
"""Tasks drawn by the task-effect check, among which it plays up to three distinct ones."""


def _distinct(tasks: Tasks, limit: int) -> list[int]:
    """Indices of up to ``limit`` tasks whose parameter rows differ pairwise."""
    rows = _rows(tasks)
    keep: list[int] = []
    for i in range(len(tasks)):
        if len(keep) < limit and all(not torch.equal(rows[i], rows[j]) for j in keep):
            keep.append(i)
    return keep


def _base_attributes(env: BatchedEnv) -> dict[str, np.ndarray] | None:
    """The plain attributes (numbers, strings, arrays) of the base env behind a one-slot
    Gymnasium adapter env (a sync ``gymnasium.vector`` env), as arrays; None for another
    kind of env."""
    envs = getattr(getattr(env, "_vec", None), "envs", None)
    if not envs:
        return None
    plain = (bool, int, float, str, np.ndarray, np.generic)
    return {k: np.asarray(v) for k, v in vars(envs[0].unwrapped).items()
            if isinstance(v, plain)}


def _differing(attrs: list[dict[str, np.ndarray]]) -> list[str]:
    """``name (value, value, ...)`` for every attribute whose value differs between envs
    (or that some envs lack)."""
    out = []
    for k in sorted(set().union(*attrs)):
        values = [a.get(k) for a in attrs]
        first = values[0]
        if first is None or any(v is None or v.shape != first.shape or
                                not np.array_equal(v, first) for v in values[1:]):
            shown = ", ".join("unset" if v is None else np.array2string(v, precision=3)
                              for v in values)
            out.append(f"env.unwrapped.{k} ({shown})")
    return out


def _check_task_effect(family: TaskFamily, actions: torch.Tensor, seed: int,
                       device: torch.device) -> None:
    tasks = family.sample(TASK_EFFECT_SAMPLES, "train", _seeded(seed + 4))
    picked = _distinct(tasks, 3)
    if len(picked) < 2:
        return  # every sampled task is the same: nothing to tell apart
    shape = _observation_shape(family.observation_space)
    envs = [family.make_env(tasks[i], actions.shape[2], device) for i in picked]
    try:
        records = [_rollout(env, actions[:, :1], seed, device, shape) for env in envs]
        if any(_first_difference(records[0], r, exact=True) for r in records[1:]):
            return
        attrs = [_base_attributes(env) for env in envs]
    finally:
        for env in envs:
            close = getattr(env, "close", None)
            if callable(close):
                close()
    message = (f"task effect: {len(picked)} tasks with different parameters "
               f"({', '.join(sorted(tasks.params))}) give identical rollouts under the same "
               "seed and actions: applying a task changes nothing in the env")
    if all(a is not None for a in attrs):
        written = _differing([a for a in attrs if a is not None])
        message += (f". The task setter wrote {'; '.join(written)}, which the env never "
                     "reads: is that the name of the attribute the env uses?" if written else
                     ". No attribute of the base env differs between the tasks: the task "
                     "never reached the env")
    raise AssertionError(message)


def check_task_family(family: TaskFamily, *, num_tasks: int = 3, episodes: int = 2,
                      seed: int = 0, steps: int | None = None,
                      device: torch.device | str = "cpu") -> None:
    """Check that ``family`` keeps the promises of the task API (module docstring).

    ``steps`` (default ``horizon + 2``) is how many steps each rollout takes; with fewer
    than ``horizon`` steps the truncation-at-horizon check is skipped.
    """
    check_int("num_tasks", num_tasks, 2)
    check_int("episodes", episodes, 1)
    device = torch.device(device)
    _check_spaces(family)
    steps = family.horizon + 2 if steps is None else check_int("steps", steps, 1)
    _check_sample(family, seed)
    _check_splits(family, seed)
    tasks = family.sample(num_tasks, "train", _seeded(seed))
    actions = _random_actions(family.action_space, steps, num_tasks, episodes,
                              _seeded(seed + 3))
    env = family.make_env(tasks, episodes, device)
    _check_env(env, family, num_tasks, episodes)
    shape = _observation_shape(family.observation_space)
    first = _rollout(env, actions, seed, device, shape)
    _check_values(family, first)
    _check_episode_ends(first, family.horizon)
    second = _rollout(env, actions, seed, device, shape)
    _assert_same(first, second, "determinism (two rollouts with identically seeded "
                 "generators, the second after reset() of the same env)", exact=True)
    _check_isolation(family, tasks, first, actions, seed, device)
    _check_task_effect(family, actions, seed, device)
