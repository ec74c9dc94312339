"""The lines built after the first GPU check, on a CUDA device: the value-based line (DQN
Reptile with its baselines, the online meta-gradient DQN among them), DQN-MER along a
stream, GrBAL with MPC, and the learned optimizer. Each preset trains and evaluates on
``device: cuda`` at a tiny budget, and its checkpoint evaluates on a CPU-only set-up; the
MPC planners, deterministic given the run's CPU generator (:mod:`adaptrl.randomness`),
plan on the GPU what they plan on the CPU. Skipped without a GPU (CI has none); on a GPU
machine: ``pytest tests/devices``. ``run_preset`` takes the device as an argument so that
the same code is exercised on the CPU in ``tests/experiment`` style runs."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from adaptrl.experiment.config import load_config
from adaptrl.experiment.evaluate import evaluate_run
from adaptrl.experiment.trainer import train
from adaptrl.planning.mpc import ActionDomain, cem, mppi, predicted_returns, random_shooting

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

QUIET = ["logging.progress=false", "logging.tensorboard=false"]
DQN = ["algorithm.dqn.buffer_size=500", "algorithm.dqn.batch_size=16",
       "algorithm.dqn.hidden=[16]", "algorithm.dqn.learning_starts=50",
       "algorithm.dqn.total_steps=400"]
PRESETS: dict[str, list[str]] = {
    "dqn-reptile-catcher": [
        "iterations=1", "algorithm.meta_batch_size=2", "algorithm.inner.env_steps=100",
        "algorithm.inner.learning_starts=20", *DQN, "evaluation.num_tasks=2",
        "evaluation.steps=2", "evaluation.env_steps_per_unit=100", "evaluation.episodes=1",
        "evaluation.baselines=[dqn_scratch,dqn_tuned,dqn_metagrad]"],
    "dqn-reptile-catcher-lambda": [  # the meta-gradient baseline learning lambda too
        "iterations=1", "algorithm.meta_batch_size=2", "algorithm.inner.env_steps=100",
        "algorithm.inner.learning_starts=20", *DQN, "evaluation.num_tasks=2",
        "evaluation.steps=2", "evaluation.env_steps_per_unit=100", "evaluation.episodes=1",
        "evaluation.baselines=[dqn_metagrad]", "algorithm.metagrad.window=3",
        "algorithm.metagrad.learn=[gamma,lr,lambda]"],
    "dqn-mer-catcher": [
        "iterations=5", "schedule.iterations_per_stage=1", "schedule.eval_tasks_per_stage=2",
        "algorithm.env_steps=100", *DQN, "algorithm.mer.memories=3", "evaluation.num_tasks=2",
        "evaluation.episodes=1"],
    "grbal-pendulum-cadm": [
        "iterations=1", "family.params.horizon=12", "algorithm.meta_batch_size=2",
        "algorithm.past=4", "algorithm.future=3", "algorithm.batch_windows=5",
        "algorithm.dynamics.hidden=[16]", "algorithm.planner.candidates=16",
        "algorithm.planner.horizon=4", "evaluation.num_tasks=2", "evaluation.episodes=1",
        "evaluation.baselines=[mpc_oracle]"],
    "l2o-catch-grid": [
        "iterations=1", "algorithm.meta_batch_size=2", "algorithm.es.population=4",
        "algorithm.policy.hidden=[8]", "algorithm.tuning.lr_grid=[0.01,0.1]",
        "algorithm.tuning.tasks=2", "evaluation.num_tasks=2", "evaluation.steps=2",
        "evaluation.baselines=[adam_tuned]"],
}


def run_preset(name: str, device: str, root: Path) -> tuple[Path, dict[str, Any]]:
    """Train the preset ``configs/NAME.yaml`` (``NAME-lambda``: its variant) at a tiny
    budget on ``device`` and evaluate it; returns the run folder and its evaluation."""
    preset = name.removesuffix("-lambda")  # a variant of a preset: PRESETS' overrides
    exp, algo = load_config(Path("configs") / f"{preset}.yaml",
                            [*PRESETS[name], *QUIET, f"device={device}"])
    run = root / f"{name}-{device}"
    train(exp, algo, run)
    return run, evaluate_run(run, write=False)


def _finite_curves(result: dict[str, Any]) -> set[str]:
    methods = result.get("methods") or {}
    for name, method in methods.items():
        values = method["mean"] if isinstance(method["mean"], list) else [method["mean"]]
        assert all(math.isfinite(v) for v in values), (name, values)
    return set(methods)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_trains_on_cuda_and_its_checkpoint_evaluates_on_the_cpu(
        name: str, tmp_path: Path) -> None:
    run, on_gpu = run_preset(name, "cuda", tmp_path)
    methods = _finite_curves(on_gpu)
    moved = tmp_path / "moved"
    shutil.copytree(run, moved)
    config = yaml.safe_load((moved / "config.yaml").read_text())
    (moved / "config.yaml").write_text(yaml.safe_dump({**config, "device": "cpu"}))
    on_cpu = evaluate_run(moved, write=False)
    assert _finite_curves(on_cpu) == methods


def _lq() -> tuple[Any, Any, torch.Tensor]:
    """Three double integrators with per-task input gains (tests/planning/test_mpc.py's)."""
    A = torch.tensor([[1.0, 0.1], [0.0, 1.0]])
    B = torch.zeros(3, 2, 1)
    B[:, 1, 0] = torch.tensor([0.1, 0.2, 0.05])
    s0 = torch.tensor([[1.0, 0.0], [-0.5, 0.5], [0.3, -1.0]])

    def dynamics(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return s @ A.to(s.device).T + torch.einsum("nij,ncj->nci", B.to(s.device), a)

    def reward(s: torch.Tensor, a: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
        return -(s.square().sum(-1) + 0.1 * a.square().sum(-1))
    return dynamics, reward, s0


@pytest.mark.parametrize("planner", ["random_shooting", "cem", "mppi"])
def test_planners_plan_on_cuda_what_they_plan_on_the_cpu(planner: str) -> None:
    """Same generator seed: the candidates are the same draws on either device, so the
    plans' returns agree to float rounding (an elite set can differ only on a near tie,
    which moves the return by less than the tolerance)."""
    dynamics, reward, s0 = _lq()
    achieved = {}
    for device in ("cpu", "cuda"):
        box = ActionDomain(torch.tensor([-8.0], device=device),
                           torch.tensor([8.0], device=device))
        gen = torch.Generator().manual_seed(0)
        start = s0.to(device)
        if planner == "random_shooting":
            plan = random_shooting(start, dynamics, reward, box, gen, horizon=2,
                                   candidates=2000)
        elif planner == "cem":
            plan = cem(start, dynamics, reward, box, gen, horizon=5, candidates=500,
                       iterations=5, smoothing=0.1)
        else:
            plan = mppi(start, dynamics, reward, box, gen, horizon=5, candidates=500,
                        iterations=5, temperature=0.01, noise=0.1)
        assert plan.actions.device.type == device
        achieved[device] = predicted_returns(start, plan.actions.unsqueeze(1), dynamics,
                                             reward)[:, 0].cpu()
    assert torch.allclose(achieved["cuda"], achieved["cpu"], rtol=1e-3, atol=1e-3), achieved
