"""``adaptrl``: the command-line face of the public API (train, evaluate, plot, list).

Errors: every command runs under :func:`_reported`, the one place that turns an
:class:`~adaptrl.errors.AdaptrlError` into ``error: <message>`` on stderr with its exit code
(2: the user's input, 1: a fault), an ``OSError`` (full disk, read-only folder, missing
file) into a one-line fault naming the path, and a failed allocation into the config's
largest sizes. ``adaptrl --debug ...`` re-raises instead, with the traceback. Anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from adaptrl import __version__, runtime
from adaptrl.errors import AdaptrlError, FaultError, UserError

# the CLI's process-wide settings (passive OpenMP waiting, allocator reuse; adaptrl/runtime.py),
# applied before any command imports torch; `import adaptrl` alone changes nothing
runtime.configure()

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="adaptrl: meta-reinforcement learning on PyTorch.")
console = Console()
err_console = Console(stderr=True, highlight=False, soft_wrap=True)  # no wrapping, no markup


THREADS_HELP = ("torch CPU threads. Default 1: MAML's ops on small networks gain nothing from a "
                "second passively-waiting thread (docs/performance.md); on a machine you have "
                "to yourself, OMP_WAIT_POLICY=ACTIVE with --threads 2 is about 1.5x faster")


# -- errors: one line, the right exit code, a traceback only with --debug ---------------------
class _Settings:
    """The global options of this invocation (set by :func:`_global_options`)."""

    debug = False


def print_error(message: str) -> None:
    """``error: <message>`` on stderr, printed as it is (no markup, no wrapping)."""
    err_console.print(Text.assemble(("error:", "bold red"), " ", message))


def _out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is a failed allocation (host or GPU memory)."""
    import torch

    return isinstance(err, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(err, RuntimeError) and "can't allocate memory" in str(err))


def _largest_sizes(config: Any, count: int = 3) -> str:
    """The ``count`` largest integer settings of a config (seeds aside): what to make smaller
    when an allocation fails."""
    sizes: list[tuple[int, str]] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}{key}.")
        elif isinstance(node, int) and not isinstance(node, bool) and "seed" not in path:
            sizes.append((node, path.rstrip(".")))

    walk(config.model_dump(), "")
    return ", ".join(f"{name}={value}" for value, name in sorted(sizes, reverse=True)[:count])


def as_reported(err: Exception, config: Any = None) -> AdaptrlError | None:
    """The one-line error the CLI reports for ``err``; ``None`` for a bug (a traceback).

    An ``OSError`` is a fault naming its path; a failed allocation is the user's sizes
    (``config``'s largest settings, when known)."""
    if isinstance(err, AdaptrlError):
        return err
    if isinstance(err, OSError):
        path = " -> ".join(str(f) for f in (err.filename, err.filename2) if f is not None)
        what = err.strerror or str(err) or type(err).__name__
        return FaultError(f"I/O error on {path}: {what}" if path else f"I/O error: {what}")
    if _out_of_memory(err):
        return _memory_error(err, config)
    return None


def _memory_error(err: BaseException, config: Any = None) -> UserError:
    """A failed allocation as the user's error, naming ``config``'s largest sizes if known."""
    sizes = f"; the config's largest sizes: {_largest_sizes(config)}" if config else ""
    detail = " ".join(str(err).split("DefaultCPUAllocator: ")[-1].split())
    return UserError(f"out of memory ({detail or type(err).__name__}){sizes}: the tensors "
                     "these sizes need do not fit this machine; make them smaller")


CommandT = TypeVar("CommandT", bound=Callable[..., Any])


def _reported(command: CommandT) -> CommandT:
    """``command`` with the CLI's error reporting (module docstring); every command has it."""
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):  # (RuntimeErrors) already an exit code
            raise
        except Exception as err:
            reported = as_reported(err)
            if reported is None or _Settings.debug:
                raise
            print_error(str(reported))
            raise typer.Exit(code=reported.exit_code) from None

    run.reports_errors = True  # type: ignore[attr-defined]
    return cast(CommandT, run)


def _fail(message: str) -> NoReturn:
    """Stop with a user error (exit 2)."""
    raise UserError(message)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"adaptrl {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    debug: bool = typer.Option(False, "--debug", help="on an error, show the traceback "
                               "instead of the one-line message"),
    version: bool | None = typer.Option(None, "--version", callback=_show_version,
                                        is_eager=True, help="print the version and exit"),
) -> None:
    """adaptrl: meta-reinforcement learning on PyTorch."""
    _Settings.debug = debug


# -- options checked before any work ----------------------------------------------------------
def _at_least(option: str, value: int | None, low: int, why: str = "") -> None:
    """Refuse ``option`` below ``low`` (``None``: not given, fine)."""
    if value is not None and value < low:
        _fail(f"{option} must be >= {low}{why}, got {value}")


def _check_seed(option: str, value: int | None) -> None:
    from adaptrl.schema import SEED_LIMIT

    if value is not None and not 0 <= value < SEED_LIMIT:
        _fail(f"{option} must be an integer in [0, 2**64), got {value}")


def _check_run_dirs(paths: list[Path]) -> None:
    """Each of ``paths`` is an existing run directory (one with a config.yaml)."""
    for path in paths:
        if not path.exists():
            _fail(f"{path} is not a run directory: it does not exist")
        if not path.is_dir():
            _fail(f"{path} is not a run directory: it is a file, not a directory")
        if not (path / "config.yaml").is_file():
            _fail(f"{path} is not a run directory (no config.yaml; `adaptrl train` makes one)")


def _integer(value: str) -> int:
    """An integer option's parser: a usage error that shows the value (click's does not)."""
    try:
        return int(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an integer") from None


def _check_evaluation_options(tasks: int | None, steps: int | None, seed: int | None) -> None:
    """--tasks, --steps and --seed of evaluate and compare (``None``: the run's setting)."""
    _at_least("--tasks", tasks, 2, " (a 95% CI needs two held-out tasks)")
    _at_least("--steps", steps, 0, " (adaptation units K: gradient steps or episodes)")
    _check_seed("--seed", seed)


def _threads_option() -> Any:
    return typer.Option(1, "--threads", parser=_integer, help=THREADS_HELP + " (>= 1)")


def _use_threads(threads: int) -> None:
    _at_least("--threads", threads, 1)
    import torch

    torch.set_num_threads(threads)


def number(value: float | None) -> str:
    """A number as the CLI prints it: 2 decimals, or 3 significant digits below 0.01
    (``-48.11``, ``0.000123``); ``—`` for none (a null CI of eval.json)."""
    if value is None or value != value:
        return "—"
    return f"{value:.2f}" if value == 0 or abs(value) >= 0.01 else f"{value:.3g}"


def _cell(mean: float | None, ci: float | None, sign: str = "") -> str:
    """``mean ± ci`` (``sign="+"``: with the mean's sign)."""
    head = number(mean) if not sign or mean is None else (
        ("+" if mean >= 0 else "") + number(mean))
    return head if ci is None else f"{head} ± {number(ci)}"


def _print_stream(result: dict[str, Any]) -> None:
    """eval.json's task stream: the score on every stage after each stage (``R[i, j]``) and
    the continual-learning metrics at the end (mean ± 95% CI over tasks)."""
    from adaptrl.experiment.streams import stage_label, stream_rows

    stream = result["stream"]
    stages = result.get("stages") or [{"index": j} for j in range(stream["num_stages"])]
    matrix = Table(title="task stream: return on each stage (columns) after training "
                         "through each stage (rows), mean ± 95% CI over tasks")
    matrix.add_column("after")
    for j in range(len(stages)):
        matrix.add_column(f"stage {j}", justify="right")
    for i, row in enumerate(stream["mean"]):
        if any(v is not None for v in row):
            matrix.add_row(f"stage {i}", *[_cell(mu, ci) if mu is not None else "—"
                                           for mu, ci in zip(row, stream["ci95"][i],
                                                             strict=True)])
    console.print(matrix)
    console.print("stages: " + "; ".join(f"{j} = {stage_label(stage)}"
                                         for j, stage in enumerate(stages)),
                  highlight=False, markup=False)
    metrics = Table(title="continual-learning metrics at the end of the stream")
    metrics.add_column("metric")
    metrics.add_column("value", justify="right")
    for name, mean, ci in stream_rows(result):
        metrics.add_row(name, "—" if mean is None else _cell(mean, ci))
    console.print(metrics)


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
        table.add_row(name, *[_cell(mu, ci) for mu, ci in zip(m["mean"], m["ci95"])])
    console.print(table)
    succeeded = {name: m for name, m in result["methods"].items() if "success_mean" in m}
    if succeeded:  # Meta-World: its own score, the success rate, beside the return
        rate = Table(title="success rate (Meta-World's score: the share of episodes that "
                           "succeeded), mean ± 95% CI over tasks")
        rate.add_column("method")
        for k in steps:
            rate.add_column(f"{k}", justify="right")
        for name, m in succeeded.items():
            rate.add_row(name, *[_cell(mu, ci) for mu, ci in
                                 zip(m["success_mean"], m["success_ci95"])])
        console.print(rate)
    if result.get("agent_minus"):
        diff = Table(title="agent − baseline on the same tasks (paired; > 0: the agent is "
                           "ahead, significant where the CI excludes 0)")
        diff.add_column("baseline")
        for k in steps:
            diff.add_column(f"{k}", justify="right")
        for name, d in result["agent_minus"].items():
            diff.add_row(name, *[_cell(mu, ci, "+") for mu, ci in zip(d["mean"], d["ci95"])])
        console.print(diff)
    if result.get("stream"):  # trained along a task stream: every stage, every stage's end
        _print_stream(result)
    if "table" in result:
        from adaptrl.evaluation.classic_tables import render_table
        from adaptrl.experiment.classic_table import paired_lines

        console.print(render_table(result["table"], title="RL² paper's table: total reward "
                                   "per trial, mean ± 95% CI over instances",
                                   width=console.width))
        for line in paired_lines(result["table"]):
            console.print(line)


NO_EVAL_SKIPPED = ("skipped (--no-eval) the plots that need an evaluation: the adaptation "
                   "curve (and RL²'s table) read eval.json, the 2D paths adapt the agent on "
                   "test tasks; draw them with `adaptrl evaluate {run}` then `adaptrl plot "
                   "{run}`")


def _plot_without_eval(path: Path) -> None:
    """``train --no-eval``: the plot that needs no evaluation (the learning curve), and a
    line saying which were skipped and why."""
    from adaptrl.experiment.plots import plot_learning_curve
    from adaptrl.experiment.run_dir import RunDir

    run = RunDir(path)
    run.plots.mkdir(parents=True, exist_ok=True)
    drawn = plot_learning_curve(run, run.plots / "learning_curve.png")
    if drawn is not None:
        console.print(f"wrote {drawn}")
    console.print(NO_EVAL_SKIPPED.format(run=path), highlight=False, markup=False)


def _cap_baselines(config: Path, overrides: list[str], iterations: int) -> list[str]:
    """``train --iterations N``: the overrides that cap at ``N`` every trained baseline the
    config file sets to more iterations (one given with ``--set`` is kept), said in one line."""
    from adaptrl.experiment.config import load_config

    exp, _ = load_config(config, overrides)
    capped = {name: value for name, value in exp.baselines.above(iterations).items()
              if name in exp.evaluation.baselines and
              not any(o.startswith(f"baselines.{name}_iterations=") for o in overrides)}
    if capped:
        names = ", ".join(f"{name} ({value} in the config)" for name, value in capped.items())
        console.print(f"--iterations {iterations}: the trained baselines train at most as long "
                      f"as the run, {iterations} iterations: {names}; keep the config's with "
                      "--set baselines.<name>_iterations=N", highlight=False, markup=False)
    return [f"baselines.{name}_iterations={iterations}" for name in capped]


def _train_seeds(config: Path, spec: str, overrides: list[str], evaluate: bool) -> None:
    """``train --seeds SPEC``: CONFIG once per seed into runs/<name>-s<seed>
    (:mod:`adaptrl.experiment.seeds`), then the group's across-seeds statistics."""
    from adaptrl.experiment.compare import compare_runs, groups_markdown
    from adaptrl.experiment.plots import plot_run
    from adaptrl.experiment.report import write_report
    from adaptrl.experiment.seeds import SeedState, parse_seeds, train_seeds

    def after_seed(seed: int, path: Path, state: SeedState) -> None:
        if state is SeedState.FINISHED:
            console.print(f"seed {seed}: {path} is finished; skipped")
            return
        if evaluate:
            for p in plot_run(path):
                console.print(f"wrote {p}")
        else:
            _plot_without_eval(path)
        console.print(f"wrote {write_report([path])}")
        console.print(f"seed {seed}: {'resumed and ' if state is SeedState.PARTIAL else ''}"
                      f"trained {path}")

    try:
        paths = train_seeds(config, parse_seeds(spec), Path("runs"), overrides,
                            evaluate=evaluate, after_seed=after_seed)
    except KeyboardInterrupt:
        err_console.print(Text.assemble(("interrupted", "yellow"), ": checkpoint saved; "
                                        f"continue with `adaptrl train {config} --seeds {spec}` "
                                        "(finished seeds are skipped, a partial one resumed)"))
        raise typer.Exit(code=130) from None
    if not evaluate or len(paths) < 2:
        console.print("across-seeds statistics: `adaptrl compare " + " ".join(map(str, paths))
                      + "`" + (" (after evaluating them)" if not evaluate else ""))
        return
    typer.echo(groups_markdown(compare_runs(paths)))


@app.command()
@_reported
def train(
    config: Path = typer.Argument(..., help="YAML config, e.g. configs/maml-navigation.yaml"),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="run directory "
                                           "(default: runs/<config name>)"),
    iterations: int | None = typer.Option(None, "--iterations", parser=_integer,
                                             help="meta-iterations; the trained baselines "
                                             "(pretrained, ...) then train at most as many "
                                             "(a longer baselines.<name>_iterations of the "
                                             "config is capped, one given with --set is kept)"),
    seed: int | None = typer.Option(None, "--seed", parser=_integer, help="run seed"),
    set_: list[str] = typer.Option([], "--set", help="override a config key: KEY=VALUE with a "
                                   "dotted KEY, e.g. --set algorithm.inner.lr=0.05"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --run-dir "
                                "exactly where its latest checkpoint left off"),
    no_eval: bool = typer.Option(False, "--no-eval", help="skip the evaluation at the end "
                                 "(and the plots that need it: only the learning curve is "
                                 "drawn)"),
    seeds: str | None = typer.Option(None, "--seeds", help="train once per seed, e.g. "
                                     "1-5, 1,3,7 or 1-3,8, one after the other into "
                                     "runs/<name>-s<seed>, then print the IQM and mean "
                                     "across seeds with bootstrap CIs; run it again to "
                                     "continue (finished seeds are skipped); not with "
                                     "--seed or --run-dir"),
    threads: int = _threads_option(),
) -> None:
    """Meta-train from CONFIG, then evaluate on held-out tasks and draw the plots."""
    _use_threads(threads)
    from adaptrl.experiment.config import load_config
    from adaptrl.experiment.evaluate import evaluate_run
    from adaptrl.experiment.plots import plot_run
    from adaptrl.experiment.report import write_report
    from adaptrl.experiment.trainer import train as run_training

    overrides = list(set_)
    if iterations is not None:
        overrides.append(f"iterations={iterations}")
    if seed is not None:
        overrides.append(f"seed={seed}")
    if seeds is not None:
        if seed is not None or run_dir is not None:
            _fail("--seeds names the seeds and the run directories (runs/<name>-s<seed>); "
                  "give it without --seed and --run-dir")
        if iterations is not None:
            overrides += _cap_baselines(config, overrides, iterations)
        _train_seeds(config, seeds, overrides, evaluate=not no_eval)
        return
    if run_dir is not None and run_dir.exists() and not run_dir.is_dir():
        _fail(f"--run-dir {run_dir} exists and is not a directory")
    exp = None
    try:
        source = config
        if resume and run_dir is not None and (run_dir / "config.yaml").exists():
            # resuming continues the run's own resolved config (CLI overrides apply on top)
            source = run_dir / "config.yaml"
        if iterations is not None:
            overrides += _cap_baselines(source, overrides, iterations)
        exp, algo = load_config(source, overrides)
        path = run_dir or Path("runs") / exp.name
        result = run_training(exp, algo, path, resume=resume)
        best = ("" if result.best_iteration is None else
                f"; best iteration {result.best_iteration} (score {number(result.best_score)})")
        console.print(f"trained {result.iterations} iterations in {result.wall_time_s:.1f} s"
                      f"{best}", highlight=False)
        if not no_eval:
            ev = evaluate_run(path)
            _print_eval(ev)
            for p in plot_run(path):
                console.print(f"wrote {p}")
        else:
            _plot_without_eval(path)
    except KeyboardInterrupt:
        where = run_dir or (Path("runs") / exp.name if exp is not None else None)
        hint = f" --run-dir {where}" if where is not None else ""
        err_console.print(Text.assemble(("interrupted", "yellow"), ": checkpoint saved; "
                                        f"continue with `adaptrl train {config}{hint} --resume`"))
        raise typer.Exit(code=130) from None
    except (MemoryError, RuntimeError) as err:
        if exp is None or not _out_of_memory(err):
            raise
        raise _memory_error(err, exp) from err  # names the config's largest sizes
    console.print(f"wrote {write_report([path])}")  # with --no-eval: what exists
    console.print(f"run directory: {path}")


@app.command()
@_reported
def evaluate(
    run_dir: Path = typer.Argument(..., help="a run directory made by `adaptrl train`"),
    tasks: int | None = typer.Option(None, "--tasks", parser=_integer,
                                        help="number of held-out tasks (>= 2)"),
    steps: int | None = typer.Option(None, "--steps", parser=_integer,
                                        help="adaptation units K (>= 0)"),
    seed: int | None = typer.Option(None, "--seed", parser=_integer, help="evaluation seed"),
    checkpoint: str | None = typer.Option(None, "--checkpoint",
                                             help="best (default) or latest"),
    tasks_file: str | None = typer.Option(None, "--tasks-file", help="score on the fixed "
                                             "tasks of this JSON file instead of the test "
                                             "split (e.g. configs/tasks/maml-navigation-"
                                             "paper-goals.json, the MAML paper's goals)"),
    all_settings: bool = typer.Option(False, "--all-settings", help="bandit / tabular-MDP "
                                      "runs: list every setting of the RL² paper's table "
                                      "for the classic algorithms (minutes)"),
    out: Path | None = typer.Option(None, "--out", help="JSON file to write (default: "
                                       "RUN_DIR/eval.json under the config's evaluation "
                                       "settings, else RUN_DIR/eval-<settings>.json)"),
    threads: int = _threads_option(),
) -> None:
    """Score RUN_DIR's agent and its baselines on held-out tasks; write RUN_DIR/eval.json.

    Under the settings of the run's config (its evaluation section) the result is
    RUN_DIR/eval.json, which plot, report and compare read. With other settings (--tasks,
    --steps, --seed, --checkpoint or --tasks-file differing from the config's) it goes to
    RUN_DIR/eval-<settings>.json instead, naming what differs in the order tasks<N>,
    steps<K>, seed<S>, the checkpoint, tasksfile-<stem> (e.g.
    eval-tasks40-steps3-seed12345.json), so eval.json is never replaced by another protocol;
    or to --out FILE.
    """
    _use_threads(threads)
    from adaptrl.experiment.config import CHECKPOINT_NAMES

    _check_evaluation_options(tasks, steps, seed)
    if checkpoint is not None and checkpoint not in CHECKPOINT_NAMES:
        _fail(f"--checkpoint must be one of {list(CHECKPOINT_NAMES)}, got {checkpoint!r}")
    _check_run_dirs([run_dir])
    from adaptrl.experiment.evaluate import DEFAULT_EVAL, evaluate_run, evaluation_path

    target = out if out is not None else evaluation_path(run_dir, tasks, steps, seed,
                                                         checkpoint, tasks_file)
    if target.is_dir():
        _fail(f"--out {target} is a directory; give a file name, e.g. {target / 'eval.json'}")
    result = evaluate_run(run_dir, tasks, steps, seed, checkpoint,
                          all_settings=all_settings, tasks_file=tasks_file, out=target)
    _print_eval(result)
    console.print(f"wrote {target}", highlight=False)
    if out is None and target.name != DEFAULT_EVAL:
        console.print(f"(settings other than the config's evaluation section: "
                      f"{run_dir / DEFAULT_EVAL}, which the plots and the report use, "
                      "is left as it was)", highlight=False, markup=False)


@app.command()
@_reported
def plot(run_dir: Path = typer.Argument(..., help="a run directory")) -> None:
    """Draw RUN_DIR's learning curve, adaptation curve and 2D paths into RUN_DIR/plots/."""
    _check_run_dirs([run_dir])
    from adaptrl.experiment.plots import plot_run

    for p in plot_run(run_dir):
        console.print(f"wrote {p}")


@app.command(name="list")
@_reported
def list_() -> None:
    """Show the registered task families and algorithms."""
    from adaptrl.agents.classic.methods import BANDIT_METHODS, MDP_METHODS
    from adaptrl.algorithms import algorithms
    from adaptrl.tasks import registered

    t = Table(title="task families")
    t.add_column("name")
    t.add_column("description")
    t.add_column("extra")
    for name, spec in registered().items():
        t.add_row(name, spec.description, spec.extra or "")
    console.print(t)
    a = Table(title="algorithms (meta-learners)")
    a.add_column("name")
    a.add_column("description")
    a.add_column("adapts in")
    for name, aspec in algorithms().items():
        a.add_row(name, aspec.description, aspec.unit.value.replace("_", " "))
    console.print(a)
    c = Table(title="hand-designed agents (scored beside RL² on their family)")
    c.add_column("family")
    c.add_column("name")
    c.add_column("description")
    c.add_column("tuned")
    for family, methods in (("bandit-bernoulli", BANDIT_METHODS), ("tabular-mdp", MDP_METHODS)):
        for name, method in methods.items():
            c.add_row(family, name, method.summary(), ", ".join(method.tuned()))
    console.print(c)


@app.command()
@_reported
def compare(
    run_dirs: list[Path] = typer.Argument(..., help="run directories on the same task family"),
    out: Path | None = typer.Option(None, "--out", help="folder for comparison.json, "
                                       "comparison.md and adaptation_curves.png"),
    tasks: int | None = typer.Option(None, "--tasks", parser=_integer,
                                        help="number of held-out tasks "
                                        "(default: the first run's evaluation.num_tasks)"),
    seed: int | None = typer.Option(None, "--seed", parser=_integer, help="evaluation seed "
                                       "(default: the first run's evaluation.seed)"),
    steps: int | None = typer.Option(None, "--steps", parser=_integer,
                                        help="adaptation units K, gradient "
                                        "steps or episodes of a trial, the same K for every run "
                                        "(default: the first run's evaluation.steps)"),
    episodes: int | None = typer.Option(None, "--episodes", parser=_integer,
                                        help="evaluation.episodes of every run: support "
                                        "episodes per gradient step, trials per task for "
                                        "runs that adapt in episodes (default: the first "
                                        "run's of each unit)"),
    reevaluate: bool = typer.Option(False, "--reevaluate", help="score runs evaluated "
                                    "differently (evaluation.episodes, .batch_unit, "
                                    ".tasks_file) under one protocol, the first run's "
                                    "settings, instead of refusing them; runs on another "
                                    "task family stay refused"),
    threads: int = _threads_option(),
) -> None:
    """Score several runs on the same held-out tasks; print a markdown table (README-ready).

    Runs may adapt in different units (MAML in gradient steps, RL² in episodes of a
    trial): the table then has a unit column, and the plot's x is the episodes played on
    the task before the scored ones.

    Runs evaluated differently (evaluation.episodes, batch_unit or tasks_file) are refused,
    unless --reevaluate scores them all under the first run's settings (or --episodes).
    """
    _use_threads(threads)
    _check_evaluation_options(tasks, steps, seed)
    _at_least("--episodes", episodes, 1)
    _check_run_dirs(list(run_dirs))
    from adaptrl.experiment.compare import compare_runs, markdown_table, write_comparison

    result = compare_runs(list(run_dirs), tasks, seed, steps, episodes=episodes,
                          reevaluate=reevaluate)
    for run, changes in result.get("reevaluated", {}).items():  # stderr: stdout is the table
        err_console.print(f"scored {run} under the common protocol "
                          f"({'; '.join(changes)}); its eval.json is left as it was")
    typer.echo(markdown_table(result))
    if out is not None:
        for p in write_comparison(result, out):
            console.print(f"wrote {p}")


@app.command()
@_reported
def report(
    run_dirs: list[Path] = typer.Argument(..., help="one run directory, or several to compare"),
    out: Path | None = typer.Option(None, "--out", help="HTML file to write (a folder: the "
                                       "default name in it); default RUN_DIR/report.html, or "
                                       "report-<a>-vs-<b>.html beside the first of several runs"),
    threads: int = _threads_option(),
) -> None:
    """Write a self-contained HTML page of RUN_DIR (config, learning and adaptation curves,
    tables of eval.json); of several runs, their comparison on common held-out tasks too.

    Figures are embedded in the page; it fetches nothing and needs no JavaScript.
    """
    _use_threads(threads)
    from adaptrl.experiment.config import ConfigError
    from adaptrl.experiment.report import write_report

    try:
        path = write_report(list(run_dirs), out)
    except ConfigError as err:
        _fail(str(err))
    console.print(f"wrote {path}")


@app.command()
@_reported
def export(
    run_dir: Path = typer.Argument(..., help="a run directory made by `adaptrl train`"),
    out: Path | None = typer.Option(None, "--out", help="folder for policy.pt, policy.onnx "
                                    "and export.json (default: RUN_DIR/export)"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or latest"),
    format_: str = typer.Option("all", "--format", help="torchscript, onnx, or all "
                                "(TorchScript, and ONNX where the `export` extra is "
                                "installed and torch.onnx can export the policy)"),
) -> None:
    """Write RUN_DIR's policy as TorchScript / ONNX, action rescaling inside: an observation
    in, an action in the env's own action space out (RL²: one recurrent step, the hidden
    state in and out). export.json says the inputs and outputs."""
    from adaptrl.experiment.deploy import DEPLOY_CHECKPOINTS
    from adaptrl.experiment.export import EXPORT_FORMATS, export_agent

    if checkpoint not in DEPLOY_CHECKPOINTS:
        _fail(f"--checkpoint must be one of {list(DEPLOY_CHECKPOINTS)}, got {checkpoint!r}")
    if format_ not in EXPORT_FORMATS:
        _fail(f"--format must be one of {list(EXPORT_FORMATS)}, got {format_!r}")
    _check_run_dirs([run_dir])
    result = export_agent(run_dir, out, checkpoint, format=format_)  # type: ignore[arg-type]
    for path in result.files:
        console.print(f"wrote {path}")
    for fmt, why in result.skipped.items():
        err_console.print(Text.assemble((f"{fmt}: skipped", "yellow"), f" ({why})"))


@app.command()
@_reported
def sweep(
    config: Path = typer.Argument(..., help="YAML config, e.g. configs/maml-navigation.yaml"),
    param: list[str] = typer.Option([], "--param", help="a swept key: KEY=a,b,c (values) or "
                                    "KEY=uniform(lo,hi) / loguniform(lo,hi) / randint(lo,hi) "
                                    "(a range: Optuna searches); repeat for more keys"),
    seeds: str = typer.Option("3", "--seeds", help="seeds per point: a count N (the config's "
                              "seed and the N-1 after it) or a spec such as 1-5"),
    samples: int | None = typer.Option(None, "--samples", parser=_integer, help="points "
                                       "Optuna tries (a space with a range; a grid runs every "
                                       "combination)"),
    out: Path | None = typer.Option(None, "--out", help="sweep directory (default: "
                                    "runs/sweep-<config name>)"),
    set_: list[str] = typer.Option([], "--set", help="override a config key for every "
                                   "trial: KEY=VALUE"),
    cpus: int | None = typer.Option(None, "--cpus", parser=_integer, help="CPUs of the local "
                                    "Ray cluster: trials at once (default: all)"),
    address: str | None = typer.Option(None, "--address", help="an existing Ray cluster "
                                       "('auto', 'ray://host:10001'); the sweep directory "
                                       "must then be on storage every node sees"),
) -> None:
    """Sweep hyperparameters on Ray Tune: every point trained once per seed (ordinary run
    directories), a sensitivity report and the best config; run again to continue."""
    from adaptrl.experiment.sweep import run_sweep

    _at_least("--cpus", cpus, 1)
    result = run_sweep(config, param, seeds, out=out, samples=samples, overrides=set_,
                       cpus=cpus, address=address)
    console.print(f"{result.ran} trial(s) run, {len(result.records) - result.ran} finished "
                  f"before; best: {result.best['name']} (final return "
                  f"{result.best['mean']:.2f})")
    if result.failed:
        err_console.print(Text.assemble((f"{result.failed} trial(s) failed", "yellow"),
                                        f": see their error files under {result.out / 'tune'}; "
                                        "run the sweep again to retry them"))
    for name in ("report.md", "report.json", "sensitivity.png", "best.yaml"):
        console.print(f"wrote {result.out / name}")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
