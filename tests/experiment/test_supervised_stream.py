"""The supervised continual-learning runner (experiment/supervised_stream.py)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("sklearn")

from adaptrl.experiment.supervised_stream import (  # noqa: E402
    ANCHORED,
    FISHER,
    SupervisedStreamConfig,
    empirical_fisher,
    ewc_step,
    example_loss,
    initial_params,
    run_stream,
)
from adaptrl.tasks.digit_stream import RotatedDigits  # noqa: E402


@pytest.fixture(scope="module")
def small() -> RotatedDigits:
    return RotatedDigits.build(num_tasks=3, examples_per_task=8)


@pytest.mark.parametrize("learner", ["online", "ewc", "er", "mer", "mer-big-batch"])
def test_vectorised_and_looped_learners_agree(small: RotatedDigits, learner: str) -> None:
    config = SupervisedStreamConfig(learner=learner, memory=6, batch_memories=3,
                                    batches_per_example=2, hidden=[16])
    a = run_stream(small, config, [1, 2], vectorise=True, tasks=2)
    b = run_stream(small, config, [1, 2], vectorise=False, tasks=2)
    for x, y in zip(a.records, b.records, strict=True):
        assert x.recorded == [0, 1]
        for i in (0, 1):
            for j in range(3):  # every stage scored, the ones to come too
                torch.testing.assert_close(x.entry(i, j), y.entry(i, j))
    # a learner's run does not depend on the learners beside it
    alone = run_stream(small, config, [2], vectorise=True, tasks=2)
    torch.testing.assert_close(alone.records[0].entry(1, 0), a.records[1].entry(1, 0))


def test_mer_with_unit_rates_and_no_memory_use_is_per_sample_sgd(small: RotatedDigits) -> None:
    """beta = gamma = 1, s = 1: MER is per-sample SGD through each batch; before the memory
    fills (first example) the batch is the example alone, so the first update equals one
    SGD step of the online learner."""
    online = SupervisedStreamConfig(learner="online", hidden=[16])
    mer = SupervisedStreamConfig(learner="mer", beta=1.0, gamma=1.0, batches_per_example=1,
                                 memory=1, batch_memories=1, hidden=[16])
    one = RotatedDigits.build(num_tasks=1, examples_per_task=1)
    a, b = run_stream(one, online, [3]), run_stream(one, mer, [3])
    torch.testing.assert_close(a.records[0].entry(0, 0), b.records[0].entry(0, 0))


def test_ewc_with_zero_strength_is_online_sgd(small: RotatedDigits) -> None:
    online = run_stream(small, SupervisedStreamConfig(learner="online", hidden=[16]), [4])
    ewc = run_stream(small, SupervisedStreamConfig(learner="ewc", ewc_lambda=0.0, hidden=[16]),
                     [4])
    for j in range(3):
        torch.testing.assert_close(online.records[0].entry(2, j), ewc.records[0].entry(2, j))


def test_ewc_fisher_and_step_against_their_formulas() -> None:
    """The empirical Fisher is the mean squared per-example gradient (checked against a
    loop of ``.backward()`` calls), and one EWC step with two tasks' penalties summed into
    ``F``, ``FA`` is ``theta - lr (grad CE + lambda sum_t F_t (theta - theta*_t))``."""
    torch.manual_seed(0)
    model, theta = initial_params(5, [8])
    loss = example_loss(model)
    xs, ys = torch.randn(6, 64), torch.randint(0, 10, (6,))
    fisher = empirical_fisher(loss, theta, {"x": xs, "y": ys})
    for name, f in fisher.items():
        squares = []
        for x, y in zip(xs, ys, strict=True):
            leaf = {k: v.clone().requires_grad_() for k, v in theta.items()}
            loss(leaf, {"x": x, "y": y}).backward()
            squares.append(leaf[name].grad.square())  # type: ignore[union-attr]
        torch.testing.assert_close(f, torch.stack(squares).mean(0))

    anchors = [{k: v + 0.1 * torch.randn_like(v) for k, v in theta.items()} for _ in range(2)]
    fishers = [{k: torch.rand_like(v) for k, v in theta.items()} for _ in range(2)]
    ex = {"x": xs[:1], "y": ys[:1]}
    for k in theta:
        ex[FISHER + k] = fishers[0][k] + fishers[1][k]
        ex[ANCHORED + k] = fishers[0][k] * anchors[0][k] + fishers[1][k] * anchors[1][k]
    lr, strength = 0.1, 3.0
    got = ewc_step(theta, loss, ex, lr, strength)
    leaf = {k: v.clone().requires_grad_() for k, v in theta.items()}
    loss(leaf, {"x": xs[0], "y": ys[0]}).backward()
    for k, v in theta.items():
        pull = sum(f[k] * (v - a[k]) for f, a in zip(fishers, anchors, strict=True))
        g = leaf[k].grad
        assert g is not None
        torch.testing.assert_close(got[k], v - lr * (g + strength * pull))


def test_learner_kinds_see_the_same_examples_per_seed(small: RotatedDigits,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Paired comparisons: for one seed online SGD, ER and MER are fed the same examples in
    the same order (the memory's draws do not move the examples' draws), and different
    seeds different ones."""
    seen: dict[str, list[torch.Tensor]] = {}
    draw = RotatedDigits.task_examples

    def spy(self: RotatedDigits, task: int, learners: int, generator: torch.Generator
            ) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = draw(self, task, learners, generator)
        seen.setdefault(kind, []).append(x)
        return x, y

    monkeypatch.setattr(RotatedDigits, "task_examples", spy)
    for kind in ("online", "er", "mer"):
        run_stream(small, SupervisedStreamConfig(learner=kind, memory=6, batch_memories=3,
                                                 batches_per_example=2, hidden=[16]), [1, 2])
    assert len(seen["online"]) == 2 * small.num_tasks
    for kind in ("er", "mer"):
        for a, b in zip(seen["online"], seen[kind], strict=True):
            torch.testing.assert_close(a, b)
    assert not torch.equal(seen["online"][0], seen["online"][1])  # seed 1 vs seed 2


def test_metrics_over_seeds_and_bad_arguments(small: RotatedDigits) -> None:
    config = SupervisedStreamConfig(learner="er", memory=10, batch_memories=2,
                                    batches_per_example=1, hidden=[16])
    result = run_stream(small, config, [1, 2, 3])
    m = result.metrics()
    assert set(m) == {"retained", "learning", "backward_transfer", "forgetting"}
    per_seed = torch.tensor([float(r.metrics()["retained"]["mean"] or 0) for r in result.records],
                            dtype=torch.float64)
    assert abs(m["retained"]["mean"] - float(per_seed.mean())) < 1e-9
    assert m["retained"]["ci95"] > 0 and result.examples == 24
    with pytest.raises(ValueError, match="seeds"):
        run_stream(small, config, [])
    with pytest.raises(ValueError, match="tasks"):
        run_stream(small, config, [1], tasks=4)
    with pytest.raises(ValueError, match="learner"):
        SupervisedStreamConfig(learner="gem")


@pytest.mark.slow
def test_replay_keeps_more_of_the_first_rotation_than_online_sgd() -> None:
    """A learning test: after 6 rotations (0..90 degrees), experience replay's accuracy on
    the first (unrotated) task beats online SGD's by a clear margin on 3 seeds."""
    stream = RotatedDigits.build(num_tasks=6, max_degrees=90.0, examples_per_task=100)
    online = run_stream(stream, SupervisedStreamConfig(learner="online"), [1, 2, 3])
    er = run_stream(stream, SupervisedStreamConfig(learner="er", memory=150, batches_per_example=3),
                    [1, 2, 3])
    first = [float(torch.stack([r.entry(5, 0).mean() for r in res.records]).mean())  # type: ignore[union-attr]
             for res in (online, er)]
    assert first[1] > first[0] + 0.1, first
