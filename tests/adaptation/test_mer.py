"""MER's update rule (adaptation/mer.py) against answers computed by hand.

On the quadratic ``L(theta; x) = 1/2 ||theta - x||^2`` an SGD step is the affine map
``theta -> (1 - a) theta + a x``, so every update has a closed form: ``n`` sequential steps
give ``(1 - a)^n theta + sum_j a (1 - a)^(n - j) x_j`` (the order of the ``x_j`` matters),
and the Reptile steps are interpolations of those.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from adaptrl.adaptation.mer import (
    Example,
    ExampleLoss,
    batch_sgd_step,
    mer_batches,
    mer_one_big_batch,
    mer_update,
    over_learners,
    replay_sgd,
    reptile_step,
    sgd_through,
    within_batch,
)

A = 0.1  # SGD step size


def quadratic(params: dict[str, torch.Tensor], example: Example) -> torch.Tensor:
    return 0.5 * (params["w"] - example["x"]).square().sum()


def sequential_answer(theta: torch.Tensor, xs: list[torch.Tensor], a: float = A
                      ) -> torch.Tensor:
    """The closed form of per-sample SGD through ``xs`` on the quadratic."""
    n = len(xs)
    out = (1 - a) ** n * theta
    for j, x in enumerate(xs, start=1):
        out = out + a * (1 - a) ** (n - j) * x
    return out


def test_per_sample_sgd_is_sequential_and_ordered() -> None:
    theta = torch.tensor([1.0, -2.0], dtype=torch.float64)
    xs = [torch.tensor([3.0, 0.0]), torch.tensor([-1.0, 5.0]), torch.tensor([0.5, 0.5])]
    xs = [x.double() for x in xs]
    out = sgd_through({"w": theta}, quadratic, {"x": torch.stack(xs)}, A)["w"]
    torch.testing.assert_close(out, sequential_answer(theta, xs))
    backwards = sgd_through({"w": theta}, quadratic, {"x": torch.stack(xs[::-1])}, A)["w"]
    assert not torch.allclose(out, backwards)  # the order of the samples matters
    torch.testing.assert_close(backwards, sequential_answer(theta, xs[::-1]))


def test_within_batch_reptile_step_equals_its_formula() -> None:
    theta = torch.tensor([0.3, 0.7], dtype=torch.float64)
    xs = torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    beta = 0.3
    out = within_batch({"w": theta}, quadratic, {"x": xs}, A, beta)["w"]
    after = sequential_answer(theta, list(xs))
    torch.testing.assert_close(out, theta + beta * (after - theta))


def test_across_batch_reptile_step_equals_its_formula() -> None:
    g = torch.Generator().manual_seed(1)
    theta = torch.randn(3, generator=g, dtype=torch.float64)
    batches = torch.randn(3, 4, 3, generator=g, dtype=torch.float64)  # s = 3, k + 1 = 4
    beta, gamma = 0.25, 0.6
    out = mer_update({"w": theta}, quadratic, {"x": batches}, A, beta, gamma)["w"]
    # by hand: three within-batch steps, then the across-batch interpolation
    t = theta
    for i in range(3):
        t = t + beta * (sequential_answer(t, list(batches[i])) - t)
    torch.testing.assert_close(out, theta + gamma * (t - theta))


def test_one_big_batch_is_one_pass_and_one_reptile_step() -> None:
    g = torch.Generator().manual_seed(2)
    theta = torch.randn(2, generator=g, dtype=torch.float64)
    batches = torch.randn(2, 3, 2, generator=g, dtype=torch.float64)
    beta, gamma = 0.5, 0.8
    out = mer_one_big_batch({"w": theta}, quadratic, {"x": batches}, A, beta, gamma)["w"]
    after = sequential_answer(theta, list(batches.flatten(0, 1)))
    torch.testing.assert_close(out, theta + beta * gamma * (after - theta))
    # with beta = 1 the within-batch steps are the identity: the variant is Algorithm 1
    full = mer_update({"w": theta}, quadratic, {"x": batches}, A, 1.0, gamma)["w"]
    big = mer_one_big_batch({"w": theta}, quadratic, {"x": batches}, A, 1.0, gamma)["w"]
    torch.testing.assert_close(full, big)


def test_reptile_step_endpoints_and_rate_checks() -> None:
    a, b = {"w": torch.zeros(2)}, {"w": torch.ones(2)}
    torch.testing.assert_close(reptile_step(a, b, 0.0)["w"], a["w"])
    torch.testing.assert_close(reptile_step(a, b, 1.0)["w"], b["w"])
    with pytest.raises(ValueError, match="beta"):
        mer_update(a, quadratic, {"x": torch.zeros(1, 1, 2)}, A, -0.1, 1.0)


def test_batch_sgd_step_is_the_mean_gradient() -> None:
    theta = torch.tensor([1.0, 1.0], dtype=torch.float64)
    xs = torch.tensor([[0.0, 2.0], [4.0, -2.0]], dtype=torch.float64)
    out = batch_sgd_step({"w": theta}, quadratic, {"x": xs}, A)["w"]
    torch.testing.assert_close(out, theta - A * (theta - xs.mean(0)))


def test_replay_sgd_is_one_mean_gradient_step_per_batch() -> None:
    """Riemer et al.'s ER baseline on MER's batches: on the quadratic each batch's step is
    ``theta - a (theta - mean x)``, applied batch after batch."""
    g = torch.Generator().manual_seed(4)
    theta = torch.randn(2, generator=g, dtype=torch.float64)
    batches = torch.randn(3, 4, 2, generator=g, dtype=torch.float64)  # s = 3, k + 1 = 4
    out = replay_sgd({"w": theta}, quadratic, {"x": batches}, A)["w"]
    t = theta
    for i in range(3):
        t = t - A * (t - batches[i].mean(0))
    torch.testing.assert_close(out, t)


def mlp_loss(model: nn.Module) -> ExampleLoss:
    def loss(params: dict[str, torch.Tensor], ex: Example) -> torch.Tensor:
        logits = functional_call(model, params, (ex["x"].unsqueeze(0),))
        return nn.functional.cross_entropy(logits, ex["y"].unsqueeze(0))
    return loss


def test_mer_on_an_mlp_matches_a_plain_autograd_loop() -> None:
    """An independent implementation: modules, .backward() and in-place SGD steps."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    g = torch.Generator().manual_seed(3)
    batches = {"x": torch.randn(2, 4, 5, generator=g, dtype=torch.float64),
               "y": torch.randint(0, 3, (2, 4), generator=g)}
    lr, beta, gamma = 0.2, 0.4, 0.7
    out = mer_update(params, mlp_loss(model), batches, lr, beta, gamma)

    ref = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    ref.load_state_dict(model.state_dict())
    start = {k: v.detach().clone() for k, v in ref.named_parameters()}
    for i in range(2):
        before = {k: v.detach().clone() for k, v in ref.named_parameters()}
        for j in range(4):
            ref.zero_grad()
            nn.functional.cross_entropy(ref(batches["x"][i, j:j + 1]),
                                        batches["y"][i, j:j + 1]).backward()
            with torch.no_grad():
                for p in ref.parameters():
                    assert p.grad is not None
                    p.sub_(lr * p.grad)
        with torch.no_grad():
            for k, p in ref.named_parameters():
                p.copy_(before[k] + beta * (p - before[k]))
    for k, p in ref.named_parameters():
        torch.testing.assert_close(out[k], start[k] + gamma * (p.detach() - start[k]))


def test_over_learners_equals_a_loop_over_learners() -> None:
    g = torch.Generator().manual_seed(4)
    thetas = torch.randn(5, 3, generator=g, dtype=torch.float64)
    batches = torch.randn(5, 2, 3, 3, generator=g, dtype=torch.float64)  # [L, s, k+1, d]
    batched = over_learners(mer_update, quadratic, lr=A, beta=0.3, gamma=0.9)
    out = batched({"w": thetas}, {"x": batches})["w"]
    for i in range(5):
        one = mer_update({"w": thetas[i]}, quadratic, {"x": batches[i]}, A, 0.3, 0.9)["w"]
        torch.testing.assert_close(out[i], one)


def test_mer_batches_put_the_current_example_once_in_every_batch() -> None:
    g = torch.Generator().manual_seed(5)
    memories = {"x": torch.arange(2 * 3 * 4 * 2, dtype=torch.float64).reshape(2, 3, 4, 2),
                "y": torch.arange(2 * 3 * 4).reshape(2, 3, 4)}
    current = {"x": torch.full((2, 2), -1.0, dtype=torch.float64),
               "y": torch.tensor([-1, -2])}
    places = torch.zeros(5)
    for _ in range(400):
        out = mer_batches(current, memories, g, learner_dims=1)
        assert out["x"].shape == (2, 3, 5, 2) and out["y"].shape == (2, 3, 5)
        is_current = out["y"] < 0
        assert bool((is_current.sum(-1) == 1).all())  # exactly once per batch
        torch.testing.assert_close(out["y"][0][is_current[0]], torch.full((3,), -1))
        # the memories keep their relative order and their (x, y) pairing
        kept = out["y"][~is_current].reshape(2, 3, 4)
        torch.testing.assert_close(kept, memories["y"])
        torch.testing.assert_close(out["x"][..., 0][~is_current].reshape(2, 3, 4),
                                   memories["x"][..., 0])
        places += torch.bincount(is_current.float().argmax(-1).flatten(), minlength=5)
    # the place is uniform over the k + 1 = 5 slots (2400 draws; 5 sigma band)
    expected = 400 * 6 / 5
    assert bool(((places - expected).abs() < 5 * (expected * 0.8) ** 0.5).all()), places
    with pytest.raises(ValueError, match="does not fit"):
        mer_batches({"x": torch.zeros(3, 2), "y": torch.zeros(3)}, memories, g, 1)
