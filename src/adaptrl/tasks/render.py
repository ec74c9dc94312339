"""Path drawings for the 2D families, on a matplotlib ``Axes`` the caller owns.

* :func:`render_paths` — ``tracking-2d``: arena, obstacles, every active target's path
  (a dot where it starts) and the agent's paths.
* :func:`render_navigation_paths` — ``navigation-2d``: the goal (a star), the start and
  one labelled set of paths per stage (e.g. before / after adaptation).
* :func:`draw_stages` — either family, one task, a set of paths per adaptation stage: the
  sampled episodes faint, the mean path (the policy's mean action, a deterministic
  rollout) bold, so that what the policy does reads through the exploration noise.

Legends go outside the axes, on the right (``legend=False`` leaves them to the caller),
so that they never hide a path.

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


SAMPLED_STYLE: dict[str, Any] = {"lw": 0.8, "alpha": 0.3}
"""Sampled episodes beside a mean path: faint."""
MEAN_STYLE: dict[str, Any] = {"lw": 2.4, "alpha": 1.0}
"""The mean path (deterministic rollout): bold."""
PLAIN_STYLE: dict[str, Any] = {"lw": 1.2, "alpha": 0.8}
"""Paths drawn without a mean path."""


def _draw_agent(ax: Axes, paths: list[np.ndarray], color: Any, label: str | None,
                style: Mapping[str, Any] = PLAIN_STYLE) -> None:
    for j, path in enumerate(paths):
        ax.plot(path[:, 0], path[:, 1], color=color, label=label if j == 0 else None,
                **style)


def outside_legend(ax: Axes, **kwargs: Any) -> None:
    """A legend outside ``ax``, on its right (it never covers a path)."""
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))  # one entry per label
    ax.legend(unique.values(), unique.keys(), loc="upper left", bbox_to_anchor=(1.02, 1.0),
              borderaxespad=0.0, fontsize="small", **kwargs)


def render_paths(ax: Axes, tasks_i: Tasks, trajectory: Any, *, arena_size: float = 1.0,
                 label: str = "agent", color: Any = "tab:blue", mean: Any = None,
                 legend: bool = True) -> None:
    """Draw one ``tracking-2d`` task and the agent's paths in it on ``ax``.

    Target paths are recomputed from the task parameters for as many steps as the
    longest agent path (a task *is* its parameters). With ``mean`` (a trajectory of the
    policy's mean action) that path is drawn bold, labelled, and ``trajectory`` faint.
    """
    params = _one_task(tasks_i)
    paths = agent_paths(trajectory)
    means = [] if mean is None else agent_paths(mean)
    steps = max(len(p) for p in paths + means)
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
    _draw_paths(ax, paths, means, color, label)
    ax.plot(0.0, 0.0, "k+", ms=8)
    ax.set_xlim(-1.05 * arena_size, 1.05 * arena_size)
    ax.set_ylim(-1.05 * arena_size, 1.05 * arena_size)
    ax.set_aspect("equal")
    if legend:
        outside_legend(ax)


def _draw_paths(ax: Axes, paths: list[np.ndarray], means: list[np.ndarray], color: Any,
                label: str) -> None:
    """Sampled ``paths`` faint under bold ``means`` (the label goes to the mean), or plain
    labelled ``paths`` when there is no mean."""
    if not means:
        _draw_agent(ax, paths, color, label)
        return
    _draw_agent(ax, paths, color, None, SAMPLED_STYLE)
    _draw_agent(ax, means, color, label, MEAN_STYLE)


STAGE_COLORS = ("tab:gray", "tab:blue", "tab:purple", "tab:green", "tab:cyan", "tab:olive")
"""Adaptation stages in order (before, after 1 step, ...): distinct, none orange or red
(the targets')."""


def render_navigation_paths(ax: Axes, tasks_i: Tasks, paths: Mapping[str, Any], *,
                            means: Mapping[str, Any] | None = None,
                            legend: bool = True) -> None:
    """Draw one ``navigation-2d`` goal (star), the start and each stage's agent paths.

    ``paths`` maps a label (e.g. ``"before adaptation"``, ``"after 1 step"``) to a
    trajectory; stages are coloured in order (:data:`STAGE_COLORS`). ``means`` maps the
    same labels to the policy's mean path, drawn bold over the faint sampled ones.
    """
    goal = _one_task(tasks_i)["goal"][0].tolist()
    for color, (label, trajectory) in zip(STAGE_COLORS, paths.items(), strict=False):
        mean = (means or {}).get(label)
        _draw_paths(ax, agent_paths(trajectory), [] if mean is None else agent_paths(mean),
                    color, label)
    ax.plot(*goal, marker="*", color="gold", mec="black", ms=16, ls="none", label="goal")
    ax.plot(0.0, 0.0, "k+", ms=8)
    ax.set_aspect("equal")
    if legend:
        outside_legend(ax)


def _tracking_stages(ax: Axes, family: Any, tasks_i: Tasks, stages: Mapping[str, Any],
                     means: Mapping[str, Any]) -> None:
    for (label, traj), color in zip(stages.items(), STAGE_COLORS, strict=False):
        render_paths(ax, tasks_i, traj, label=label, color=color, mean=means.get(label),
                     arena_size=family.arena_size, legend=False)


def _navigation_stages(ax: Axes, family: Any, tasks_i: Tasks, stages: Mapping[str, Any],
                       means: Mapping[str, Any]) -> None:
    render_navigation_paths(ax, tasks_i, stages, means=means, legend=False)


STAGE_RENDERERS = {"tracking-2d": _tracking_stages, "navigation-2d": _navigation_stages}
"""Families whose paths can be drawn, by name:
``(ax, family, one task, {label: sampled traj}, {label: mean traj})``."""


def can_draw_stages(family: Any) -> bool:
    """Whether :func:`draw_stages` can draw ``family``'s paths."""
    return getattr(family, "name", None) in STAGE_RENDERERS


def draw_stages(ax: Axes, family: Any, tasks_i: Tasks, stages: Mapping[str, Any],
                means: Mapping[str, Any] | None = None) -> None:
    """Draw one task and the agent's paths at each adaptation stage (before, after 1 step, …):
    ``stages`` the sampled episodes (faint when there is a mean), ``means`` the mean path
    of the same stages (bold). No legend: the caller makes one for all its axes
    (e.g. :func:`outside_legend` on the last)."""
    STAGE_RENDERERS[family.name](ax, family, tasks_i, stages, means or {})
