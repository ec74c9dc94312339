"""The classic agents' registry: every entry builds an agent, describes itself and is listed."""

from __future__ import annotations

from typer.testing import CliRunner

from adaptrl.agents.classic.methods import BANDIT_METHODS, MDP_METHODS, Method
from adaptrl.cli.main import app


def test_every_method_builds_with_each_grid_point_and_has_a_one_sentence_summary() -> None:
    for methods in (BANDIT_METHODS, MDP_METHODS):
        for name, method in methods.items():
            for point in method.grid or ({},):
                assert method.make(**point) is not None, (name, point)
            summary = method.summary()
            assert summary.endswith(".") and "``" not in summary and ":class:" not in summary
            assert summary.count(". ") == 0 or "Fig. " in summary or "Alg. " in summary, summary


def test_summary_cuts_at_the_first_sentence_not_at_an_abbreviation() -> None:
    class Agent:
        """Does a thing (Someone 2020, Alg. 2): with ``x``. More detail follows.

        And a second paragraph."""

    assert Method(Agent).summary() == "Does a thing (Someone 2020, Alg. 2): with x."
    assert Method(Agent, ({"beta": 1.0}, {"beta": 2.0, "c": 1})).tuned() == ["beta", "c"]


def test_adaptrl_list_shows_the_hand_designed_agents_beside_the_meta_learners() -> None:
    out = CliRunner().invoke(app, ["list"], env={"COLUMNS": "200"}).output
    assert "algorithms (meta-learners)" in out and "hand-designed agents" in out
    for name in ("gittins", "thompson_most_probable", "ucrl2", "beb_per_step"):
        assert f" {name} " in out
