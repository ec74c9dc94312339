"""Stream scoring (adaptrl.evaluation.stream): the score matrix R and the continual-learning
metrics against answers computed by hand, their CIs over tasks, JSON output, checkpoints."""

from __future__ import annotations

import io
import json

import pytest
import torch

from adaptrl.evaluation.stream import StreamRecord

# R[i][j] (task means): row i = after training through stage i. Stage 0 improves while
# stage 1 is learned (0.5 -> 0.7), then is forgotten (0.2): BWT and forgetting differ.
MEANS = [[0.5], [0.7, 0.8], [0.2, 0.6, 0.9]]
# task difficulty per stage (two fixed tasks each), the same in every row
OFFSETS = [[-0.1, 0.1], [0.2, -0.2], [0.05, -0.05]]
T_975_DF1 = 12.706204736  # Student t(0.975, 1)


def hand_record(per_task: bool = True) -> StreamRecord:
    record = StreamRecord(3)
    for i, row in enumerate(MEANS):
        record.record(i, [torch.tensor(OFFSETS[j], dtype=torch.float64) + m if per_task else m
                          for j, m in enumerate(row)])
    return record


def test_known_answers_on_a_hand_made_matrix() -> None:
    final = hand_record().metrics()
    assert final["retained"]["mean"] == pytest.approx((0.2 + 0.6 + 0.9) / 3)
    assert final["learning"]["mean"] == pytest.approx((0.5 + 0.8 + 0.9) / 3)
    assert final["backward_transfer"]["mean"] == pytest.approx(((0.2 - 0.5) + (0.6 - 0.8)) / 2)
    # Chaudhry et al.: best earlier score minus final; stage 0's best is 0.7 (row 1), not 0.5
    assert final["forgetting"]["mean"] == pytest.approx(((0.7 - 0.2) + (0.8 - 0.6)) / 2)
    after_1 = hand_record().metrics(after_stage=1)
    assert after_1["retained"]["mean"] == pytest.approx((0.7 + 0.8) / 2)
    assert after_1["learning"]["mean"] == pytest.approx((0.5 + 0.8) / 2)
    assert after_1["backward_transfer"]["mean"] == pytest.approx(0.7 - 0.5)
    assert after_1["forgetting"]["mean"] == pytest.approx(0.5 - 0.7)
    first = hand_record().metrics(after_stage=0)
    assert first["retained"]["mean"] == first["learning"]["mean"] == pytest.approx(0.5)
    assert first["backward_transfer"] == first["forgetting"] == {"mean": None, "ci95": None}


def test_confidence_intervals_pair_the_tasks_of_each_stage() -> None:
    final = hand_record().metrics()
    # retained per task: mean of the final row's task t over the stages -> 0.5667 +- 0.05
    spread = sum(o[0] for o in OFFSETS) / 3  # 0.05
    assert final["retained"]["ci95"] == pytest.approx(spread * T_975_DF1)
    # every difference of rows within a column cancels the task offsets: zero spread
    assert final["backward_transfer"]["ci95"] == pytest.approx(0.0, abs=1e-9)
    assert final["forgetting"]["ci95"] == pytest.approx(0.0, abs=1e-9)
    # one number per entry: means as before, no CI
    scalar = hand_record(per_task=False).metrics()
    assert scalar["forgetting"]["mean"] == pytest.approx(final["forgetting"]["mean"])
    assert all(scalar[m]["ci95"] is None for m in scalar)


def test_no_forgetting_gives_zero_backward_transfer_and_forgetting() -> None:
    diagonal = [1.0, -3.0, 2.5, 0.25]
    record = StreamRecord(4)
    for i in range(4):
        record.score_stages(i, lambda j: torch.tensor([diagonal[j] - 1.0, diagonal[j] + 1.0]))
    metrics = record.metrics()
    assert metrics["backward_transfer"]["mean"] == 0.0
    assert metrics["forgetting"]["mean"] == 0.0
    assert metrics["retained"]["mean"] == pytest.approx(metrics["learning"]["mean"])


def test_summary_is_strict_json_with_nulls_where_undefined() -> None:
    record = StreamRecord(3)
    record.record(0, [torch.tensor([1.0, 2.0, 3.0])])
    summary = json.loads(json.dumps(record.summary(), allow_nan=False))
    assert summary["after_stage"] == 0
    assert summary["mean"] == [[2.0, None, None], [None] * 3, [None] * 3]
    assert summary["num_tasks"] == [3, None, None]
    assert summary["metrics"]["backward_transfer"] == {"mean": None, "ci95": None}
    full = json.loads(json.dumps(hand_record().summary(), allow_nan=False))
    assert [m["after_stage"] for m in full["metrics_by_stage"]] == [0, 1, 2]
    assert full["metrics"]["forgetting"]["mean"] == pytest.approx(0.35)
    single = StreamRecord(2)
    single.record(0, [torch.tensor([4.0])])  # one task: no CI, null rather than NaN
    assert json.loads(json.dumps(single.summary(), allow_nan=False))["ci95"][0][0] is None


def test_score_stages_scores_only_the_stages_seen_unless_asked() -> None:
    called: list[int] = []

    def score(j: int) -> torch.Tensor:
        called.append(j)
        return torch.ones(2)

    record = StreamRecord(3)
    record.score_stages(1, score)
    record.score_stages(2, score)
    assert called == [0, 1, 0, 1, 2]
    ahead = StreamRecord(3)
    ahead.score_stages(0, lambda j: torch.full((2,), float(j)), include_future=True)
    assert ahead.mean_matrix()[0] == [0.0, 1.0, 2.0]


def test_mistakes_are_refused() -> None:
    record = hand_record()
    with pytest.raises(ValueError, match="already recorded"):
        record.record(1, [torch.ones(2), torch.ones(2)])
    fresh = StreamRecord(3)
    with pytest.raises(ValueError, match="scores for 2 to 3 stages are needed, got 1"):
        fresh.record(1, [torch.ones(2)])
    with pytest.raises(ValueError, match="non-finite"):
        fresh.record(0, [torch.tensor([1.0, float("nan")])])
    fresh.record(0, [torch.ones(2)])
    with pytest.raises(ValueError, match="stage 0: 3 task scores, earlier rows had 2"):
        fresh.record(1, [torch.ones(3), torch.ones(3)])
    fresh.record(2, [torch.ones(2)] * 3)
    with pytest.raises(ValueError, match=r"missing \[1\]"):
        fresh.metrics()
    with pytest.raises(ValueError, match="after_stage must be in"):
        fresh.record(3, [torch.ones(2)] * 3)


def test_a_checkpointed_record_resumes() -> None:
    buffer = io.BytesIO()
    torch.save(hand_record().state_dict(), buffer)
    buffer.seek(0)
    restored = StreamRecord(3)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.summary() == hand_record().summary()
    with pytest.raises(ValueError, match="3 stages cannot load into one of 4"):
        StreamRecord(4).load_state_dict(hand_record().state_dict())
