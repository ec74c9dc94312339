"""OpenES: the antithetic estimate is the true gradient in expectation (a statistical test
that a wrong sign, a missing 1/sigma or a missing 1/2 fails), centred ranks, ascent on a
smooth function, exact resume, config errors."""

from __future__ import annotations

import io

import pytest
import torch
from pydantic import ValidationError

from adaptrl.optim.es import OpenES, OpenESConfig, antithetic_gradient, centered_ranks

D = 5


def _smooth(x: torch.Tensor) -> torch.Tensor:
    """``F(x) = sum sin(x_j) + 0.5 sum x_j^2 / (1 + j)`` per row of ``x [P, D]``."""
    j = torch.arange(x.shape[-1], dtype=x.dtype)
    return torch.sin(x).sum(-1) + 0.5 * (x * x / (1 + j)).sum(-1)


def _true_gradient(x: torch.Tensor) -> torch.Tensor:
    j = torch.arange(x.shape[-1], dtype=x.dtype)
    return torch.cos(x) + x / (1 + j)


def test_estimate_matches_the_true_gradient_in_expectation() -> None:
    """200 independent estimates (population 200, sigma 0.05, float64): their mean is within
    5 standard errors of grad F, entry by entry. The smoothing bias is O(sigma^2) ~ 1e-3,
    far below the tolerance; a factor-2 or sign error is ~20 standard errors away."""
    mu = torch.linspace(-1.0, 1.0, D, dtype=torch.float64)
    config = OpenESConfig(population=200, sigma=0.05, shaping="none")
    es = OpenES(mu, config)
    g = torch.Generator().manual_seed(0)
    estimates = []
    for _ in range(200):
        cand = es.ask(g)
        estimates.append(antithetic_gradient(cand.noise, _smooth(cand.vectors), config.sigma))
    est = torch.stack(estimates)
    mean, se = est.mean(0), est.std(0) / est.shape[0] ** 0.5
    truth = _true_gradient(mu)
    assert bool(((mean - truth).abs() < 5 * se).all()), (mean, truth, se)
    assert bool(((2 * mean - truth).abs() > 5 * se).all())  # a missing 1/2 would show
    assert float(se.max()) < 0.05 * float(truth.abs().min())


def test_antithetic_estimate_is_exact_for_a_linear_function() -> None:
    """For ``F(x) = a.x`` each pair gives ``(eps . a) eps``; with orthonormal noise times
    sqrt(n) the estimate is exactly ``a`` (the 1/(2 n sigma) normalisation by hand)."""
    a = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    noise = torch.eye(3, dtype=torch.float64) * 3 ** 0.5
    sigma = 0.1
    mu = torch.zeros(3, dtype=torch.float64)
    fitness = torch.cat([(mu + sigma * noise) @ a, (mu - sigma * noise) @ a])
    torch.testing.assert_close(antithetic_gradient(noise, fitness, sigma), a)
    with pytest.raises(ValueError, match="antithetic pairs"):
        antithetic_gradient(noise, fitness[:-1], sigma)


def test_centered_ranks() -> None:
    ranks = centered_ranks(torch.tensor([10.0, -3.0, 7.0, 100.0, 0.0]))
    torch.testing.assert_close(ranks, torch.tensor([0.25, -0.5, 0.0, 0.5, -0.25]))


def test_ascends_a_smooth_function() -> None:
    """Maximising -|x - 1|^2 from 0 with ranks and Adam gets close to 1."""
    es = OpenES(torch.zeros(D), OpenESConfig(population=32, sigma=0.1, lr=0.05))
    g = torch.Generator().manual_seed(1)
    for _ in range(150):
        cand = es.ask(g)
        es.tell(cand, -((cand.vectors - 1) ** 2).sum(-1))
    assert float((es.mean.detach() - 1).abs().max()) < 0.1


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_state_resumes_exactly(optimizer: str) -> None:
    config = OpenESConfig(population=8, sigma=0.1, lr=0.05, optimizer=optimizer)

    def run(es: OpenES, g: torch.Generator, steps: int) -> None:
        for _ in range(steps):
            cand = es.ask(g)
            es.tell(cand, _smooth(cand.vectors))

    g = torch.Generator().manual_seed(2)
    unbroken = OpenES(torch.zeros(D), config)
    run(unbroken, g, 10)

    g2 = torch.Generator().manual_seed(2)
    first = OpenES(torch.zeros(D), config)
    run(first, g2, 4)
    buf = io.BytesIO()
    torch.save({"es": first.state_dict(), "rng": g2.get_state()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    resumed = OpenES(torch.ones(D), config)
    resumed.load_state_dict(saved["es"])
    g3 = torch.Generator()
    g3.set_state(saved["rng"])
    run(resumed, g3, 6)
    assert resumed.iteration == unbroken.iteration == 10
    assert torch.equal(resumed.mean.detach(), unbroken.mean.detach())


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValidationError, match="population must be even"):
        OpenESConfig(population=7)
    with pytest.raises(ValidationError, match="sigma"):
        OpenESConfig(sigma=0.0)
