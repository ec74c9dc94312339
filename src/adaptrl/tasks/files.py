"""Fixed task sets in JSON files: a paper's own test tasks instead of a sampled split.

A published result is measured on particular tasks; scoring a run on the same ones makes
the comparison paired, task by task, and removes the spread that comes from drawing other
tasks. The file format::

    {"family": "navigation-2d",
     "about": "where the tasks come from (free text)",
     "params": {"goal": [[-0.083, 0.220], [-0.500, -0.198], ...]}}

``params`` holds one entry per task for every parameter of the family, with the shapes
its ``sample`` gives.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from adaptrl.tasks.base import TaskFamily, Tasks


def load_tasks(path: str | Path, family: TaskFamily) -> Tasks:
    """The tasks in ``path`` for ``family``; ``ValueError`` says what does not fit."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read {path}: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("params"), dict):
        raise ValueError(f"{path}: expected an object with 'family' and 'params'")
    name = getattr(family, "name", None)
    if data.get("family") != name:
        raise ValueError(f"{path}: tasks of family {data.get('family')!r}, the run's is "
                         f"{name!r}")
    reference = family.sample(1, "test", torch.Generator().manual_seed(0)).params
    given = data["params"]
    if set(given) != set(reference):
        raise ValueError(f"{path}: params {sorted(given)}; {name} needs exactly "
                         f"{sorted(reference)}")
    params = {}
    for key, ref in reference.items():
        try:
            value = torch.tensor(given[key], dtype=ref.dtype)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: params.{key} is not a numeric array: {err}") from None
        if value.dim() != ref.dim() or value.shape[1:] != ref.shape[1:]:
            dims = ", ".join(["tasks", *map(str, ref.shape[1:])])
            raise ValueError(f"{path}: params.{key} has shape {list(value.shape)}; "
                             f"{name} needs [{dims}]")
        params[key] = value
    tasks = Tasks(params)
    if len(tasks) < 1:
        raise ValueError(f"{path}: no tasks")
    return tasks


def save_tasks(path: str | Path, family_name: str, tasks: Tasks, about: str = "") -> None:
    """Write ``tasks`` in the format :func:`load_tasks` reads."""
    blocks = []
    for key, value in tasks.params.items():  # one line per task
        rows = ",\n    ".join(json.dumps(v) for v in value.cpu().tolist())
        blocks.append(f'  {json.dumps(key)}: [\n    {rows}\n  ]')
    params = ",\n".join(blocks)
    Path(path).write_text(f'{{"family": {json.dumps(family_name)},\n "about": '
                          f'{json.dumps(about)},\n "params": {{\n{params}\n }}\n}}\n')
