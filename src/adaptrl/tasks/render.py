"""Path drawings for the 2D families, on a matplotlib ``Axes`` the caller owns.

* :func:`render_paths` — ``tracking-2d``: arena, obstacles, every active target's path
  (a dot where it starts) and the agent's paths.
* :func:`render_navigation_paths` — ``navigation-2d``: the goal (a star), the start and
  one labelled set of paths per stage (e.g. before / after adaptation).

A *trajectory* is any of: agent positions ``[T, 2]`` or ``[T, E, 2]``; observations
``[T, E, D]`` of these families (their first two components are the agent position); or
a :class:`~adaptrl.rollouts.Trajectories` of one task (its padding after an episode's
end is cut off by its masks). This module imports matplotlib; ``adaptrl.tasks`` itself
does not import this module, so the task layer stays free of plotting dependencies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.patches import Circle, Rectangle

from adaptrl.tasks.base import Tasks
from adaptrl.tasks.tracking import target_positions


def agent_paths(trajectory: Any) -> list[np.ndarray]:
    """The agent's path in every episode of ``trajectory`` (see the module doc), ``[T_i, 2]``."""
    if hasattr(trajectory, "observations") and hasattr(trajectory, "masks"):
        obs, masks = trajectory.observations, trajectory.masks
        if obs.dim() != 4 or obs.shape[1] != 1:
            raise ValueError("trajectory must hold exactly one task: observations "
                             f"[T, 1, E, D], got shape {list(obs.shape)}")
        lengths = masks[:, 0].sum(0).long().tolist()
        obs = obs[:, 0]
        return [obs[:n, j, :2].detach().cpu().numpy() for j, n in enumerate(lengths)]
    x = torch.as_tensor(trajectory).detach().cpu()
    if x.dim() == 2:
        x = x.unsqueeze(1)
    if x.dim() != 3 or x.shape[-1] < 2:
        raise ValueError("trajectory must be positions [T, 2] / [T, E, 2] or observations "
                         f"[T, E, D >= 2], got shape {list(x.shape)}")
    return [x[:, j, :2].numpy() for j in range(x.shape[1])]


def _one_task(tasks_i: Tasks) -> dict[str, torch.Tensor]:
    if len(tasks_i) != 1:
        raise ValueError(f"tasks_i must hold exactly one task, got {len(tasks_i)}")
    return {k: v.detach().cpu() for k, v in tasks_i.params.items()}


def _draw_agent(ax: Axes, paths: list[np.ndarray], color: Any, label: str | None) -> None:
    for j, path in enumerate(paths):
        ax.plot(path[:, 0], path[:, 1], color=color, lw=1.2, alpha=0.8,
                label=label if j == 0 else None)


def render_paths(ax: Axes, tasks_i: Tasks, trajectory: Any, *, arena_size: float = 1.0,
                 label: str = "agent", color: Any = "tab:blue") -> None:
    """Draw one ``tracking-2d`` task and the agent's paths in it on ``ax``.

    Target paths are recomputed from the task parameters for as many steps as the
    longest agent path (a task *is* its parameters).
    """
    params = _one_task(tasks_i)
    paths = agent_paths(trajectory)
    steps = max(len(p) for p in paths)
    ax.add_patch(Rectangle((-arena_size, -arena_size), 2 * arena_size, 2 * arena_size,
                           fill=False, lw=1.5, color="black"))
    for center, radius in zip(params["obstacle_center"][0], params["obstacle_radius"][0]):
        ax.add_patch(Circle(tuple(center.tolist()), float(radius), color="tab:gray",
                            alpha=0.6))
    times = torch.arange(steps, dtype=torch.float32)
    targets = target_positions(params, times, arena_size)[:, 0]  # [T, M, 2]
    active = params["target_active"][0].tolist()
    for m, on in enumerate(active):
        if not on:
            continue
        path = targets[:, m].numpy()
        ax.plot(path[:, 0], path[:, 1], color="tab:red", lw=1.0, ls="--",
                label="targets" if m == 0 else None)
        ax.plot(path[0, 0], path[0, 1], "o", color="tab:red", ms=4)
    _draw_agent(ax, paths, color, label)
    ax.plot(0.0, 0.0, "k+", ms=8)
    ax.set_xlim(-1.05 * arena_size, 1.05 * arena_size)
    ax.set_ylim(-1.05 * arena_size, 1.05 * arena_size)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize="small")


def render_navigation_paths(ax: Axes, tasks_i: Tasks, paths: Mapping[str, Any]) -> None:
    """Draw one ``navigation-2d`` goal (star), the start and each stage's agent paths.

    ``paths`` maps a label (e.g. ``"before adaptation"``, ``"after 1 step"``) to a
    trajectory; stages are coloured in order.
    """
    goal = _one_task(tasks_i)["goal"][0].tolist()
    colors = [f"C{i}" for i in range(len(paths))]
    for color, (label, trajectory) in zip(colors, paths.items()):
        _draw_agent(ax, agent_paths(trajectory), color, label)
    ax.plot(*goal, marker="*", color="gold", mec="black", ms=16, ls="none", label="goal")
    ax.plot(0.0, 0.0, "k+", ms=8)
    ax.set_aspect("equal")
    ax.legend(loc="best", fontsize="small")


STAGE_COLORS = ("tab:gray", "tab:blue", "tab:purple", "tab:green")


def _tracking_stages(ax: Axes, family: Any, tasks_i: Tasks, stages: Mapping[str, Any]) -> None:
    for (label, traj), color in zip(stages.items(), STAGE_COLORS):
        render_paths(ax, tasks_i, traj, label=label, color=color, arena_size=family.arena_size)


def _navigation_stages(ax: Axes, family: Any, tasks_i: Tasks,
                       stages: Mapping[str, Any]) -> None:
    render_navigation_paths(ax, tasks_i, stages)


STAGE_RENDERERS = {"tracking-2d": _tracking_stages, "navigation-2d": _navigation_stages}
"""Families whose paths can be drawn, by name: ``(ax, family, one task, {label: traj})``."""


def can_draw_stages(family: Any) -> bool:
    return getattr(family, "name", None) in STAGE_RENDERERS


def draw_stages(ax: Axes, family: Any, tasks_i: Tasks, stages: Mapping[str, Any]) -> None:
    """Draw one task and the agent's paths at each adaptation stage (before, after 1 step, …)."""
    STAGE_RENDERERS[family.name](ax, family, tasks_i, stages)
