"""``catcher``: known answers worked by hand from PLE's rules (REFERENCES.md), batched equals
one at a time, determinism, the prior and its stages, bad parameters."""

from __future__ import annotations

import pytest
import torch

from adaptrl.rollouts.schedule import parameter_stream
from adaptrl.tasks import Catcher, Tasks, catcher, check_task_family, make
from adaptrl.tasks.catcher import FRUIT_SIZE, LEFT, PADDLE_TOP, RIGHT, STAY, WIDTH

PLE = {"fruit_speed": 2.0, "paddle_speed": 1.344, "paddle_width": 12.8}


def _tasks(n: int = 1, **params: float) -> Tasks:
    return Tasks({k: torch.full((n,), params.get(k, v)) for k, v in PLE.items()})


def _game(state: list[float], lives: int = 3, seed: int = 0, **params: float
          ) -> tuple[catcher.CatcherEnv, torch.Generator]:
    """One game set to ``state`` = (paddle x, paddle v, fruit x, fruit y, lives)."""
    env = Catcher(lives=lives).make_env(_tasks(**params), 1)
    generator = torch.Generator().manual_seed(seed)
    env.reset(generator)
    env.state[0, 0] = torch.tensor(state)
    return env, generator


def _act(a: int) -> torch.Tensor:
    return torch.tensor([[a]])


def _next_uniform(generator: torch.Generator) -> float:
    """The uniform the env's next draw from ``generator`` will be (without drawing it)."""
    copy = torch.Generator().manual_seed(0)
    copy.set_state(generator.get_state())
    return float(torch.rand((1, 1), generator=copy))


def test_a_catch_scores_one_and_respawns_the_fruit_at_the_top() -> None:
    just_above = PADDLE_TOP - FRUIT_SIZE / 2 - 1.0  # the bottom 1 px above the paddle
    env, generator = _game([32.0, 0.0, 35.0, just_above, 3.0])
    u = _next_uniform(generator)
    result = env.step(_act(STAY))
    assert float(result.reward) == 1.0
    assert not bool(result.terminated) and float(env.state[0, 0, 4]) == 3.0
    fruit_x, fruit_y = env.state[0, 0, 2:4].tolist()
    assert fruit_y == pytest.approx(FRUIT_SIZE / 2)  # top edge at y = 0
    assert fruit_x == pytest.approx(FRUIT_SIZE / 2 + (WIDTH - FRUIT_SIZE) * u, abs=1e-5)
    assert float(result.observation[0, 0, 3]) == pytest.approx(FRUIT_SIZE / 2 / 64)


def test_a_fruit_one_px_short_of_the_paddle_is_not_resolved_yet() -> None:
    env, _ = _game([32.0, 0.0, 32.0, PADDLE_TOP - FRUIT_SIZE / 2 - 3.0, 3.0])
    result = env.step(_act(STAY))
    assert float(result.reward) == 0.0
    assert float(env.state[0, 0, 3]) == pytest.approx(PADDLE_TOP - FRUIT_SIZE / 2 - 1.0)


@pytest.mark.parametrize(("offset", "caught"), [(8.31, True), (8.33, False), (-8.31, True)])
def test_the_catch_reach_is_half_the_paddle_plus_half_the_fruit(offset: float,
                                                                caught: bool) -> None:
    # (12.8 + 3.84) / 2 = 8.32 px between the centres at most
    env, _ = _game([32.0, 0.0, 32.0 + offset, PADDLE_TOP - FRUIT_SIZE / 2 - 1.0, 3.0])
    assert float(env.step(_act(STAY)).reward) == (1.0 if caught else -1.0)


def test_a_miss_costs_one_and_a_life() -> None:
    env, _ = _game([32.0, 0.0, 5.0, PADDLE_TOP - FRUIT_SIZE / 2 - 1.0, 3.0])
    result = env.step(_act(STAY))
    assert float(result.reward) == -1.0
    assert float(env.state[0, 0, 4]) == 2.0
    assert not bool(result.terminated) and not bool(result.truncated)
    assert float(env.state[0, 0, 3]) == pytest.approx(FRUIT_SIZE / 2)  # a new fruit


def test_the_last_miss_loses_the_game_and_the_slot_freezes() -> None:
    env, _ = _game([32.0, 0.0, 5.0, PADDLE_TOP - FRUIT_SIZE / 2 - 1.0, 3.0])
    rewards = []
    for _ in range(3):  # three misses: put the fruit beside the paddle each time
        env.state[0, 0, 2:4] = torch.tensor([5.0, PADDLE_TOP - FRUIT_SIZE / 2 - 1.0])
        result = env.step(_act(STAY))
        rewards.append(float(result.reward))
    assert rewards == [-1.0, -1.0, -6.0]  # -1, and -5 for the game over
    assert bool(result.terminated) and not bool(result.truncated)
    after = env.step(_act(RIGHT))
    assert float(after.reward) == 0.0 and bool(after.terminated)
    assert torch.equal(after.observation, result.observation)


def test_one_life_games_end_at_the_first_miss() -> None:
    env, _ = _game([32.0, 0.0, 60.0, PADDLE_TOP - FRUIT_SIZE / 2 - 1.0, 1.0], lives=1)
    result = env.step(_act(STAY))
    assert float(result.reward) == -6.0 and bool(result.terminated)


def test_paddle_velocity_and_friction_by_hand() -> None:
    # a = 0.021 * 64 = 1.344 per press; v' = 0.9 (v + a); x' = x + v'
    env, _ = _game([32.0, 0.0, 10.0, 10.0, 3.0], fruit_speed=0.5)
    want = [(RIGHT, 1.2096, 33.2096), (RIGHT, 2.29824, 35.50784),
            (RIGHT, 3.278016, 38.785856), (STAY, 2.9502144, 41.7360704),
            (LEFT, 1.44559296, 43.18166336), (LEFT, 0.0914336640, 43.2731)]
    for action, v, x in want:
        obs = env.step(_act(action)).observation[0, 0]
        assert float(obs[1]) * 9 * 1.344 == pytest.approx(v, abs=1e-4)
        assert float(obs[0]) * 64 == pytest.approx(x, abs=1e-4)


def test_the_paddle_stops_at_the_walls() -> None:
    env, _ = _game([32.0, 0.0, 10.0, 10.0, 3.0], fruit_speed=0.1)
    xs, vs = [], []
    for action in [RIGHT] * 12 + [LEFT] * 20:
        obs = env.step(_act(action)).observation[0, 0]
        xs.append(float(obs[0]) * 64)
        vs.append(float(obs[1]))
    assert max(xs) == pytest.approx(64 - 6.4) and min(xs) == pytest.approx(6.4)
    hit = xs.index(max(xs))
    assert vs[hit] == 0.0 and xs[hit - 1] < xs[hit]  # stopped dead on reaching the wall
    assert xs[11] == pytest.approx(64 - 6.4)  # held against it
    # any task, any actions: the paddle stays inside the screen
    family = Catcher(horizon=300)
    tasks = family.sample(8, "train", torch.Generator().manual_seed(1))
    env = family.make_env(tasks, 4)
    env.reset(torch.Generator().manual_seed(2))
    half = tasks.params["paddle_width"].reshape(-1, 1) / 2
    actions = torch.randint(3, (300, 8, 4), generator=torch.Generator().manual_seed(3))
    for a in actions:
        x = env.step(a).observation[..., 0] * 64
        assert bool((x >= half - 1e-4).all()) and bool((x <= 64 - half + 1e-4).all())


def test_the_fruit_falls_at_the_task_speed() -> None:
    family = Catcher()
    tasks = _tasks(2, fruit_speed=1.0)
    tasks.params["fruit_speed"][1] = 3.0
    env = family.make_env(tasks, 1)
    y0 = env.reset(torch.Generator().manual_seed(0))[:, 0, 3] * 64
    for _ in range(5):
        y = env.step(torch.full((2, 1), STAY)).observation[:, 0, 3] * 64
    assert torch.allclose(y - y0, torch.tensor([5.0, 15.0]), atol=1e-4)


def test_batched_equals_one_task_at_a_time(random_replay) -> None:
    family = Catcher(horizon=200)
    tasks = family.sample(4, "train", torch.Generator().manual_seed(0))
    actions = torch.randint(3, (220, 4, 3), generator=torch.Generator().manual_seed(1))
    random_replay(catcher).assert_batch_equals_alone(family, tasks, 3, actions)


def test_a_seeded_generator_fixes_the_game() -> None:
    family = Catcher(horizon=100)
    tasks = family.sample(3, "test", torch.Generator().manual_seed(0))
    actions = torch.randint(3, (100, 3, 5), generator=torch.Generator().manual_seed(1))

    def run(seed: int) -> torch.Tensor:
        env = family.make_env(tasks, 5)
        obs = [env.reset(torch.Generator().manual_seed(seed))]
        obs += [env.step(a).observation for a in actions]
        return torch.stack(obs)

    assert torch.equal(run(7), run(7))
    assert not torch.equal(run(7), run(8))  # the fruit spawns elsewhere


def test_prior_ranges_and_stages() -> None:
    family = make("catcher")
    assert family.ranges == {"fruit_speed": (1.0, 4.0), "paddle_speed": (0.672, 2.688),
                             "paddle_width": (6.4, 25.6)}
    tasks = family.sample(500, "train", torch.Generator().manual_seed(0))
    for key, (lo, hi) in family.ranges.items():
        values = tasks.params[key]
        assert float(values.min()) >= lo and float(values.max()) <= hi
    # MER's fruit falling faster in 5 stages
    stream = parameter_stream(family, "fruit_speed", 5, 10)
    first = stream.stages[0].sample(50, "train", torch.Generator().manual_seed(0))
    assert float(first.params["fruit_speed"].max()) < 1.6


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"paddle_width_range": (10.0, 70.0)}, "paddle_width_range"),
    ({"fruit_speed_range": (3.0, 1.0)}, "fruit_speed_range"),
    ({"paddle_speed_range": (0.0, 1.0)}, "paddle_speed_range"),
    ({"lives": 0}, "lives"),
    ({"horizon": 0}, "horizon"),
    ({"fruit_speed_range": (2, 2), "paddle_speed_range": (1, 1),
      "paddle_width_range": (10, 10)}, "at least one of"),
])
def test_bad_parameters_name_themselves(kwargs: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        Catcher(**kwargs)


def test_passes_the_checker_with_a_short_horizon() -> None:
    check_task_family(Catcher(horizon=40, lives=1), num_tasks=4, episodes=3, seed=5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    family = Catcher(horizon=150)
    tasks = family.sample(6, "train", torch.Generator().manual_seed(0))
    actions = torch.randint(3, (150, 6, 4), generator=torch.Generator().manual_seed(1))
    runs = []
    for device in ("cpu", "cuda"):
        env = family.make_env(tasks, 4, device)
        obs = [env.reset(torch.Generator().manual_seed(2)).cpu()]
        rewards = []
        for a in actions:
            result = env.step(a.to(device))
            obs.append(result.observation.cpu())
            rewards.append(result.reward.cpu())
        runs.append((torch.stack(obs), torch.stack(rewards)))
    assert torch.allclose(runs[0][0], runs[1][0], atol=1e-5)
    assert torch.equal(runs[0][1], runs[1][1])
