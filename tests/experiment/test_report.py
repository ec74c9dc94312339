"""``adaptrl report``: the HTML page of a tiny trained run holds eval.json's numbers, embeds
every figure as a PNG data URI and fetches nothing; in headless Chromium (Debian's
``/usr/bin/chromium`` driven by Playwright) it loads without errors, every image renders
and the tables read the eval.json numbers. The browser tests are skipped with a reason
where Playwright or the browser is absent (CI installs both: ``apt-get install chromium``,
the ``test`` extra)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import TINY
from typer.testing import CliRunner

from adaptrl.cli.main import app
from adaptrl.experiment.report import default_report_path, fmt, fmt_ci, write_report

runner = CliRunner()
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PNG = b"\x89PNG\r\n\x1a\n"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


# ---------------------------------------------------------------------------- runs


def _train(root: Path, name: str, *extra: str) -> Path:
    """A tiny MAML run (tests/conftest.py's TINY) trained through the CLI."""
    config = root / f"{name}.yaml"
    config.write_text(yaml.safe_dump({**TINY, "name": name}))
    run = root / name
    res = runner.invoke(app, ["train", str(config), "--run-dir", str(run),
                              "--set", "baselines.pretrained_iterations=1", *extra])
    assert res.exit_code == 0, res.output
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An evaluated run (with pretrained and scratch baselines, oracle) and one trained with
    ``--no-eval``; training wrote both reports."""
    root = tmp_path_factory.mktemp("report")
    return {"evaluated": _train(root, "evaluated"),
            "no_eval": _train(root, "no-eval", "--no-eval", "--seed", "4")}


def _eval(run: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((run / "eval.json").read_text())
    return result


def expected_tables(ev: dict[str, Any]) -> dict[str, list[list[str]]]:
    """The body rows each table of the page must show for eval.json ``ev``, formatted
    independently of the report's code: 2 decimals, ``mean ± ci``, signed paired means."""
    per_task = {n: m["per_task"] for n, m in ev["methods"].items() if "per_task" in m}
    tasks = len(next(iter(per_task.values()))[0])
    return {
        "curve": [[n] + [f"{m:.2f} ± {c:.2f}" for m, c in zip(s["mean"], s["ci95"], strict=True)]
                  for n, s in ev["methods"].items()],
        "paired": [[n] + [f"{m:+.2f} ± {c:.2f}" for m, c in zip(d["mean"], d["ci95"], strict=True)]
                   for n, d in ev["agent_minus"].items()],
        "per-task": [[f"task {t}"] + [f"{scores[k][t]:.2f}" for scores in per_task.values()
                                      for k in range(len(scores))] for t in range(tasks)],
    }


# ---------------------------------------------------------------------------- HTML reading


class PageReader(HTMLParser):
    """Reads a page: tag balance (a well-formed document), image sources, and the text of
    every table's body rows by the table's class."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.images: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._in_body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src") or "")
        if tag not in VOID:
            self.stack.append(tag)
        if tag == "table":
            self._table = a.get("class") or ""
            self.tables.setdefault(self._table, [])
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._in_body:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else ''}>")
            return
        self.stack.pop()
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def read_page(path: Path) -> tuple[str, PageReader]:
    text = path.read_text()
    reader = PageReader()
    reader.feed(text)
    reader.close()
    return text, reader


# ---------------------------------------------------------------------------- the page


def test_training_writes_a_report_holding_the_eval_numbers(runs: dict[str, Path]) -> None:
    run = runs["evaluated"]
    text, page = read_page(run / "report.html")
    ev = _eval(run)
    for cls, rows in expected_tables(ev).items():
        assert page.tables[cls] == rows, cls
    assert "evaluated: maml on navigation-2d" in text
    assert f"evaluation seed {ev['seed']}" in text
    training = {row[0]: row for row in page.tables["training"]}
    assert set(training) == {"agent", "pretrained (baseline)"}
    assert training["agent"][1] == "2"  # iterations, from metrics.jsonl


def test_figures_are_embedded_pngs_and_nothing_is_fetched(runs: dict[str, Path]) -> None:
    text, page = read_page(runs["evaluated"] / "report.html")
    # learning curve, adaptation curve, per-task strip plot, paths
    assert len(page.images) == 4
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1], validate=True).startswith(PNG)
    assert not re.search(r"https?://", text)
    assert "<script" not in text and "<link" not in text


def test_the_page_is_a_well_formed_html5_document(runs: dict[str, Path]) -> None:
    for run in runs.values():
        text, page = read_page(run / "report.html")
        assert text.startswith("<!DOCTYPE html>\n<html lang=\"en\">")
        assert page.problems == [] and page.stack == []


def test_run_texts_are_escaped(runs: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(runs["evaluated"], run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["name"] = "<b>bold</b> & co"
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    text, page = read_page(write_report([run]))
    assert "<b>bold" not in text and "&lt;b&gt;bold&lt;/b&gt; &amp; co" in text
    assert page.problems == []


def test_success_rates_classic_table_and_undefined_cis(runs: dict[str, Path],
                                                      tmp_path: Path) -> None:
    """eval.json's optional parts (Meta-World success rates, the RL² paper's table) get a
    table each; an undefined CI (null) shows the mean alone."""
    run = tmp_path / "run"
    shutil.copytree(runs["evaluated"], run)
    ev = _eval(run)
    agent = ev["methods"]["agent"]
    agent["ci95"][0] = None
    agent.update(success_mean=[0.25, 0.5, 0.75], success_ci95=[0.1, 0.125, None])
    ev["table"] = {"family": "bandit-bernoulli", "unit": "episodes",
                   "score": "total reward per trial",
                   "settings": [{"n": 10, "k": 5,
                                 "methods": {"rl2": {"mean": 6.1, "ci95": 0.2},
                                             "ucb1": {"mean": 6.5, "ci95": 0.1}},
                                 "rl2_minus": {"ucb1": {"mean": -0.4, "ci95": 0.2}}}]}
    (run / "eval.json").write_text(json.dumps(ev))
    text, page = read_page(write_report([run]))
    assert page.tables["curve"][0][1] == f"{agent['mean'][0]:.2f}"
    assert page.tables["success"] == [["agent", "0.25 ± 0.10", "0.50 ± 0.12", "0.75"]]
    assert page.tables["classic"] == [["n=10, k=5", "6.10 ± 0.20", "6.50 ± 0.10"]]
    assert "<strong>6.50 ± 0.10</strong>" in text  # the best of the row
    assert "rl2 - ucb1 = -0.40 ± 0.20" in text
    assert len(page.images) == 5  # the classic table's bars too


def test_a_run_without_eval_json_says_so_and_shows_what_exists(runs: dict[str, Path]) -> None:
    run = runs["no_eval"]
    assert not (run / "eval.json").exists()
    text, page = read_page(run / "report.html")
    assert "No evaluation yet" in text
    assert len(page.images) == 1  # the learning curve
    assert "curve" not in page.tables and page.tables["training"][0][1] == "2"


def test_report_of_several_runs_compares_them(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cmp.html"
    res = runner.invoke(app, ["report", str(runs["evaluated"]), str(runs["no_eval"]),
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    _, page = read_page(out)
    methods = [row[0] for row in page.tables["comparison"]]
    assert methods[:2] == ["evaluated", "no-eval"] and "pretrained" in methods
    assert [row[0] for row in page.tables["training"]].count("agent") == 2  # a section each
    agent = _eval(runs["evaluated"])["methods"]["agent"]
    first = page.tables["comparison"][0]
    cells = [f"{m:.2f} ± {c:.2f}" for m, c in zip(agent["mean"], agent["ci95"], strict=True)]
    assert first[2:2 + len(cells)] == cells
    assert not (runs["no_eval"] / "eval.json").exists()  # compared, not written
    assert default_report_path([runs["evaluated"], runs["no_eval"]]).name == \
        "report-evaluated-vs-no-eval.html"


def test_report_cli_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    res = runner.invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "not a run directory" in " ".join(res.output.split())


def test_number_formats() -> None:
    assert fmt(3.14159) == "3.14" and fmt(2.0, signed=True) == "+2.00" and fmt(None) == "—"
    assert fmt_ci(-1.005, 0.5) == "-1.00 ± 0.50"  # 2 decimals, never a raw float repr
    assert fmt_ci(1.0, None) == "1.00" and fmt_ci(1.0, float("nan")) == "1.00"


# ---------------------------------------------------------------------------- the browser


@dataclass
class Rendered:
    """What headless Chromium saw of a page."""

    errors: list[str]
    requests: list[str]
    images: list[dict[str, Any]]
    tables: dict[str, list[list[str]]]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (never a downloaded browser)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                                   "(pip install -e '.[test]')")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (Debian: apt-get install -y chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def render(browser: Any, path: Path, screenshot: Path | None = None) -> Rendered:
    """Open ``path`` as a file:// page; collect console and page errors, every request that
    is not the file itself or a data URI, each image's natural size and every table's body
    text by the table's class; optionally a full-page screenshot."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r: Any) -> None:
        if not r.request.url.startswith(("file:", "data:")):
            requests.append(r.request.url)
            r.abort()
        else:
            r.continue_()
    page.route("**/*", route)
    page.goto(path.resolve().as_uri(), wait_until="load")
    images = page.eval_on_selector_all(
        "img", "imgs => imgs.map(i => ({alt: i.alt, complete: i.complete, "
        "width: i.naturalWidth, height: i.naturalHeight}))")
    tables = page.evaluate(
        "() => Object.fromEntries(Array.from(document.querySelectorAll('table')).map(t => "
        "[t.className, Array.from(t.tBodies[0].rows).map(r => "
        "Array.from(r.cells).map(c => c.textContent.trim()))]))")
    if screenshot is not None:
        page.screenshot(path=str(screenshot), full_page=True)
    page.close()
    return Rendered(errors, requests, images, tables)


def test_report_renders_in_headless_chromium(browser: Any, runs: dict[str, Path],
                                            tmp_path: Path) -> None:
    run = runs["evaluated"]
    shot = tmp_path / "report.png"
    start = time.perf_counter()
    seen = render(browser, run / "report.html", shot)
    print(f"rendered in headless Chromium in {time.perf_counter() - start:.2f} s")
    assert seen.errors == [] and seen.requests == []
    assert len(seen.images) == 4
    for img in seen.images:
        assert img["complete"] and img["width"] > 0 and img["height"] > 0, img
    for cls, rows in expected_tables(_eval(run)).items():
        assert seen.tables[cls] == rows, cls
    assert shot.read_bytes().startswith(PNG) and shot.stat().st_size > 10_000


def test_the_browser_check_catches_a_broken_image(browser: Any, runs: dict[str, Path],
                                                  tmp_path: Path) -> None:
    """The rendering check can fail: a copy of the page with one image's data damaged."""
    text = (runs["evaluated"] / "report.html").read_text()
    head = "data:image/png;base64,"
    start = text.index(head) + len(head)
    broken = tmp_path / "broken.html"
    broken.write_text(text[:start] + "AAAA" + text[start + 4000:])
    seen = render(browser, broken)
    assert [img["alt"] for img in seen.images if img["width"] == 0] == \
        [seen.images[0]["alt"]]
