"""Replay buffers batched over tasks: a per-task ring buffer and a per-task reservoir.

Both keep, for every data field of :class:`~adaptrl.rollouts.transitions.Transitions`,
one tensor ``[tasks, capacity, ...]`` on one device, so an add or a sample for *all* tasks
is a handful of tensor ops with no Python loop over tasks or rows and no host-device
synchronisation (a meta-learned DQN adds one transition per task per env step). Field
shapes and dtypes come from a spec or from the first add. Random draws come only from
the ``torch.Generator`` passed in; ``state_dict`` / ``load_state_dict`` resume exactly
(contents, write positions, counts), so a checkpointed run continues as an unbroken one.

* :class:`RingBuffer` keeps each task's ``capacity`` most recent transitions (the
  experience replay of DQN, Mnih et al. 2015).
* :class:`ReservoirBuffer` keeps a uniform sample of everything each task has seen
  (Vitter 1985, Algorithm R): the memory of continual learners such as Meta Experience
  Replay (Riemer et al. 2019) on a task stream.

Writes go through one indexed assignment. Rows that must not be written (padding, or a
reservoir's rejected items) are sent to one extra *discard* slot at index ``capacity``
that is never read, so the write needs no data-dependent shape.
"""

from __future__ import annotations

from typing import Any, TypeVar

import torch

from adaptrl.rollouts.transitions import FieldSpec, Transitions

_RANDOM_HIGH = 2 ** 62  # integers drawn in [0, 2^62) and reduced mod k: bias < k / 2^62


def _uniform_below(high: torch.Tensor, generator: torch.Generator, device: torch.device
                   ) -> torch.Tensor:
    """One uniform integer in ``[0, high)`` per entry of ``high`` (long, > 0), drawn from
    ``generator`` on its own device and moved to ``device``."""
    r = torch.randint(0, _RANDOM_HIGH, tuple(high.shape), generator=generator,
                      device=generator.device)
    return r.to(device) % high


Buffer = TypeVar("Buffer", bound="_TaskReplay")


class _TaskReplay:
    """What both buffers share: per-task storage, sampling, counts and checkpoints.

    ``_rows[field]`` is ``[tasks, capacity + 1, ...]``: slot ``capacity`` discards writes.
    ``_size [tasks]`` counts filled slots (the filled part is ``0 .. size - 1``) and
    ``_seen [tasks]`` the transitions ever added.
    """

    def __init__(self, num_tasks: int, capacity: int, device: torch.device | str = "cpu",
                 spec: FieldSpec | None = None) -> None:
        if num_tasks < 1 or capacity < 1:
            raise ValueError(f"num_tasks and capacity must be >= 1, got {num_tasks}, {capacity}")
        self.num_tasks, self.capacity = num_tasks, capacity
        self.device = torch.device(device)
        self._rows: dict[str, torch.Tensor] = {}
        self._size = torch.zeros(num_tasks, dtype=torch.long, device=self.device)
        self._seen = torch.zeros(num_tasks, dtype=torch.long, device=self.device)
        self._all_filled = False  # known on the host: every task holds a transition
        if spec is not None:
            self._allocate(spec)

    # -- storage --
    def _allocate(self, spec: FieldSpec) -> None:
        missing = set(Transitions.DATA) - set(spec)
        if missing:
            raise ValueError(f"spec lacks fields {sorted(missing)}")
        self._rows = {name: torch.zeros(self.num_tasks, self.capacity + 1, *spec[name][0],
                                        dtype=spec[name][1], device=self.device)
                      for name in Transitions.DATA}

    @property
    def spec(self) -> FieldSpec | None:
        """Per field: shape of one transition's entry and dtype (``None`` before the first
        add of a buffer built without a spec)."""
        if not self._rows:
            return None
        return {name: (tuple(x.shape[2:]), x.dtype) for name, x in self._rows.items()}

    def _check(self, transitions: Transitions) -> None:
        if transitions.num_tasks != self.num_tasks:
            raise ValueError(f"transitions hold {transitions.num_tasks} tasks, the buffer "
                             f"{self.num_tasks}")
        if not self._rows:
            self._allocate(transitions.spec())
        elif transitions.spec() != self.spec:
            raise ValueError(f"transitions {transitions.spec()} do not match the buffer's "
                             f"fields {self.spec}")

    def _write(self, slots: torch.Tensor, transitions: Transitions) -> None:
        """Row ``j`` of task ``i`` into slot ``slots[i, j]`` (``capacity`` = discard); the
        slots other than ``capacity`` must be distinct within a task."""
        tasks = torch.arange(self.num_tasks, device=self.device).unsqueeze(1)
        for name, x in transitions.data().items():
            self._rows[name][tasks, slots] = x.to(self.device)

    def _ranks(self, transitions: Transitions) -> tuple[torch.Tensor, torch.Tensor,
                                                        torch.Tensor | None]:
        """``(rank, count, valid)``: each row's position among its task's real rows
        ``[tasks, n]``, the real rows per task ``[tasks]`` and the valid mask (or None)."""
        n = transitions.size
        if transitions.valid is None:
            rank = torch.arange(n, device=self.device).expand(self.num_tasks, n)
            return rank, torch.full((self.num_tasks,), n, device=self.device), None
        valid = transitions.valid.to(self.device)
        return valid.long().cumsum(-1) - 1, valid.sum(-1), valid

    # -- reading --
    @property
    def size(self) -> torch.Tensor:
        """Filled slots per task, ``[tasks]`` (long)."""
        return self._size

    @property
    def seen(self) -> torch.Tensor:
        """Transitions ever added per task, ``[tasks]`` (long)."""
        return self._seen

    @property
    def data(self) -> Transitions:
        """The storage as transitions ``[tasks, capacity, ...]`` (views; slot order, with
        ``valid`` marking each task's filled slots)."""
        if not self._rows:
            raise ValueError("the buffer is empty and has no fields yet")
        valid = torch.arange(self.capacity, device=self.device) < self._size[:, None]
        return Transitions(**{k: v[:, :self.capacity] for k, v in self._rows.items()},
                           valid=valid)

    def sample(self, batch_size: int, generator: torch.Generator) -> Transitions:
        """``batch_size`` transitions per task, ``[tasks, batch_size, ...]``, drawn
        uniformly with replacement from each task's filled slots. Every task must hold one."""
        if not self._all_filled:
            if not self._rows or not bool((self._size > 0).all()):
                raise ValueError("cannot sample: some task's buffer is empty")
            self._all_filled = True
        high = self._size[:, None].expand(self.num_tasks, batch_size)
        index = _uniform_below(high, generator, self.device)
        tasks = torch.arange(self.num_tasks, device=self.device).unsqueeze(1)
        return Transitions(**{k: v[tasks, index] for k, v in self._rows.items()})

    def __len__(self) -> int:
        """Transitions held over all tasks."""
        return int(self._size.sum().item())

    # -- devices and checkpoints --
    def to(self: Buffer, device: torch.device | str) -> Buffer:
        """Move the buffer to ``device`` (in place; returns ``self``)."""
        self.device = torch.device(device)
        self._rows = {k: v.to(self.device) for k, v in self._rows.items()}
        self._size, self._seen = self._size.to(self.device), self._seen.to(self.device)
        self._move_state()
        return self

    def _move_state(self) -> None:
        """Move subclass counters with :meth:`to`."""

    def _extra_state(self) -> dict[str, torch.Tensor]:
        return {}

    def _load_extra(self, state: dict[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        """Tensors and ints only (loads with ``torch.load(weights_only=True)``)."""
        return {"num_tasks": self.num_tasks, "capacity": self.capacity,
                "rows": {k: v[:, :self.capacity].clone() for k, v in self._rows.items()},
                "size": self._size.clone(), "seen": self._seen.clone(), **self._extra_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (onto this buffer's device)."""
        if (state["num_tasks"], state["capacity"]) != (self.num_tasks, self.capacity):
            raise ValueError(f"state is for {state['num_tasks']} tasks x {state['capacity']} "
                             f"slots, the buffer has {self.num_tasks} x {self.capacity}")
        rows: dict[str, torch.Tensor] = state["rows"]
        if rows:
            self._allocate({k: (tuple(v.shape[2:]), v.dtype) for k, v in rows.items()})
            for k, v in rows.items():
                self._rows[k][:, :self.capacity] = v.to(self.device)
        else:
            self._rows = {}
        self._size = state["size"].to(self.device).clone()
        self._seen = state["seen"].to(self.device).clone()
        self._all_filled = False
        self._load_extra(state)


class RingBuffer(_TaskReplay):
    """Each task's ``capacity`` most recent transitions, overwriting the oldest first.

    ``add`` takes ``[tasks, n, ...]`` transitions (any ``n``: a batch may wrap around the
    end of the storage, or exceed ``capacity``, when only its last ``capacity`` rows per
    task are kept). With ``valid`` set, each task adds only its real rows, in order, so tasks
    may advance by different amounts. Slot ``position[i]`` is the next to be written for
    task ``i``; the oldest held transition is there once the task's buffer is full.
    """

    def __init__(self, num_tasks: int, capacity: int, device: torch.device | str = "cpu",
                 spec: FieldSpec | None = None) -> None:
        super().__init__(num_tasks, capacity, device, spec)
        self._position = torch.zeros(num_tasks, dtype=torch.long, device=self.device)

    @property
    def position(self) -> torch.Tensor:
        """The next slot written per task, ``[tasks]`` (long)."""
        return self._position

    def add(self, transitions: Transitions) -> None:
        """Append every task's (real) rows in order, overwriting the oldest when full."""
        self._check(transitions)
        rank, count, valid = self._ranks(transitions)
        slots = (self._position[:, None] + rank) % self.capacity
        # of more than `capacity` new rows, only the last `capacity` are kept
        keep = rank >= (count - self.capacity)[:, None]
        if valid is not None:
            keep = keep & valid
        if valid is not None or transitions.size > self.capacity:
            slots = torch.where(keep, slots, self.capacity)
        self._write(slots, transitions)
        self._position = (self._position + count) % self.capacity
        self._size = (self._size + count).clamp_(max=self.capacity)
        self._seen = self._seen + count
        self._all_filled = self._all_filled or (valid is None and transitions.size > 0)

    def chronological(self) -> Transitions:
        """Every task's held transitions oldest first, ``[tasks, capacity, ...]`` (with
        ``valid`` marking each task's first ``size`` rows when some task is not full)."""
        data = self.data
        start = torch.where(self._size < self.capacity, 0, self._position)
        order = (start[:, None] + torch.arange(self.capacity, device=self.device)) % self.capacity
        return Transitions(**{k: _take_rows(v, order) for k, v in data.data().items()},
                           valid=data.valid)

    def _move_state(self) -> None:
        self._position = self._position.to(self.device)

    def _extra_state(self) -> dict[str, torch.Tensor]:
        return {"position": self._position.clone()}

    def _load_extra(self, state: dict[str, Any]) -> None:
        self._position = state["position"].to(self.device).clone()


class ReservoirBuffer(_TaskReplay):
    """A uniform sample of ``capacity`` transitions from everything each task has seen:
    Vitter's Algorithm R (Vitter 1985, "Random sampling with a reservoir", ACM TOMS 11(1)),
    run for every task at once.

    The ``t``-th transition a task sees (``t`` from 1) fills slot ``t - 1`` while
    ``t <= capacity``; after that it draws ``j`` uniform in ``[0, t)`` and replaces slot
    ``j`` if ``j < capacity``, else is dropped. Hence after ``t`` transitions each one is
    held with probability ``capacity / t``, independently of the order they came in. A
    batch of ``n`` rows is the same as ``n`` single adds in row order: each row draws its
    own ``j``, and where several rows of a batch pick one slot the latest one wins. The
    draws come from ``generator`` (one per row, real or padding), so a seed fixes the
    buffer's contents.
    """

    def add(self, transitions: Transitions, generator: torch.Generator) -> None:
        """Offer every task's (real) rows, in order, to its reservoir."""
        self._check(transitions)
        rank, count, valid = self._ranks(transitions)
        t = self._seen[:, None] + rank + 1  # 1-based item number in the task's stream
        draw = _uniform_below(t.clamp(min=1), generator, self.device)
        slots = torch.where(t <= self.capacity, t - 1, draw)
        accept = slots < self.capacity
        if valid is not None:
            accept = accept & valid
        slots = torch.where(accept, slots, self.capacity)
        # rows of one batch that pick the same slot: the latest (highest rank) wins
        tasks = torch.arange(self.num_tasks, device=self.device).unsqueeze(1)
        key = tasks * (self.capacity + 1) + slots
        latest = torch.full((self.num_tasks * (self.capacity + 1),), -1, dtype=torch.long,
                            device=self.device)
        latest.scatter_reduce_(0, key.flatten(), rank.flatten(), reduce="amax")
        winner = latest[key] == rank
        self._write(torch.where(winner, slots, self.capacity), transitions)
        self._seen = self._seen + count
        self._size = self._seen.clamp(max=self.capacity)
        self._all_filled = self._all_filled or (valid is None and transitions.size > 0)


def _take_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[i, index[i, j]]`` for ``x [tasks, N, ...]`` and ``index [tasks, M]``."""
    tasks = torch.arange(x.shape[0], device=x.device).unsqueeze(1)
    return x[tasks, index]
