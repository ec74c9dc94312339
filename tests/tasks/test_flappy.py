"""``flappy-bird``: known answers worked by hand from PLE's rules (REFERENCES.md), batched
equals one at a time, determinism, the prior and its stages, bad parameters."""

from __future__ import annotations

import pytest
import torch

from adaptrl.rollouts.schedule import parameter_stream
from adaptrl.tasks import FlappyBird, Tasks, check_task_family, flappy, make
from adaptrl.tasks.flappy import BIRD_START_Y, FLAP, GROUND, NOOP

PLE = {"gap": 100.0, "gravity": 1.0, "flap_speed": 9.0}


def _tasks(n: int = 1, **params: float) -> Tasks:
    return Tasks({k: torch.full((n,), params.get(k, v)) for k, v in PLE.items()})


def _game(y: float, v: float, first: float, tops: tuple[float, float, float] = (150, 150, 150),
          **params: float) -> flappy.FlappyBirdEnv:
    """One game: the bird's top ``y`` and velocity ``v``, the first pipe's left edge at
    ``first`` (the others 144 and 288 px behind), gap tops ``tops``."""
    env = FlappyBird().make_env(_tasks(**params), 1)
    env.reset(torch.Generator().manual_seed(0))
    env.state[0, 0] = torch.tensor([y, v, first, *tops])
    return env


def _act(a: int) -> torch.Tensor:
    return torch.tensor([[a]])


def test_reset_observation() -> None:
    env = FlappyBird().make_env(_tasks(gap=120.0), 1)
    obs = env.reset(torch.Generator().manual_seed(0))[0, 0]
    tops = env.state[0, 0, 3:]
    want = [BIRD_START_Y / 512, 0.0, (288 - 57.6) / 288, tops[0] / 512, (tops[0] + 120) / 512,
            (288 + 144 - 57.6) / 288, tops[1] / 512, (tops[1] + 120) / 512]
    assert torch.allclose(obs, torch.tensor(want), atol=1e-6)
    assert BIRD_START_Y == pytest.approx((0.79 * 512 - 24) / 2)


def test_gravity_flap_and_the_fall_speed_limit_by_hand() -> None:
    env = _game(100.0, 0.0, 280.0, gravity=1.0, flap_speed=9.0)
    ys, vs = [], []
    for a in [NOOP, NOOP, NOOP, FLAP, NOOP]:
        obs = env.step(_act(a)).observation[0, 0]
        ys.append(float(obs[0]) * 512)
        vs.append(float(obs[1]) * 10)
    assert vs == pytest.approx([1.0, 2.0, 3.0, -9.0, -8.0])
    assert ys == pytest.approx([101.0, 103.0, 106.0, 97.0, 89.0])
    env = _game(0.0, 0.0, 280.0, gravity=1.5)
    for _ in range(8):
        v = float(env.step(_act(NOOP)).observation[0, 0, 1]) * 10
    assert v == 10.0  # 1.5, 3, ..., 10.5 -> at most 10


def test_a_pipe_passed_scores_one() -> None:
    # the pipe's centre (50 - 4 + 26 = 72) passes the bird's (57.6 + 17 = 74.6) this step
    env = _game(180.0, -1.0, 50.0)  # inside the gap [150, 250]: 180 .. 204
    result = env.step(_act(NOOP))
    assert float(result.reward) == 1.0 and not bool(result.terminated)
    assert float(env.step(_act(NOOP)).reward) == 0.0  # once per pipe
    env = _game(180.0, -1.0, 53.0)  # centre 79 -> 75: not yet past 74.6
    assert float(env.step(_act(NOOP)).reward) == 0.0


@pytest.mark.parametrize(("y", "what"), [(140.0, "upper pipe"), (230.0, "lower pipe")])
def test_a_crash_into_a_pipe_ends_the_game(y: float, what: str) -> None:
    # the pipe overlaps the bird (x 56..108 against 57.6..91.6); the gap is [150, 250]
    env = _game(y, -1.0, 60.0)
    result = env.step(_act(NOOP))
    assert float(result.reward) == -5.0 and bool(result.terminated), what
    after = env.step(_act(FLAP))
    assert float(after.reward) == 0.0 and torch.equal(after.observation, result.observation)


def test_the_same_height_is_safe_beside_the_pipe() -> None:
    env = _game(140.0, -1.0, 200.0)  # the pipe is still 108 px ahead
    assert float(env.step(_act(NOOP)).reward) == 0.0


def test_a_crash_into_the_ground() -> None:
    env = _game(GROUND - 24 - 2.5, 2.0, 280.0)  # 3 px down: half a px into the ground
    result = env.step(_act(NOOP))
    assert float(result.reward) == -5.0 and bool(result.terminated)
    assert float(result.observation[0, 0, 0]) * 512 == pytest.approx(GROUND - 24)  # on it
    env = _game(GROUND - 24 - 4.0, 2.0, 280.0)  # one px short
    assert not bool(env.step(_act(NOOP)).terminated)


def test_the_gap_decides_where_the_falling_bird_crashes() -> None:
    # the bird falls from rest at the gap's top (150) through the pipe: v_t = min(t, 10), so
    # y_t = 150 + t(t+1)/2 up to t = 10 (205), then 10 px a step; it hits the lower pipe
    # once y_t + 24 > 150 + gap. The pipe's centre passes the bird's at step 11.
    family = FlappyBird(horizon=30)
    tasks = _tasks(2)
    tasks.params["gap"][:] = torch.tensor([80.0, 120.0])
    env = family.make_env(tasks, 1)
    env.reset(torch.Generator().manual_seed(0))
    env.state[:, 0] = torch.tensor([150.0, 0.0, 90.0, 150.0, 150.0, 150.0])
    rewards, ended = [], []
    for _ in range(16):
        result = env.step(torch.full((2, 1), NOOP))
        rewards.append(result.reward[:, 0].tolist())
        ended.append(result.terminated[:, 0].tolist())
    crash_step = [[e[i] for e in ended].index(True) + 1 for i in range(2)]
    assert crash_step == [11, 15]  # gap 80: 65 > 56 at t = 11; gap 120: 105 > 96 at t = 15
    assert rewards[10] == [-5.0, 1.0]  # a crash step scores -5 only
    assert rewards[14] == [0.0, -5.0]
    assert sum(r[1] for r in rewards) == -4.0


def test_pipes_scroll_and_are_replaced_behind_the_last() -> None:
    env = FlappyBird().make_env(_tasks(), 1)
    g = torch.Generator().manual_seed(3)
    env.reset(g)
    env.state[0, 0, :2] = torch.tensor([150.0, 0.0])
    env.state[0, 0, 2] = -49.0  # right edge at 3, then at -1: off the screen
    tops = env.state[0, 0, 3:].clone()
    copy = torch.Generator()
    copy.set_state(g.get_state())
    u = float(torch.rand((1, 1, 1), generator=copy))
    env.step(_act(FLAP))
    first = float(env.state[0, 0, 2])
    assert first == pytest.approx(-53.0 + 144.0)
    new_tops = env.state[0, 0, 3:]
    assert torch.equal(new_tops[:2], tops[1:])
    assert float(new_tops[2]) == pytest.approx(25.0 + (0.79 * 512 * 0.6 - 75.0) * u, abs=1e-4)


def test_gap_tops_follow_ple() -> None:
    family = FlappyBird()
    tasks = family.sample(200, "train", torch.Generator().manual_seed(0))
    env = family.make_env(tasks, 5)
    env.reset(torch.Generator().manual_seed(1))
    gap = tasks.params["gap"].reshape(-1, 1, 1)
    tops = env.state[..., 3:]
    assert bool((tops >= gap / 4 - 1e-4).all())
    assert bool((tops <= 0.79 * 512 * 0.6 - gap / 2 + 1e-4).all())


def test_batched_equals_one_task_at_a_time(random_replay) -> None:
    family = FlappyBird(horizon=200)
    tasks = family.sample(4, "train", torch.Generator().manual_seed(0))
    # a simple controller's actions, so that some birds pass pipes and see new ones
    env = family.make_env(tasks, 3)
    obs, actions, passed = env.reset(torch.Generator().manual_seed(0)), [], 0.0
    for _ in range(200):
        y, v, bottom = obs[..., 0] * 512, obs[..., 1] * 10, obs[..., 4] * 512
        actions.append(((y + 24 + 2 * v + 3 > bottom - 3) & (v > -2)).long())
        result = env.step(actions[-1])
        obs, passed = result.observation, passed + float(result.reward.clamp(min=0).sum())
    assert passed >= 6  # pipes were passed and replaced
    random_replay(flappy).assert_batch_equals_alone(family, tasks, 3, torch.stack(actions))


def test_a_seeded_generator_fixes_the_game() -> None:
    family = FlappyBird(horizon=60)
    tasks = family.sample(3, "test", torch.Generator().manual_seed(0))

    def run(seed: int) -> torch.Tensor:
        env = family.make_env(tasks, 4)
        obs = [env.reset(torch.Generator().manual_seed(seed))]
        obs += [env.step(torch.zeros(3, 4, dtype=torch.long)).observation for _ in range(60)]
        return torch.stack(obs)

    assert torch.equal(run(7), run(7))
    assert not torch.equal(run(7), run(8))  # other gaps


def test_prior_ranges_and_stages() -> None:
    family = make("flappy-bird")
    assert family.ranges == {"gap": (75.0, 150.0), "gravity": (0.8, 1.2),
                             "flap_speed": (8.0, 10.0)}
    # MER's narrowing gap: 5 stages, widest first
    stream = parameter_stream(family, "gap", 5, 10, order="decreasing")
    first = stream.stages[0].sample(50, "train", torch.Generator().manual_seed(0))
    assert float(first.params["gap"].min()) >= 135.0
    pinned = FlappyBird(gravity_range=(1, 1), flap_speed_range=(9, 9))
    tasks = pinned.sample(20, "train", torch.Generator().manual_seed(0))
    assert bool((tasks.params["gravity"] == 1).all())


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"gap_range": (100.0, 400.0)}, "gap_range"),
    ({"gap_range": (0.0, 100.0)}, "gap_range"),
    ({"gravity_range": (1.2, 0.8)}, "gravity_range"),
    ({"flap_speed_range": (-1.0, 9.0)}, "flap_speed_range"),
    ({"horizon": 0}, "horizon"),
    ({"gap_range": (100, 100), "gravity_range": (1, 1), "flap_speed_range": (9, 9)},
     "at least one of"),
])
def test_bad_parameters_name_themselves(kwargs: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        FlappyBird(**kwargs)


def test_passes_the_checker_with_a_short_horizon() -> None:
    check_task_family(FlappyBird(horizon=40), num_tasks=4, episodes=3, seed=5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    family = FlappyBird(horizon=150)
    tasks = family.sample(6, "train", torch.Generator().manual_seed(0))
    actions = (torch.rand((150, 6, 4), generator=torch.Generator().manual_seed(1)) < 0.06)
    runs = []
    for device in ("cpu", "cuda"):
        env = family.make_env(tasks, 4, device)
        obs = [env.reset(torch.Generator().manual_seed(2)).cpu()]
        rewards = []
        for a in actions.long():
            result = env.step(a.to(device))
            obs.append(result.observation.cpu())
            rewards.append(result.reward.cpu())
        runs.append((torch.stack(obs), torch.stack(rewards)))
    assert torch.allclose(runs[0][0], runs[1][0], atol=1e-5)
    assert torch.equal(runs[0][1], runs[1][1])
