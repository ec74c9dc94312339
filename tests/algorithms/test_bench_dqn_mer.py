"""``benchmarks/bench_dqn_mer.py`` (seeds batched along the stream): a run interrupted after a
stage resumes from its checkpoint to exactly the numbers of an unbroken run, and a
checkpoint of other settings is refused."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["schedule.num_stages=2", "schedule.iterations_per_stage=2", "iterations=4",
         "algorithm.env_steps=150", "algorithm.dqn.learning_starts=50",
         "algorithm.dqn.hidden=[16]", "algorithm.mer.memories=3",
         "schedule.eval_tasks_per_stage=2", "evaluation.episodes=1"]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_dqn_mer", ROOT / "benchmarks" / "bench_dqn_mer.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _numbers(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("wall_s", "cpu_s")}


@pytest.mark.parametrize("algo", ["dqn-er", "dqn-mer"])
def test_interrupted_run_resumes_exactly(algo: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _bench()
    monkeypatch.chdir(ROOT)  # the presets are read from configs/
    torch.set_num_threads(1)
    whole = bench.run("catcher", algo, [1, 2], QUICK)

    ckpt = tmp_path / "run.ckpt.pt"
    real, calls = bench.play_online, {"n": 0}

    def stop_in_stage_1(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:  # iterations 0, 1 (stage 0, saved), 2, then stop
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(bench, "play_online", stop_in_stage_1)
    with pytest.raises(KeyboardInterrupt):
        bench.run("catcher", algo, [1, 2], QUICK, checkpoint=ckpt)
    assert torch.load(ckpt, weights_only=True)["iteration"] == 2
    monkeypatch.setattr(bench, "play_online", real)
    resumed = bench.run("catcher", algo, [1, 2], QUICK, checkpoint=ckpt)
    assert _numbers(resumed) == _numbers(whole)
    assert whole["curve_seed_mean"][1] != [0.0, 0.0]  # both stages were scored

    with pytest.raises(SystemExit, match="holds another run"):
        bench.run("catcher", algo, [1, 2], [*QUICK, "algorithm.dqn.lr=0.01"], checkpoint=ckpt)
