"""``adaptrl report``: one self-contained HTML page of a run, or of several runs side by side.

The page is a single file that needs nothing else: every figure is a PNG embedded as a
base64 ``data:`` URI (drawn in memory by :mod:`adaptrl.experiment.plots`), the style sheet
is inline, there is no JavaScript and no link to fetch, so it opens offline, can be attached
to an issue or mailed, and reads the same in any browser. Collapsible parts (the config,
the per-task table) are ``<details>`` elements, which work without JavaScript. Every text
taken from a run (names, config, numbers) is HTML-escaped; numbers have 2 decimals.

One run, written to ``RUN_DIR/report.html`` by default (``adaptrl train`` writes it at the
end, with or without ``--no-eval``):

- the title (run name, algorithm, task family) and the resolved config (config.yaml);
- what training cost: iterations, wall time and env steps (the last line of metrics.jsonl),
  the best checkpoint's iteration and score (the latest checkpoint, read when small), for
  the run and for each trained baseline under ``RUN_DIR/baselines/``;
- the learning curve (metrics.jsonl);
- from eval.json: the adaptation curve with 95% CI bands for the agent and its baselines,
  the table of mean ± 95% CI after each adaptation unit, the paired agent − baseline table
  (``agent_minus``), the success rate (Meta-World), every task's score (a strip plot and a
  table) and the RL² paper's classic table (bandits, tabular MDPs);
- the 2D paths figure, if ``adaptrl plot`` drew one (``RUN_DIR/plots/paths.png``: drawing it
  again would mean rolling out the policy).

A run without eval.json gets a page that says so and shows the rest.

Several runs: first the comparison of :func:`adaptrl.experiment.compare.compare_runs` (the
runs scored on common held-out tasks, reusing each eval.json made with those settings, its
plot and its table with training costs and the paired lead over *pretrained*), then each
run's section as above. Written by default beside the first run:
``<first run's parent>/report-<name>-vs-<name>[...].html`` (``report-<name>-and-<n>-more.html``
when the names would make the file name too long).
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from adaptrl import __version__
from adaptrl.agents.contract import AdaptationUnit
from adaptrl.evaluation.classic_tables import setting_label
from adaptrl.experiment.atomic import atomic_write_text
from adaptrl.experiment.checkpoints import CheckpointError, load_checkpoint
from adaptrl.experiment.classic_table import paired_lines
from adaptrl.experiment.compare import (
    _caption,
    _count,
    _unit_label,
    compare_runs,
    plot_comparison,
    training_cost,
)
from adaptrl.experiment.config import ConfigError
from adaptrl.experiment.plots import (
    adaptation_curve_figure,
    classic_table_figure,
    learning_curve_figure,
    per_task_figure,
    png_bytes,
    stream_figure,
)
from adaptrl.experiment.run_dir import RunDir

REPORT_NAME = "report.html"
PNG_URI = "data:image/png;base64,"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_NAME = 100
"""Longest default file name stem of a several-run report before it is shortened."""
CHEAP_CHECKPOINT_BYTES = 64 * 2**20
"""A latest checkpoint read for its best iteration / score only up to this size."""

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 72rem; padding: 0 1rem; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { margin-top: 2.2rem; }
h2, h3 { border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8rem 0 1.2rem; font-size: 0.9rem; }
caption { text-align: left; color: #444; padding-bottom: 0.3rem; max-width: 60rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; }
thead th { background: #f2f4f7; } tbody th { text-align: left; font-weight: 600; }
td { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 0.2rem 1rem; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; }
.figures { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0.5rem 0; flex: 1 1 26rem; max-width: 40rem; }
figure img { width: 100%; height: auto; display: block; } figure.wide { max-width: 68rem; }
figcaption { color: #555; font-size: 0.85rem; }
details { margin: 0.6rem 0; } summary { cursor: pointer; font-weight: 600; }
pre { background: #f6f8fa; padding: 0.8rem; overflow-x: auto; font-size: 0.85rem; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.5rem 0.8rem; }
footer { margin-top: 3rem; color: #777; font-size: 0.8rem; }
"""


def write_report(run_dirs: Sequence[Path], out: Path | None = None) -> Path:
    """Write the report of one run, or the comparison page of several, and return its path.

    ``out``: the HTML file to write; an existing folder gets the default file name in it;
    None: the default place (module docstring). Raises :class:`ConfigError` if a path is
    not a run directory.
    """
    paths = [Path(p) for p in run_dirs]
    if not paths:
        raise ConfigError("report: give at least one run directory")
    for p in paths:
        if not RunDir(p).config.exists():
            raise ConfigError(f"{p} is not a run directory (no config.yaml)")
    default = default_report_path(paths)
    target = default if out is None else Path(out)
    if target.is_dir():
        target = target / default.name
    page = run_page(paths[0]) if len(paths) == 1 else comparison_page(paths)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, page)
    return target


def default_report_path(paths: Sequence[Path]) -> Path:
    """``RUN_DIR/report.html`` for one run; for several, a file beside the first run named
    after all of them (``report-a-vs-b.html``), shortened to ``report-a-and-<n>-more.html``
    when too long."""
    if len(paths) == 1:
        return Path(paths[0]) / REPORT_NAME
    names = [Path(p).resolve().name for p in paths]
    stem = "-vs-".join(names)
    if len(stem) > MAX_NAME:
        stem = f"{names[0][:MAX_NAME // 2]}-and-{len(names) - 1}-more"
    return Path(paths[0]).resolve().parent / f"report-{stem}.html"


# ---------------------------------------------------------------------------- pages


def run_page(path: Path) -> str:
    """The whole page of one run."""
    run = RunDir(Path(path))
    return _page(_run_title(run), _run_section(run, "run", level=1))


def comparison_page(paths: Sequence[Path]) -> str:
    """The whole page of several runs: their comparison, then each run's section."""
    runs = [RunDir(Path(p)) for p in paths]
    title = f"comparison of {len(runs)} runs: " + ", ".join(r.path.name for r in runs)
    contents = "".join(f'<li><a href="#run-{i}">{_esc(_run_title(r))}</a></li>'
                       for i, r in enumerate(runs, 1))
    body = [f"<h1>{_esc(title)}</h1>", f"<nav><ul>{contents}</ul></nav>",
            _comparison_section(paths)]
    body += [_run_section(r, f"run-{i}", level=2) for i, r in enumerate(runs, 1)]
    return _page(title, "\n".join(body))


def _page(title: str, body: str) -> str:
    """An HTML5 document around ``body``, with the inline style sheet and a footer."""
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            f"<main>\n{body}\n</main>\n<footer>written by adaptrl {_esc(__version__)} "
            f"(<code>adaptrl report</code>) on {stamp}; self-contained: figures are "
            "embedded, nothing is fetched.</footer>\n</body>\n</html>\n")


# ---------------------------------------------------------------------------- one run


def _run_config(run: RunDir) -> dict[str, Any]:
    """The run's config.yaml as a plain dict (not validated: a report shows old runs too)."""
    loaded = yaml.safe_load(run.config.read_text())
    return loaded if isinstance(loaded, dict) else {}


def _run_title(run: RunDir) -> str:
    """``run: algorithm on family``: the run directory's name (what tells runs apart in a
    comparison; the config's name is among the facts) and the config's algorithm and family."""
    config = _run_config(run)
    algorithm = (config.get("algorithm") or {}).get("name", "?")
    family = (config.get("family") or {}).get("name", "?")
    return f"{run.path.resolve().name}: {algorithm} on {family}"


def _read_eval(run: RunDir) -> dict[str, Any] | None:
    """The run's eval.json, or None if it has none."""
    if not run.eval_json.exists():
        return None
    result: dict[str, Any] = json.loads(run.eval_json.read_text())
    return result


def _run_section(run: RunDir, anchor: str, level: int) -> str:
    """Everything about one run, under a heading of ``level`` (subsections one below)."""
    result = _read_eval(run)
    sub = level + 1
    parts = [f'<section id="{_esc(anchor)}">',
             f"<h{level}>{_esc(_run_title(run))}</h{level}>",
             f'<p class="meta">run directory <code>{_esc(str(run.path))}</code></p>',
             _facts(run, result),
             _config_details(run),
             f"<h{sub}>Meta-training</h{sub}>",
             _training_table(run),
             _figures([(learning_curve_figure(run), "learning curve: training returns "
                        "against the meta-iteration")])]
    if result is None:
        parts.append(f'<p class="note">No evaluation yet: this run has no eval.json. '
                     f"Score it with <code>adaptrl evaluate {_esc(str(run.path))}</code>, "
                     "then write this page again.</p>")
    else:
        parts.append(_evaluation(result, sub))
    parts.append(_paths_figure(run, sub))
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def _facts(run: RunDir, result: dict[str, Any] | None) -> str:
    """The run's key facts as a definition list."""
    config = _run_config(run)
    family = config.get("family") or {}
    params = f" {json.dumps(family['params'])}" if family.get("params") else ""
    facts = [("config name", str(config.get("name", "?"))),
             ("algorithm", str((config.get("algorithm") or {}).get("name", "?"))),
             ("task family", f"{family.get('name', '?')}{params}"),
             ("seed", str(config.get("seed", "?")))]
    if result is not None:
        facts.append(("evaluated", _evaluation_setting(result)))
    items = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in facts)
    return f'<dl class="facts">{items}</dl>'


def _config_details(run: RunDir) -> str:
    """The resolved config as YAML text, folded."""
    return ("<details><summary>resolved config (config.yaml)</summary>"
            f"<pre>{_esc(run.config.read_text())}</pre></details>")


def _best_checkpoint(run: RunDir) -> tuple[Any, Any]:
    """The best iteration and score the latest checkpoint records, or (None, None) when it
    is missing, unreadable or too big to read just for this."""
    path = run.latest
    if not path.exists() or path.stat().st_size > CHEAP_CHECKPOINT_BYTES:
        return None, None
    try:
        state = load_checkpoint(path)
    except (CheckpointError, OSError):
        return None, None
    return state.get("best_iteration"), state.get("best_score")


def _training_table(run: RunDir) -> str:
    """What meta-training cost, for the run and each trained baseline under baselines/."""
    subs = sorted(p for p in (run.path / "baselines").glob("*") if (p / "metrics.jsonl").exists())
    rows = []
    for label, r in [("agent", run)] + [(p.name + " (baseline)", RunDir(p)) for p in subs]:
        cost = training_cost(r)
        best_it, best_score = _best_checkpoint(r)
        rows.append([label, _int(cost["iterations"]), fmt_duration(cost["wall_time_s"]),
                     fmt_count(cost["env_steps"]), _int(best_it), fmt(best_score)])
    return _table("training", "what meta-training cost (metrics.jsonl) and the best checkpoint "
                  "(its iteration, counted from 0, and its selection score)",
                  ["", "iterations", "wall time", "env steps", "best iteration", "best score"],
                  rows)


def _paths_figure(run: RunDir, level: int) -> str:
    """``RUN_DIR/plots/paths.png`` embedded, if ``adaptrl plot`` drew it."""
    path = run.plots / "paths.png"
    if not path.exists():
        return ""
    png = path.read_bytes()
    if not png.startswith(PNG_SIGNATURE):
        return ""
    return (f"<h{level}>Paths on test tasks</h{level}>"
            + _img(png, "2D paths on a few test tasks before and after adaptation",
                   "the paths of the best checkpoint's policy before and after adaptation "
                   f"(from {path.name}, drawn by adaptrl plot)", wide=True))


# ---------------------------------------------------------------------------- evaluation


def _unit_word(unit: str) -> str:
    """The singular word of an adaptation unit (``step``, ``episode``)."""
    try:
        return AdaptationUnit(unit).word
    except ValueError:
        return unit.replace("_", " ")


def _evaluation_setting(result: dict[str, Any]) -> str:
    """One line of how eval.json was made."""
    source = (f"tasks of {result['tasks_file']}" if result.get("tasks_file")
              else f"held-out tasks ({result.get('split', 'test')} split)")
    it = result.get("checkpoint_iteration")
    at = "" if it is None else f" (iteration {it})"
    return (f"{result['num_tasks']} {source}, evaluation seed {result.get('seed', '?')}, "
            f"{result.get('episodes_per_step', '?')} episodes per "
            f"{_unit_word(result['unit'])}, {result.get('checkpoint', '?')} checkpoint{at}")


def _evaluation(result: dict[str, Any], level: int) -> str:
    """The eval.json part of a run's section."""
    word = _unit_word(result["unit"])
    units = next(iter(result["methods"].values()))["steps"]
    head = ["method"] + [_count(word, k) for k in units]
    parts = [f"<h{level}>Adaptation on held-out tasks</h{level}>",
             f"<p>{_esc(_evaluation_setting(result))}; mean ± 95% CI over tasks.</p>",
             _figures([(adaptation_curve_figure(result), "adaptation curve: held-out return "
                        "against adaptation units, 95% CI bands, agent and baselines"),
                       (per_task_figure(result), "per-task scores: one dot per held-out task "
                        "and adaptation unit, for each method")]),
             _table("curve", f"average return on held-out tasks after k {word}s "
                    "(mean ± 95% CI over tasks)", head,
                    [[name] + _ci_cells(m["mean"], m["ci95"])
                     for name, m in result["methods"].items()])]
    if result.get("agent_minus"):
        parts.append(_table("paired", "agent − baseline on the same tasks (paired 95% CI; "
                            "> 0: the agent is ahead; bold: significantly, the CI excludes 0)",
                            ["agent − baseline"] + head[1:],
                            [[name, *_paired_cells(d)]
                             for name, d in result["agent_minus"].items()]))
    success = {n: m for n, m in result["methods"].items() if "success_mean" in m}
    if success:
        parts.append(_table("success", "success rate on held-out tasks (mean ± 95% CI)",
                            head, [[n] + _ci_cells(m["success_mean"], m["success_ci95"])
                                   for n, m in success.items()]))
    parts.append(_per_task_table(result, head[1:]))
    if "table" in result:
        parts.append(_classic_table(result["table"], level))
    if result.get("stream"):
        parts.append(_stream_section(result, level))
    return "\n".join(p for p in parts if p)


def _stream_section(result: dict[str, Any], level: int) -> str:
    """A run trained along a task stream: the continual-learning metrics at the end of
    the stream, the forgetting curve and the score matrix ``R[i, j]`` (eval.json's
    ``stream`` and ``stages``; :mod:`adaptrl.evaluation.stream`)."""
    from adaptrl.experiment.streams import stage_label, stream_rows

    stream = result["stream"]
    stages = result.get("stages") or [{"index": j} for j in range(stream["num_stages"])]
    labels = [stage_label(s) for s in stages]
    matrix = [[f"after {labels[i]}"] + _ci_cells(
        [math.nan if v is None else v for v in stream["mean"][i]], stream["ci95"][i])
        for i in range(stream["num_stages"]) if any(v is not None for v in stream["mean"][i])]
    return "\n".join([
        f"<h{level}>Task stream: every stage scored after each stage</h{level}>",
        f"<p>{stream['num_stages']} stages, each scored on {stream['num_tasks'][0]} fixed "
        "test tasks of its own; retained: the mean over stages at the end; learning: each "
        "stage just after it was trained; backward transfer and forgetting as in "
        "Lopez-Paz &amp; Ranzato 2017 and Chaudhry et al. 2018 (mean ± 95% CI over "
        "tasks).</p>",
        _table("stream", "continual-learning metrics at the end of the stream",
               ["metric", "value"], [[name, fmt_ci(m, c, signed=name != "retained")]
                                     for name, m, c in stream_rows(result)]),
        _figures([(stream_figure(result), "forgetting curve: the score on every stage "
                   "after each stage of training (dotted before the stage is trained), and "
                   "the score matrix")]),
        _table("stream-matrix", "R[i, j]: the score on stage j (columns) after training "
               "through stage i (rows), mean ± 95% CI over tasks",
               ["after stage"] + labels, matrix)])


def _per_task_table(result: dict[str, Any], unit_heads: list[str]) -> str:
    """Every task's score after each unit, for each method that has them, folded."""
    methods = {n: m["per_task"] for n, m in result["methods"].items() if m.get("per_task")}
    if not methods:
        return ""
    tasks = len(next(iter(methods.values()))[0])
    rows = [[f"task {t}"] + [fmt(per_task[k][t]) for per_task in methods.values()
                             for k in range(len(per_task))] for t in range(tasks)]
    table = _table("per-task", "return on each held-out task after k units", ["task"] +
                   unit_heads * len(methods), rows,
                   groups=[("", 1)] + [(n, len(unit_heads)) for n in methods])
    return f"<details><summary>per-task scores ({tasks} tasks)</summary>{table}</details>"


def _classic_table(table: dict[str, Any], level: int) -> str:
    """The RL² paper's table: grouped bars, the numbers (best of a row in bold) and the
    paired lines of RL² against the best classic algorithm."""
    methods = list(dict.fromkeys(m for row in table["settings"] for m in row["methods"]))
    rows: list[list[Cell]] = []
    for row in table["settings"]:
        found = row["methods"]
        best = max(r["mean"] for r in found.values())
        cells: list[Cell] = [setting_label(row)]
        cells += [(fmt_ci(found[m]["mean"], found[m]["ci95"]), found[m]["mean"] == best)
                  if m in found else "—" for m in methods]
        rows.append(cells)
    lines = "".join(f"<li>{_esc(line)}</li>" for line in paired_lines(table))
    return (f"<h{level}>RL² beside the classic algorithms</h{level}>"
            + _figures([(classic_table_figure(table), "the RL² paper's table as grouped bars")])
            + _table("classic", f"{table['family']}: {table['score']}, mean ± 95% CI over "
                     "instances (best of a row in bold)", ["setting"] + methods, rows)
            + (f"<ul>{lines}</ul>" if lines else ""))


# ---------------------------------------------------------------------------- comparison


def _comparison_section(paths: Sequence[Path]) -> str:
    """The runs scored on common held-out tasks: plot and table, or why they cannot be."""
    try:
        comparison = compare_runs(list(paths))
    except ConfigError as err:
        return (f'<section id="comparison"><h2>Comparison</h2><p class="note">These runs '
                f"cannot be compared: {_esc(str(err))}</p></section>")
    with tempfile.TemporaryDirectory() as tmp:
        png = plot_comparison(comparison, Path(tmp) / "comparison.png").read_bytes()
    k, rows = comparison["steps"], comparison["rows"]
    mixed = comparison["unit"] == "mixed"
    head = ["method", "algorithm"] + (["unit"] if mixed else [])
    head += ([str(i) for i in range(k + 1)] if mixed else
             [_count(_unit_word(comparison["unit"]), i) for i in range(k + 1)])
    paired_units = [r["unit"] for r in rows if r.get("vs_pretrained")]
    paired = k >= 1 and bool(paired_units)
    head += [f"{_count(_unit_word(paired_units[0]), 1)} − pretrained (paired)"] if paired else []
    head += ["wall time", "env steps", "iterations"]
    body = []
    for r in rows:
        cells = [r["method"], r["algorithm"]]
        if mixed:
            cells.append("— (given the task)" if r["method"] == "oracle"
                         else _unit_label(r["unit"], comparison))
        cells += _ci_cells(r["mean"], r["ci95"])
        if paired:
            d = r.get("vs_pretrained")
            cells.append(fmt_ci(d["mean"][1], d["ci95"][1], signed=True) if d else "—")
        cells += [fmt_duration(r["wall_time_s"]), fmt_count(r["env_steps"]),
                  _int(r["iterations"])]
        body.append(cells)
    return ('<section id="comparison"><h2>Comparison</h2>'
            + _img(png, "adaptation curves of every run and baseline, 95% CI bands",
                   wide=True)
            + _table("comparison", _caption(comparison), head, body) + "</section>")


# ---------------------------------------------------------------------------- HTML pieces


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def fmt(x: float | None, signed: bool = False) -> str:
    """A number with 2 decimals (``+`` shown when ``signed``); ``—`` for none / non-finite."""
    if x is None or not math.isfinite(x):
        return "—"
    return f"{x:+.2f}" if signed else f"{x:.2f}"


def fmt_ci(mean: float | None, ci: float | None, signed: bool = False) -> str:
    """``mean ± ci`` with 2 decimals; the mean alone when the CI is undefined (one task)."""
    if ci is None or not math.isfinite(ci):
        return fmt(mean, signed)
    return f"{fmt(mean, signed)} ± {fmt(ci)}"


def fmt_duration(seconds: float | None) -> str:
    """A wall time in s, min or h, with 1-2 decimals; ``—`` for none."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.2f} h"


def fmt_count(n: float | None) -> str:
    """A count with thousands separators (``1,234,000``); ``—`` for none."""
    return "—" if n is None else f"{int(n):,}"


def _ci_cells(means: Sequence[float], cis: Sequence[float | None]) -> list[str]:
    return [fmt_ci(m, c) for m, c in zip(means, cis, strict=True)]


def _paired_cells(diff: dict[str, list[float]]) -> list[Cell]:
    """Signed ``mean ± ci`` cells of a paired difference, bold where the CI excludes 0."""
    return [(fmt_ci(m, c, signed=True), c is not None and math.isfinite(c) and abs(m) > c)
            for m, c in zip(diff["mean"], diff["ci95"], strict=True)]


def _int(x: Any) -> str:
    return "—" if x is None else str(int(x))


Cell = str | tuple[str, bool]
"""A table cell's text, or (text, bold)."""


def _table(cls: str, caption: str, header: Sequence[str], rows: Sequence[Sequence[Cell]],
           groups: Sequence[tuple[str, int]] | None = None) -> str:
    """An HTML table: a caption, an optional row of column groups (label, span) above the
    header, and rows whose first cell heads the row."""
    head = ""
    if groups:
        head += "<tr>" + "".join(f'<th colspan="{span}" scope="colgroup">{_esc(label)}</th>'
                                 for label, span in groups) + "</tr>"
    head += "<tr>" + "".join(f'<th scope="col">{_esc(h)}</th>' for h in header) + "</tr>"
    body = "".join("<tr>" + "".join(_cell(c, i == 0) for i, c in enumerate(row)) + "</tr>"
                   for row in rows)
    return (f'<table class="{_esc(cls)}"><caption>{_esc(caption)}</caption>'
            f"<thead>{head}</thead><tbody>{body}</tbody></table>")


def _cell(cell: Cell, row_head: bool) -> str:
    text, bold = (cell, False) if isinstance(cell, str) else cell
    inner = f"<strong>{_esc(text)}</strong>" if bold else _esc(text)
    return f'<th scope="row">{inner}</th>' if row_head else f"<td>{inner}</td>"


def _img(png: bytes, alt: str, caption: str | None = None, wide: bool = False) -> str:
    """A PNG embedded as a data URI, in a figure (``wide``: as wide as the page allows)."""
    uri = PNG_URI + base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{_esc(caption)}</figcaption>" if caption else ""
    cls = ' class="wide"' if wide else ""
    return f'<figure{cls}><img src="{uri}" alt="{_esc(alt)}">{cap}</figure>'


def _figures(figures: Sequence[tuple[Any, str]]) -> str:
    """Matplotlib figures (None ones left out) rendered to PNG in memory, side by side."""
    imgs = [_img(png_bytes(fig), alt) for fig, alt in figures if fig is not None]
    return f'<div class="figures">{"".join(imgs)}</div>' if imgs else ""
