"""The learned optimizer: Adam before meta-training, tasks batched as one, a vmapped
population equal to a loop over its members, a meta-gradient equal to finite differences,
and a quadratic reduced after meta-training on quadratics (Andrychowicz et al. 2016, §3.1:
the known check of a learned optimizer)."""

from __future__ import annotations

import pytest
import torch

from adaptrl.adaptation.inner_optimizers import Adam, InnerOptimizer
from adaptrl.adaptation.learned_optimizer import (
    LearnedOptimizer,
    LearnedOptimizerConfig,
    LearnedStep,
)
from adaptrl.models.functional import Params

N = 4  # tasks


def _problem(seed: int = 0, n: int = N, dtype: torch.dtype = torch.float32
             ) -> tuple[Params, Params, torch.Tensor]:
    """Quadratics ``1/2 sum a (x - c)^2`` per task: a start, centres and curvatures."""
    g = torch.Generator().manual_seed(seed)
    x = {"w": torch.randn(n, 3, 2, generator=g, dtype=dtype),
         "b": torch.randn(n, 3, generator=g, dtype=dtype)}
    c = {k: torch.randn(v.shape, generator=g, dtype=dtype) for k, v in x.items()}
    a = torch.exp(torch.randn(n, generator=g, dtype=dtype))
    return x, c, a


def _grads(x: Params, c: Params, a: torch.Tensor) -> Params:
    return {k: a.reshape(-1, *[1] * (v.dim() - 1)) * (v - c[k]) for k, v in x.items()}


def _loss(x: Params, c: Params, a: torch.Tensor) -> torch.Tensor:
    """Per-task quadratic losses ``[tasks]``."""
    return sum(0.5 * a * (x[k] - c[k]).pow(2).flatten(1).sum(1) for k in x)  # type: ignore[return-value]


def _run(opt: InnerOptimizer, x: Params, c: Params, a: torch.Tensor,
         steps: int) -> tuple[Params, list[torch.Tensor]]:
    state = opt.init(x)
    losses = [_loss(x, c, a)]
    for _ in range(steps):
        x, state = opt.step(x, _grads(x, c, a), state)
        losses.append(_loss(x, c, a))
    return x, losses


def _perturbed(seed: int = 1) -> LearnedOptimizer:
    torch.manual_seed(seed)
    opt = LearnedOptimizer(LearnedOptimizerConfig(hidden=8, lr=0.05))
    with torch.no_grad():
        for w in opt.parameters():
            w.add_(0.1 * torch.randn_like(w))
    return opt


def test_starts_as_adam() -> None:
    x, c, a = _problem()
    opt = LearnedOptimizer(LearnedOptimizerConfig(lr=0.05))
    ours, _ = _run(opt.detached(), x, c, a, 5)
    adam, _ = _run(Adam(0.05), x, c, a, 5)
    for k in x:
        torch.testing.assert_close(ours[k], adam[k], rtol=1e-5, atol=1e-6)


def test_batched_over_tasks_equals_per_task() -> None:
    x, c, a = _problem()
    opt = _perturbed().detached()
    batched, _ = _run(opt, x, c, a, 4)
    for i in range(N):
        one, _ = _run(opt, {k: v[i:i + 1] for k, v in x.items()},
                      {k: v[i:i + 1] for k, v in c.items()}, a[i:i + 1], 4)
        for k in x:
            torch.testing.assert_close(batched[k][i:i + 1], one[k], rtol=1e-6, atol=1e-7)


def test_vmapped_population_equals_a_loop_over_members() -> None:
    members, per_member = 3, 2
    x, c, a = _problem(n=members * per_member)
    opt = _perturbed()
    g = torch.Generator().manual_seed(2)
    vectors = opt.flat() + 0.2 * torch.randn(members, opt.flat().numel(), generator=g)
    together, _ = _run(opt.population(vectors), x, c, a, 4)
    for p in range(members):
        rows = slice(p * per_member, (p + 1) * per_member)
        alone = LearnedStep(opt.config, opt.unflatten(vectors[p]))
        one, _ = _run(alone, {k: v[rows] for k, v in x.items()},
                      {k: v[rows] for k, v in c.items()}, a[rows], 4)
        for k in x:
            torch.testing.assert_close(together[k][rows], one[k], rtol=1e-6, atol=1e-6)


def test_population_needs_a_multiple_of_its_size() -> None:
    x, c, a = _problem(n=5)
    opt = _perturbed()
    with pytest.raises(ValueError, match="multiple of 2"):
        _run(opt.population(opt.flat().expand(2, -1).clone()), x, c, a, 1)


def test_flat_round_trip() -> None:
    opt = _perturbed()
    vec = opt.flat()
    other = LearnedOptimizer(opt.config)
    other.load_flat(vec)
    torch.testing.assert_close(other.flat(), vec)
    with pytest.raises(ValueError, match="vectors of size"):
        opt.unflatten(vec[:-1])


def test_meta_gradient_matches_finite_differences() -> None:
    """d(loss after 3 steps)/d(weights) by autograd through the unroll equals central
    differences (float64): truncated backpropagation's gradient is the true one."""
    x, c, a = _problem(dtype=torch.float64)
    opt = _perturbed().double()

    def after(vec: torch.Tensor) -> torch.Tensor:
        _, losses = _run(LearnedStep(opt.config, opt.unflatten(vec)), x, c, a, 3)
        return losses[-1].sum()

    vec = opt.flat().double().requires_grad_(True)
    (grad,) = torch.autograd.grad(after(vec), vec)
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        d = torch.randn(vec.shape, generator=g, dtype=torch.float64)
        h = 1e-6
        with torch.no_grad():
            fd = (after(vec + h * d) - after(vec - h * d)) / (2 * h)
        torch.testing.assert_close(grad @ d, fd, rtol=1e-5, atol=1e-8)


def test_reduces_a_quadratic_after_meta_training_on_quadratics() -> None:
    """Meta-train by backpropagation through 10-step unrolls on random quadratics (curvature
    spread e^N(0,1)), then train held-out quadratics: the learned optimizer lowers their loss
    by far more than its starting point (Adam at lr 0.01) does."""
    torch.manual_seed(0)
    steps = 10
    opt = LearnedOptimizer(LearnedOptimizerConfig(hidden=8, lr=0.01, horizon=steps))
    meta = torch.optim.Adam(opt.parameters(), lr=0.03)
    for it in range(150):
        x, c, a = _problem(seed=100 + it, n=16)
        _, losses = _run(opt, x, c, a, steps)
        objective = torch.stack([(f / losses[0]).log().mean() for f in losses[1:]]).mean()
        meta.zero_grad()
        objective.backward()
        meta.step()
    x, c, a = _problem(seed=7, n=64)
    _, before = _run(LearnedOptimizer(opt.config).detached(), x, c, a, steps)  # Adam
    _, learned = _run(opt.detached(), x, c, a, steps)
    ratio_before = float((before[-1] / before[0]).median().detach())
    ratio_after = float((learned[-1] / learned[0]).median().detach())
    assert ratio_after < 0.2, (ratio_before, ratio_after)
    assert ratio_after < 0.2 * ratio_before, (ratio_before, ratio_after)


def test_rmsprop_baseline_equals_torch_rmsprop() -> None:
    """The tuned baseline's RMSProp (per task) takes torch.optim.RMSprop's steps."""
    from adaptrl.adaptation.inner_optimizers import RMSProp

    x, c, a = _problem(dtype=torch.float64)
    ours, _ = _run(RMSProp(0.02), x, c, a, 5)
    for i in range(N):
        ref = {k: v[i].clone().requires_grad_(True) for k, v in x.items()}
        opt = torch.optim.RMSprop(list(ref.values()), lr=0.02, alpha=0.99, eps=1e-8)
        for _ in range(5):
            opt.zero_grad()
            loss = sum(0.5 * a[i] * (ref[k] - c[k][i]).pow(2).sum() for k in ref)
            loss.backward()  # type: ignore[union-attr]
            opt.step()
        for k in x:
            torch.testing.assert_close(ours[k][i], ref[k].detach())
