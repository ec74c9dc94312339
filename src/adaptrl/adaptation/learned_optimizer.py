"""A learned, coordinate-wise inner optimizer: a small MLP maps every parameter's features
to its update (OPEN, Goldie et al. 2024, §4; Andrychowicz et al. 2016, §2.1 for the
coordinate-wise form).

For every parameter entry ``x`` with gradient ``g`` the optimizer keeps momenta at several
timescales ``m_b <- b m_b + (1 - b) g`` (one per ``b`` in ``betas``) and a second moment
``v <- b2 v + (1 - b2) g^2`` (the per-task state), and feeds a shared MLP ``f_w`` the
scale-free inputs

    u = [g / r,  m_hat_b / r (every b),  t / T,  layer position]      r = sqrt(v_hat) + eps

(``hat``: bias-corrected as in Adam; ``t / T``: training progress, the step over the
optimizer's ``horizon``; layer position: the parameter tensor's index over the policy's
tensors, in ``[0, 1]``). Its two outputs are a direction ``d`` and a log-magnitude ``s``,
and the update is (the direction / magnitude split of OPEN's and VeLO's output heads)

    x' = x - exp(log_lr) * exp(clip(s)) * (a * m_hat_adam / r + d)

with a learned base step ``log_lr`` and a learned weight ``a`` on Adam's own direction
(``m_hat_adam``: the momentum whose ``b`` is closest to 0.9). The MLP's last layer starts
at zero, so before meta-training the optimizer *is* Adam at step size ``lr``: meta-training
only has to learn where to depart from it, a starting point cheap evolution strategies can
improve on with a few hundred inner runs. Neuron dormancy (OPEN) and the learned update
noise are left out: dormancy needs the policy's activations, and noise a generator inside
the inner step, which the inner-optimizer contract does not pass.

The optimizer keeps the house's inner-optimizer contract
(:class:`~adaptrl.adaptation.inner_optimizers.InnerOptimizer`): per-task state with a
leading task dimension, a step differentiable in the parameters, gradients and the MLP's
weights (truncated backpropagation through the unrolled optimisation, MAML's meta-gradient),
and :meth:`LearnedOptimizer.population`: a population of weight vectors ``[P, D]`` (an
evolution strategy's candidates) applied to ``P x M`` tasks at once through
``torch.func.vmap``, member ``p`` stepping tasks ``p M .. p M + M - 1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from pydantic import Field, field_validator
from torch import nn

from adaptrl.adaptation.inner_optimizers import InnerState
from adaptrl.models.functional import Params, detach_params
from adaptrl.schema import ConfigModel


class LearnedOptimizerConfig(ConfigModel):
    """The learned optimizer's shape and its starting point (Adam at ``lr``)."""

    hidden: int = Field(16, ge=1, description="MLP hidden units (OPEN: 16)")
    betas: list[float] = Field(
        default_factory=lambda: [0.1, 0.5, 0.9, 0.99, 0.999],
        description="momentum timescales fed to the MLP (OPEN uses six)")
    beta2: float = Field(0.999, ge=0, lt=1, description="decay of the second moment v")
    lr: float = Field(1e-2, gt=0, description="initial base step size exp(log_lr)")
    horizon: int = Field(20, ge=1, description="updates the progress input t / T counts to")
    max_log_magnitude: float = Field(3.0, gt=0, description="|s| is clipped to this")
    eps: float = Field(1e-8, gt=0, description="added to sqrt(v_hat)")

    @field_validator("betas")
    @classmethod
    def _betas(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 <= b < 1 for b in v):
            raise ValueError(f"betas must be a non-empty list of values in [0, 1), got {v}")
        return v

    @property
    def num_inputs(self) -> int:
        return 1 + len(self.betas) + 2

    @property
    def adam_index(self) -> int:
        """The momentum Adam's direction uses: the one whose ``b`` is closest to 0.9."""
        return min(range(len(self.betas)), key=lambda i: abs(self.betas[i] - 0.9))


WEIGHT_NAMES = ("w1", "b1", "w2", "b2", "log_lr", "adam_weight")


def _features(cfg: LearnedOptimizerConfig, g: torch.Tensor, moms: list[torch.Tensor],
              v: torch.Tensor, t: int, position: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The MLP's inputs ``[..., F]`` for one parameter tensor and Adam's direction."""
    r = (v / (1 - cfg.beta2 ** t)).clamp_min(torch.finfo(v.dtype).tiny).sqrt() + cfg.eps
    hats = [m / (1 - b ** t) / r for m, b in zip(moms, cfg.betas)]
    progress = torch.full_like(g, min(t / cfg.horizon, 1.0))
    pos = torch.full_like(g, position)
    feats = torch.stack([g / r, *hats, progress, pos], -1).clamp(-10.0, 10.0)
    return feats, hats[cfg.adam_index]


def learned_step(cfg: LearnedOptimizerConfig, weights: Params, params: Params, grads: Params,
                 state: Params, t: int) -> tuple[Params, Params]:
    """One step of every parameter entry, for one set of MLP ``weights`` (no leading
    population dimension), at step count ``t`` (1-based); ``state`` without the counter.

    Pure and elementwise in the parameters, so it serves per-task tensors of any shape and
    ``torch.func.vmap`` over a population of ``weights``."""
    out: Params = {}
    new: Params = {}
    keys = list(params)
    scale = weights["log_lr"].exp()
    for i, k in enumerate(keys):
        g = grads[k]
        moms = [b * state[f"m{j}.{k}"] + (1 - b) * g for j, b in enumerate(cfg.betas)]
        v = cfg.beta2 * state[f"v.{k}"] + (1 - cfg.beta2) * g * g
        position = i / (len(keys) - 1) if len(keys) > 1 else 0.0
        feats, adam = _features(cfg, g, moms, v, t, position)
        hidden = torch.tanh(feats @ weights["w1"].T + weights["b1"])
        head = hidden @ weights["w2"].T + weights["b2"]
        direction, log_mag = head[..., 0], head[..., 1]
        log_mag = log_mag.clamp(-cfg.max_log_magnitude, cfg.max_log_magnitude)
        out[k] = params[k] - scale * log_mag.exp() * (weights["adam_weight"] * adam + direction)
        for j, m in enumerate(moms):
            new[f"m{j}.{k}"] = m
        new[f"v.{k}"] = v
    return out, new


def _split_state(state: InnerState) -> tuple[int, Params]:
    return int(state["step"]), {k: v for k, v in state.items() if k != "step"}


@dataclass(frozen=True, eq=False)
class LearnedStep:
    """The learned optimizer's step at given ``weights``: one set (``population`` False), or
    ``P`` sets stacked on a leading dimension, member ``p`` stepping the ``p``-th block of
    ``M = tasks / P`` tasks (``population`` True, vmapped). Differentiable in ``weights``
    when they require grad."""

    config: LearnedOptimizerConfig
    weights: Params
    population: bool = False

    @property
    def size(self) -> int:
        """Members in the population (1 for a single optimizer)."""
        return int(self.weights["log_lr"].shape[0]) if self.population else 1

    def init(self, params: Params) -> InnerState:
        state: InnerState = {"step": torch.zeros((), dtype=torch.long)}
        for k, p in params.items():
            for j in range(len(self.config.betas)):
                state[f"m{j}.{k}"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
            state[f"v.{k}"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
        return state

    def step(self, params: Params, grads: Params, state: InnerState
             ) -> tuple[Params, InnerState]:
        t, moments = _split_state(state)
        t += 1
        if not self.population:
            out, new = learned_step(self.config, self.weights, params, grads, moments, t)
        else:
            out, new = self._population_step(params, grads, moments, t)
        return out, {"step": torch.tensor(t), **new}

    def _population_step(self, params: Params, grads: Params, moments: Params, t: int
                         ) -> tuple[Params, Params]:
        p = self.size
        n = next(iter(params.values())).shape[0]
        if n % p:
            raise ValueError(f"a population of {p} optimizers needs a multiple of {p} tasks, "
                             f"got {n}")

        def fold(d: Params) -> Params:
            return {k: v.reshape(p, n // p, *v.shape[1:]) for k, v in d.items()}

        def member(w: Params, x: Params, g: Params, s: Params) -> tuple[Params, Params]:
            return learned_step(self.config, w, x, g, s, t)

        out, new = torch.func.vmap(member)(self.weights, fold(params), fold(grads),
                                           fold(moments))
        return ({k: v.reshape(n, *v.shape[2:]) for k, v in out.items()},
                {k: v.reshape(n, *v.shape[2:]) for k, v in new.items()})

    def meta_parameters(self) -> list[nn.Parameter]:
        return []

    def detached(self) -> LearnedStep:
        return LearnedStep(self.config, detach_params(self.weights), self.population)

    def step_jacobian(self, inputs: Params, grads: Params) -> None:
        return None  # nonlinear in the gradient: no cheap exact Jacobian

    def summary(self) -> dict[str, float]:
        return {}


class LearnedOptimizer(nn.Module):
    """The meta-learned optimizer: the MLP's weights as ``nn.Parameter`` s (what MAML's or
    truncated backpropagation's outer loop learns), deferring every method to
    :class:`LearnedStep` at the current weights (module docstring: inputs and update)."""

    def __init__(self, config: LearnedOptimizerConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or LearnedOptimizerConfig()
        bound = 1 / math.sqrt(cfg.num_inputs)
        self.w1 = nn.Parameter(torch.empty(cfg.hidden, cfg.num_inputs).uniform_(-bound, bound))
        self.b1 = nn.Parameter(torch.zeros(cfg.hidden))
        self.w2 = nn.Parameter(torch.zeros(2, cfg.hidden))  # starts as Adam at lr
        self.b2 = nn.Parameter(torch.zeros(2))
        self.log_lr = nn.Parameter(torch.tensor(math.log(cfg.lr)))
        self.adam_weight = nn.Parameter(torch.tensor(1.0))

    def weights(self) -> Params:
        """``{name: tensor}`` in :data:`WEIGHT_NAMES` order, with their graph."""
        return {k: getattr(self, k) for k in WEIGHT_NAMES}

    def current(self) -> LearnedStep:
        return LearnedStep(self.config, self.weights())

    def init(self, params: Params) -> InnerState:
        return self.current().init(params)

    def step(self, params: Params, grads: Params, state: InnerState
             ) -> tuple[Params, InnerState]:
        return self.current().step(params, grads, state)

    def meta_parameters(self) -> list[nn.Parameter]:
        return list(self.parameters())

    def detached(self) -> LearnedStep:
        return self.current().detached()

    def step_jacobian(self, inputs: Params, grads: Params) -> None:
        return None

    def summary(self) -> dict[str, float]:
        """The base step size and the weight on Adam's direction."""
        return {"l2o/lr": float(self.log_lr.detach().exp()),
                "l2o/adam_weight": float(self.adam_weight.detach())}

    # -- flat vectors (evolution strategies) ----------------------------------------------
    def flat(self) -> torch.Tensor:
        """All weights as one detached vector ``[D]``."""
        return torch.cat([w.detach().reshape(-1) for w in self.weights().values()])

    def load_flat(self, vector: torch.Tensor) -> None:
        """Set the weights from a vector made by :meth:`flat`."""
        with torch.no_grad():
            for k, w in self.unflatten(vector).items():
                getattr(self, k).copy_(w)

    def unflatten(self, vectors: torch.Tensor) -> Params:
        """``[..., D]`` vectors as weights ``{name: [..., *shape]}`` (views)."""
        lead = vectors.shape[:-1]
        size = sum(w.numel() for w in self.weights().values())
        if vectors.shape[-1] != size:
            raise ValueError(f"expected vectors of size {size}, got {vectors.shape[-1]}")
        out: Params = {}
        offset = 0
        for k, w in self.weights().items():
            out[k] = vectors[..., offset:offset + w.numel()].reshape((*lead, *w.shape))
            offset += w.numel()
        return out

    def population(self, vectors: torch.Tensor) -> LearnedStep:
        """The step of ``P`` weight vectors ``[P, D]`` at once, vmapped (:class:`LearnedStep`)."""
        if vectors.dim() != 2:
            raise ValueError(f"population vectors must be [P, D], got {tuple(vectors.shape)}")
        return LearnedStep(self.config, self.unflatten(vectors), population=True)


def learned_inner_optimizer(config: LearnedOptimizerConfig, steps: int
                            ) -> Callable[[Params], LearnedOptimizer]:
    """MAML's factory of a learned inner optimizer (``inner.optimizer: learned``): one
    :class:`LearnedOptimizer` whose progress input counts ``steps`` inner steps, meta-learned
    with theta by MAML's outer step (its weights are meta-parameters)."""
    cfg = config.model_copy(update={"horizon": max(steps, 1)})
    return lambda params: LearnedOptimizer(cfg)
