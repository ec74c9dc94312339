"""The figures read well, checked on matplotlib's Figure objects (not pixels): integer axes
have integer ticks only, no legend covers an axes' data area, a method has one colour in
every figure and no two methods (lines) of a figure share one, scores are dots with CIs
or bars from zero, Meta-World's success rate gets a panel, and the paths figure draws the
policy's mean path boldly over faint sampled episodes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import TINY
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.figure import Figure
from typer.testing import CliRunner

from adaptrl.cli.main import app
from adaptrl.experiment.compare import comparison_figure
from adaptrl.experiment.plots import (
    adaptation_curve_figure,
    classic_table_figure,
    learning_curve_figure,
    paths_figure,
    per_task_figure,
    plot_run,
    png_bytes,
)
from adaptrl.experiment.run_dir import RunDir

METHODS = ("agent", "pretrained", "pretrained_adam", "aggregation", "scratch", "oracle")


# ---------------------------------------------------------------------- inputs

def _method(i: int, success: bool) -> dict[str, Any]:
    steps = [0, 1, 2, 3]
    m: dict[str, Any] = {
        "steps": steps, "mean": [4.6 + 0.1 * i + 0.3 * k for k in steps],
        "ci95": [0.2, 0.25, None, 0.3],  # null: an undefined CI
        "per_task": [[4.0 + 0.1 * i + k + 0.2 * t for t in range(5)] for k in steps]}
    if success:
        m.update(success_mean=[0.1 * i + 0.1 * k for k in steps],
                 success_ci95=[0.05] * len(steps))
    return m


def eval_result(success: bool = False) -> dict[str, Any]:
    """An eval.json result of every gradient-family method (Meta-World's with success)."""
    return {"family": "metaworld-ml1" if success else "navigation-2d",
            "unit": "gradient_steps", "num_tasks": 5,
            "methods": {n: _method(i, success) for i, n in enumerate(METHODS)}}


def classic_table() -> dict[str, Any]:
    """RL²'s table: totals far above zero (5 to 6), close together."""
    names = ("rl2", "random", "gittins", "thompson", "ucb1", "greedy")
    return {"family": "bandit-bernoulli", "settings": [
        {"n": n, "k": 2, "methods": {m: {"mean": 4.6 + 0.2 * i + n / 100, "ci95": 0.1}
                                     for i, m in enumerate(names)}} for n in (10, 100)]}


def comparison(runs: tuple[str, ...] = ("maml-run",)) -> dict[str, Any]:
    """compare's result: runs (named by folder) first, then the baselines."""
    def row(method: str, algorithm: str, i: int) -> dict[str, Any]:
        return {"method": method, "algorithm": algorithm, "unit": "gradient_steps",
                "steps": [0, 1, 2, 3], "experience": [0, 20, 40, 60],
                "mean": [1.0 * i + k for k in range(4)], "ci95": [0.3] * 4}
    rows = [row(r, "maml", i) for i, r in enumerate(runs)]
    rows += [row(b, b, len(runs) + i) for i, b in enumerate(("pretrained", "scratch",
                                                             "oracle"))]
    return {"family": "navigation-2d", "num_tasks": 5, "seed": 0, "unit": "gradient_steps",
            "episodes_per_step": 20, "rows": rows}


def mixed_comparison() -> dict[str, Any]:
    """compare's result for a gradient-step run beside an RL² run (x: episodes played,
    symlog)."""
    result = comparison(("maml-run", "rl2-run"))
    rl2 = result["rows"][1]
    rl2.update(algorithm="rl2", unit="episodes", experience=[0, 1, 2, 3])
    result["unit"] = "mixed"
    return result


def metrics_run(root: Path) -> RunDir:
    """A run folder holding only training metrics, the agent's and pretrained's."""
    run = RunDir(root / "run")
    for target, keys in ((run, ("return_pre", "return_post")),
                         (run.baseline("pretrained"), ("return_post",))):
        target.path.mkdir(parents=True)
        target.metrics.write_text("".join(
            json.dumps({"iteration": i, **{k: -10.0 + i + 0.3 * j for j, k in enumerate(keys)}})
            + "\n" for i in range(7)))
    return run


def drawn(fig: Figure) -> Figure:
    """``fig`` laid out as it is written (the PNG is thrown away), drawn on a canvas that
    outlives the writer's closing of the figure."""
    assert png_bytes(fig).startswith(b"\x89PNG")
    FigureCanvasAgg(fig).draw()
    return fig


# --------------------------------------------------------------------- checks

def integer_ticks(ax: Any) -> list[float]:
    """The x ticks visible on ``ax`` that are not integers."""
    lo, hi = sorted(ax.get_xlim())
    return [t for t in ax.xaxis.get_majorticklocs()
            if lo <= t <= hi and abs(t - round(t)) > 1e-9]


def legends(fig: Figure) -> list[Any]:
    return list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]


def legends_over_data(fig: Figure) -> list[str]:
    """Legends whose box overlaps an axes' data area (by more than a pixel each way)."""
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]  (Agg's)
    bad = []
    for legend in legends(fig):
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            area = ax.get_window_extent(renderer)
            w = min(box.x1, area.x1) - max(box.x0, area.x0)
            h = min(box.y1, area.y1) - max(box.y0, area.y0)
            if w > 1 and h > 1:
                bad.append(f"legend {[t.get_text() for t in legend.get_texts()]} over "
                           f"axes {ax.get_title()!r}")
    return bad


def _color(handle: Any) -> str:
    if isinstance(handle, ErrorbarContainer):
        handle = handle.lines[0]
    if hasattr(handle, "get_color") and not hasattr(handle, "get_facecolor"):
        return to_hex(handle.get_color())
    return to_hex(handle.get_facecolor()[0])  # a scatter's dots


def colors(fig: Figure) -> dict[str, str]:
    """The colour of every labelled line (or dots, error bars) of ``fig``, by label; a
    label drawn in two colours fails here."""
    out: dict[str, str] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            c = _color(handle)
            assert out.setdefault(label, c) == c, f"{label!r} in two colours: {out[label]}, {c}"
    return out


def shared_colors(by_label: dict[str, str]) -> set[str]:
    """Colours that two labels share."""
    return {c for c in by_label.values() if list(by_label.values()).count(c) > 1}


def bars_off_zero(fig: Figure) -> list[str]:
    """Axes with bars whose value axis does not start at 0."""
    return [ax.get_title() for ax in fig.axes if ax.get_ylim()[0] > 0 and
            any(isinstance(c, BarContainer) for c in ax.containers)]


def assert_reads_well(fig: Figure, integer_axes: list[Any]) -> dict[str, str]:
    """Every per-figure check; the figure's colours by label."""
    drawn(fig)
    for ax in integer_axes:
        assert not integer_ticks(ax), f"fractional ticks on {ax.get_xlabel()!r}"
    assert not legends_over_data(fig)
    by_label = colors(fig)
    assert not shared_colors(by_label), f"lines sharing a colour: {by_label}"
    assert not bars_off_zero(fig)
    return by_label


# ---------------------------------------------------------------------- tests

def test_every_figure_reads_well_and_methods_keep_one_colour(tmp_path: Path) -> None:
    seen: dict[str, dict[str, str]] = {}  # method -> {figure: colour}

    def check(name: str, fig: Figure | None, integer_axes: list[Any]) -> None:
        assert fig is not None
        for label, c in assert_reads_well(fig, integer_axes).items():
            seen.setdefault(label, {})[name] = c

    fig = learning_curve_figure(metrics_run(tmp_path))
    check("learning curve", fig, fig.axes)
    for success in (False, True):
        fig = adaptation_curve_figure(eval_result(success))
        check(f"adaptation curve (success={success})", fig, fig.axes)
    fig = per_task_figure(eval_result())
    check("per-task", fig, fig.axes)
    fig = classic_table_figure(classic_table())
    check("classic table", fig, [])
    fig = comparison_figure(comparison())
    check("compare", fig, fig.axes)
    fig = comparison_figure(comparison(("maml-run", "fomaml-run", "reptile-run")))
    check("compare of three runs", fig, fig.axes)
    fig = comparison_figure(mixed_comparison())
    check("compare in mixed units", fig, fig.axes)
    for method in METHODS:  # (compare names the agent by its run's folder)
        assert len(seen[method]) >= 3, (method, seen[method])
    # (a compared run is the agent when alone, one colour of its own beside other runs)
    differ = {m: by_fig for m, by_fig in seen.items()
              if len(set(by_fig.values())) > 1 and not m.endswith("-run")}
    assert not differ, f"methods with different colours in different figures: {differ}"
    # compare's only run is the agent; the RL² of the classic table too
    assert seen["maml-run"]["compare"] == seen["agent"]["per-task"] == \
        seen["rl2"]["classic table"]


def test_method_color_is_one_fixed_mapping() -> None:
    from adaptrl.experiment.plots import METHOD_COLORS, method_color, method_colors

    assert len(set(METHOD_COLORS.values())) == len(METHOD_COLORS) - 1  # rl2 is the agent
    assert method_color("rl2") == method_color("agent")
    for name in (*METHODS, "gittins", "psrl"):
        assert method_color(name) == METHOD_COLORS[name]
    runs = [f"run-{i}" for i in range(10)]
    mixed = method_colors([*runs, *METHODS])
    assert len(set(mixed)) == len(mixed)  # unknown names never take a method's colour
    assert method_color("my-run") == method_color("my-run")


def test_the_learning_curve_has_no_two_oranges(tmp_path: Path) -> None:
    by_label = colors(learning_curve_figure(metrics_run(tmp_path)))
    assert by_label["post-adaptation"] == to_hex("tab:blue")
    assert by_label["pretrained (training)"] == to_hex("tab:orange")
    assert len(set(by_label.values())) == 3


def test_success_rate_is_plotted_beside_the_return() -> None:
    result = eval_result(success=True)
    fig = drawn(adaptation_curve_figure(result))
    assert len(fig.axes) == 2
    success = fig.axes[1]
    assert "success" in success.get_ylabel()
    agent = next(line for line in success.get_lines() if line.get_label() == "agent")
    assert list(agent.get_ydata()) == pytest.approx(result["methods"]["agent"]["success_mean"])
    assert len(drawn(adaptation_curve_figure(eval_result())).axes) == 1  # none: one panel


def test_the_classic_table_is_a_dot_plot_with_cis() -> None:
    fig = drawn(classic_table_figure(classic_table()))
    for ax, row in zip(fig.axes, classic_table()["settings"], strict=True):
        assert not any(isinstance(c, BarContainer) for c in ax.containers)
        dots = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        assert [c.get_label() for c in dots] == list(row["methods"])
        lo, hi = ax.get_ylim()
        for c, m in zip(dots, row["methods"].values(), strict=True):
            assert c.lines[0].get_ydata()[0] == pytest.approx(m["mean"])
            assert lo < m["mean"] - m["ci95"] and m["mean"] + m["ci95"] < hi


def test_the_checks_catch_what_they_are_for() -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label="a", color="tab:orange")
    ax.plot([0, 1], [1, 0], label="b", color="tab:orange")
    ax.bar([0, 1], [5.0, 6.0])
    ax.set_ylim(4.5, 6.5)
    ax.set_xlim(-0.5, 1.5)
    ax.set_xticks([-0.5, 0.0, 0.5, 1.0])
    ax.legend(loc="center")
    drawn(fig)
    assert integer_ticks(ax) == [-0.5, 0.5]
    assert legends_over_data(fig)
    assert shared_colors(colors(fig)) == {to_hex("tab:orange")}
    assert bars_off_zero(fig)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    ax.set_ylim(0, 6.5)
    drawn(fig)
    assert not legends_over_data(fig) and not bars_off_zero(fig)


# --------------------------------------------------------------- a trained run

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny MAML run on navigation-2d (tests/conftest.py's TINY), evaluated."""
    root = tmp_path_factory.mktemp("plots")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    res = runner.invoke(app, ["train", str(config), "--run-dir", str(root / "run"),
                              "--set", "baselines.pretrained_iterations=1"])
    assert res.exit_code == 0, res.output
    return root / "run"


def test_a_run_s_figures_read_well(run: Path) -> None:
    made = {p.name for p in plot_run(run)}
    assert {"learning_curve.png", "adaptation_curve.png", "paths.png"} <= made
    result = json.loads(RunDir(run).eval_json.read_text())
    for fig in (learning_curve_figure(RunDir(run)), adaptation_curve_figure(result),
                per_task_figure(result)):
        assert fig is not None
        assert_reads_well(fig, fig.axes)


def test_the_paths_figure_draws_a_bold_mean_path_per_stage(run: Path) -> None:
    steps = 2
    fig = paths_figure(run, num_tasks=3, steps=steps)
    assert fig is not None
    assert_reads_well(fig, [])
    stages = ["before adaptation", "after 1 step", "after 2 steps"]
    for ax in fig.axes:
        lines = [line for line in ax.get_lines() if len(line.get_xdata()) > 1]
        bold = [line for line in lines if line.get_linewidth() >= 2]
        faint = [line for line in lines if line.get_linewidth() < 2]
        # one mean path (a deterministic rollout) per stage, labelled with the stage
        assert [line.get_label() for line in bold] == stages
        assert len({to_hex(line.get_color()) for line in bold}) == steps + 1
        # the sampled episodes are there, fainter, in their stage's colour
        assert faint and all((line.get_alpha() or 1.0) < (bold[0].get_alpha() or 1.0)
                             for line in faint)
        assert {to_hex(line.get_color()) for line in faint} <= \
            {to_hex(line.get_color()) for line in bold}
