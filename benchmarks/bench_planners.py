"""Planner throughput: candidate-steps per second of random shooting, CEM and MPPI, batched.

A candidate-step is one step of one candidate action sequence through the dynamics and the
reward (``tasks x candidates x horizon x iterations`` of them per plan). Each planner plans
from ``--tasks`` pendulum observations with (a) a learned dynamics model (the MLP of
models/dynamics.py, hidden ``--hidden``, per-task parameters as GrBAL's adapted ones) and
(b) the simulator itself (``pendulum-physics``' true dynamics: the MPC oracle); cart-pole
(Discrete(2)) is timed with random shooting and CEM over categoricals.

    python benchmarks/bench_planners.py                       # CPU, 1 thread
    python benchmarks/bench_planners.py --device cuda --tasks 100 --candidates 1000
    python benchmarks/bench_planners.py --oracle-returns   # the budgets of the presets
    python benchmarks/bench_planners.py --cheetah [--oracle-returns]   # halfcheetah-crippled

``--oracle-returns`` instead scores the MPC oracle (each planner on the simulator, one
episode on each of 8 OOD test tasks of the CaDM families) at several budgets: how the
presets' planner settings were chosen (docs/model_based.md). ``--cheetah`` does either on
``halfcheetah-crippled`` instead (extra ``mujoco``; the oracle is MuJoCo stepped from the
observed state; its returns on 4 tasks of the held-out joint, episodes of ``--episode-steps``).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from adaptrl.models.dynamics import DynamicsModel
from adaptrl.models.functional import expand_params, named_params
from adaptrl.planning.mpc import ActionDomain, Dynamics, PlannerSettings
from adaptrl.tasks.cartpole import CADM_PARAMS as CARTPOLE_CADM
from adaptrl.tasks.cartpole import CartPolePhysics
from adaptrl.tasks.pendulum import CADM_PARAMS as PENDULUM_CADM
from adaptrl.tasks.pendulum import PendulumPhysics


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_plans(settings: PlannerSettings, family: Any,
               dynamics_kind: str, tasks: int, hidden: int, repeats: int,
               device: torch.device) -> tuple[float, float]:
    """(candidate-steps per second, seconds per plan): the best of ``repeats`` plans."""
    gen = torch.Generator().manual_seed(0)
    batch = family.sample(tasks, "train", gen)
    obs = family.make_env(batch, 1, device).reset(gen)[:, 0]
    domain = ActionDomain.of(family.action_space).to(device)
    if dynamics_kind == "model":
        obs_dim = obs.shape[-1]
        model = DynamicsModel(obs_dim, action_dim=0 if domain.discrete else domain.shape[0],
                              choices=domain.choices, hidden=(hidden, hidden)).to(device)
        params = expand_params(named_params(model), tasks)

        def predict(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
            return model.predict(s, a, params)
        dynamics: Dynamics = predict
    else:
        dynamics = family.true_dynamics(batch, device)
    rounds = 1 if settings.name == "random_shooting" else settings.iterations
    work = tasks * settings.candidates * settings.horizon * rounds
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats + 1):  # the first is a warm-up
            _sync(device)
            start = time.perf_counter()
            settings.plan(obs, dynamics, family.reward, domain, gen, family.terminal)
            _sync(device)
            best = min(best, time.perf_counter() - start)
    return work / best, best


ORACLE_BUDGETS: dict[str, list[dict[str, Any]]] = {
    "pendulum": [{"name": "cem", "horizon": 15, "candidates": 100, "iterations": 3},
                 {"name": "cem", "horizon": 30, "candidates": 200, "iterations": 3},
                 {"name": "random_shooting", "horizon": 15, "candidates": 500},
                 {"name": "mppi", "horizon": 15, "candidates": 100, "iterations": 2},
                 {"name": "mppi", "horizon": 20, "candidates": 100, "iterations": 2}],
    "cartpole": [{"name": "cem", "horizon": 30, "candidates": 200, "iterations": 3},
                 {"name": "random_shooting", "horizon": 15, "candidates": 500},
                 {"name": "random_shooting", "horizon": 20, "candidates": 200},
                 {"name": "random_shooting", "horizon": 30, "candidates": 150}],
    "halfcheetah": [{"name": "random_shooting", "horizon": 10, "candidates": 500},
                    {"name": "random_shooting", "horizon": 10, "candidates": 1000},
                    {"name": "random_shooting", "horizon": 20, "candidates": 500},
                    {"name": "cem", "horizon": 10, "candidates": 200, "iterations": 3},
                    {"name": "mppi", "horizon": 10, "candidates": 200, "iterations": 2},
                    {"name": "mppi", "horizon": 15, "candidates": 200, "iterations": 2}]}


def oracle_returns(families: list[tuple[str, Any]] | None = None, count: int = 8) -> None:
    """The MPC oracle's mean return over ``count`` test tasks (the CaDM families' OOD ones by
    default) per planner budget, and random actions'."""
    from adaptrl.algorithms.grbal import GrBAL
    from adaptrl.algorithms.grbal_config import GrBALConfig
    from adaptrl.evaluation.protocol import transitions_curve
    from adaptrl.planning.controller import RandomActor
    from adaptrl.rollouts.trial_sampler import play_trials

    cpu = torch.device("cpu")
    for name, family in families or (("pendulum", PendulumPhysics(**PENDULUM_CADM)),
                                     ("cartpole", CartPolePhysics(**CARTPOLE_CADM))):
        tasks = family.sample(count, "test", torch.Generator().manual_seed(1))
        for planner in ORACLE_BUDGETS[name]:
            learner = GrBAL(family, GrBALConfig(oracle=True, planner=planner),
                            torch.Generator().manual_seed(0), cpu)
            start = time.process_time()
            ret = transitions_curve(family, learner.agent(), tasks, 0, 1,
                                    torch.Generator().manual_seed(2), cpu)[0]
            print(f"{name:<9} oracle {planner}: mean {ret.mean():.1f}, worst {ret.min():.1f} "
                  f"({time.process_time() - start:.1f} s cpu)", flush=True)
        played = play_trials(family.make_env(tasks, 1),
                             RandomActor(ActionDomain.of(family.action_space)), 1,
                             torch.Generator().manual_seed(2))
        print(f"{name:<9} random actions: mean "
              f"{float((played.rewards * played.masks).sum(0).mean()):.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--horizon", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--oracle-returns", action="store_true")
    parser.add_argument("--cheetah", action="store_true",
                        help="halfcheetah-crippled instead of pendulum / cart-pole")
    parser.add_argument("--episode-steps", type=int, default=100,
                        help="--cheetah --oracle-returns: the episode length")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cheetah = None
    if args.cheetah:
        from adaptrl.tasks.adapters.halfcheetah_crippled import half_cheetah_crippled
        cheetah = half_cheetah_crippled(horizon=args.episode_steps)
    if args.oracle_returns:
        oracle_returns(None if cheetah is None else [("halfcheetah", cheetah)],
                       8 if cheetah is None else 4)
        return
    device = torch.device(args.device)
    pendulum = PendulumPhysics(**PENDULUM_CADM)
    cartpole = CartPolePhysics(**CARTPOLE_CADM)
    print(f"device {device}, threads {args.threads}, tasks {args.tasks}, candidates "
          f"{args.candidates}, horizon {args.horizon}, iterations {args.iterations}, model "
          f"hidden {args.hidden}x{args.hidden}")
    print(f"{'family':<10} {'planner':<16} {'dynamics':<10} {'cand-steps/s':>14} "
          f"{'s/plan':>8}")
    cases: list[tuple[Any, str]] = [
        (pendulum, "random_shooting"), (pendulum, "cem"), (pendulum, "mppi"),
        (cartpole, "random_shooting"), (cartpole, "cem")]
    if cheetah is not None:
        cases = [(cheetah, "random_shooting"), (cheetah, "cem"), (cheetah, "mppi")]
    for family, name in cases:
        settings = PlannerSettings(name=name, horizon=args.horizon,
                                   candidates=args.candidates, iterations=args.iterations)
        for kind in ("model", "simulator"):
            rate, seconds = time_plans(settings, family, kind, args.tasks, args.hidden,
                                       args.repeats, device)
            print(f"{family.name.split('-')[0]:<10} {name:<16} {kind:<10} {rate:>14,.0f} "
                  f"{seconds:>8.3f}", flush=True)


if __name__ == "__main__":
    main()
