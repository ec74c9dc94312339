"""DQN along a task stream (algorithms/dqn_mer.py): the memory each learner keeps, MER's
update inside DQN against its formula, stage boundaries, the memory in checkpoints and
exact resume, a CLI run with the stream in eval.json."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from adaptrl.adaptation.mer import mer_update
from adaptrl.agents.contract import AdaptationUnit
from adaptrl.agents.dqn import DQNConfig, bootstrap_values, td_loss
from adaptrl.algorithms.dqn_mer import (
    DQNERConfig,
    DQNMERConfig,
    DQNStreamConfig,
    MERConfig,
    StreamDQNConfig,
    StreamDQNLearner,
)
from adaptrl.algorithms.registry import algorithm_spec
from adaptrl.cli.main import app
from adaptrl.rollouts.online import play_online
from adaptrl.rollouts.replay import ReservoirBuffer, RingBuffer
from adaptrl.tasks import make
from adaptrl.tasks.base import TaskFamily, Tasks

CPU = torch.device("cpu")
DQN = DQNConfig(total_steps=400, learning_starts=20, train_frequency=4, batch_size=8,
                target_period=25, hidden=[16], buffer_size=60)
MER = MERConfig(lr=0.05, beta=0.5, gamma=0.8, memories=3, batches=2)
CONFIGS: list[StreamDQNConfig] = [
    DQNStreamConfig(dqn=DQN, env_steps=50), DQNERConfig(dqn=DQN, env_steps=50),
    DQNMERConfig(dqn=DQN, env_steps=50, mer=MER),
    DQNMERConfig(dqn=DQN, env_steps=50, mer=MER.model_copy(update={"variant":
                                                                   "one-big-batch"}))]
IDS = ["dqn-stream", "dqn-er", "dqn-mer", "dqn-mer-big-batch"]


def _family() -> TaskFamily:
    return make("catcher", horizon=30)


def _tasks(seed: int = 1, n: int = 1) -> Tasks:
    return _family().sample(n, "train", torch.Generator().manual_seed(seed))


def _build(config: StreamDQNConfig, seed: int = 0) -> StreamDQNLearner:
    torch.manual_seed(123)
    return StreamDQNLearner(_family(), config, torch.Generator().manual_seed(seed), CPU)


def test_specs_memory_kinds_and_config_errors() -> None:
    for name in ("dqn-stream", "dqn-er", "dqn-mer"):
        assert algorithm_spec(name).unit == AdaptationUnit.ENV_STEPS
    kinds = [type(_learned(c).memory) for c in CONFIGS[:3]]
    assert kinds == [RingBuffer, ReservoirBuffer, ReservoirBuffer]
    with pytest.raises(ValidationError, match="dqn.n_step"):
        DQNERConfig(dqn=DQNConfig(n_step=3))
    with pytest.raises(ValidationError, match="beta"):
        MERConfig(beta=1.5)


def _learned(config: StreamDQNConfig) -> Any:
    learner = _build(config)
    learner.meta_update(_tasks())
    assert learner.state is not None
    return learner.state


def test_the_reservoir_keeps_every_stage_the_ring_only_the_latest() -> None:
    """After 2 iterations of 50 steps with 60 slots, the ring holds only steps 40..99 and
    the reservoir a uniform sample of all 100 (some from the first iteration)."""
    def observations(config: StreamDQNConfig) -> torch.Tensor:
        learner = _build(config)
        learner.meta_update(_tasks(1))
        learner.meta_update(_tasks(2))
        assert learner.state is not None
        return learner.state.memory.data.obs[0]
    ring, reservoir = observations(CONFIGS[0]), observations(CONFIGS[1])
    assert ring.shape == reservoir.shape == (60, 4)
    # catcher's observation holds the fruit's speed only through its motion: compare with
    # the first iteration's own observations instead
    first = _build(CONFIGS[1])
    first.meta_update(_tasks(1))
    assert first.state is not None
    seen_first = {tuple(r.tolist()) for r in first.state.memory.data.obs[0][:50]}
    in_ring = sum(tuple(r.tolist()) in seen_first for r in ring)
    in_reservoir = sum(tuple(r.tolist()) in seen_first for r in reservoir)
    assert in_ring <= 10 < in_reservoir  # the ring overwrote the first iteration


def test_mer_update_in_dqn_is_algorithm_1_on_fixed_td_targets() -> None:
    learner = _build(CONFIGS[2])
    learner.meta_update(_tasks())
    state = learner.state
    assert state is not None
    before = {k: v.clone() for k, v in state.params.items()}
    g = torch.Generator().manual_seed(5)
    batches = learner.learner.mer_batches(state, copy.deepcopy(g))
    assert batches["obs"].shape == (1, 2, 4, 4)  # [tasks, s, k+1, obs]
    # the targets are r + gamma (1 - terminated) max_a Q_target(s', a): check the current
    # transition's (it is in every batch, exactly once)
    latest = state.latest
    assert latest is not None
    net = learner.network
    q_next = net(latest.next_obs, state.target)
    y = latest.reward + DQN.gamma * bootstrap_values(q_next) * (~latest.terminated).float()
    for i in range(2):
        hits = (batches["obs"][0, i] == latest.obs[0, 0]).all(-1)
        assert int(hits.sum()) >= 1
        assert torch.allclose(batches["y"][0, i][hits], y[0, 0].expand(int(hits.sum())))

    def loss(params: dict[str, torch.Tensor], ex: Any) -> torch.Tensor:
        q = net(ex["obs"].unsqueeze(0), params)[0][ex["action"]]
        return ex["w"] * td_loss(q.view(1, 1), ex["y"].view(1, 1), None)[0]
    expected = mer_update({k: v[0] for k, v in before.items()}, loss,
                          {k: v[0] for k, v in batches.items()}, MER.lr, MER.beta, MER.gamma)
    learner.learner.mer_learn(state, g)
    for k, v in expected.items():
        torch.testing.assert_close(state.params[k][0], v)


@pytest.mark.parametrize("variant", ["algorithm-1", "one-big-batch", "replay-sgd"])
def test_batched_learners_update_as_each_alone(variant: str) -> None:
    """Several learners in one state (the benchmark's batched seeds) go through
    ``over_learners``' vmap; each must get exactly the update it gets alone (the
    one-learner path), from its own batches: no learner sees another's parameters,
    memories or current transition."""
    config = DQNMERConfig(dqn=DQN, env_steps=50, mer=MER.model_copy(update={"variant":
                                                                           variant}))
    learner = _build(config)
    env = _family().make_env(_tasks(n=3), 1)
    stream = learner.learner
    state = play_online(env, stream, 60, torch.Generator().manual_seed(2)).state
    before = {k: v.clone() for k, v in state.params.items()}
    g = torch.Generator().manual_seed(9)
    batches = stream.mer_batches(state, copy.deepcopy(g))
    stream.mer_learn(state, g)
    for i in range(3):
        alone = copy.copy(state)
        alone.params = {k: v[i:i + 1] for k, v in before.items()}
        alone_batches = {k: v[i:i + 1] for k, v in batches.items()}
        alone.target = {k: v[i:i + 1] for k, v in state.target.items()}
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(stream, "mer_batches", lambda *_, b=alone_batches: b)
            stream.mer_learn(alone, g)
        for k, v in alone.params.items():
            torch.testing.assert_close(state.params[k][i], v[0])
        assert not torch.equal(state.params[k][i], before[k][i])


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_memory_in_checkpoints_and_exact_resume(config: StreamDQNConfig) -> None:
    a = _build(config)
    a.meta_update(_tasks(1))
    saved = copy.deepcopy(a.state_dict())
    gen = a.generator.get_state()
    expected = a.meta_update(_tasks(2))
    assert saved["stream_state"]["memory"]["seen"].tolist() == [50]
    b = _build(config, seed=7)
    b.load_state_dict(saved)
    b.generator.set_state(gen)
    assert b.meta_update(_tasks(2)) == expected
    assert a.state is not None and b.state is not None
    for k, v in a.state.params.items():
        assert torch.equal(v, b.state.params[k])
    for k, v in a.state.memory.state_dict()["rows"].items():
        assert torch.equal(v, b.state.memory.state_dict()["rows"][k])
    assert a.state.steps == b.state.steps == 100


def test_pooled_tasks_share_one_learner() -> None:
    config = DQNMERConfig(dqn=DQN, env_steps=30, mer=MER, meta_batch_size=3)
    learner = _build(config)
    learner.meta_update(_tasks(n=3))
    assert learner.state is not None and learner.state.memory.num_tasks == 1
    assert int(learner.state.memory.seen[0]) == 90
    with pytest.raises(ValueError, match="meta_batch_size = 3"):
        learner.meta_update(_tasks(n=2))


def _tiny_stream_config(algo: str) -> dict[str, Any]:
    algorithm: dict[str, Any] = {"name": algo, "env_steps": 40, "dqn": DQN.model_dump()}
    if algo == "dqn-mer":
        algorithm["mer"] = MER.model_dump()
    return {
        "name": f"{algo}-tiny", "seed": 3, "iterations": 4, "checkpoint_every": 1,
        "family": {"name": "catcher", "params": {"horizon": 30}},
        "schedule": {"kind": "stages", "parameter": "fruit_speed", "num_stages": 2,
                     "iterations_per_stage": 2, "eval_tasks_per_stage": 2},
        "algorithm": algorithm,
        "evaluation": {"num_tasks": 2, "steps": 0, "episodes": 2, "env_steps_per_unit": 40,
                       "baselines": [], "checkpoint": "latest"},
    }


def test_stage_boundaries_and_the_stream_through_the_cli(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[float] = []
    original = StreamDQNLearner.meta_update

    def spy(self: StreamDQNLearner, tasks: Tasks) -> dict[str, float]:
        drawn.append(float(tasks.params["fruit_speed"][0]))
        return original(self, tasks)
    monkeypatch.setattr(StreamDQNLearner, "meta_update", spy)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(_tiny_stream_config("dqn-mer")))
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", str(path), "--run-dir", str(run),
                                   "--threads", "1"])
    assert res.exit_code == 0, res.output
    # catcher's fruit speed [1, 4] in 2 increasing stages: [1, 2.5) then [2.5, 4]
    assert len(drawn) == 4
    assert all(1.0 <= v < 2.5 for v in drawn[:2]) and all(2.5 <= v <= 4.0 for v in drawn[2:])
    ev = json.loads((run / "eval.json").read_text())
    stream = ev["stream"]
    assert stream["num_stages"] == 2 and stream["after_stage"] == 1
    assert all(v is not None for row in stream["mean"] for v in row)  # future stages too
    assert set(stream["metrics"]) == {"retained", "learning", "backward_transfer",
                                      "forgetting"}
    assert [s["iterations"] for s in ev["stages"]] == [[0, 2], [2, 4]]
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["stage"] for m in metrics] == [0, 0, 1, 1]
    assert "stream/retained" in metrics[1] and "stream/retained" not in metrics[0]
    # the stream-aware views: train's printout, the forgetting-curve plot, the report
    assert "task stream" in res.output and "backward transfer" in res.output
    assert "stage 0" in res.output and "fruit_speed [1, 2.5)" in res.output
    res = CliRunner().invoke(app, ["plot", str(run)])
    assert res.exit_code == 0, res.output
    assert (run / "plots" / "stream.png").read_bytes().startswith(b"\x89PNG")
    res = CliRunner().invoke(app, ["report", str(run)])
    assert res.exit_code == 0, res.output
    page = (run / "report.html").read_text()
    assert "Task stream" in page and "R[i, j]" in page and "forgetting" in page
