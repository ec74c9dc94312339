"""Device-portable random draws: on the CPU exactly torch's own draws; known answers for
the inverse-CDF categorical sampler used across devices."""

from __future__ import annotations

import torch

from adaptrl.randomness import categorical, inverse_cdf, rand, randn


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(5)


def test_cpu_draws_are_torchs_own() -> None:
    assert torch.equal(rand((3, 4), _gen(), "cpu"), torch.rand((3, 4), generator=_gen()))
    assert torch.equal(randn((3, 4), _gen(), "cpu", torch.float64),
                       torch.randn((3, 4), generator=_gen(), dtype=torch.float64))
    probs = torch.softmax(torch.randn(6, 4, generator=_gen()), -1)
    assert torch.equal(categorical(probs, _gen()),
                       torch.multinomial(probs, 1, generator=_gen()).squeeze(-1))


def test_inverse_cdf_known_answers() -> None:
    probs = torch.tensor([[0.2, 0.0, 0.5, 0.3]]).expand(5, 4)
    u = torch.tensor([0.0, 0.19, 0.21, 0.69, 0.999999])
    assert inverse_cdf(probs, u).tolist() == [0, 0, 2, 2, 3]  # the empty class is never drawn
    almost_one = torch.tensor([[0.3, 0.3, 0.3999999]])
    assert inverse_cdf(almost_one, torch.tensor([0.99999999])).tolist() == [2]


def test_inverse_cdf_frequencies_match_the_probabilities() -> None:
    probs = torch.tensor([0.1, 0.6, 0.3]).expand(200_000, 3)
    draws = inverse_cdf(probs, torch.rand(200_000, generator=_gen()))
    freq = torch.bincount(draws, minlength=3).double() / 200_000
    torch.testing.assert_close(freq, torch.tensor([0.1, 0.6, 0.3], dtype=torch.float64),
                               atol=5e-3, rtol=0)
