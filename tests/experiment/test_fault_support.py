"""Shared pieces of the fault-injection suite (test_fault_*.py): tiny configs of three
meta-learners, reference (unbroken) runs, a training subprocess that can be paused at a
named window (adaptrl.experiment.fault_points) and killed there, and the comparison of a
resumed run with an unbroken one (metrics without wall times, and the final checkpoints)."""

from __future__ import annotations

import copy
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from adaptrl.experiment.checkpoints import load_checkpoint
from adaptrl.experiment.config import validate_config
from adaptrl.experiment.fault_points import PAUSE_ENV, PAUSE_MARK, PAUSE_SECONDS_ENV
from adaptrl.experiment.run_dir import read_metrics
from adaptrl.experiment.trainer import train

ROOT = Path(__file__).resolve().parents[2]

_BASE: dict[str, Any] = {
    "name": "tiny", "seed": 3, "iterations": 4, "checkpoint_every": 2,
    "family": {"name": "navigation-2d", "params": {"horizon": 10}},
    "evaluation": {"num_tasks": 2, "steps": 1, "episodes": 2, "baselines": []},
    "logging": {"tensorboard": False, "progress": False},
}
ALGORITHMS: dict[str, dict[str, Any]] = {
    "maml": {"name": "maml", "meta_batch_size": 2, "episodes_per_task": 2,
             "policy": {"hidden": [4], "activation": "tanh"}},
    "reptile": {"name": "reptile", "meta_batch_size": 2, "episodes_per_task": 2,
                "policy": {"hidden": [4], "activation": "tanh"}, "inner": {"steps": 2}},
    "rl2": {"name": "rl2", "meta_batch_size": 4, "trials_per_task": 1,
            "policy": {"hidden_size": 4}, "ppo": {"minibatches": 1, "epochs": 1}},
}


def tiny(algorithm: str = "maml", **top: Any) -> dict[str, Any]:
    """A config of ``algorithm`` that trains an iteration in well under a second."""
    cfg = copy.deepcopy(_BASE)
    cfg["algorithm"] = copy.deepcopy(ALGORITHMS[algorithm])
    cfg.update(top)
    return cfg


def run_train(cfg: dict[str, Any], path: Path, resume: bool = False) -> Any:
    exp, algo = validate_config(copy.deepcopy(cfg))
    return train(exp, algo, path, resume=resume, baselines=False)


def strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def comparable(path: Path, name: str) -> dict[str, Any]:
    """A checkpoint without its wall time (the one thing a resumed run may differ in)."""
    state = load_checkpoint(path / "checkpoints" / name)
    return {k: v for k, v in state.items() if k != "wall_time_s"}


def assert_same_run(run: Path, reference: Path) -> None:
    """``run`` wrote what the unbroken ``reference`` wrote: the same metrics (wall times
    aside), the same final latest checkpoint and the same best checkpoint."""
    got = strip(read_metrics(run / "metrics.jsonl"))
    want = strip(read_metrics(reference / "metrics.jsonl"))
    assert got == want, f"metrics differ: {len(got)} vs {len(want)} rows"
    for name in ("latest.pt", "best.pt"):
        assert _same(comparable(run, name), comparable(reference, name)), f"{name} differs"


_REFERENCES: dict[str, Path] = {}


def reference_run(cfg: dict[str, Any], base: Path) -> Path:
    """The unbroken run of ``cfg`` (trained once per test session)."""
    key = json.dumps(cfg, sort_keys=True)
    if key not in _REFERENCES or not _REFERENCES[key].exists():
        path = base / f"reference-{len(_REFERENCES)}"
        run_train(cfg, path)
        _REFERENCES[key] = path
    return _REFERENCES[key]


_SCRIPT = """
import json, signal, sys
# a run started from a background job inherits SIGINT ignored (POSIX), which Python then
# leaves ignored: give it Ctrl-C's KeyboardInterrupt as a terminal would
signal.signal(signal.SIGINT, signal.default_int_handler)
import torch
torch.set_num_threads(1)
from adaptrl.errors import AdaptrlError
from adaptrl.experiment.config import validate_config
from adaptrl.experiment.trainer import train
cfg, path, resume = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
try:
    exp, algo = validate_config(cfg)
    train(exp, algo, path, resume=resume, baselines=False)
except AdaptrlError as err:
    print(f"error: {err}", file=sys.stderr)
    sys.exit(err.exit_code)
except KeyboardInterrupt:
    sys.exit(130)
"""


def start_training(cfg: dict[str, Any], path: Path, pause: str | None = None,
                   resume: bool = False) -> subprocess.Popen[str]:
    """``train`` in a subprocess (as the CLI runs it); with ``pause`` it stops at that
    window (``name[@hit]``) until killed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    env.pop(PAUSE_ENV, None)
    if pause:
        env[PAUSE_ENV], env[PAUSE_SECONDS_ENV] = pause, "60"
    return subprocess.Popen([sys.executable, "-c", _SCRIPT, json.dumps(cfg), str(path),
                             "1" if resume else "0"], env=env, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)


def wait_for_pause(proc: subprocess.Popen[str], timeout: float = 60.0) -> bool:
    """Read the subprocess's stderr until it reports reaching its pause window; ``False``
    if it ended first having exited 0 (the run finished before the window); an error
    exit fails the test with the process's stderr."""
    assert proc.stderr is not None
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.5)
        line = proc.stderr.readline() if ready else ""
        if line.startswith(PAUSE_MARK):
            return True
        seen.append(line)
        if (ready and not line) or (not ready and proc.poll() is not None):
            seen.append(proc.stderr.read())
            assert proc.wait() == 0, "training subprocess failed:\n" + "".join(seen)[-3000:]
            return False
    proc.kill()
    raise AssertionError("the training subprocess never reached its window")
