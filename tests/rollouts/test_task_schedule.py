"""Task schedules (adaptrl.rollouts.schedule): the i.i.d. schedule is today's draws; a stage
stream visits its stages at the right iterations, each stage's tasks lie in its interval,
the intervals partition the range, and config mistakes name their field.

(Named test_task_schedule.py: tests/optim/test_schedule.py already holds the basename, and
without package __init__ files pytest refuses two test modules of one name.)
"""

from __future__ import annotations

import itertools

import pytest
import torch
from pydantic import ValidationError

from adaptrl.errors import UserError
from adaptrl.rollouts.schedule import (
    IIDSchedule,
    ParameterRange,
    ScheduleConfig,
    StageStream,
    TaskSchedule,
    build_schedule,
    parameter_stream,
    parameter_values,
    stage_bounds,
)
from adaptrl.tasks import make
from adaptrl.tasks.splits import split_of


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def intervals(stream: TaskSchedule) -> list[ParameterRange]:
    """The stages of a parameter stream, typed as the intervals they are."""
    assert isinstance(stream, StageStream)
    assert all(isinstance(s, ParameterRange) for s in stream.stages)
    return stream.stages  # type: ignore[return-value]


@pytest.mark.parametrize("name", ["navigation-2d", "cartpole-physics", "bandit-bernoulli"])
def test_iid_schedule_draws_exactly_what_family_sample_draws(name: str) -> None:
    family = make(name)
    schedule = IIDSchedule(family)
    assert isinstance(schedule, TaskSchedule)
    g_schedule, g_family = gen(7), gen(7)
    for it in range(3):
        got = schedule.tasks(it, 5, g_schedule)
        want = family.sample(5, "train", g_family)
        assert got.params.keys() == want.params.keys()
        for key in want.params:
            assert torch.equal(got.params[key], want.params[key])
    assert torch.equal(g_schedule.get_state(), g_family.get_state())  # the same stream
    assert [schedule.stage(i) for i in (0, 10**6)] == [0, 0]
    assert schedule.completed_stage(5) is None


def test_stage_boundaries_and_the_last_stage_continuing() -> None:
    family = make("pendulum-physics")
    stream = StageStream([family, family, family], [2, 3, 1])
    assert (stream.starts, stream.ends, stream.total_iterations) == ((0, 2, 5), (2, 5, 6), 6)
    stages = {it: stream.stage(it) for it in (0, 1, 2, 4, 5, 6, 7, 100)}
    assert stages == {0: 0, 1: 0, 2: 1, 4: 1, 5: 2, 6: 2, 7: 2, 100: 2}
    assert [stream.completed_stage(d) for d in range(8)] == [None, None, 0, None, None, 1, 2,
                                                            None]
    with pytest.raises(ValueError, match="iteration must be >= 0"):
        stream.stage(-1)


def test_gravity_stages_partition_the_range_and_hold_their_tasks() -> None:
    family = make("cartpole-physics")
    stream = parameter_stream(family, "gravity", num_stages=5, iterations_per_stage=4)
    bounds = [(s.low, s.high) for s in intervals(stream)]
    assert bounds[0][0] == 4.9 and bounds[-1][1] == 19.6
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))  # no gap, no overlap
    assert [s.closed for s in intervals(stream)] == [False] * 4 + [True]
    assert stream.describe()[1] == {"index": 1, "iterations": [4, 8], "parameter": "gravity",
                                    "low": bounds[1][0], "high": bounds[1][1], "closed": False}
    g = gen(1)
    for k, stage in enumerate(intervals(stream)):
        tasks = stream.tasks(stream.starts[k], 40, g)
        assert len(tasks) == 40
        gravity = parameter_values(tasks, "gravity")
        assert bool(((gravity >= stage.low) & (gravity < stage.high)).all())
        assert set(split_of(tasks)) == {"train"}
        assert set(split_of(stream.evaluation_tasks(k, 10, g))) == {"test"}
    # every prior task lies in exactly one stage: the stages partition the family
    prior = family.sample(400, "train", gen(2))
    hits = torch.stack([s.contains(prior) for s in intervals(stream)]).sum(0)
    assert bool((hits == 1).all())
    # the other parameters keep their prior range within a stage
    cart_mass = parameter_values(stream.tasks(0, 200, g), "cart_mass")
    assert cart_mass.min() < 0.7 and cart_mass.max() > 1.8


def test_decreasing_order_and_a_vector_component_with_an_explicit_range() -> None:
    pendulum = parameter_stream(make("pendulum-physics"), "length", 4, 1, order="decreasing")
    stages = intervals(pendulum)
    assert [(s.low, s.high) for s in stages] == stage_bounds(0.5, 2.0, 4)[::-1]
    assert stages[0].closed and stages[0].high == 2.0
    navigation = parameter_stream(make("navigation-2d"), "goal[0]", 2, 1, low=-0.5, high=0.5)
    g = gen(3)
    left = parameter_values(navigation.tasks(0, 30, g), "goal[0]")
    right = parameter_values(navigation.tasks(1, 30, g), "goal[0]")
    assert bool((left < 0).all()) and bool((right >= 0).all())
    bandit = parameter_stream(make("bandit-bernoulli"), "p[2]", 3, 1, low=0.0, high=1.0)
    assert parameter_values(bandit.tasks(2, 20, g), "p[2]").min() >= 2 / 3


def test_a_stream_is_determined_by_the_seed() -> None:
    stream = parameter_stream(make("pendulum-physics"), "mass", 3, 2)
    draws = [[stream.tasks(it, 6, g).features() for it in range(6)] for g in (gen(5), gen(5))]
    assert all(torch.equal(a, b) for a, b in zip(*draws, strict=True))
    other = [stream.tasks(it, 6, gen(6)).features() for it in range(6)]
    assert not torch.equal(draws[0][0], other[0])


def test_a_stage_the_prior_never_reaches_is_refused() -> None:
    stage = ParameterRange(make("navigation-2d"), "goal[1]", 0.6, 0.7)
    with pytest.raises(ValueError, match="does the family's prior reach it"):
        stage.sample(1, "train", gen())


def test_schedule_config_errors_name_the_field() -> None:
    cases = [({"kind": "stages", "num_stages": 5, "iterations_per_stage": 3}, "parameter"),
             ({"kind": "stages", "parameter": "gravity", "num_stages": 3,
               "iterations_per_stage": [1, 2]}, "iterations_per_stage: 2 counts for 3"),
             ({"kind": "iid", "parameter": "gravity"}, "parameter: only used with kind"),
             ({"kind": "stages", "parameter": "gravity", "num_stages": 2,
               "iterations_per_stage": 1, "low": 3.0}, "low / high: give both"),
             ({"kind": "stages", "parameter": "gravity", "num_stages": 2,
               "iterations_per_stage": [1, 0]}, "iterations_per_stage: every count")]
    for data, message in cases:
        with pytest.raises(ValidationError, match=message):
            ScheduleConfig.model_validate(data)
    for data, field in [({"num_stages": 0}, "num_stages"), ({"order": "up"}, "order"),
                        ({"kid": "iid"}, "kid")]:
        with pytest.raises(ValidationError) as err:
            ScheduleConfig.model_validate(data)
        assert err.value.errors()[0]["loc"] == (field,)


def test_build_schedule_refuses_what_the_family_lacks() -> None:
    def stages(**kw: object) -> ScheduleConfig:
        return ScheduleConfig(kind="stages", num_stages=5, iterations_per_stage=2, **kw)

    cartpole = make("cartpole-physics")
    with pytest.raises(UserError, match=r"schedule.parameter: cartpole-physics has no scalar "
                                        r"task parameter 'mass'; allowed: \['cart_mass'"):
        build_schedule(stages(parameter="mass"), cartpole)
    with pytest.raises(UserError, match=r"schedule.low / high: tracking-2d declares no "
                                        r"range for"):
        build_schedule(stages(parameter="target_speed[0]"), make("tracking-2d"))
    navigation = build_schedule(stages(parameter="goal[0]"), make("navigation-2d"))
    assert isinstance(navigation, StageStream)  # its declared goal range, cut in five
    with pytest.raises(UserError, match=r"schedule.low / high: \[1.0, 30.0\] leaves"):
        build_schedule(stages(parameter="gravity", low=1.0, high=30.0), cartpole)
    stream = build_schedule(stages(parameter="gravity", order="decreasing"), cartpole)
    assert isinstance(stream, StageStream) and stream.total_iterations == 10
    assert intervals(stream)[0].high == 19.6
    with pytest.raises(UserError, match=r"schedule.low / high: \[0.6, 0.9\] leaves "
                                        r"navigation-2d's range for 'goal\[1\]'"):
        build_schedule(stages(parameter="goal[1]", low=0.6, high=0.9), make("navigation-2d"))
    with pytest.raises(UserError, match=r"schedule.low / high: stage 0: target_speed\[0\] in "
                                        r"\[50.0, 52.0\]: only 0 of 200000 train"):
        build_schedule(stages(parameter="target_speed[0]", low=50.0, high=60.0),
                       make("tracking-2d"))
    assert stages(parameter="gravity").total_iterations() == 10
    assert isinstance(build_schedule(ScheduleConfig(), cartpole), IIDSchedule)
