"""Random draws on any device from one seeded generator.

A run owns one ``torch.Generator`` (CPU, seeded by the config), and every random number of
the run comes from it, so that a seed fixes the run and a resumed run continues it. Tensors
may live on a GPU; torch refuses to draw CUDA tensors from a CPU generator. These helpers
draw on the generator's device and move the result where it is needed, so a run on
``device: cuda`` draws exactly the numbers the same run on the CPU draws (the copy is a few
KiB per environment step). With the generator already on the target device nothing moves.
"""

from __future__ import annotations

import torch

Shape = tuple[int, ...] | torch.Size


def _device_of(generator: torch.Generator | None) -> torch.device:
    return torch.device("cpu") if generator is None else generator.device


def rand(shape: Shape, generator: torch.Generator | None, device: torch.device | str,
         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``U[0, 1)`` of ``shape`` on ``device``, drawn from ``generator``."""
    out = torch.rand(shape, generator=generator, dtype=dtype, device=_device_of(generator))
    return out.to(device)


def randn(shape: Shape, generator: torch.Generator | None, device: torch.device | str,
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal of ``shape`` on ``device``, drawn from ``generator``."""
    out = torch.randn(shape, generator=generator, dtype=dtype, device=_device_of(generator))
    return out.to(device)


def randint(high: int, shape: Shape, generator: torch.Generator | None,
            device: torch.device | str) -> torch.Tensor:
    """Integers uniform in ``[0, high)`` (int64) of ``shape`` on ``device``, drawn from
    ``generator``."""
    out = torch.randint(high, shape, generator=generator, device=_device_of(generator))
    return out.to(device)


def standard_gamma(concentration: torch.Tensor, generator: torch.Generator | None
                   ) -> torch.Tensor:
    """``Gamma(concentration, 1)`` draws, elementwise, on ``concentration``'s device."""
    draw = torch._standard_gamma(concentration.to(_device_of(generator)), generator=generator)
    return draw.to(concentration.device)


def dirichlet(concentration: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``Dirichlet(concentration)`` draws along the last dim, on ``concentration``'s device."""
    draw = torch._sample_dirichlet(concentration.to(_device_of(generator)), generator=generator)
    return draw.to(concentration.device)


def categorical(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One draw per row of ``probs [..., n]`` (index tensor ``[...]``, on ``probs``' device).

    ``torch.multinomial`` where the generator and ``probs`` share a device (the CPU case,
    unchanged); otherwise inverse-CDF sampling with uniforms drawn from the generator.
    """
    if _device_of(generator) == probs.device:
        flat = probs.reshape(-1, probs.shape[-1])
        return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])
    return inverse_cdf(probs, rand(probs.shape[:-1], generator, probs.device, probs.dtype))


def inverse_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The index ``i`` with ``cdf[i-1] < u <= cdf[i]`` per row of ``probs [..., n]``
    (rows summing to 1, ``u [...]`` uniform in [0, 1))."""
    index = (probs.cumsum(-1) < u.unsqueeze(-1)).sum(-1)
    return index.clamp_(max=probs.shape[-1] - 1)  # a cumsum just below 1 must not overflow
