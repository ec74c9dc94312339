"""``adaptrl``: the command-line face of the public API (train, evaluate, plot, list)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from adaptrl import runtime

# the CLI's process-wide settings (passive OpenMP waiting, allocator reuse; adaptrl/runtime.py),
# applied before any command imports torch; `import adaptrl` alone changes nothing
runtime.configure()

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="adaptrl: meta-reinforcement learning on PyTorch.")
console = Console()


THREADS_HELP = ("torch CPU threads. Default 1: MAML's ops on small networks gain nothing from a "
                "second passively-waiting thread (docs/performance.md); on a machine you have "
                "to yourself, OMP_WAIT_POLICY=ACTIVE with --threads 2 is about 1.5x faster")


def _threads_option() -> Any:
    return typer.Option(1, "--threads", min=1, help=THREADS_HELP)


def _use_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=2)


def _print_eval(result: dict[str, Any]) -> None:
    source = (f"tasks of {result['tasks_file']}" if result.get("tasks_file")
              else "held-out tasks")
    table = Table(title=f"{result['family']} — {result['num_tasks']} {source} "
                        f"({result['unit'].replace('_', ' ')})")
    table.add_column("method")
    steps = next(iter(result["methods"].values()))["steps"]
    for k in steps:
        table.add_column(f"{k}", justify="right")
    for name, m in result["methods"].items():
        table.add_row(name, *[f"{mu:.2f} ± {ci:.2f}" for mu, ci in zip(m["mean"], m["ci95"])])
    console.print(table)
    if result.get("agent_minus"):
        diff = Table(title="agent − baseline on the same tasks (paired; > 0: the agent is "
                           "ahead, significant where the CI excludes 0)")
        diff.add_column("baseline")
        for k in steps:
            diff.add_column(f"{k}", justify="right")
        for name, d in result["agent_minus"].items():
            diff.add_row(name, *[f"{mu:+.2f} ± {ci:.2f}" for mu, ci in zip(d["mean"], d["ci95"])])
        console.print(diff)
    if "table" in result:
        from adaptrl.evaluation.classic.tables import render_table
        from adaptrl.experiment.classic_table import paired_lines

        console.print(render_table(result["table"], title="RL² paper's table: total reward "
                                   "per trial, mean ± 95% CI over instances"))
        for line in paired_lines(result["table"]):
            console.print(line)


@app.command()
def train(
    config: Path = typer.Argument(..., help="YAML config, e.g. configs/maml-navigation.yaml"),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="run directory "
                                           "(default: runs/<config name>)"),
    iterations: Optional[int] = typer.Option(None, "--iterations", help="meta-iterations"),
    seed: Optional[int] = typer.Option(None, "--seed", help="run seed"),
    set_: list[str] = typer.Option([], "--set", help="override a config key: KEY=VALUE with a "
                                   "dotted KEY, e.g. --set algorithm.inner.lr=0.05"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --run-dir "
                                "exactly where its latest checkpoint left off"),
    no_eval: bool = typer.Option(False, "--no-eval", help="skip the evaluation at the end"),
    threads: int = _threads_option(),
) -> None:
    """Meta-train from CONFIG, then evaluate on held-out tasks and draw the plots."""
    _use_threads(threads)
    from adaptrl.experiment.config import ConfigError, load_config
    from adaptrl.experiment.evaluate import evaluate_run
    from adaptrl.experiment.plots import plot_run
    from adaptrl.experiment.trainer import train as run_training

    overrides = list(set_)
    if iterations is not None:
        overrides.append(f"iterations={iterations}")
    if seed is not None:
        overrides.append(f"seed={seed}")
    try:
        if resume and run_dir is not None and (run_dir / "config.yaml").exists():
            # resuming continues the run's own resolved config (CLI overrides apply on top)
            exp, algo = load_config(run_dir / "config.yaml", overrides)
        else:
            exp, algo = load_config(config, overrides)
        path = run_dir or Path("runs") / exp.name
        result = run_training(exp, algo, path, resume=resume)
    except ConfigError as err:
        _fail(str(err))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: checkpoint saved; continue with "
                      f"`adaptrl train {config} --run-dir {run_dir or 'runs/' + exp.name} "
                      "--resume`")
        raise typer.Exit(code=130)
    console.print(f"trained {result.iterations} iterations in {result.wall_time_s:.1f} s; "
                  f"best iteration {result.best_iteration} (score {result.best_score})")
    if not no_eval:
        ev = evaluate_run(path)
        _print_eval(ev)
        for p in plot_run(path):
            console.print(f"wrote {p}")
    console.print(f"run directory: {path}")


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="a run directory made by `adaptrl train`"),
    tasks: Optional[int] = typer.Option(None, "--tasks", help="number of held-out tasks"),
    steps: Optional[int] = typer.Option(None, "--steps", help="adaptation units K"),
    seed: Optional[int] = typer.Option(None, "--seed", help="evaluation seed"),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint",
                                             help="best (default), latest, or average "
                                             "(the policy's weight average that an "
                                             "`averaging` section keeps)"),
    tasks_file: Optional[str] = typer.Option(None, "--tasks-file", help="score on the fixed "
                                             "tasks of this JSON file instead of the test "
                                             "split (e.g. configs/tasks/maml-navigation-"
                                             "paper-goals.json, the MAML paper's goals)"),
    all_settings: bool = typer.Option(False, "--all-settings", help="bandit / tabular-MDP "
                                      "runs: list every setting of the RL² paper's table "
                                      "for the classic algorithms (minutes)"),
    threads: int = _threads_option(),
) -> None:
    """Score RUN_DIR's agent and its baselines on held-out tasks; write RUN_DIR/eval.json."""
    _use_threads(threads)
    from adaptrl.experiment.config import CHECKPOINT_NAMES, ConfigError
    from adaptrl.experiment.evaluate import evaluate_run

    if checkpoint is not None and checkpoint not in CHECKPOINT_NAMES:
        _fail(f"--checkpoint must be one of {list(CHECKPOINT_NAMES)}, got {checkpoint!r}")
    try:
        result = evaluate_run(run_dir, tasks, steps, seed, checkpoint,
                              all_settings=all_settings, tasks_file=tasks_file)
    except ConfigError as err:
        _fail(str(err))
    _print_eval(result)
    console.print(f"wrote {run_dir / 'eval.json'}")


@app.command()
def plot(run_dir: Path = typer.Argument(..., help="a run directory")) -> None:
    """Draw RUN_DIR's learning curve, adaptation curve and 2D paths into RUN_DIR/plots/."""
    from adaptrl.experiment.config import ConfigError
    from adaptrl.experiment.plots import plot_run

    try:
        for p in plot_run(run_dir):
            console.print(f"wrote {p}")
    except ConfigError as err:
        _fail(str(err))


@app.command(name="list")
def list_() -> None:
    """Show the registered task families and algorithms."""
    from adaptrl.algorithms import algorithms
    from adaptrl.tasks import registered

    t = Table(title="task families")
    t.add_column("name")
    t.add_column("description")
    t.add_column("extra")
    for name, spec in registered().items():
        t.add_row(name, spec.description, spec.extra or "")
    console.print(t)
    a = Table(title="algorithms")
    a.add_column("name")
    a.add_column("description")
    for name, aspec in algorithms().items():
        a.add_row(name, aspec.description)
    console.print(a)


@app.command()
def compare(
    run_dirs: list[Path] = typer.Argument(..., help="run directories on the same task family"),
    out: Optional[Path] = typer.Option(None, "--out", help="folder for comparison.json, "
                                       "comparison.md and adaptation_curves.png"),
    tasks: Optional[int] = typer.Option(None, "--tasks", help="number of held-out tasks "
                                        "(default: the first run's evaluation.num_tasks)"),
    seed: Optional[int] = typer.Option(None, "--seed", help="evaluation seed "
                                       "(default: the first run's evaluation.seed)"),
    steps: Optional[int] = typer.Option(None, "--steps", help="adaptation units K, gradient "
                                        "steps or episodes of a trial, the same K for every run "
                                        "(default: the first run's evaluation.steps)"),
    threads: int = _threads_option(),
) -> None:
    """Score several runs on the same held-out tasks; print a markdown table (README-ready).

    Runs may adapt in different units (MAML in gradient steps, RL² in episodes of a
    trial): the table then has a unit column, and the plot's x is the episodes played on
    the task before the scored ones.
    """
    _use_threads(threads)
    from adaptrl.experiment.compare import compare_runs, markdown_table, write_comparison
    from adaptrl.experiment.config import ConfigError

    try:
        result = compare_runs(list(run_dirs), tasks, seed, steps)
    except ConfigError as err:
        _fail(str(err))
    typer.echo(markdown_table(result))
    if out is not None:
        for p in write_comparison(result, out):
            console.print(f"wrote {p}")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
