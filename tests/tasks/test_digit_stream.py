"""The rotated-digits stream (tasks/digit_stream.py): rotations by hand, the split, draws."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("sklearn")

from adaptrl.tasks.digit_stream import RotatedDigits, load_digits_tensors, rotate  # noqa: E402


def test_quarter_turns_move_pixels_exactly() -> None:
    images = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
    quarter = rotate(images, 90.0)
    # a quarter turn maps pixel centres onto pixel centres: it is a permutation of pixels
    turned = [torch.rot90(images, k, dims=(1, 2)) for k in (1, -1)]
    assert any(torch.allclose(quarter, t, atol=1e-5) for t in turned)
    torch.testing.assert_close(rotate(quarter, 270.0), images, atol=1e-5, rtol=0)
    torch.testing.assert_close(rotate(images, 0.0), images)
    half = rotate(images, 180.0)
    torch.testing.assert_close(half, torch.flip(images, dims=(1, 2)), atol=1e-5, rtol=0)


def test_the_stream_has_twenty_angles_and_a_fixed_disjoint_test_set() -> None:
    images, labels = load_digits_tensors()
    assert images.shape == (1797, 8, 8) and float(images.max()) == 1.0
    stream = RotatedDigits.build()
    assert stream.num_tasks == 20
    assert stream.angles[0] == 0.0 and stream.angles[-1] == 180.0
    steps = torch.tensor(stream.angles).diff()
    torch.testing.assert_close(steps, torch.full((19,), 180.0 / 19), atol=1e-4, rtol=0)
    q, p = len(stream.test_y), len(stream.pool_y)
    assert q + p == 1797 and abs(q - 0.2 * 1797) < 10
    # stratified: every class keeps about a fifth of its images in the test set
    for c in range(10):
        share = float((stream.test_y == c).sum()) / float((labels == c).sum())
        assert abs(share - 0.2) < 0.02
    # task 0 is unrotated; the last is the test images turned half round
    flat = images.flatten(1)
    rows = {tuple(r.tolist()) for r in flat}
    assert all(tuple(r.tolist()) in rows for r in stream.test_x[0])
    torch.testing.assert_close(stream.test_x[-1].reshape(-1, 8, 8),
                               rotate(stream.test_x[0].reshape(-1, 8, 8), 180.0))
    assert not {tuple(r.tolist()) for r in stream.test_x[0]} & \
        {tuple(r.tolist()) for r in stream.pool_x}


def test_task_examples_are_distinct_pool_images_per_learner() -> None:
    stream = RotatedDigits.build(num_tasks=3, examples_per_task=50)
    x, y = stream.task_examples(0, 2, torch.Generator().manual_seed(1))
    assert x.shape == (2, 50, 64) and y.shape == (2, 50)
    pool = {tuple(r.tolist()): int(c) for r, c in zip(stream.pool_x, stream.pool_y,
                                                       strict=True)}
    for i in range(2):
        keys = [tuple(r.tolist()) for r in x[i]]
        assert len(set(keys)) == 50  # no image twice within a task
        assert all(pool[key] == int(c) for key, c in zip(keys, y[i], strict=True))
    assert not torch.equal(x[0], x[1])  # learners draw their own examples
    with pytest.raises(ValueError, match="examples_per_task"):
        RotatedDigits.build(examples_per_task=5000)
