"""A task family from outside adaptrl, named by ``family.entry_point`` (``module:factory``):
trained, evaluated, plotted and compared through the CLI from a module that exists only in a
test folder on ``sys.path``; every way the entry point can be wrong is one ``error:`` line
naming the module or attribute, with exit code 2."""

from __future__ import annotations

import copy
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from adaptrl.cli.main import app
from adaptrl.experiment.config import ConfigError, validate_config
from adaptrl.experiment.learners import build_family

# A one-dimensional reach task: a point on a line steps towards a goal drawn per task. A
# family of its own (its own env), not a wrapped built-in one.
FAMILY_MODULE = textwrap.dedent('''
    import gymnasium as gym
    import numpy as np
    import torch

    from adaptrl.tasks.base import StepResult, Tasks
    from adaptrl.tasks.splits import sample_split


    class LineEnv:
        def __init__(self, goal, episodes, horizon, device):
            self.goal = goal.to(device).reshape(-1, 1, 1)
            self.num_tasks, self.episodes_per_task = goal.shape[0], episodes
            self.horizon, self.device = horizon, device
            self.pos = torch.zeros(self.num_tasks, episodes, 1, device=device)
            self.t = 0

        def reset(self, generator=None):
            self.pos = torch.zeros_like(self.pos)
            self.t = 0
            return self.pos.clone()

        def step(self, action):
            self.pos = self.pos + action.clamp(-0.2, 0.2)
            self.t += 1
            reward = -(self.pos - self.goal).abs()[..., 0]
            done = torch.zeros_like(reward, dtype=torch.bool)
            return StepResult(self.pos.clone(), reward, done, done | (self.t >= self.horizon))


    class LineReach:
        name = "line-reach"

        def __init__(self, horizon: int = 10, reach: float = 1.0):
            self.horizon, self.reach = horizon, reach
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
            self.action_space = gym.spaces.Box(-0.2, 0.2, (1,), np.float32)

        def _draw(self, n, generator):
            return Tasks({"goal": self.reach * (2 * torch.rand(n, generator=generator) - 1)})

        def sample(self, n, split, generator):
            return sample_split(self._draw, n, split, generator)

        def make_env(self, tasks, episodes_per_task, device="cpu"):
            return LineEnv(tasks.params["goal"], episodes_per_task, self.horizon,
                           torch.device(device))


    def make_line_reach(horizon: int = 10, reach: float = 1.0):
        return LineReach(horizon, reach)


    def broken(horizon: int = 10):
        raise RuntimeError("no such line")


    def not_a_family(horizon: int = 10):
        return [horizon]


    NOT_CALLABLE = 42
''')


@pytest.fixture
def family_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The module ``my_line_family`` in a folder put on ``sys.path``."""
    folder = tmp_path / "user_code"
    folder.mkdir()
    (folder / "my_line_family.py").write_text(FAMILY_MODULE)
    monkeypatch.syspath_prepend(str(folder))
    return "my_line_family"


def _config(tiny: dict[str, Any], entry_point: str, **params: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(tiny)
    cfg["family"] = {"name": "line-reach", "entry_point": entry_point,
                     "params": {"horizon": 8, **params}}
    cfg["iterations"] = 1
    cfg["evaluation"]["baselines"] = ["scratch", "oracle"]  # no oracle: skipped
    return cfg


def _write(tmp_path: Path, cfg: dict[str, Any], name: str = "line.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_train_evaluate_plot_through_the_cli(tmp_path: Path, tiny_config: dict[str, Any],
                                             family_module: str) -> None:
    cfg = _config(tiny_config, f"{family_module}:make_line_reach", reach=0.5)
    run = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(app, ["train", str(_write(tmp_path, cfg)), "--run-dir", str(run)])
    assert result.exit_code == 0, result.output
    recorded = yaml.safe_load((run / "config.yaml").read_text())["family"]
    assert recorded["entry_point"] == f"{family_module}:make_line_reach"
    assert recorded["params"] == {"horizon": 8, "reach": 0.5}
    ev = json.loads((run / "eval.json").read_text())
    assert ev["family"] == "line-reach" and set(ev["methods"]) == {"agent", "scratch"}

    # later commands rebuild the family from the run's config.yaml alone
    for args in (["evaluate", str(run), "--tasks", "2", "--steps", "1"], ["plot", str(run)],
                 ["compare", str(run), str(run), "--tasks", "2", "--steps", "1"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)


def test_entry_point_family_is_built_and_checked(tiny_config: dict[str, Any],
                                                 family_module: str) -> None:
    exp, _ = validate_config(_config(tiny_config, f"{family_module}:make_line_reach"))
    family = build_family(exp)
    assert type(family).__name__ == "LineReach" and family.horizon == 8
    # the factory's signature checks params, as for a registered family
    with pytest.raises(ConfigError, match=r"family\.params\.reech: unknown parameter.*"
                                          r"did you mean 'reach'"):
        validate_config(_config(tiny_config, f"{family_module}:make_line_reach", reech=1.0))
    with pytest.raises(ConfigError, match=r"family\.params\.reach"):
        validate_config(_config(tiny_config, f"{family_module}:make_line_reach",
                                reach="far"))
    # a registered family's name is not a label for another family
    cfg = _config(tiny_config, f"{family_module}:make_line_reach")
    cfg["family"]["name"] = "navigation-2d"
    with pytest.raises(ConfigError, match="'navigation-2d' is a registered family"):
        validate_config(cfg)


@pytest.mark.parametrize("entry_point, expected", [
    ("my_line_family.make_line_reach", ["family.entry_point", "must be 'package.module:factory'"]),
    ("no_such_module_xyz:make", ["family.entry_point",
                                 "cannot import module 'no_such_module_xyz': no such module"]),
    ("my_line_family:make_line_rech", ["family.entry_point", "module 'my_line_family' "
                                       "has no attribute 'make_line_rech'"]),
    ("my_line_family:NOT_CALLABLE", ["family.entry_point", "'NOT_CALLABLE' in module "
                                     "'my_line_family' is a int, not callable"]),
    ("my_line_family:broken", ["family.entry_point", "my_line_family:broken(**family.params) "
                               "raised RuntimeError: no such line"]),
    ("my_line_family:not_a_family", ["family.entry_point", "returned a list, not a task "
                                     "family"]),
])
def test_bad_entry_points_are_one_line_errors(tmp_path: Path, tiny_config: dict[str, Any],
                                              family_module: str, entry_point: str,
                                              expected: list[str]) -> None:
    path = _write(tmp_path, _config(tiny_config, entry_point))
    result = CliRunner().invoke(app, ["train", str(path), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    problem = result.output[result.output.index("error:"):]
    assert all(part in problem for part in expected), problem
    assert len([ln for ln in problem.splitlines() if "family.entry_point" in ln]) == 1
