"""Continual supervised learning along a task stream: online SGD, EWC, experience replay, MER.

The check of MER itself that Riemer et al. (ICLR 2019, §5.1) run before RL: a classifier
learns a stream of tasks (here :class:`~adaptrl.tasks.digit_stream.RotatedDigits`), each
example seen once, in order, and is scored after every task on the held-out examples of
*every* task (:class:`~adaptrl.evaluation.stream.StreamRecord`: retained accuracy,
learning accuracy, backward transfer, forgetting). The learners, all from the same MLP
initialisation per seed and on the same examples per seed:

* ``online`` — one SGD step per incoming example (the lower bound: plain SGD on a
  non-stationary stream forgets);
* ``ewc`` — elastic weight consolidation (Kirkpatrick et al., PNAS 2017, Eq. 3), the
  regularisation baseline of Lopez-Paz & Ranzato (2017) and Riemer et al. (2019): one SGD
  step per incoming example on its loss plus ``lambda / 2 sum_t sum_i F_t,i (theta_i -
  theta*_t,i)^2`` over the tasks ``t`` done so far, ``theta*_t`` the parameters at the end
  of task ``t`` and ``F_t`` the diagonal empirical Fisher there (the mean squared
  per-example gradient of the loss on the task's examples, :func:`empirical_fisher`); no
  memory of examples;
* ``er`` — experience replay (Riemer et al. 2019's ER baseline): per incoming example
  ``s`` batches of the example plus ``k`` memories, one SGD step on each batch's mean loss;
* ``mer`` — Meta Experience Replay (Algorithm 1, :func:`~adaptrl.adaptation.mer.mer_update`)
  on the same ``s`` batches, per-sample SGD inside each;
* ``mer-big-batch`` — MER's one-big-batch variant (:func:`~adaptrl.adaptation.mer.
  mer_one_big_batch`).

``er`` and the MER variants share one memory rule: a reservoir of ``memory`` examples per
learner (:class:`~adaptrl.rollouts.replay.ReservoirBuffer`, Vitter's Algorithm R), updated
with the current example after its update, the ``k`` memories of each batch drawn uniformly
with replacement. Until the memory holds an example the batches are the current example
alone (Algorithm 1's memory starts empty).

Several seeds are independent learners. Every draw of learner ``i`` comes from its own
generators seeded by its seed, so a learner's run is the same alone or beside others: its
examples from one (``data``), its memory's reservoir and samples and the place of the
current example in each batch from another. Keeping the examples' draws apart from the
memory's makes the learner kinds *paired*: for a given seed online SGD, ER and MER see
the same examples in the same order, whatever their memory does (and ER and MER also
draw the same memories), so per-seed differences between kinds are paired comparisons.

With ``vectorise`` the learners' updates run as one :func:`torch.func.vmap` over a
leading learner dimension (:func:`~adaptrl.adaptation.mer.over_learners`), without it as a
Python loop over learners: the two give the same numbers (a test checks) and differ in
speed only (``benchmarks/bench_mer.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch.func import grad, vmap

from adaptrl.adaptation.mer import (
    Example,
    batch_sgd_step,
    mer_batches,
    mer_one_big_batch,
    mer_update,
    over_learners,
)
from adaptrl.evaluation.statistics import mean_ci95
from adaptrl.evaluation.stream import METRICS, StreamRecord
from adaptrl.models.functional import MLP, Params, detach_params, named_params
from adaptrl.rollouts.replay import ReservoirBuffer
from adaptrl.rollouts.transitions import Transitions
from adaptrl.schema import ConfigModel
from adaptrl.tasks.digit_stream import IMAGE_SIDE, NUM_CLASSES, RotatedDigits

LearnerName = Literal["online", "ewc", "er", "mer", "mer-big-batch"]
LEARNERS: tuple[str, ...] = ("online", "ewc", "er", "mer", "mer-big-batch")


class SupervisedStreamConfig(ConfigModel):
    """A continual learner on a supervised stream. Defaults: Riemer et al. 2019's MNIST
    rotations settings (lr 0.03, beta 0.03, gamma 1.0, s = 10) with the memory and the
    batch scaled to the 8 x 8 digits stream (docs/continual.md says how)."""

    learner: LearnerName = "mer"
    lr: float = Field(0.03, gt=0, description="SGD step size alpha")
    beta: float = Field(0.03, ge=0, le=1, description="MER within-batch Reptile rate")
    gamma: float = Field(1.0, ge=0, le=1, description="MER across-batch Reptile rate")
    memory: int = Field(500, ge=1, description="reservoir capacity per learner")
    batch_memories: int = Field(10, ge=1, description="k: memories per batch")
    batches_per_example: int = Field(10, ge=1, description="s: batches per example")
    hidden: list[int] = Field(default_factory=lambda: [100, 100],
                              description="MLP hidden sizes (GEM / MER: 2 x 100 ReLU)")
    ewc_lambda: float = Field(10.0, ge=0, description="EWC's penalty strength lambda")


@dataclass(frozen=True)
class StreamResult:
    """One learner kind on the stream, for ``seeds``: each seed's record, the seconds the
    updates took (``update_s``, wall; ``update_cpu_s``, process CPU) and the examples."""

    config: SupervisedStreamConfig
    seeds: tuple[int, ...]
    records: tuple[StreamRecord, ...]
    examples: int
    update_s: float
    update_cpu_s: float

    def metrics(self) -> dict[str, dict[str, Any]]:
        """Every metric of the end of the stream (:data:`~adaptrl.evaluation.stream.
        METRICS`): its mean over seeds, the 95% CI half-width over seeds and the value of
        each seed (``per_seed``, in ``seeds`` order: learners are paired across kinds)."""
        out: dict[str, dict[str, Any]] = {}
        for name in METRICS:
            values = torch.tensor([float(r.metrics()[name]["mean"] or 0.0)
                                   for r in self.records], dtype=torch.float64)
            mean, ci = mean_ci95(values)
            out[name] = {"mean": float(mean), "ci95": float(ci), "per_seed": values.tolist()}
        return out

    @property
    def examples_per_s(self) -> float:
        """Examples learned per wall second, all learners together."""
        return self.examples * len(self.seeds) / self.update_s


def _memory_rows(x: torch.Tensor, y: torch.Tensor) -> Transitions:
    """Examples ``x [1, n, d]``, ``y [1, n]`` as replay rows (the reservoir stores
    transitions: ``obs`` holds x and ``action`` y; the other fields are empty)."""
    empty = torch.zeros(*y.shape, 0)
    zeros = torch.zeros(y.shape)
    false = torch.zeros(y.shape, dtype=torch.bool)
    return Transitions(x, y, zeros, empty, false, false)


_MEMORY_SEED_OFFSET = 1 << 32  # the memory's generator apart from the examples'


class _Learner:
    """One seed's draws: examples, reservoir, batch places (module doc)."""

    def __init__(self, seed: int, config: SupervisedStreamConfig) -> None:
        self.data = torch.Generator().manual_seed(seed)
        self.generator = torch.Generator().manual_seed(seed + _MEMORY_SEED_OFFSET)
        self.memory = ReservoirBuffer(1, config.memory)


def example_loss(model: MLP) -> Callable[[Params, Example], torch.Tensor]:
    """Cross-entropy of one example ``{"x": [64], "y": []}`` under ``model``."""
    def loss(params: Params, ex: Example) -> torch.Tensor:
        logits = model(ex["x"].unsqueeze(0), params)
        return F.cross_entropy(logits, ex["y"].unsqueeze(0))
    return loss


def initial_params(seed: int, hidden: list[int]) -> tuple[MLP, Params]:
    """The MLP and its initial weights for ``seed`` (Glorot-uniform, zero biases)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = MLP(IMAGE_SIDE ** 2, NUM_CLASSES, tuple(hidden), "relu")
    return model, detach_params(named_params(model))


def empirical_fisher(loss: Callable[[Params, Example], torch.Tensor], params: Params,
                     examples: Example) -> Params:
    """The diagonal empirical Fisher of one learner at ``params``: the mean over
    ``examples`` ``[n, ...]`` of each per-example gradient squared (EWC's ``F``,
    Kirkpatrick et al. 2017, with the observed labels)."""
    grads = vmap(grad(loss), in_dims=(None, 0))(params, examples)
    return {k: g.square().mean(0) for k, g in grads.items()}


FISHER, ANCHORED = "fisher:", "fisher_anchor:"  # EWC's sums, passed beside the example


def ewc_step(params: Params, loss: Callable[[Params, Example], torch.Tensor], ex: Example,
             lr: float, strength: float) -> Params:
    """One SGD step of EWC on the current example ``ex`` (``x``, ``y`` ``[1, ...]``) with
    the penalty of every task done so far, given as the sums ``F = sum_t F_t``
    (``fisher:<name>``) and ``FA = sum_t F_t theta*_t`` (``fisher_anchor:<name>``): the
    penalty ``strength / 2 sum_t F_t (theta - theta*_t)^2`` has the gradient
    ``strength (F theta - FA)``, so two sums carry all the tasks' anchors exactly."""
    def total(p: Params) -> torch.Tensor:
        penalty = sum((ex[FISHER + k] * v.square() - 2 * ex[ANCHORED + k] * v).sum()
                      for k, v in p.items())
        return loss(p, {"x": ex["x"][0], "y": ex["y"][0]}) + 0.5 * strength * penalty
    g = grad(total)(params)
    return {k: v - lr * g[k] for k, v in params.items()}


def _update_fn(config: SupervisedStreamConfig, loss: Callable[[Params, Example], torch.Tensor]
               ) -> Callable[[Params, Example], Params]:
    """``(params, batches [s, k+1] or the current example [1]) -> params`` of one learner."""
    c = config
    if c.learner == "online":
        return lambda p, ex: batch_sgd_step(p, loss, ex, c.lr)
    if c.learner == "ewc":
        return lambda p, ex: ewc_step(p, loss, ex, c.lr, c.ewc_lambda)
    if c.learner == "er":
        def er(p: Params, batches: Example) -> Params:
            for i in range(c.batches_per_example):
                p = batch_sgd_step(p, loss, {k: v[i] for k, v in batches.items()}, c.lr)
            return p
        return er
    rule = mer_update if c.learner == "mer" else mer_one_big_batch
    return lambda p, b: rule(p, loss, b, c.lr, c.beta, c.gamma)


def run_stream(stream: RotatedDigits, config: SupervisedStreamConfig, seeds: list[int],
               vectorise: bool = True, tasks: int | None = None) -> StreamResult:
    """Train one learner per seed along ``stream`` (its first ``tasks`` tasks, default
    all) and score every task after each (module doc)."""
    if not seeds:
        raise ValueError("seeds: give at least one")
    num_tasks = stream.num_tasks if tasks is None else tasks
    if not 1 <= num_tasks <= stream.num_tasks:
        raise ValueError(f"tasks must be in [1, {stream.num_tasks}], got {tasks}")
    model, _ = initial_params(seeds[0], config.hidden)
    inits = [initial_params(s, config.hidden)[1] for s in seeds]
    params = {k: torch.stack([p[k] for p in inits]) for k in inits[0]}
    learners = [_Learner(s, config) for s in seeds]
    records = [StreamRecord(stream.num_tasks) for _ in seeds]
    loss = example_loss(model)
    one = _update_fn(config, loss)
    many = over_learners(lambda p, _loss, e: one(p, e), loss)
    s, k = config.batches_per_example, config.batch_memories
    ewc = config.learner == "ewc"
    sums = {**{FISHER + n: torch.zeros_like(v) for n, v in params.items()},
            **{ANCHORED + n: torch.zeros_like(v) for n, v in params.items()}} if ewc else {}
    wall = cpu = 0.0
    for task in range(num_tasks):
        draws = [stream.task_examples(task, 1, lr.data) for lr in learners]
        xs, ys = torch.cat([d[0] for d in draws]), torch.cat([d[1] for d in draws])
        for t in range(stream.examples_per_task):
            batches = [{**_batches(config, xs[i, t], ys[i, t], lr, s, k),
                        **{n: v[i] for n, v in sums.items()}}
                       for i, lr in enumerate(learners)]
            t0, c0 = time.perf_counter(), time.process_time()
            if vectorise:
                stacked = {key: torch.stack([b[key] for b in batches]) for key in batches[0]}
                params = many(params, stacked)
            else:
                outs = [one({key: v[i] for key, v in params.items()}, b)
                        for i, b in enumerate(batches)]
                params = {key: torch.stack([o[key] for o in outs]) for key in params}
            wall += time.perf_counter() - t0
            cpu += time.process_time() - c0
            if config.learner != "online":
                for i, lr in enumerate(learners):
                    lr.memory.add(_memory_rows(xs[i:i + 1, t:t + 1], ys[i:i + 1, t:t + 1]),
                                  lr.generator)
        if ewc:  # the task's penalty term: its Fisher and anchor, added to the sums
            t0, c0 = time.perf_counter(), time.process_time()
            fisher = vmap(lambda p, x, y: empirical_fisher(loss, p, {"x": x, "y": y}))(
                params, xs, ys)
            for n, f in fisher.items():
                sums[FISHER + n] = sums[FISHER + n] + f
                sums[ANCHORED + n] = sums[ANCHORED + n] + f * params[n]
            wall += time.perf_counter() - t0
            cpu += time.process_time() - c0
        correct = accuracy_per_example(model, params, stream)  # [L, tasks, Q]
        for i, record in enumerate(records):
            record.record(task, [correct[i, j] for j in range(stream.num_tasks)])
    return StreamResult(config, tuple(seeds), tuple(records),
                        num_tasks * stream.examples_per_task, wall, cpu)


def _batches(config: SupervisedStreamConfig, x: torch.Tensor, y: torch.Tensor,
             learner: _Learner, s: int, k: int) -> dict[str, torch.Tensor]:
    """What one learner's update takes for the current example ``(x, y)``: the example
    itself ``[1, ...]`` (online, EWC), else ``s`` batches ``[s, k+1, ...]`` with ``k`` memories
    each (``[s, 1, ...]``, the example alone, while the memory is empty)."""
    current = {"x": x, "y": y}
    if config.learner in ("online", "ewc"):
        return {key: v.unsqueeze(0) for key, v in current.items()}
    if len(learner.memory) == 0:
        return {key: v.expand(s, 1, *v.shape) for key, v in current.items()}
    drawn = learner.memory.sample(s * k, learner.generator)
    memories = {"x": drawn.obs.reshape(s, k, -1), "y": drawn.action.reshape(s, k)}
    return mer_batches(current, memories, learner.generator)


@torch.no_grad()
def accuracy_per_example(model: MLP, params: Params, stream: RotatedDigits) -> torch.Tensor:
    """``[learners, tasks, Q]`` (float 0/1): each learner's correctness on every test
    example of every task."""
    learners = next(iter(params.values())).shape[0]
    x = stream.test_x.reshape(1, -1, stream.test_x.shape[-1]).expand(learners, -1, -1)
    pred = model(x, params).argmax(-1).reshape(learners, stream.num_tasks, -1)
    return (pred == stream.test_y).double()


def result_row(name: str, result: StreamResult) -> dict[str, Any]:
    """A JSON-ready row: metrics with CIs over seeds, examples/s and seconds."""
    return {"learner": name, "seeds": list(result.seeds), **result.metrics(),
            "examples_per_s": result.examples_per_s, "update_s": result.update_s,
            "update_cpu_s": result.update_cpu_s}
