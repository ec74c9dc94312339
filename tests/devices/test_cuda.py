"""adaptrl on a CUDA device: every path a run takes, checked against the same run on the CPU.

A run on ``device: cuda`` draws its random numbers from the run's one CPU generator
(:mod:`adaptrl.randomness`), so a Gaussian-policy run sees the same noise on either device
and its figures agree up to float rounding; categorical draws use inverse-CDF sampling off
the CPU, so discrete-action runs are compared statistically. Skipped without a GPU (CI has
none); on a GPU machine: ``pytest tests/devices``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import torch
import yaml
from typer.testing import CliRunner

from adaptrl.agents.classic.bandits import UCB1, Thompson, run_bandit
from adaptrl.agents.classic.gittins import GittinsPolicy
from adaptrl.agents.classic.tabular import BEB, PSRL, run_mdp
from adaptrl.agents.classic.trial_agents import classic_agent
from adaptrl.algorithms.rl2 import RL2, RL2Config
from adaptrl.cli.main import app
from adaptrl.evaluation.protocol import adaptation_curve
from adaptrl.experiment.learners import build_learner
from adaptrl.tasks import check_task_family, registered
from adaptrl.tasks.bandits import BanditBernoulli
from adaptrl.tasks.navigation import Navigation2D
from adaptrl.tasks.tabular_mdp import TabularMDP

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA, CPU = torch.device("cuda"), torch.device("cpu")
runner = CliRunner()


@pytest.mark.parametrize("name", [n for n, spec in registered().items() if not spec.extra])
def test_builtin_family_conforms_on_cuda(name: str) -> None:
    try:
        family = registered()[name].factory()
    except (ImportError, gym.error.DependencyNotInstalled) as error:
        pytest.skip(f"{name}: {error}")
    check_task_family(family, device=CUDA)


def _train(tmp_path: Path, config: dict[str, Any], device: str, *extra: str) -> Path:
    run = tmp_path / device
    path = tmp_path / f"{device}.yaml"
    path.write_text(yaml.safe_dump({**config, "device": device}))
    res = runner.invoke(app, ["train", str(path), "--run-dir", str(run), *extra])
    assert res.exit_code == 0, res.output
    return run


def _metrics(run: Path, key: str) -> list[float]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)[key] for line in lines]


def _agent_curve(run: Path) -> list[float]:
    return json.loads((run / "eval-seed4.json").read_text())["methods"]["agent"]["mean"]


def test_maml_run_on_cuda_matches_the_cpu_run(tmp_path: Path,
                                              tiny_config: dict[str, Any]) -> None:
    """Train (2 meta-iterations) on either device: the same training figures. The first
    iteration (same weights, same noise) agrees to float rounding; after a TRPO step the two
    runs may part a little more, since the line search's accept test (KL bound, improvement)
    can fall on either side of its threshold by a rounding error and take one backtrack
    (x 0.8) more or less (seen on an H100: 0.5% in the second iteration's pre-adaptation
    return). Evaluation is then checked on *the same weights*: the CPU run's checkpoint
    evaluated on the GPU gives the CPU's figures for every method. (Comparing the two runs'
    evaluations instead compares two slightly different agents: on an H100 the agent's curve
    of the GPU-trained run was 2.1% off the CPU-trained run's after its adaptation steps.)"""
    on_cpu = _train(tmp_path, tiny_config, "cpu", "--set", "baselines.pretrained_iterations=1")
    on_gpu = _train(tmp_path, tiny_config, "cuda", "--set", "baselines.pretrained_iterations=1",
                    "--no-eval")
    for key in ("return_pre", "return_post"):
        cpu, gpu = _metrics(on_cpu, key), _metrics(on_gpu, key)
        assert gpu[0] == pytest.approx(cpu[0], rel=1e-3)
        assert gpu == pytest.approx(cpu, rel=2e-2)
    moved = tmp_path / "cpu-run-on-gpu"
    shutil.copytree(on_cpu, moved)
    config = yaml.safe_load((moved / "config.yaml").read_text())
    (moved / "config.yaml").write_text(yaml.safe_dump({**config, "device": "cuda"}))
    (moved / "eval.json").unlink()
    res = runner.invoke(app, ["evaluate", str(moved)])
    assert res.exit_code == 0, res.output
    cpu_eval = json.loads((on_cpu / "eval.json").read_text())["methods"]
    gpu_eval = json.loads((moved / "eval.json").read_text())["methods"]
    assert set(gpu_eval) == set(cpu_eval)
    for name in cpu_eval:
        assert gpu_eval[name]["mean"] == pytest.approx(cpu_eval[name]["mean"], rel=1e-3,
                                                       abs=1e-3), name
    assert runner.invoke(app, ["plot", str(moved)]).exit_code == 0
    assert (moved / "plots" / "adaptation_curve.png").stat().st_size > 1000


def test_a_cuda_checkpoint_evaluates_and_resumes_on_the_cpu(
        tmp_path: Path, tiny_config: dict[str, Any]) -> None:
    """Checkpoints hold CPU tensors: a GPU run moves to a CPU-only machine unchanged."""
    on_gpu = _train(tmp_path, tiny_config, "cuda", "--no-eval")
    moved = tmp_path / "moved"
    shutil.copytree(on_gpu, moved)
    config = yaml.safe_load((moved / "config.yaml").read_text())
    (moved / "config.yaml").write_text(yaml.safe_dump({**config, "device": "cpu"}))
    for run in (on_gpu, moved):
        res = runner.invoke(app, ["evaluate", str(run), "--seed", "4"])
        assert res.exit_code == 0, res.output
    assert _agent_curve(moved) == pytest.approx(_agent_curve(on_gpu), rel=1e-3, abs=1e-3)
    res = runner.invoke(app, ["train", str(moved / "config.yaml"), "--run-dir", str(moved),
                              "--resume", "--iterations", "3", "--no-eval"])
    assert res.exit_code == 0, res.output
    assert [json.loads(x)["iteration"] for x in
            (moved / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2]


def _rl2(family: Any, device: torch.device, seed: int = 0) -> RL2:
    """A small RL² learner built as the trainer builds it (weights fixed by ``seed``)."""
    cfg = RL2Config(meta_batch_size=8, policy={"hidden_size": 16},
                    ppo={"epochs": 2, "minibatches": 2})
    return build_learner(family, cfg, torch.Generator().manual_seed(seed), device, seed)


def _updates(alg: RL2, iterations: int) -> list[dict[str, float]]:
    batch = alg.config.meta_batch_size
    return [alg.meta_update(alg.family.sample(batch, "train", alg.generator))
            for _ in range(iterations)]


def test_rl2_gaussian_updates_on_cuda_match_the_cpu() -> None:
    """Recurrent PPO through cuDNN's GRU: the same trials and nearly the same updates."""
    family = Navigation2D(horizon=6)
    cpu = _updates(_rl2(family, CPU), 3)
    gpu = _updates(_rl2(family, CUDA), 3)
    for a, b in zip(cpu, gpu):
        assert b["return_trial"] == pytest.approx(a["return_trial"], rel=1e-3)
        assert b["ppo/value_loss"] == pytest.approx(a["ppo/value_loss"], rel=1e-2)


def test_rl2_categorical_on_cuda_is_seeded_and_writes_its_table(tmp_path: Path) -> None:
    family = TabularMDP(num_states=3, num_actions=2, horizon=3, trial_length=2)
    a, b = _updates(_rl2(family, CUDA, 5), 2), _updates(_rl2(family, CUDA, 5), 2)
    assert [m["return_trial"] for m in a] == [m["return_trial"] for m in b]
    config = {"name": "rl2-cuda", "seed": 0, "iterations": 2, "checkpoint_every": 1,
              "family": {"name": "tabular-mdp",
                         "params": {"num_states": 4, "num_actions": 2, "horizon": 3,
                                    "trial_length": 2}},
              "algorithm": {"name": "rl2", "meta_batch_size": 8,
                            "policy": {"hidden_size": 16, "transition_input": True}},
              "evaluation": {"num_tasks": 50, "steps": 1, "episodes": 1, "baselines": []},
              "logging": {"tensorboard": False, "progress": False}}
    run = _train(tmp_path, config, "cuda")
    (row,) = json.loads((run / "eval.json").read_text())["table"]["settings"]
    assert {"rl2", "psrl", "beb"} <= set(row["methods"]) and row["rl2_minus"]["beb"]["ci95"] > 0


def _cuda_generator(seed: int) -> torch.Generator:
    return torch.Generator(device=CUDA).manual_seed(seed)


@pytest.mark.parametrize("policy", [UCB1(), Thompson(), GittinsPolicy()],
                         ids=["ucb1", "thompson", "gittins"])
def test_classic_bandit_algorithms_score_the_same_on_cuda(policy: Any) -> None:
    """Same instances on both devices, each device's own draws: the means agree within
    sampling error (4 standard errors of the difference)."""
    p = BanditBernoulli(5, 10).sample(4000, "test", torch.Generator().manual_seed(0)).params["p"]
    cpu = run_bandit(policy, p, 10, torch.Generator().manual_seed(1)).sum(1)
    gpu = run_bandit(policy, p.to(CUDA), 10, _cuda_generator(1)).sum(1).cpu()
    se = (cpu.var() / len(cpu) + gpu.var() / len(gpu)).sqrt()
    assert abs(float(cpu.mean() - gpu.mean())) < 4 * float(se)


@pytest.mark.parametrize("make_agent", [PSRL, BEB], ids=["psrl", "beb"])
def test_classic_mdp_algorithms_score_the_same_on_cuda(make_agent: Any) -> None:
    family = TabularMDP(num_states=5, num_actions=3, horizon=5, trial_length=3)
    tasks = family.sample(500, "test", torch.Generator().manual_seed(0))
    trans, reward = tasks.params["transitions"], tasks.params["reward_mean"]
    cpu = run_mdp(make_agent(), trans, reward, 3, torch.Generator().manual_seed(1), 5).sum(1)
    gpu = run_mdp(make_agent(), trans.to(CUDA), reward.to(CUDA), 3, _cuda_generator(1),
                  5).sum(1).cpu()
    se = (cpu.var() / len(cpu) + gpu.var() / len(gpu)).sqrt()
    assert abs(float(cpu.mean() - gpu.mean())) < 4 * float(se)


@pytest.mark.parametrize(("family", "name"), [
    (BanditBernoulli(5, 10), "ucb1"), (BanditBernoulli(5, 10), "thompson"),
    (BanditBernoulli(5, 10), "gittins"), (TabularMDP(5, 3, 5, 3), "psrl"),
    (TabularMDP(5, 3, 5, 3), "beb_per_step")], ids=["ucb1", "thompson", "gittins", "psrl",
                                                     "beb_per_step"])
def test_classic_trial_agents_score_the_same_on_cuda(family: Any, name: str) -> None:
    """The protocol's call (its CPU generator, the env and the counts on the GPU) scores a
    classic agent on CUDA as on the CPU: per-task totals agree within 4 standard errors of
    the paired difference."""
    tasks = family.sample(1000, "test", torch.Generator().manual_seed(0))
    agent = classic_agent(family, name, {})
    steps = family.trial_length - 1
    cpu = adaptation_curve(family, agent, tasks, steps, 2, 1, CPU).sum(0).double()
    gpu = adaptation_curve(family, agent, tasks, steps, 2, 1, CUDA).sum(0).double().cpu()
    diff = gpu - cpu
    assert abs(float(diff.mean())) <= 4 * float(diff.std()) / len(diff) ** 0.5 + 1e-9
