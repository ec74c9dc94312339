"""The pinned cases: tiny seeded runs of every algorithm and baseline, as flat dicts.

Each case function takes a scratch directory and returns ``{key: value}`` with values
that are ``float``, ``int``, ``bool``, ``str`` or ``None`` only. ``record_pins.py`` writes
them to ``pins.json``; ``test_pinned_runs.py`` re-runs them and compares. Both import
:data:`CASES` from here, so the recorder and the test cannot drift apart.

Keys read ``<part>/<...>``: ``train/<learner>/it<i>/<metric>`` (every numeric metric of
the metrics log but wall time), ``ckpt/<learner>/<latest|best>/...`` (a fingerprint of
the checkpoint: per tensor its float64 sum and sum of squares, shape and dtype; integer
tensors, e.g. the run generator's state, their sum and CRC-32), ``eval/...`` (the
evaluation's adaptation-curve means, CIs and per-task scores; for RL² ``eval/table/...``,
its setting's classic table with the ``rl2`` column) and ``table/...`` (the classic
agents' tables). Keys naming an :data:`EXCLUDED_METHODS` method are dropped.

Only public entry points are imported (``load_config``, ``train``, ``evaluate_run``, the
classic tables) and the run directory is read by its documented layout, so a redesign of
the internals should not need to touch this file.
"""

from __future__ import annotations

import copy
import enum
import json
import math
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from adaptrl.evaluation.classic_tables import bandit_table, mdp_table
from adaptrl.experiment.config import load_config
from adaptrl.experiment.evaluate import evaluate_run
from adaptrl.experiment.trainer import train

Flat = dict[str, Any]
Case = Callable[[Path], Flat]

EXCLUDED_METHODS = ("optimistic_thompson", "optimistic_psrl")
"""Classic methods not pinned: their definitions were being corrected when the pins were
first recorded (pin them once that has settled). Any key naming one is dropped."""

BANDIT_METHODS = ("random", "gittins", "thompson", "ucb1", "epsilon_greedy", "greedy",
                  "gittins_discounted")
MDP_METHODS = ("random", "psrl", "ucrl2", "beb", "epsilon_greedy", "greedy", "myopic_greedy",
               "beb_per_step", "myopic_beb_per_step")
"""The classic methods pinned, by their table names (an explicit list: a method added to
the tables later does not change these pins)."""

TRAINED_BASELINES = ("pretrained", "pretrained_adam", "aggregation")
"""Baselines trained in ``RUN/baselines/<name>`` (the config's ``evaluation.baselines``)."""

WALL_TIME_KEYS = ("wall_time_s", "seconds")
"""Keys whose values are clock readings, never pinned."""

CASES: dict[str, Case] = {}


def case(fn: Case) -> Case:
    CASES[fn.__name__] = fn
    return fn


def run_case(name: str, tmp: Path) -> Flat:
    """Run the case ``name`` in the scratch directory ``tmp`` with one intra-op thread (the
    number of threads can change how torch splits a reduction, hence its last bits)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return CASES[name](tmp)
    finally:
        torch.set_num_threads(threads)


# -- flattening -------------------------------------------------------------------------
def _tensor(prefix: str, t: torch.Tensor, out: Flat) -> None:
    t = t.detach().cpu()
    out[f"{prefix}/shape"] = "x".join(str(s) for s in t.shape)
    out[f"{prefix}/dtype"] = str(t.dtype).removeprefix("torch.")
    if t.is_floating_point() or t.is_complex():
        d = t.double()
        out[f"{prefix}/sum"] = float(d.sum())
        out[f"{prefix}/sumsq"] = float((d * d).sum())
    else:
        out[f"{prefix}/sum"] = int(t.long().sum())
        out[f"{prefix}/crc32"] = zlib.crc32(t.contiguous().numpy().tobytes())


def flatten(prefix: str, value: Any, out: Flat) -> Flat:
    """Add ``value`` (nested dicts / lists / tensors / scalars) to ``out`` under ``prefix``.

    An enum counts as its value (as eval.json writes it), so that turning a string field
    into a ``str`` enum is not a change of behaviour."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, torch.Tensor):
        _tensor(prefix, value, out)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if str(k) not in WALL_TIME_KEYS:
                flatten(f"{prefix}/{k}", v, out)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            flatten(f"{prefix}/{i}", v, out)
    elif isinstance(value, str):
        out[prefix] = str(value)
    elif value is None or isinstance(value, (bool, int, float)):
        out[prefix] = value
    else:
        out[f"{prefix}/type"] = type(value).__name__
    return out


# -- one run through the public path ---------------------------------------------------
def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _drop_excluded(out: Flat) -> Flat:
    return {k: v for k, v in out.items() if not set(k.split("/")) & set(EXCLUDED_METHODS)}


def experiment(tmp: Path, config: dict[str, Any], *, overrides: list[str] | None = None,
               train_baselines: bool = True, eval_baselines: bool = True) -> tuple[Flat, Path]:
    """Write ``config`` as YAML, load it (with ``overrides``), train (with the trained
    baselines it asks for), evaluate; everything flattened. Returns the dict and the run.

    Only the public path is used (``load_config``, ``train``, ``evaluate_run``) and the
    run directory's documented layout (``metrics.jsonl``, ``checkpoints/{latest,best}.pt``,
    ``baselines/<name>/``), so that a redesign of the internals leaves this code alone.
    """
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(copy.deepcopy(config)))
    exp, algo = load_config(path, overrides)
    run = tmp / "run"
    result = train(exp, algo, run, baselines=train_baselines)
    out: Flat = {"result/iterations": result.iterations,
                 "result/best_iteration": result.best_iteration,
                 "result/best_score": result.best_score}
    subs = {name: run / "baselines" / name for name in TRAINED_BASELINES}
    learners = {"agent": run, **{n: s for n, s in subs.items() if (s / "metrics.jsonl").exists()}}
    for label, sub in learners.items():
        for row in _read_jsonl(sub / "metrics.jsonl"):
            it = row["iteration"]
            for k, v in row.items():
                if k not in WALL_TIME_KEYS and (v is None or isinstance(v, (int, float))):
                    out[f"train/{label}/it{it}/{k}"] = v
        for which in ("latest", "best"):
            state = torch.load(sub / "checkpoints" / f"{which}.pt", map_location="cpu",
                               weights_only=True)
            flatten(f"ckpt/{label}/{which}", state, out)
    ev = evaluate_run(run, write=False, baselines=eval_baselines)
    for name, m in ev["methods"].items():
        for k in ("mean", "ci95", "per_task", "success_mean"):
            if k in m:
                flatten(f"eval/{name}/{k}", m[k], out)
    flatten("eval/agent_minus", ev.get("agent_minus", {}), out)
    flatten("eval/table", ev.get("table", {}), out)  # RL²'s classic table, with its column
    flatten("eval/checkpoint_iteration", ev["checkpoint_iteration"], out)
    flatten("eval/unit", ev["unit"], out)  # an enum counts as its value
    return _drop_excluded(out), run


def _config(family: dict[str, Any], algorithm: dict[str, Any], *, seed: int = 3,
            iterations: int = 2, evaluation: dict[str, Any] | None = None,
            **extra: Any) -> dict[str, Any]:
    return {"name": "pin", "seed": seed, "iterations": iterations, "checkpoint_every": 1,
            "family": family, "algorithm": algorithm,
            "evaluation": {"num_tasks": 3, "steps": 2, "episodes": 3,
                           "baselines": ["scratch", "oracle"], **(evaluation or {})},
            "logging": {"tensorboard": False, "progress": False}, **extra}


NAV = {"name": "navigation-2d", "params": {"horizon": 10}}
SMALL = {"meta_batch_size": 4, "episodes_per_task": 3,
         "policy": {"hidden": [8, 8], "activation": "tanh"}}


# -- the gradient family ----------------------------------------------------------------
@case
def maml_trpo_navigation_with_trained_baselines(tmp: Path) -> Flat:
    """MAML, second order, TRPO outer; the trained baselines pretrained, pretrained_adam
    and aggregation, and scratch and oracle, in the evaluation."""
    cfg = _config(NAV, {"name": "maml", **SMALL},
                  evaluation={"baselines": ["pretrained", "pretrained_adam", "aggregation",
                                            "scratch", "oracle"]})
    return experiment(tmp, cfg)[0]


@case
def maml_ppo_navigation_rescaled(tmp: Path) -> Flat:
    """MAML with a PPO outer loop (minibatches of tasks re-adapting), rescaled actions,
    set through CLI-style overrides."""
    cfg = _config({**NAV, "rescale_actions": True}, {"name": "maml", **SMALL, "outer": "ppo"},
                  seed=5)
    return experiment(tmp, cfg, overrides=["algorithm.ppo.epochs=2",
                                           "algorithm.ppo.minibatches=2",
                                           "algorithm.policy.activation=relu"])[0]


@case
def maml_adam_tabular_mdp_validation(tmp: Path) -> Flat:
    """MAML with the one-Adam-step outer update on tabular MDPs (categorical policy), best
    checkpoint chosen by validation."""
    family = {"name": "tabular-mdp",
              "params": {"num_states": 4, "num_actions": 3, "horizon": 5, "trial_length": 3}}
    cfg = _config(family, {"name": "maml", **SMALL, "outer": "adam", "adam_lr": 0.01},
                  iterations=3, selection={"by": "validation", "every": 1, "num_tasks": 2})
    return experiment(tmp, cfg)[0]


@case
def fomaml_bandit_two_inner_steps(tmp: Path) -> Flat:
    """First-order MAML, two inner steps, TRPO outer, on Bernoulli bandits."""
    family = {"name": "bandit-bernoulli", "params": {"num_arms": 3, "trial_length": 5}}
    algo = {"name": "maml", **SMALL, "episodes_per_task": 5,
            "inner": {"steps": 2, "lr": 0.1, "first_order": True}}
    return experiment(tmp, _config(family, algo, seed=7))[0]


@case
def maml_trpo_tracking_steps_batches(tmp: Path) -> Flat:
    """MAML (TRPO, the exact metric: fisher_fraction 1) on the tracking family,
    step-counted batches (rllab's batch_size)."""
    family = {"name": "tracking-2d", "params": {"horizon": 8}}
    algo = {"name": "maml", **SMALL, "batch_unit": "steps", "gae_lambda": 0.95,
            "trpo": {"fisher_fraction": 1.0, "max_kl": 0.02}}
    return experiment(tmp, _config(family, algo, seed=11,
                                   evaluation={"batch_unit": "steps"}))[0]


@case
def metasgd_trpo_pendulum(tmp: Path) -> Flat:
    """Meta-SGD (learned per-parameter step sizes), TRPO outer with its autograd metric, on
    the pendulum physics family."""
    family = {"name": "pendulum-physics", "params": {"horizon": 8}}
    algo = {"name": "metasgd", **SMALL, "alpha_init": 0.05}
    return experiment(tmp, _config(family, algo, seed=13))[0]


@case
def metasgd_ppo_navigation(tmp: Path) -> Flat:
    """Meta-SGD with a PPO outer loop (alpha joins theta in Adam), batches of finished
    episodes (rllab's vectorized sampler) in training and evaluation."""
    algo = {"name": "metasgd", **SMALL, "outer": "ppo", "batch_unit": "finished_steps",
            "ppo": {"epochs": 2, "minibatches": 2, "lr": 0.003}}
    cfg = _config({"name": "navigation-2d", "params": {"horizon": 10, "goal_tolerance": 0.1}},
                  algo, seed=17, evaluation={"batch_unit": "finished_steps"})
    return experiment(tmp, cfg)[0]


@case
def kronecker_trpo_navigation(tmp: Path) -> Flat:
    """Meta-Curvature: Meta-SGD with the learned Kronecker gradient transform, TRPO."""
    algo = {"name": "metasgd", **SMALL, "gradient_transform": "kronecker"}
    return experiment(tmp, _config(NAV, algo, seed=19))[0]


@case
def reptile_sgd_navigation(tmp: Path) -> Flat:
    """Reptile, VPG inner rule, SGD outer step."""
    algo = {"name": "reptile", **SMALL, "inner": {"steps": 2, "lr": 0.1},
            "outer_lr": 0.5}
    return experiment(tmp, _config(NAV, algo, seed=23, iterations=3))[0]


@case
def reptile_adam_ppo_rule_cartpole(tmp: Path) -> Flat:
    """Reptile with PPO-style inner epochs and Adam on the pseudo-gradient, on cart-pole."""
    family = {"name": "cartpole-physics", "params": {"horizon": 10}}
    algo = {"name": "reptile", **SMALL,
            "inner": {"steps": 2, "lr": 0.05, "rule": "ppo", "epochs": 2},
            "outer_optimizer": "adam", "outer_lr": 0.01}
    return experiment(tmp, _config(family, algo, seed=29))[0]


@case
def aggregation_softmax_navigation(tmp: Path) -> Flat:
    """Model aggregation weighted by the softmax of validation returns."""
    algo = {"name": "aggregation", **SMALL, "inner": {"steps": 2},
            "validation_tasks": 2, "validation_episodes": 2}
    return experiment(tmp, _config(NAV, algo, seed=31))[0]


@case
def maml_init_from_aggregation(tmp: Path) -> Flat:
    """An aggregation run whose averaged policy initialises a MAML run (``init_from``)."""
    source = tmp / "source"
    source.mkdir()
    algo = {"name": "aggregation", **SMALL, "weighting": "uniform", "inner": {"steps": 1}}
    _, source_run = experiment(source, _config(NAV, algo, seed=47, iterations=1))
    target = tmp / "target"
    target.mkdir()
    out, _ = experiment(target, _config(NAV, {"name": "maml", **SMALL,
                                              "init_from": str(source_run)}, seed=53))
    return out


@case
def aggregation_topk_adam_tracking(tmp: Path) -> Flat:
    """Model aggregation of the top-k members, Adam outer step, on tracking."""
    family = {"name": "tracking-2d", "params": {"horizon": 8}}
    algo = {"name": "aggregation", **SMALL, "inner": {"steps": 1}, "weighting": "topk",
            "top_k": 2, "validation_tasks": 2, "validation_episodes": 1,
            "outer_optimizer": "adam"}
    return experiment(tmp, _config(family, algo, seed=37))[0]


# -- RL² -----------------------------------------------------------------------------------
@case
def rl2_ppo_bandit(tmp: Path) -> Flat:
    """RL², plain PPO (shared trunk), on bandits; the evaluation's episode
    curve, the oracle, and the bandit table of its setting with RL²'s column and paired
    differences."""
    family = {"name": "bandit-bernoulli", "params": {"num_arms": 3, "trial_length": 5}}
    algo = {"name": "rl2", "meta_batch_size": 6, "trials_per_task": 2,
            "policy": {"hidden_size": 8},
            "ppo": {"epochs": 2, "minibatches": 2, "lr": 0.01}}
    cfg = _config(family, algo, seed=41, iterations=3,
                  evaluation={"num_tasks": 4, "steps": 4, "episodes": 2,
                              "baselines": ["oracle"]})
    return experiment(tmp, cfg)[0]


@case
def rl2_imitation_tabular_mdp(tmp: Path) -> Flat:
    """RL² on tabular MDPs: a DAgger stage imitating BEB, a critic warm-up iteration, then
    PPO; separate privileged critic, clock and transition inputs, mode actions at test; the
    MDP table of its setting with RL²'s column."""
    family = {"name": "tabular-mdp",
              "params": {"num_states": 4, "num_actions": 3, "horizon": 4, "trial_length": 3}}
    algo = {"name": "rl2", "meta_batch_size": 4, "gamma": 0.999, "reward_scale": 0.5,
            "test_actions": "mode", "critic_warmup_iterations": 1,
            "imitation": {"teacher": "beb", "params": {"beta": 1.0}, "iterations": 1,
                          "beta": 0.5, "epochs": 2, "minibatches": 2},
            "policy": {"hidden_size": 8, "value_trunk": "separate",
                       "critic_task_input": True, "clock_input": True,
                       "transition_input": True},
            "ppo": {"epochs": 2, "minibatches": 2, "lr": 0.003}}
    cfg = _config(family, algo, seed=43, iterations=3,
                  evaluation={"num_tasks": 3, "steps": 2, "episodes": 1, "baselines": [],
                              "checkpoint": "latest"})
    return experiment(tmp, cfg)[0]


# -- the classic agents' tables ------------------------------------------------------------
def _table(make: Callable[..., dict[str, Any]], **kwargs: Any) -> Flat:
    """The table (its means, CIs, tuned hyperparameters) and every method's per-instance
    scores."""
    scores: dict[tuple[int, ...], dict[str, torch.Tensor]] = {}
    out = flatten("table", make(**kwargs, scores=scores), {})
    for key, methods in scores.items():
        for name, s in methods.items():
            flatten(f"table/per_instance/{'_'.join(map(str, key))}/{name}", s.tolist(), out)
    return out


@case
def classic_bandit_table(tmp: Path) -> Flat:
    """The bandit table (every method but the excluded ones, tuned) on two settings."""
    return _table(bandit_table, settings=[(5, 3), (8, 2)], num_instances=6, seed=2,
                  methods=list(BANDIT_METHODS), tune_instances=4)


@case
def classic_mdp_table(tmp: Path) -> Flat:
    """The tabular-MDP table (every method but the excluded ones, tuned) on two settings."""
    return _table(mdp_table, settings=[2, 3], num_instances=4, seed=2,
                  methods=list(MDP_METHODS), tune_instances=3, num_states=4, num_actions=3,
                  horizon=4)


# -- comparison ----------------------------------------------------------------------------
RTOL, ATOL = 1e-5, 1e-7


def _same(a: Any, b: Any, exact: bool) -> bool:
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool) or not (isinstance(a, numbers)
                                                          and isinstance(b, numbers)):
        return type(a) is type(b) and a == b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if exact or (isinstance(a, int) and isinstance(b, int)):
        return type(a) is type(b) and a == b
    return abs(a - b) <= ATOL + RTOL * abs(b)


def _show(v: Any) -> str:
    return f"{v!r} ({v.hex()})" if isinstance(v, float) else repr(v)


_SECTIONS = ("result", "train", "eval", "table", "ckpt")


def _reading_order(key: str) -> tuple[int, str]:
    """Metrics first (the first iteration that moved), then evaluation, then weights."""
    section = key.split("/", 1)[0]
    return (_SECTIONS.index(section) if section in _SECTIONS else len(_SECTIONS), key)


def differences(name: str, pinned: Flat, got: Flat, exact: bool) -> list[str]:
    """One line per key that differs (missing on either side included), naming the case."""
    lines = []
    for key in sorted(set(pinned) | set(got), key=_reading_order):
        if key not in got:
            lines.append(f"{name}: {key}: pinned {_show(pinned[key])}, missing from the run")
        elif key not in pinned:
            lines.append(f"{name}: {key}: not pinned, the run gives {_show(got[key])}")
        elif not _same(got[key], pinned[key], exact):
            lines.append(f"{name}: {key}: pinned {_show(pinned[key])}, got {_show(got[key])}")
    return lines
