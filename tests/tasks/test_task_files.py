"""Fixed task sets in JSON files (adaptrl.tasks.files): round trip and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from adaptrl.tasks import make
from adaptrl.tasks.files import load_tasks, save_tasks

REPO = Path(__file__).resolve().parents[2]


def test_round_trip(tmp_path: Path) -> None:
    family = make("navigation-2d")
    tasks = family.sample(5, "test", torch.Generator().manual_seed(3))
    path = tmp_path / "tasks.json"
    save_tasks(path, "navigation-2d", tasks, about="five test goals")
    assert json.loads(path.read_text())["about"] == "five test goals"
    assert torch.equal(load_tasks(path, family).params["goal"], tasks.params["goal"])


def test_the_maml_papers_goals_are_numpys_seed_1_draws() -> None:
    """The reference meta-test draws its 40 goals with numpy's legacy generator, seed 1:
    the first three of numpy.random.seed(1); uniform(-0.5, 0.5, (40, 2)), known answers."""
    tasks = load_tasks(REPO / "configs/tasks/maml-navigation-paper-goals.json",
                       make("navigation-2d"))
    goals = tasks.params["goal"]
    assert goals.shape == (40, 2)
    expected = torch.tensor([[-0.0829780, 0.2203245], [-0.4998856, -0.1976674],
                             [-0.3532441, -0.4076614]])
    assert torch.allclose(goals[:3], expected, atol=1e-6)
    assert float(goals.abs().max()) <= 0.5


@pytest.mark.parametrize("content, message", [
    ({"family": "bandit-bernoulli", "params": {"goal": [[0, 0]]}},
     "family 'bandit-bernoulli', the run's is 'navigation-2d'"),
    ({"family": "navigation-2d", "params": {"target": [[0, 0]]}},
     "params ['target']; navigation-2d needs exactly ['goal']"),
    ({"family": "navigation-2d", "params": {"goal": [0.1, 0.2]}},
     "params.goal has shape [2]; navigation-2d needs [tasks, 2]"),
    ({"family": "navigation-2d", "params": {"goal": [["a", 0.2]]}},
     "params.goal is not a numeric array"),
    ({"family": "navigation-2d"}, "expected an object with 'family' and 'params'"),
])
def test_bad_files_name_what_is_wrong(tmp_path: Path, content: dict, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_tasks(path, make("navigation-2d"))


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        load_tasks(tmp_path / "missing.json", make("navigation-2d"))
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        load_tasks(tmp_path / "broken.json", make("navigation-2d"))
