"""Rotated digits: a supervised task stream for checking continual learners.

The "MNIST rotations" benchmark of Lopez-Paz & Ranzato (2017, "Gradient Episodic Memory
for Continual Learning", §5) and Riemer et al. (2019, MER, §5.1) — every task is the digit
classification problem with all images rotated by one fixed angle, the angles of the 20
tasks spread over [0, 180] degrees, each task's training examples seen once, in order —
built from scikit-learn's bundled 8 x 8 digits (1,797 images, 10 classes; ``load_digits``,
no download; the ``continual`` extra) instead of MNIST.

Rotation is bilinear about the image centre with zero fill
(:func:`torch.nn.functional.grid_sample`), pixels scaled to [0, 1] (the dataset's 0..16).
The images are split once into a training pool and a held-out test set (stratified by
class, from ``split_seed``); each task draws its training examples from the pool (without
replacement within the task, from the stream's generator: seeds see different draws) and
is scored on the *whole* test set rotated by its angle, so every task's score is over the
same images and differs only in the rotation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

IMAGE_SIDE = 8
NUM_CLASSES = 10


def load_digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 8 x 8 digits as ``(images [1797, 8, 8] float32 in [0, 1], labels
    [1797] long)``; a clear error when the ``continual`` extra is not installed."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the rotated-digits stream needs scikit-learn: pip install "
                          "'adaptrl[continual]'") from err
    data = load_digits()
    images = torch.as_tensor(np.asarray(data.images, dtype=np.float32)) / 16.0
    return images, torch.as_tensor(np.asarray(data.target), dtype=torch.long)


def rotate(images: torch.Tensor, degrees: float) -> torch.Tensor:
    """``images [n, H, W]`` rotated counter-clockwise by ``degrees`` about their centre
    (bilinear, zero fill); 0 degrees returns them unchanged."""
    if degrees == 0:
        return images.clone()
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    theta = torch.tensor([[c, -s, 0.0], [s, c, 0.0]], dtype=images.dtype)
    theta = theta.expand(images.shape[0], 2, 3)
    grid = F.affine_grid(theta, [images.shape[0], 1, *images.shape[1:]], align_corners=False)
    return F.grid_sample(images.unsqueeze(1), grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False).squeeze(1)


def stratified_split(labels: torch.Tensor, test_fraction: float, seed: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(train, test)``: ``test_fraction`` of every class held out, drawn from a
    generator seeded ``seed``; both sorted."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in labels.unique():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_test = round(test_fraction * len(idx))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


@dataclass(frozen=True)
class RotatedDigits:
    """The stream's fixed parts: angles, the training pool and the rotated test sets.

    ``angles``: one per task, ``num_tasks`` evenly spaced over ``[0, max_degrees]``
    (both ends included, as the issue asks for 20 angles over [0, 180]).
    """

    angles: tuple[float, ...]
    pool_x: torch.Tensor  # [P, 64] unrotated training pool
    pool_y: torch.Tensor  # [P]
    test_x: torch.Tensor  # [tasks, Q, 64] the test set rotated by each task's angle
    test_y: torch.Tensor  # [Q]
    examples_per_task: int

    @classmethod
    def build(cls, num_tasks: int = 20, max_degrees: float = 180.0,
              examples_per_task: int = 100, test_fraction: float = 0.2,
              split_seed: int = 0) -> RotatedDigits:
        if num_tasks < 1:
            raise ValueError(f"num_tasks must be >= 1, got {num_tasks}")
        images, labels = load_digits_tensors()
        train, test = stratified_split(labels, test_fraction, split_seed)
        if not 1 <= examples_per_task <= len(train):
            raise ValueError(f"examples_per_task must be in [1, {len(train)}] (the training "
                             f"pool), got {examples_per_task}")
        angles = tuple(float(a) for a in torch.linspace(0.0, max_degrees, num_tasks))
        test_x = torch.stack([rotate(images[test], a).flatten(1) for a in angles])
        return cls(angles, images[train].flatten(1), labels[train], test_x, labels[test],
                   examples_per_task)

    @property
    def num_tasks(self) -> int:
        return len(self.angles)

    def task_examples(self, task: int, learners: int, generator: torch.Generator
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Task ``task``'s training examples for ``learners`` independent learners:
        ``(x [learners, n, 64], y [learners, n])``, each learner its own draw of ``n =
        examples_per_task`` pool images (without replacement), rotated by the task's angle."""
        n = self.examples_per_task
        keys = torch.rand(learners, len(self.pool_y), generator=generator)
        pick = keys.argsort(-1)[:, :n]  # a uniform n-subset per learner, in random order
        images = self.pool_x[pick].reshape(learners * n, IMAGE_SIDE, IMAGE_SIDE)
        x = rotate(images, self.angles[task]).reshape(learners, n, IMAGE_SIDE ** 2)
        return x, self.pool_y[pick]
