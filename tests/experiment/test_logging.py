"""Logs: plain progress lines off a terminal, TensorBoard tags, Weights & Biases offline."""

from __future__ import annotations

import io
import json
import logging
import re
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adaptrl.algorithms.base import AlgorithmConfig
from adaptrl.errors import UserError
from adaptrl.experiment import scalars as scalars_module
from adaptrl.experiment.config import ConfigError, LoggingConfig, WandbConfig, validate_config
from adaptrl.experiment.evaluate import evaluate_run
from adaptrl.experiment.progress import (
    TrainingProgress,
    format_count,
    format_duration,
    progress_mode,
)
from adaptrl.experiment.run_dir import read_metrics
from adaptrl.experiment.scalars import Scalars, flatten, tag
from adaptrl.experiment.trainer import train

LINE = re.compile(r"^iter (\d+)/(\d+)(  [a-z_/]+ -?\d+\.\d\d)*  env_steps \S+  "
                  r"elapsed \d+:\d\d  eta \d+:\d\d$")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _train(cfg: dict[str, Any], path: Path) -> None:
    exp, algo = validate_config(cfg)
    assert isinstance(algo, AlgorithmConfig)
    train(exp, algo, path, baselines=False)


def _lines(total: int, every_iterations: int, every_seconds: float, seconds_per_iteration: float,
           start: int = 0) -> list[str]:
    out, clock = io.StringIO(), FakeClock()
    with TrainingProgress(total, start, "maml meta-train", True, every_iterations=every_iterations,
                          every_seconds=every_seconds, stream=out, clock=clock) as bar:
        for i in range(start, total):
            clock.now += seconds_per_iteration
            bar.update({"return_pre": -38.214, "return_post": -12.0449, "trpo/kl": 0.01},
                       env_steps=(i + 1) * 1000)
    return out.getvalue().splitlines()


# -- progress lines --------------------------------------------------------------------
def test_modes() -> None:
    assert progress_mode(True, io.StringIO()) == "lines"  # a file, a pipe: lines
    assert progress_mode(True, Tty()) == "bar"
    assert progress_mode("lines", Tty()) == "lines"
    assert progress_mode(False, Tty()) == "off"
    assert progress_mode(False, io.StringIO()) == "off"


def test_line_format_and_eta() -> None:
    lines = _lines(500, 10, 1e9, 2.3)
    assert lines[0] == "maml meta-train: iterations 0..500"
    # 40 iterations of 2.3 s: 92 s elapsed, 460 to go at 2.3 s each
    assert lines[4] == ("iter 40/500  return_pre -38.21  return_post -12.04  "
                        "env_steps 40.00K  elapsed 1:32  eta 17:38")
    assert all(LINE.match(line) for line in lines[1:]), lines[1:3]


def test_cadence_by_iterations_and_last_line() -> None:
    lines = _lines(25, 10, 1e9, 1.0)
    assert [line.split()[1] for line in lines[1:]] == ["10/25", "20/25", "25/25"]
    assert lines[-1].endswith("elapsed 0:25  eta 0:00")


def test_cadence_by_seconds() -> None:
    # 7 s per iteration, a line at least every 30 s: iterations 5, 10, 15 (and every 100)
    lines = _lines(17, 100, 30.0, 7.0)
    assert [line.split()[1] for line in lines[1:]] == ["5/17", "10/17", "15/17", "17/17"]


def test_resumed_eta_counts_this_session() -> None:
    lines = _lines(30, 10, 1e9, 3.0, start=20)
    assert lines[0] == "maml meta-train: iterations 20..30"
    assert lines[-1] == ("iter 30/30  return_pre -38.21  return_post -12.04  env_steps 30.00K  "
                         "elapsed 0:30  eta 0:00")


def test_other_returns_shown() -> None:
    out = io.StringIO()
    with TrainingProgress(1, 0, "rl2", "lines", stream=out, clock=FakeClock()) as bar:
        bar.update({"return_trial": 1.0, "validation_return": 2.5, "stream/retained": -0.125,
                    "ppo/lr": 3e-4})
    assert out.getvalue().splitlines()[-1] == ("iter 1/1  return_trial 1.00  validation_return "
                                               "2.50  stream/retained -0.12  elapsed 0:00  "
                                               "eta 0:00")


def test_formats() -> None:
    assert [format_count(n) for n in (950, 12345, 4_390_000, 1.2e9)] == \
        ["950", "12.35K", "4.39M", "1.20G"]
    assert [format_duration(s) for s in (0, 92, 910, 3725)] == ["0:00", "1:32", "15:10",
                                                                 "1:02:05"]


def test_training_prints_lines_off_a_terminal(tmp_path: Path, tiny_config: dict[str, Any],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    tiny_config["iterations"] = 3
    tiny_config["logging"] = {"tensorboard": False, "progress": True, "every_iterations": 2}
    _train(tiny_config, tmp_path / "run")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("iter ")]
    assert [line.split()[1] for line in lines] == ["2/3", "3/3"]  # every 2, and the last
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    for line, row in zip(lines, (rows[1], rows[2])):
        assert LINE.match(line), line
        assert f"return_post {row['return_post']:.2f}" in line
        assert f"env_steps {format_count(row['env_steps'])}" in line


def test_progress_false_is_silent(tmp_path: Path, tiny_config: dict[str, Any],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    _train(tiny_config, tmp_path / "run")  # TINY: progress false
    assert "iter " not in capsys.readouterr().out


def test_logging_config_checked(tiny_config: dict[str, Any]) -> None:
    cfg = LoggingConfig(progress="lines", every_iterations=5, every_seconds=1.5,
                        wandb={"project": "p", "mode": "offline", "tags": ["a"]})
    assert cfg.wandb == WandbConfig(project="p", mode="offline", tags=["a"])
    assert LoggingConfig().tensorboard is True and LoggingConfig().wandb is None
    for bad, field in (({"progress": "bar"}, "logging.progress"),
                       ({"every_iterations": 0}, "logging.every_iterations"),
                       ({"every_seconds": 0}, "logging.every_seconds"),
                       ({"wandb": {"project": "p", "mode": "sometimes"}}, "logging.wandb.mode"),
                       ({"wandb": {"entity": "e"}}, "logging.wandb.project")):
        with pytest.raises(ConfigError, match=re.escape(field)):
            validate_config({**tiny_config, "logging": bad})


# -- TensorBoard -----------------------------------------------------------------------
def test_keys_namespaced() -> None:
    assert [tag(k) for k in ("return_post", "stage", "trpo/kl", "ppo/lr", "stream/retained")] \
        == ["train/return_post", "train/stage", "trpo/kl", "ppo/lr", "stream/retained"]
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": 1, "a.c": "[1, 2]",
                                                                 "d": "None"}


def test_tensorboard_tags(tmp_path: Path, tiny_config: dict[str, Any]) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tiny_config["logging"] = {"tensorboard": True, "progress": False}
    run = tmp_path / "run"
    _train(tiny_config, run)
    result = evaluate_run(run, baselines=False)
    rows = read_metrics(run / "metrics.jsonl")
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    scalars = acc.Tags()["scalars"]
    by_iteration = acc.Scalars("train/return_post")
    assert [e.step for e in by_iteration] == [r["iteration"] for r in rows]
    assert [e.value for e in by_iteration] == pytest.approx([r["return_post"] for r in rows])
    by_env_steps = acc.Scalars("by_env_steps/train/return_post")
    assert [e.step for e in by_env_steps] == [r["env_steps"] for r in rows]
    assert any(t.startswith("trpo/") for t in scalars)  # the algorithm's own namespace
    assert not any(t.startswith("train/trpo") for t in scalars)
    # the evaluation, at the evaluated checkpoint's iteration and env steps
    k = result["methods"]["agent"]["steps"][-1]
    (ev,) = acc.Scalars(f"eval/agent/return_after_{k}")
    assert ev.step == result["checkpoint_iteration"]
    assert ev.value == pytest.approx(result["methods"]["agent"]["mean"][k])
    (ev_env,) = acc.Scalars(f"by_env_steps/eval/agent/return_after_{k}")
    assert ev_env.step == rows[result["checkpoint_iteration"]]["env_steps"]
    # the config: as text, and as hyperparameters beside the final score
    assert "config/text_summary" in acc.Tags()["tensors"]
    hparams = acc.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in hparams
    from tensorboard.plugins.hparams import plugin_data_pb2
    data = plugin_data_pb2.HParamsPluginData.FromString(hparams["_hparams_/session_start_info"])
    assert data.session_start_info.hparams["algorithm.name"].string_value == "maml"
    assert data.session_start_info.hparams["evaluation.steps"].number_value == 2


def test_evaluation_elsewhere_is_not_logged(tmp_path: Path, tiny_config: dict[str, Any]) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tiny_config["logging"] = {"tensorboard": True, "progress": False}
    run = tmp_path / "run"
    _train(tiny_config, run)
    evaluate_run(run, baselines=False, out=tmp_path / "other.json")
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert not any(t.startswith("eval/") for t in acc.Tags()["scalars"])


def test_tensorboard_missing_warns_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    monkeypatch.setattr(scalars_module, "_warned_missing", False)
    with caplog.at_level(logging.WARNING, logger="adaptrl.experiment.scalars"):
        for _ in range(2):
            s = Scalars(tmp_path / "tb", True)
            s.write(0, {"return_post": 1.0}, 10)
            s.close()
    assert [r.getMessage() for r in caplog.records if "tensorboard" in r.getMessage()] == \
        [caplog.records[0].getMessage()]
    assert "adaptrl[tensorboard]" in caplog.records[0].getMessage()
    assert not (tmp_path / "tb").exists()


# -- Weights & Biases ------------------------------------------------------------------
def test_wandb_missing_is_a_user_error(tmp_path: Path, tiny_config: dict[str, Any],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)
    tiny_config["logging"]["wandb"] = {"project": "adaptrl-test", "mode": "offline"}
    with pytest.raises(UserError, match=re.escape("pip install 'adaptrl[wandb]'")):
        _train(tiny_config, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before training


def _records(path: Path) -> Iterator[Any]:
    """The records of a W&B transaction log (``run-<id>.wandb``, offline mode): a LevelDB
    log format, 32 KiB blocks of chunks (crc32c, length, type) holding protobuf records."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, record = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header: padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            break
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        record = chunk if kind in (1, 2) else record + chunk  # full/first, middle/last
        if kind in (1, 4):
            yield wandb_internal_pb2.Record.FromString(record)  # type: ignore[attr-defined]


def _complete_records(path: Path, timeout_s: float = 60.0) -> list[Any]:
    """The records of ``path`` once W&B's writer has finished it (its ``exit`` record is
    written). ``run.finish()`` can return before W&B's service process has flushed the
    transaction log, so under load the last records may land a moment later."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = list(_records(path))
        if any(r.WhichOneof("record_type") == "exit" for r in records) \
                or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def _key(item: Any) -> str:
    """A history or summary item's key: ``train/return_post`` may be stored as the
    nested key ``["train", "return_post"]``."""
    return str(item.key) or "/".join(item.nested_key)


def test_wandb_offline(tmp_path: Path, tiny_config: dict[str, Any],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb", reason="wandb is an optional extra: pip install 'adaptrl[wandb]'")
    for var, value in (("WANDB_MODE", "offline"), ("WANDB_SILENT", "true"),
                       ("WANDB_CONFIG_DIR", tmp_path / "wandb-config"),
                       ("WANDB_CACHE_DIR", tmp_path / "wandb-cache"),
                       ("WANDB_DATA_DIR", tmp_path / "wandb-data")):
        monkeypatch.setenv(var, str(value))
    tiny_config["logging"]["wandb"] = {"project": "adaptrl-test", "mode": "offline",
                                       "tags": ["ci"]}
    run = tmp_path / "run"
    _train(tiny_config, run)
    result = evaluate_run(run, baselines=False)
    logs = sorted((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(logs) == 2  # training, then the evaluation, resuming the same W&B run
    run_id = (run / "wandb" / "adaptrl-run-id").read_text().strip()
    assert all(p.name == f"run-{run_id}.wandb" for p in logs)
    history: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    for path in logs:
        for r in _complete_records(path):
            kind = r.WhichOneof("record_type")
            if kind == "run" and path == logs[0]:
                assert list(r.run.tags) == ["ci"] and r.run.project == "adaptrl-test"
                config = {i.key: json.loads(i.value_json) for i in r.run.config.update}
                assert config["name"] == "tiny"
                assert config["algorithm"]["name"] == "maml"
            elif kind == "history":
                history.append({_key(i): json.loads(i.value_json) for i in r.history.item})
            elif kind == "summary":
                summary.update({_key(i): json.loads(i.value_json) for i in r.summary.update})
    rows = read_metrics(run / "metrics.jsonl")
    train_rows = [h for h in history if "train/return_post" in h]
    assert [h["iteration"] for h in train_rows] == [r["iteration"] for r in rows]
    assert [h["env_steps"] for h in train_rows] == [r["env_steps"] for r in rows]
    assert [h["train/return_post"] for h in train_rows] == \
        pytest.approx([r["return_post"] for r in rows])
    assert any(k.startswith("trpo/") for k in train_rows[0])
    k = result["methods"]["agent"]["steps"][-1]
    key = f"eval/agent/return_after_{k}"
    assert [h[key] for h in history if key in h] == \
        pytest.approx([result["methods"]["agent"]["mean"][k]])
    assert summary[key] == pytest.approx(result["methods"]["agent"]["mean"][k])
