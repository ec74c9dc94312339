"""Replay buffers batched over tasks: ring order and overwrite, uniform sampling, Vitter's
Algorithm R (a statistical test shown to reject biased reservoirs), checkpoints, devices."""

from __future__ import annotations

import io

import pytest
import torch
from scipy.stats import chi2

from adaptrl.rollouts.replay import ReservoirBuffer, RingBuffer
from adaptrl.rollouts.transitions import Transitions


def stream(ids: torch.Tensor, valid: torch.Tensor | None = None) -> Transitions:
    """Transitions ``[tasks, n]`` that carry their id ``ids[i, j]`` in every field."""
    x = ids.float()
    return Transitions(x.unsqueeze(-1), ids.long(), x, (x + 1).unsqueeze(-1),
                       ids % 2 == 0, ids % 3 == 0, valid)


def arange_stream(tasks: int, start: int, n: int) -> Transitions:
    return stream(torch.arange(start, start + n).expand(tasks, n))


def ids_of(x: Transitions) -> torch.Tensor:
    return x.action


def add(buf: RingBuffer | ReservoirBuffer, x: Transitions, g: torch.Generator) -> None:
    """Add to either kind (only the reservoir draws)."""
    if isinstance(buf, ReservoirBuffer):
        buf.add(x, g)
    else:
        buf.add(x)


def chi_square_rejects(counts: torch.Tensor, expected: torch.Tensor | float,
                       p: float = 1e-3) -> bool:
    """Whether Pearson's statistic of ``counts`` against ``expected`` lies beyond the
    ``1 - p`` quantile of chi-square with ``len(counts) - 1`` degrees of freedom."""
    stat = float((((counts.double() - expected) ** 2) / expected).sum())
    return stat > chi2.ppf(1 - p, counts.numel() - 1)


# -- ring buffer ----------------------------------------------------------------------------
def test_ring_wraps_around_and_overwrites_the_oldest() -> None:
    buf = RingBuffer(num_tasks=2, capacity=4)
    buf.add(arange_stream(2, 0, 3))
    assert buf.size.tolist() == [3, 3] and buf.position.tolist() == [3, 3]
    buf.add(arange_stream(2, 3, 3))  # wraps: 3 -> slot 3, 4 -> slot 0, 5 -> slot 1
    assert ids_of(buf.data)[0].tolist() == [4, 5, 2, 3]
    assert buf.size.tolist() == [4, 4] and buf.position.tolist() == [2, 2]
    assert buf.seen.tolist() == [6, 6]
    assert ids_of(buf.chronological())[1].tolist() == [2, 3, 4, 5]
    buf.add(arange_stream(2, 6, 9))  # more than the capacity: only the last 4 remain
    assert ids_of(buf.chronological())[0].tolist() == [11, 12, 13, 14]
    assert buf.position.tolist() == [3, 3] and buf.seen.tolist() == [15, 15]
    assert torch.equal(buf.data.next_obs[..., 0], buf.data.obs[..., 0] + 1)  # rows kept whole


def test_ring_batch_adds_equal_single_adds_per_task() -> None:
    """Any batch sizes (wrapping, over the capacity) and padding masks: the buffer is as if
    every task's real rows had been added one at a time, each task on its own."""
    g = torch.Generator().manual_seed(0)
    tasks, cap = 3, 5
    batched = RingBuffer(tasks, cap)
    singles = [RingBuffer(1, cap) for _ in range(tasks)]
    next_id = 0
    for n in (2, 4, 1, 12, 3, 7):
        ids = torch.arange(next_id, next_id + tasks * n).view(tasks, n)
        next_id += tasks * n
        valid = torch.rand(tasks, n, generator=g) < 0.7 if n != 4 else None
        batched.add(stream(ids, valid))
        for i, single in enumerate(singles):
            for j in range(n):
                if valid is None or valid[i, j]:
                    single.add(stream(ids[i:i + 1, j:j + 1]))
    for i, single in enumerate(singles):
        assert batched.position[i] == single.position[0]
        assert batched.size[i] == single.size[0] and batched.seen[i] == single.seen[0]
        k = int(single.size[0])
        for name, x in batched.data.data().items():
            assert torch.equal(x[i, :k], single.data.data()[name][0, :k]), name


def test_ring_sampling_is_uniform_over_each_tasks_filled_part() -> None:
    part = RingBuffer(num_tasks=2, capacity=30)
    valid = torch.tensor([[True] * 20, [True] * 12 + [False] * 8])
    part.add(stream(torch.arange(20).expand(2, 20), valid))
    assert part.size.tolist() == [20, 12]
    batch = part.sample(24_000, torch.Generator().manual_seed(1))
    assert batch.obs.shape == (2, 24_000, 1) and batch.valid is None
    for task, filled in ((0, 20), (1, 12)):
        ids = ids_of(batch)[task]
        assert int(ids.max()) < filled  # never an unfilled slot
        counts = torch.bincount(ids, minlength=filled)
        assert not chi_square_rejects(counts, 24_000 / filled)


def test_the_sampling_test_rejects_a_biased_sampler() -> None:
    """The chi-square check above fails on a sampler that favours the newest slot a little
    (drawing from size + 1 slots and clamping), so it can fail."""
    g = torch.Generator().manual_seed(1)
    filled = 20
    biased = (torch.randint(0, filled + 1, (24_000,), generator=g)).clamp(max=filled - 1)
    assert chi_square_rejects(torch.bincount(biased, minlength=filled), 24_000 / filled)


def test_sampling_an_empty_task_is_refused() -> None:
    buf = RingBuffer(num_tasks=2, capacity=4)
    with pytest.raises(ValueError, match="empty"):
        buf.sample(3, torch.Generator())
    buf.add(stream(torch.arange(2).view(2, 1), torch.tensor([[True], [False]])))
    with pytest.raises(ValueError, match="empty"):
        buf.sample(3, torch.Generator())


def test_fields_come_from_a_spec_or_the_first_add_and_must_match() -> None:
    x = arange_stream(1, 0, 3)
    from_spec = RingBuffer(1, 8, spec=x.spec())
    from_add = RingBuffer(1, 8)
    assert from_add.spec is None
    for buf in (from_spec, from_add):
        buf.add(x)
    assert from_spec.spec == from_add.spec == x.spec()
    for name in Transitions.DATA:
        assert torch.equal(from_spec.data.data()[name], from_add.data.data()[name])
    wrong = Transitions(x.obs.double(), x.action, x.reward, x.next_obs, x.terminated,
                        x.truncated)
    with pytest.raises(ValueError, match="match"):
        from_add.add(wrong)
    with pytest.raises(ValueError, match="tasks"):
        from_add.add(arange_stream(2, 0, 3))


# -- reservoir ------------------------------------------------------------------------------
def reservoir_inclusions(replicas: int, capacity: int, chunks: list[int], seed: int
                         ) -> torch.Tensor:
    """How often each item of a stream ends in the reservoir, over ``replicas`` independent
    reservoirs (the buffer's tasks), the stream offered in ``chunks``."""
    buf = ReservoirBuffer(replicas, capacity)
    g = torch.Generator().manual_seed(seed)
    start = 0
    for n in chunks:
        buf.add(arange_stream(replicas, start, n), g)
        start += n
    assert buf.seen.tolist() == [start] * replicas and buf.size.tolist() == [capacity] * replicas
    held = ids_of(buf.data)
    assert all(len(set(row)) == capacity for row in held.tolist())  # no item held twice
    return torch.bincount(held.flatten(), minlength=start)


@pytest.mark.parametrize("chunks", [[1] * 60, [3, 7, 50], [60]])
def test_reservoir_holds_every_item_with_probability_capacity_over_t(chunks: list[int]) -> None:
    replicas, capacity, t = 3000, 6, sum(chunks)
    counts = reservoir_inclusions(replicas, capacity, chunks, seed=2)
    assert not chi_square_rejects(counts, replicas * capacity / t)


def test_the_reservoir_test_rejects_biased_reservoirs() -> None:
    """The same statistic on (a) a buffer that keeps the newest items (a ring) and (b)
    Algorithm R with the replacement probability 1/2 instead of capacity / t."""
    replicas, capacity, t = 3000, 6, 60
    ring = RingBuffer(replicas, capacity)
    ring.add(arange_stream(replicas, 0, t))
    newest = torch.bincount(ids_of(ring.data).flatten(), minlength=t)
    assert chi_square_rejects(newest, replicas * capacity / t)
    g = torch.Generator().manual_seed(2)
    held = torch.arange(capacity).repeat(replicas, 1)
    for item in range(capacity, t):
        replace = torch.rand(replicas, generator=g) < 0.5
        slot = torch.randint(0, capacity, (replicas,), generator=g)
        held[replace, slot[replace]] = item
    half = torch.bincount(held.flatten(), minlength=t)
    assert chi_square_rejects(half, replicas * capacity / t)


def test_reservoir_fills_in_order_before_it_samples() -> None:
    buf = ReservoirBuffer(2, capacity=5)
    buf.add(arange_stream(2, 0, 3), torch.Generator().manual_seed(0))
    assert ids_of(buf.data)[:, :3].tolist() == [[0, 1, 2]] * 2
    assert buf.size.tolist() == [3, 3] and buf.data.valid is not None
    assert buf.data.valid[0].tolist() == [True] * 3 + [False] * 2


def test_a_batch_is_offered_as_its_rows_one_at_a_time() -> None:
    """One task: a batch draws the same numbers as single adds, so the contents must agree
    exactly, including rows of one batch that pick the same slot (the latest wins)."""
    cap = 4
    batched, single = ReservoirBuffer(1, cap), ReservoirBuffer(1, cap)
    gb, gs = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    start = 0
    for n in (2, 9, 40, 1, 25):  # 40 rows into 4 slots: collisions are certain
        batched.add(arange_stream(1, start, n), gb)
        for j in range(n):
            single.add(arange_stream(1, start + j, 1), gs)
        start += n
        assert torch.equal(ids_of(batched.data), ids_of(single.data))


def test_reservoir_skips_padding_rows() -> None:
    buf = ReservoirBuffer(2, capacity=3)
    valid = torch.tensor([[True, False, True, False], [False, False, False, True]])
    buf.add(stream(torch.arange(8).view(2, 4), valid), torch.Generator().manual_seed(0))
    assert buf.seen.tolist() == [2, 1] and buf.size.tolist() == [2, 1]
    assert ids_of(buf.data)[0, :2].tolist() == [0, 2] and ids_of(buf.data)[1, 0] == 7


def test_reservoir_is_deterministic_under_a_seed() -> None:
    def contents(seed: int) -> torch.Tensor:
        buf = ReservoirBuffer(4, capacity=5)
        g = torch.Generator().manual_seed(seed)
        for start in range(0, 100, 20):
            buf.add(arange_stream(4, start, 20), g)
        return ids_of(buf.data)
    assert torch.equal(contents(0), contents(0))
    assert not torch.equal(contents(0), contents(1))


# -- checkpoints and devices ----------------------------------------------------------------
def round_trip(state: dict) -> dict:
    """Through torch.save / torch.load(weights_only=True), as checkpoints are written."""
    f = io.BytesIO()
    torch.save(state, f)
    f.seek(0)
    return torch.load(f, weights_only=True)


@pytest.mark.parametrize("kind", [RingBuffer, ReservoirBuffer])
def test_state_dict_round_trip_resumes_exactly(kind: type) -> None:
    g = torch.Generator().manual_seed(3)
    buf = kind(3, 7)
    for start in (0, 5, 16):
        add(buf, arange_stream(3, start, 5 + start % 4), g)
    state, g_state = round_trip(buf.state_dict()), g.get_state()
    resumed = kind(3, 7)
    resumed.load_state_dict(state)
    g2 = torch.Generator()
    g2.set_state(g_state)
    for b, gen in ((buf, g), (resumed, g2)):  # the unbroken run and the resumed one
        add(b, arange_stream(3, 100, 11), gen)
    a, b = buf.sample(50, g), resumed.sample(50, g2)
    for name in Transitions.DATA:
        assert torch.equal(getattr(a, name), getattr(b, name)), name
        assert torch.equal(buf.data.data()[name], resumed.data.data()[name]), name
    assert torch.equal(buf.seen, resumed.seen) and torch.equal(buf.size, resumed.size)
    with pytest.raises(ValueError, match="slots"):
        kind(3, 8).load_state_dict(state)


def test_a_single_task_and_an_empty_state() -> None:
    buf = RingBuffer(1, 3)
    empty = RingBuffer(1, 3)
    empty.load_state_dict(round_trip(buf.state_dict()))  # before any add: no fields yet
    assert empty.spec is None and len(empty) == 0
    buf.add(arange_stream(1, 0, 2))
    assert len(buf) == 2 and buf.sample(4, torch.Generator()).obs.shape == (1, 4, 1)
    assert buf.to("cpu") is buf


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_buffers_on_cuda_match_the_cpu() -> None:
    """The same adds and draws (a CPU generator) on either device: the same buffer."""
    for kind in (RingBuffer, ReservoirBuffer):
        bufs = {dev: kind(4, 6, device=dev) for dev in ("cpu", "cuda")}
        draws = {}
        for dev, buf in bufs.items():
            g = torch.Generator().manual_seed(0)
            for start in (0, 5, 20):
                x = arange_stream(4, start, 5 + start).to(dev)
                add(buf, x, g)
            draws[dev] = buf.sample(9, g)
            assert buf.data.obs.device.type == dev
        for name in Transitions.DATA:
            assert torch.equal(getattr(draws["cpu"], name), getattr(draws["cuda"], name).cpu())
        moved = bufs["cuda"].to("cpu")
        assert torch.equal(moved.data.obs, bufs["cpu"].data.obs)
        back = kind(4, 6, device="cuda")
        back.load_state_dict(bufs["cpu"].state_dict())
        assert back.size.device.type == "cuda"
