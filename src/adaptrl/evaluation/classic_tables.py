"""The RL² comparison tables (Duan et al. 2016, Tables 1 and 2) for the classic baselines.

:func:`bandit_table` and :func:`mdp_table` score every method on the same held-out
instances (the family's ``test`` split) and return plain dicts::

    {"family": "bandit-bernoulli", "unit": "episodes", "score": "total reward per trial",
     "num_instances": 1000, "seed": 0,
     "settings": [{"n": 10, "k": 5,
                   "methods": {"ucb1": {"mean": 6.7, "ci95": 0.1, "params": {"c": 0.2},
                                        "seconds": 0.04}, ...}}, ...]}

``n`` is the trial length in episodes (a bandit pull is a one-step episode), ``mean`` the
average total reward over instances and ``ci95`` the half-width of its 95% Student-t
interval. Another agent (RL²) adds its column by adding an entry to each setting's
``"methods"``; :func:`render_table` draws whatever methods it finds.

Methods with hyperparameters are tuned first, as in the paper: every grid point is scored
on separate instances from the ``train`` split and the best is then reported on the
``test`` split (the splits never share an instance).
"""

from __future__ import annotations

import io
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from adaptrl.agents.classic._common import Params, grid_search
from adaptrl.agents.classic.bandits import run_bandit
from adaptrl.agents.classic.methods import (
    BANDIT_METHODS,
    MDP_METHODS,
    PAPER_BANDIT_METHODS,
    PAPER_BANDIT_SETTINGS,
    PAPER_MDP_METHODS,
    PAPER_MDP_SETTINGS,
    Method,
)
from adaptrl.agents.classic.tabular import run_mdp
from adaptrl.evaluation.statistics import mean_ci95
from adaptrl.tasks.bandits import BanditBernoulli
from adaptrl.tasks.base import Tasks
from adaptrl.tasks.common import check_int
from adaptrl.tasks.tabular_mdp import TabularMDP

Runner = Callable[[Any, Tasks, torch.Generator], torch.Tensor]  # -> scores [instances]


def derived_generator(seed: int, *keys: object) -> torch.Generator:
    """A generator seeded by ``seed`` and a stable hash of ``keys`` (setting, method, ...).

    Each (setting, method) pair gets its own stream, so a table's numbers do not depend on
    which other methods or settings were asked for, or in which order.
    """
    salt = zlib.crc32(repr(keys).encode())
    return torch.Generator().manual_seed((seed * 0x9E3779B1 + salt) % (2 ** 63))


def run_generator(seed: int, key: tuple[int, ...], method: str) -> torch.Generator:
    """The random stream with which ``method`` (a classic algorithm, or ``"rl2"``) plays the
    test instances of setting ``key``: anything that replays a table uses this one."""
    return derived_generator(seed, "run", key, method)


def _check_methods(methods: Sequence[str] | None, registry: Mapping[str, Method],
                   default: Sequence[str]) -> list[str]:
    chosen = list(default if methods is None else methods)
    unknown = [m for m in chosen if m not in registry]
    if unknown or not chosen:
        raise ValueError(f"methods must be a non-empty list of names from {sorted(registry)}, "
                         f"got {chosen!r}")
    return chosen


def setting_instances(family: Any, key: tuple[int, ...], num_instances: int,
                      seed: int) -> Tasks:
    """The held-out (``test``) instances every method of setting ``key`` is scored on.

    Another agent scored on these same instances (RL² in
    :func:`adaptrl.experiment.classic_table.classic_table`) can be compared with each
    method instance by instance, a paired comparison.
    """
    return family.sample(num_instances, "test", derived_generator(seed, "test", key))


def _score_setting(key: tuple[int, ...], family: Any, run: Runner,
                   methods: Iterable[str], registry: Mapping[str, Method], num_instances: int,
                   tune_instances: int, seed: int, log: Callable[[str], None] | None,
                   scores_out: dict[str, torch.Tensor] | None = None
                   ) -> dict[str, dict[str, Any]]:
    """Tune (on ``train`` instances) and score (on ``test`` instances) every method.

    ``scores_out``, if given, receives each method's per-instance scores.
    """
    test = setting_instances(family, key, num_instances, seed)
    tune = family.sample(tune_instances, "train", derived_generator(seed, "train", key))
    results: dict[str, dict[str, Any]] = {}
    for name in methods:
        method = registry[name]
        start = time.perf_counter()
        params: dict[str, Any] = {}
        if method.grid:
            def tuned(p: Params, method: Method = method, name: str = name) -> float:
                gen = derived_generator(seed, "tune", key, name, repr(p))
                return float(run(method.make(**p), tune, gen).mean().item())
            params, _ = grid_search(tuned, method.grid)
        scores = run(method.make(**params), test, run_generator(seed, key, name))
        if scores_out is not None:
            scores_out[name] = scores
        mean, ci = mean_ci95(scores.double())
        results[name] = {"mean": mean.item(), "ci95": ci.item(), "params": params,
                         "seconds": time.perf_counter() - start}
        if log is not None:
            log(f"{key} {name}: {mean.item():.1f} ± {ci.item():.1f} {params} "
                f"({results[name]['seconds']:.1f} s)")
    return results


def bandit_table(settings: Sequence[tuple[int, int]] = PAPER_BANDIT_SETTINGS,
                 num_instances: int = 1000, seed: int = 0,
                 methods: Sequence[str] | None = None, tune_instances: int = 500,
                 log: Callable[[str], None] | None = None,
                 scores: dict[tuple[int, ...], dict[str, torch.Tensor]] | None = None
                 ) -> dict[str, Any]:
    """RL² Table 1: total reward over ``n`` pulls of ``k``-armed Bernoulli bandits.

    ``settings`` are ``(n, k)`` pairs; ``methods`` names from :data:`BANDIT_METHODS`
    (default: the paper's seven). ``log`` receives one line per scored method;
    ``scores``, if given, the per-instance scores by setting ``(n, k)`` and method.
    """
    check_int("num_instances", num_instances, 2)
    check_int("tune_instances", tune_instances, 1)
    chosen = _check_methods(methods, BANDIT_METHODS, PAPER_BANDIT_METHODS)
    rows = []
    for n, k in settings:
        check_int("n", n, 1)
        family = BanditBernoulli(num_arms=k, trial_length=n)

        def run(policy: Any, tasks: Tasks, generator: torch.Generator, n: int = n
                ) -> torch.Tensor:
            return run_bandit(policy, tasks.params["p"], n, generator).sum(dim=1)

        rows.append({"n": n, "k": k, "methods": _score_setting(
            (n, k), family, run, chosen, BANDIT_METHODS, num_instances, tune_instances,
            seed, log, None if scores is None else scores.setdefault((n, k), {}))})
    return {"family": BanditBernoulli.name, "unit": "episodes",
            "score": "total reward per trial", "num_instances": num_instances, "seed": seed,
            "settings": rows}


def mdp_table(settings: Sequence[int] = PAPER_MDP_SETTINGS, num_instances: int = 1000,
              seed: int = 0, methods: Sequence[str] | None = None, tune_instances: int = 500,
              num_states: int = 10, num_actions: int = 5, horizon: int = 10,
              log: Callable[[str], None] | None = None,
              scores: dict[tuple[int, ...], dict[str, torch.Tensor]] | None = None
              ) -> dict[str, Any]:
    """RL² Table 2: total reward over ``n`` episodes of random tabular MDPs.

    ``settings`` are trial lengths ``n`` in episodes; ``methods`` names from
    :data:`MDP_METHODS` (default: all seven of the paper); ``scores`` as in
    :func:`bandit_table`, keyed by ``(n,)``.
    """
    check_int("num_instances", num_instances, 2)
    check_int("tune_instances", tune_instances, 1)
    chosen = _check_methods(methods, MDP_METHODS, PAPER_MDP_METHODS)
    rows = []
    for n in settings:
        family = TabularMDP(num_states, num_actions, horizon, trial_length=n)

        def run(agent: Any, tasks: Tasks, generator: torch.Generator, n: int = n
                ) -> torch.Tensor:
            return run_mdp(agent, tasks.params["transitions"], tasks.params["reward_mean"],
                           n, generator, horizon).sum(dim=1)

        rows.append({"n": n, "methods": _score_setting(
            (n,), family, run, chosen, MDP_METHODS, num_instances, tune_instances, seed, log,
            None if scores is None else scores.setdefault((n,), {}))})
    return {"family": TabularMDP.name, "unit": "episodes", "score": "total reward per trial",
            "num_states": num_states, "num_actions": num_actions, "horizon": horizon,
            "num_instances": num_instances, "seed": seed, "settings": rows}


def setting_key(row: Mapping[str, Any]) -> tuple[int, ...]:
    """A table row's setting: ``(n, k)`` (bandits) or ``(n,)`` (MDPs), as ``scores`` keys it."""
    return tuple(row[k] for k in ("n", "k") if k in row)


def setting_label(row: Mapping[str, Any]) -> str:
    """A table row's setting as text: ``"n=100, k=10"`` (bandits) or ``"n=25"`` (MDPs)."""
    return ", ".join(f"{k}={row[k]}" for k in ("n", "k") if k in row)


def _cells(table: Mapping[str, Any]) -> tuple[list[str], list[tuple[str, dict[str, str]]]]:
    """The methods in order of first appearance, and per setting its label and the cell of
    each method it has (``mean ± ci95``, the best mean of the setting bold)."""
    columns: list[str] = []
    for setting in table["settings"]:
        columns += [m for m in setting["methods"] if m not in columns]
    rows = []
    for setting in table["settings"]:
        found = setting["methods"]
        best = max(r["mean"] for r in found.values())
        cells = {}
        for name, r in found.items():
            text = f"{r['mean']:.1f} ± {r['ci95']:.1f}"
            cells[name] = f"[bold]{text}[/bold]" if r["mean"] == best else text
        rows.append((setting_label(setting), cells))
    return columns, rows


def _wide(table: Mapping[str, Any], title: str) -> Table:
    """One row per setting, one column per method."""
    columns, rows = _cells(table)
    out = Table(title=title)
    out.add_column("setting")
    for name in columns:
        out.add_column(name, justify="right")
    for label, cells in rows:
        out.add_row(label, *[cells.get(name, "-") for name in columns])
    return out


def _narrow(table: Mapping[str, Any], title: str, width: int) -> list[Table]:
    """One row per method, one column per setting, in as many tables (a few settings each)
    as it takes for each to fit ``width`` columns with every cell whole."""
    columns, rows = _cells(table)
    plain = [(label, {m: Text.from_markup(c).plain for m, c in cells.items()})
             for label, cells in rows]
    room = width - (max(len("method"), *map(len, columns)) + 3) - 1  # its padding, borders
    chunks: list[list[int]] = [[]]
    used = 0
    for i, (label, cells) in enumerate(plain):
        need = max(len(label), *map(len, cells.values())) + 3
        if chunks[-1] and used + need > room:
            chunks.append([])
            used = 0
        chunks[-1].append(i)
        used += need
    out = []
    for part, chunk in enumerate(chunks):
        head = title if len(chunks) == 1 else f"{title} ({part + 1}/{len(chunks)})"
        t = Table(title=head)
        t.add_column("method", no_wrap=True)
        for i in chunk:
            t.add_column(rows[i][0], justify="right", no_wrap=True)
        for name in columns:
            t.add_row(name, *[rows[i][1].get(name, "-") for i in chunk])
        out.append(t)
    return out


def render_table(table: Mapping[str, Any], title: str | None = None,
                 width: int | None = None) -> RenderableType:
    """The table as rich renderables, cells ``mean ± ci95``: one row per setting, one column
    per method; or, where that is wider than ``width`` terminal columns (the RL² paper's
    eight to ten methods are ~130), transposed, one row per method and one column per
    setting, split into several tables of a few settings each as far as needed, so that every
    number shows whole (none cut to ``…``).

    Methods follow the order in which they first appear; a method missing from a setting
    shows ``-``. The best mean of each setting is bold.
    """
    title = title or f"{table['family']}: {table['score']}"
    wide = _wide(table, title)
    if width is None:
        return wide
    measuring = Console(file=io.StringIO(), width=10_000)
    if Measurement.get(measuring, measuring.options, wide).maximum <= width:
        return wide
    parts = _narrow(table, title, width)
    return parts[0] if len(parts) == 1 else Group(*parts)


def format_table(table: Mapping[str, Any], title: str | None = None, width: int = 200) -> str:
    """:func:`render_table` as plain text, ``width`` columns wide at most."""
    console = Console(file=io.StringIO(), width=width, record=True)
    console.print(render_table(table, title, width))
    return console.export_text()
