"""Meta Experience Replay (MER): the update rule, functional over a parameter dict.

Riemer et al. (ICLR 2019, "Learning to Learn without Forgetting by Maximizing Transfer and
Minimizing Interference", Algorithm 1) learn from a stream one example ``(x, y)`` at a time
with a reservoir memory ``M`` (:class:`~adaptrl.rollouts.replay.ReservoirBuffer`)::

    theta_A0 <- theta
    for i = 1..s:                                   # s batches per incoming example
        B_i <- k memories drawn from M, plus (x, y)
        theta_i0 <- theta
        for j = 1..k+1: theta <- theta - alpha grad L(theta; B_i[j])   # per-sample SGD
        theta <- theta_i0 + beta (theta - theta_i0)          # within-batch Reptile step
    theta <- theta_A0 + gamma (theta - theta_A0)             # across-batch Reptile step
    M <- reservoir update of M with (x, y)

:func:`mer_update` is the inner part (everything but drawing the batches and updating the
memory), :func:`mer_batches` puts the current example into each batch at a random place
(``B_i`` is a set: no place is privileged) and :func:`mer_one_big_batch` is the cheaper
variant: the ``s`` batches concatenated into one sequence of ``s (k + 1)`` examples (the
current one ``s`` times), one pass of per-sample SGD and a single Reptile step with rate
``beta * gamma`` (Riemer et al. 2019's appendix gives cheaper variants of Algorithm 1, one
of them a single big batch in place of the ``s`` batches; the exact form here — one pass,
one Reptile step — is this module's reading, not checked line by line against the
appendix; with ``beta = 1`` it equals Algorithm 1 exactly, see the tests). Why it works: a
Reptile step over per-sample SGD on ``x_1, x_2`` moves ``theta`` along ``-(g_1 + g_2) +
alpha H_2 g_1 + ...``, i.e. it adds ``alpha d/dtheta (g_1 . g_2)``: the update maximises
the alignment of the gradients of different examples (Riemer et al. 2019, §3, after
Nichol et al. 2018), so that learning the new does not undo the old.

**What is sequential by design.** The per-sample SGD steps inside a batch are sequential:
each gradient is taken at the parameters the previous example left (that order *is* the
gradient-alignment term above), and so are the ``s`` batches of one example and the
examples of the stream. Nothing within one learner can be batched over examples without
changing the algorithm (batching the ``k + 1`` examples of a batch into one mean gradient
is experience replay, :func:`batch_sgd_step`, not MER). What vectorises is everything
*across independent learners* — seeds, hyperparameter settings, the tasks of a batched
DQN: :func:`over_learners` runs any of these updates under :func:`torch.func.vmap` with a
leading learner dimension on the parameters and the examples, so ``L`` learners cost one
sequence of batched small ops instead of ``L`` sequences (``benchmarks/bench_mer.py``
measures the gain). The memory draws of all ``s`` batches of an example are one tensor op
(the memory does not change within an example's update).

Examples are dicts of tensors (``{"x": ..., "y": ...}`` or a transition's fields); a
*sequence* of examples stacks them on a leading dimension. The loss is a per-example
function ``loss(params, example) -> scalar``; gradients come from :func:`torch.func.grad`,
so nothing here holds a graph and every update is a pure function of its inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch.func import grad, vmap

from adaptrl.models.functional import Params

Example = Mapping[str, torch.Tensor]
"""One example (a dict of tensors), or a sequence of them stacked on a leading dimension."""

ExampleLoss = Callable[[Params, Example], torch.Tensor]
"""``loss(params, example) -> scalar``: the loss of *one* example (no batch dimension)."""


def _length(examples: Example) -> int:
    sizes = {int(v.shape[0]) for v in examples.values()}
    if len(sizes) != 1:
        raise ValueError(f"the fields of a sequence of examples differ in length: "
                         f"{ {k: tuple(v.shape) for k, v in examples.items()} }")
    return sizes.pop()


def _index(examples: Example, j: int) -> dict[str, torch.Tensor]:
    return {k: v[j] for k, v in examples.items()}


def _check_rate(name: str, value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


def sgd_step(params: Params, loss: ExampleLoss, example: Example, lr: float) -> Params:
    """``theta - lr grad L(theta; example)`` for one example."""
    g = grad(loss)(params, example)
    return {k: p - lr * g[k] for k, p in params.items()}


def sgd_through(params: Params, loss: ExampleLoss, examples: Example, lr: float) -> Params:
    """Per-sample SGD through ``examples`` ``[n, ...]`` in order: ``n`` sequential steps,
    each at the parameters the previous one left (module doc: sequential by design)."""
    for j in range(_length(examples)):
        params = sgd_step(params, loss, _index(examples, j), lr)
    return params


def batch_sgd_step(params: Params, loss: ExampleLoss, examples: Example, lr: float) -> Params:
    """One SGD step on the mean loss of ``examples`` ``[n, ...]``: online SGD (``n = 1``)
    and experience replay (the current example plus ``k`` memories in one gradient)."""
    def mean_loss(p: Params, batch: Example) -> torch.Tensor:
        return vmap(loss, in_dims=(None, 0))(p, batch).mean()
    g = grad(mean_loss)(params, examples)
    return {k: p - lr * g[k] for k, p in params.items()}


def replay_sgd(params: Params, loss: ExampleLoss, batches: Example, lr: float) -> Params:
    """Experience replay on MER's batches: one SGD step (:func:`batch_sgd_step`) on each of
    the ``s`` batches ``[s, k+1, ...]`` in turn — Riemer et al. 2019's ER baseline, the
    same examples as :func:`mer_update` without its per-sample order and Reptile steps."""
    for i in range(_length(batches)):
        params = batch_sgd_step(params, loss, _index(batches, i), lr)
    return params


def reptile_step(before: Params, after: Params, rate: float) -> Params:
    """``before + rate (after - before)``: Reptile's interpolation (Nichol et al. 2018,
    Algorithm 1), MER's within-batch step with ``rate = beta`` and its across-batch step
    with ``rate = gamma`` (Riemer et al. 2019, Algorithm 1)."""
    return {k: before[k] + rate * (after[k] - before[k]) for k in before}


def within_batch(params: Params, loss: ExampleLoss, batch: Example, lr: float, beta: float
                 ) -> Params:
    """One batch of MER: per-sample SGD through ``batch`` ``[k+1, ...]`` from ``params``,
    then the within-batch Reptile step ``theta_0 + beta (theta_{k+1} - theta_0)``."""
    return reptile_step(params, sgd_through(params, loss, batch, lr), beta)


def mer_update(params: Params, loss: ExampleLoss, batches: Example, lr: float, beta: float,
               gamma: float) -> Params:
    """MER's update for one incoming example (Riemer et al. 2019, Algorithm 1, without the
    memory draws and the reservoir update): ``batches`` ``[s, k+1, ...]`` are the ``s``
    batches, each holding the current example; per batch :func:`within_batch`, then the
    across-batch step ``theta_A0 + gamma (theta - theta_A0)``."""
    _check_rate("beta", beta)
    _check_rate("gamma", gamma)
    start = params
    for i in range(_length(batches)):
        params = within_batch(params, loss, _index(batches, i), lr, beta)
    return reptile_step(start, params, gamma)


def mer_one_big_batch(params: Params, loss: ExampleLoss, batches: Example, lr: float,
                      beta: float, gamma: float) -> Params:
    """The one-big-batch variant (module doc): the ``s`` batches ``[s, k+1, ...]`` as one
    sequence of ``s (k + 1)`` examples, one pass of per-sample SGD, one Reptile step with
    rate ``beta * gamma``. Same SGD steps as :func:`mer_update`, ``s`` fewer Reptile steps;
    equal to it when ``beta = 1``."""
    _check_rate("beta", beta)
    _check_rate("gamma", gamma)
    flat = {k: v.flatten(0, 1) for k, v in batches.items()}
    return reptile_step(params, sgd_through(params, loss, flat, lr), beta * gamma)


def mer_batches(current: Example, memories: Example, generator: torch.Generator,
                learner_dims: int = 0) -> dict[str, torch.Tensor]:
    """The ``s`` batches of MER for one incoming example: ``memories`` ``[*L, s, k, ...]``
    (``k`` draws from the memory per batch) with ``current`` ``[*L, ...]`` put into every
    batch at a place drawn uniformly from ``generator``: ``[*L, s, k+1, ...]``. ``*L`` are
    ``learner_dims`` leading dimensions of independent learners (none by default)."""
    some = next(iter(memories.values()))
    lead = tuple(some.shape[:learner_dims])
    s, k = int(some.shape[learner_dims]), int(some.shape[learner_dims + 1])
    place = torch.randint(0, k + 1, (*lead, s), generator=generator,
                          device=generator.device).to(some.device)
    slot = torch.arange(k + 1, device=some.device).expand(*lead, s, k + 1)
    # insert the current example (stored last, at k) at `place`; memories keep their order
    at = place.unsqueeze(-1)
    index = torch.where(slot < at, slot, torch.where(slot == at, k, slot - 1))
    out = {}
    for name, mem in memories.items():
        cur = current[name]
        if tuple(cur.shape[:learner_dims]) != lead or cur.shape[learner_dims:] != \
                mem.shape[learner_dims + 2:]:
            raise ValueError(f"{name}: current {tuple(cur.shape)} does not fit memories "
                             f"{tuple(mem.shape)} ([*L, s, k, ...] and [*L, ...])")
        cur = cur.unsqueeze(learner_dims).unsqueeze(learner_dims)
        cur = cur.expand(*lead, s, 1, *mem.shape[learner_dims + 2:])
        joined = torch.cat([mem, cur], dim=learner_dims + 1)
        idx = index.reshape(*index.shape, *([1] * (mem.dim() - learner_dims - 2)))
        out[name] = joined.gather(learner_dims + 1, idx.expand_as(joined))
    return out


def over_learners(update: Callable[..., Params], loss: ExampleLoss, **rates: float
                  ) -> Callable[[Params, Example], Params]:
    """``update(params, loss, examples, **rates)`` (:func:`mer_update`,
    :func:`mer_one_big_batch`, :func:`batch_sgd_step`, ...) for ``L`` independent learners
    at once with :func:`torch.func.vmap`: parameters and examples carry a leading learner
    dimension ``[L, ...]``. One sequence of batched ops replaces ``L`` sequences; the steps
    inside each learner stay sequential (module doc)."""
    def one(params: Params, examples: Example) -> Params:
        return update(params, loss, examples, **rates)
    return vmap(one, in_dims=(0, 0), randomness="error")
