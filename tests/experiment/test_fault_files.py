"""The run's files: nothing overwritten by a new run (item 3), every file written
atomically and nothing rewritten before a resume is known to work (item 4), damaged
checkpoints handled with a fallback or one line (item 6), stray temporaries cleared
(item 8), I/O errors reported as one line naming the file (FaultError)."""

from __future__ import annotations

import errno
import logging
import math
import shutil
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import torch
from test_fault_support import assert_same_run, reference_run, run_train, tiny

from adaptrl.errors import FaultError, UserError
from adaptrl.experiment import atomic, evaluate, fault_points
from adaptrl.experiment.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from adaptrl.experiment.config import ConfigError
from adaptrl.experiment.evaluate import evaluate_run


def _snapshot(run: Path) -> dict[str, bytes]:
    """Every file of a run directory and its bytes (the lock file aside)."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and p.name != ".lock"}


@pytest.fixture
def trained(tmp_path: Path) -> Path:
    """A 3-iteration run with a checkpoint every iteration (latest 3, previous 2)."""
    run_train(tiny(iterations=3, checkpoint_every=1), tmp_path / "run")
    return tmp_path / "run"


# -- item 3: a new run never starts over an existing one -------------------------------

@pytest.mark.parametrize("held", ["metrics.jsonl", "eval.json", "checkpoints/best.pt",
                                  "baselines/pretrained/metrics.jsonl", "notes.txt"])
def test_new_run_refused_where_anything_is(held: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / held).parent.mkdir(parents=True, exist_ok=True)
    (run / held).write_text("precious\n")
    before = _snapshot(run)
    with pytest.raises(ConfigError, match="already holds a run") as err:
        run_train(tiny(), run)
    assert held.split("/")[0] in str(err.value) and "\n" not in str(err.value)
    assert _snapshot(run) == before


def test_a_run_that_failed_before_training_starts_again(tmp_path: Path) -> None:
    """A config.yaml alone (the run stopped before its first checkpoint, e.g. on a family
    parameter error) is no results: a new run may start there, and --resume starts it."""
    for resume in (False, True):
        run = tmp_path / f"run-{resume}"
        run.mkdir()
        (run / "config.yaml").write_text("name: old\n")
        run_train(tiny(iterations=1), run, resume=resume)
        assert (run / "checkpoints" / "latest.pt").exists()


def test_following_the_advice_loses_nothing(trained: Path) -> None:
    """The audit's case: no checkpoint left, `--resume` advised a fresh start, which cut
    metrics.jsonl and overwrote best.pt. Now neither way changes a byte."""
    for name in ("latest.pt", "previous.pt", "best.pt"):
        (trained / "checkpoints" / name).unlink()
    (trained / "eval.json").write_text("{}\n")
    before = _snapshot(trained)
    with pytest.raises(ConfigError, match="another --run-dir") as err:
        run_train(tiny(), trained, resume=True)
    assert "metrics.jsonl" in str(err.value)
    with pytest.raises(ConfigError, match="already holds a run"):
        run_train(tiny(), trained)
    assert _snapshot(trained) == before


def test_missing_latest_resumes_from_previous(trained: Path, tmp_path_factory: Any,
                                              caplog: pytest.LogCaptureFixture) -> None:
    cfg = tiny(iterations=4, checkpoint_every=1)
    (trained / "checkpoints" / "latest.pt").unlink()  # e.g. killed between the renames
    with caplog.at_level(logging.WARNING):
        run_train(cfg, trained, resume=True)
    assert "latest.pt: no such checkpoint" in caplog.text
    assert_same_run(trained, reference_run(cfg, tmp_path_factory.mktemp("ref")))


# -- item 6: damaged checkpoints --------------------------------------------------------

def _rewrite(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    state = load_checkpoint(path)
    change(state)
    torch.save(state, path)


def _set(key: str, value: Any) -> Callable[[Path], None]:
    return lambda p: _rewrite(p, lambda s: s.__setitem__(key, value))


def _nan_weights(path: Path) -> None:
    def change(state: dict[str, Any]) -> None:
        weight = next(iter(state["learner"]["policy"].values()))
        weight.view(-1)[0] = math.nan
    _rewrite(path, change)


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    tensor_at = data.find(b"data/0") + 200  # inside the first tensor's bytes
    data[tensor_at:tensor_at + 16] = bytes(16)
    path.write_bytes(bytes(data))


CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "truncated_tail": lambda p: p.write_bytes(p.read_bytes()[:-10]),
    "zero_bytes": lambda p: p.write_bytes(b""),
    "zeroed": lambda p: p.write_bytes(bytes(p.stat().st_size)),
    "garbage": lambda p: p.write_bytes(b"hello world " * 100),
    "flipped_bytes": _flip,
    "no_learner": lambda p: _rewrite(p, lambda s: s.pop("learner")),
    "no_generator": lambda p: _rewrite(p, lambda s: s.pop("generator")),
    "iteration_str": _set("iteration", "3"),
    "iteration_float": _set("iteration", 2.5),
    "iteration_negative": _set("iteration", -1),
    "learner_not_dict": _set("learner", [1, 2]),
    "generator_wrong": _set("generator", torch.zeros(3)),
    "nan_weights": _nan_weights,
    "malicious_pickle": lambda p: torch.save({"obj": Fraction(1, 3)}, p),
    "a_list": lambda p: torch.save([1, 2, 3], p),
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_damaged_latest_falls_back_to_the_newest_good(kind: str, trained: Path,
                                                     tmp_path_factory: Any,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    cfg = tiny(iterations=4, checkpoint_every=1)
    CORRUPTIONS[kind](trained / "checkpoints" / "latest.pt")
    with caplog.at_level(logging.WARNING):
        run_train(cfg, trained, resume=True)
    assert "latest.pt" in caplog.text and "instead" in caplog.text
    assert_same_run(trained, reference_run(cfg, tmp_path_factory.mktemp("ref")))


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_nothing_good_left_is_one_line(kind: str, trained: Path) -> None:
    for name in ("latest.pt", "previous.pt", "best.pt"):
        CORRUPTIONS[kind](trained / "checkpoints" / name)
    before = _snapshot(trained)
    with pytest.raises(CheckpointError) as err:
        run_train(tiny(iterations=4, checkpoint_every=1), trained, resume=True)
    assert err.value.exit_code == 1 and "\n" not in str(err.value)
    assert "latest.pt" in str(err.value) and "previous.pt" in str(err.value)
    assert _snapshot(trained) == before  # config.yaml and metrics untouched


def test_malicious_checkpoint_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"obj": Fraction(1, 3)}, path)
    with pytest.raises(CheckpointError, match="refused") as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value)


def test_resume_with_other_network_sizes_changes_nothing(trained: Path) -> None:
    """`--resume --set algorithm.policy.hidden=[8]`: refused before config.yaml is rewritten;
    the run still evaluates and resumes with its own settings."""
    before = _snapshot(trained)
    wider = tiny(iterations=4, checkpoint_every=1)
    wider["algorithm"]["policy"]["hidden"] = [8]
    with pytest.raises(UserError, match="does not fit") as err:
        run_train(wider, trained, resume=True)
    assert "size mismatch" in str(err.value) and "\n" not in str(err.value)
    assert _snapshot(trained) == before
    evaluate_run(trained, write=False)
    run_train(tiny(iterations=4, checkpoint_every=1), trained, resume=True)


def test_evaluate_refuses_non_finite_weights(trained: Path) -> None:
    _nan_weights(trained / "checkpoints" / "best.pt")
    with pytest.raises(CheckpointError, match="non-finite"):
        evaluate_run(trained)
    assert not (trained / "eval.json").exists()


def test_evaluate_latest_falls_back_to_previous(trained: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    CORRUPTIONS["truncated"](trained / "checkpoints" / "latest.pt")
    with caplog.at_level(logging.WARNING):
        result = evaluate_run(trained, checkpoint="latest", write=False)
    assert result["checkpoint_iteration"] == 1 and "previous.pt" in caplog.text


# -- item 4: atomic writes, I/O errors ---------------------------------------------------

def test_crash_inside_config_rewrite_keeps_the_config(trained: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    before = _snapshot(trained)

    def crash(name: str) -> None:
        if name == "atomic.written:config.yaml":
            raise KeyboardInterrupt

    monkeypatch.setattr(fault_points, "hook", crash)
    with pytest.raises(KeyboardInterrupt):
        run_train(tiny(iterations=4, checkpoint_every=1), trained, resume=True)
    assert _snapshot(trained) == before and not list(trained.rglob("*.tmp"))


def test_crash_inside_metrics_rewrite_keeps_the_metrics(trained: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (trained / "checkpoints" / "latest.pt").unlink()  # resume from 2: metrics cut to 2 rows
    metrics = (trained / "metrics.jsonl").read_bytes()

    def crash(name: str) -> None:
        if name == "atomic.written:metrics.jsonl":
            raise KeyboardInterrupt

    monkeypatch.setattr(fault_points, "hook", crash)
    with pytest.raises(KeyboardInterrupt):
        run_train(tiny(iterations=4, checkpoint_every=1), trained, resume=True)
    assert (trained / "metrics.jsonl").read_bytes() == metrics


def test_full_disk_is_a_one_line_fault_keeping_the_old_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "latest.pt"
    save_checkpoint({"x": torch.ones(2)}, path)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(FaultError) as err:
        save_checkpoint({"x": torch.zeros(2)}, path)
    assert str(err.value) == (f"cannot write {path}: No space left on device; "
                              "the previous latest.pt is kept")
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["x"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]


def test_evaluate_checks_eval_json_is_writable_first(trained: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def read_only(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EROFS, "Read-only file system")

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("evaluated before checking eval.json can be written")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", read_only)
    monkeypatch.setattr(evaluate, "adaptation_curves", never)
    with pytest.raises(FaultError, match="eval.json: Read-only file system"):
        evaluate_run(trained)


# -- item 8: stray temporaries -----------------------------------------------------------

def test_stray_temporaries_are_cleared_and_only_ours(trained: Path) -> None:
    ours = [trained / "checkpoints" / ".latest.pt.k3j_x9a2.tmp",
            trained / "checkpoints" / ".previous.pt.abcdefgh.tmp",
            trained / ".metrics.jsonl.0a1b2c3d.tmp", trained / ".config.yaml.zzzzzzzz.tmp"]
    theirs = [trained / "checkpoints" / ".latest.pt.mine.tmp", trained / "notes.tmp",
              trained / "checkpoints" / ".eval.json.abcdefgh.tmp"]
    for p in ours + theirs:
        p.write_bytes(b"partial")
    run_train(tiny(iterations=4, checkpoint_every=1), trained, resume=True)
    assert not any(p.exists() for p in ours) and all(p.exists() for p in theirs)


def test_a_copy_of_a_run_resumes(trained: Path, tmp_path: Path) -> None:
    """The lock file travels with a copied run and is simply taken over."""
    shutil.copytree(trained, tmp_path / "copy")
    run_train(tiny(iterations=4, checkpoint_every=1), tmp_path / "copy", resume=True)
