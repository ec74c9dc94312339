"""Config validation: every user mistake is a readable error naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adaptrl.experiment.config import ConfigError, apply_overrides, load_config, validate_config


def test_valid_config_fills_defaults(tiny_config: dict[str, Any]) -> None:
    exp, algo = validate_config(tiny_config)
    assert exp.iterations == 2
    assert algo.inner.lr == 0.1  # type: ignore[attr-defined]
    assert exp.algorithm["trpo"]["max_kl"] == 0.01  # resolved config holds every default


def test_shipped_configs_validate() -> None:
    for path in sorted(Path("configs").glob("*.yaml")):
        load_config(path)


@pytest.mark.parametrize("mutate, expected", [
    (lambda c: c.update(iterashuns=3), ["iterashuns: unknown key", "allowed keys", "iterations"]),
    (lambda c: c["algorithm"].update(meta_batch=3),
     ["algorithm.meta_batch: unknown key", "meta_batch_size"]),
    (lambda c: c["algorithm"]["inner"].update(lr=-1.0) if "inner" in c["algorithm"]
     else c["algorithm"].update(inner={"lr": -1.0}), ["algorithm.inner.lr", "greater than 0"]),
    (lambda c: c.update(iterations="many"), ["iterations", "valid integer"]),
    (lambda c: c["algorithm"]["policy"].update(activation="sigmoid"),
     ["algorithm.policy.activation", "'relu'", "'tanh'"]),
    (lambda c: c["family"].update(name="nowhere"), ["family.name", "unknown task family",
                                                    "navigation-2d"]),
    (lambda c: c["algorithm"].update(name="magic"), ["algorithm.name", "unknown algorithm",
                                                     "maml"]),
    (lambda c: c["evaluation"].update(step_sizes=[]), ["evaluation.step_sizes"]),
    (lambda c: c["evaluation"].update(num_tasks=1), ["evaluation.num_tasks",
                                                     "greater than or equal to 2"]),
    (lambda c: c.pop("family"), ["family: required field is missing"]),
    (lambda c: c["algorithm"].update(batch_unit="samples"),
     ["algorithm.batch_unit", "'episodes'", "'steps'"]),
    (lambda c: c["evaluation"].update(batch_unit="trajectories"),
     ["evaluation.batch_unit", "'episodes'", "'steps'"]),
])
def test_bad_configs_name_the_field(tiny_config: dict[str, Any], mutate: Any,
                                    expected: list[str]) -> None:
    mutate(tiny_config)
    with pytest.raises(ConfigError) as err:
        validate_config(tiny_config)
    for text in expected:
        assert text in str(err.value), str(err.value)


def test_several_problems_reported_together(tiny_config: dict[str, Any]) -> None:
    tiny_config["iterations"] = 0
    tiny_config["algorithm"]["gamma"] = 2.0
    with pytest.raises(ConfigError) as err:
        validate_config(tiny_config)
    assert "iterations" in str(err.value) and "algorithm.gamma" in str(err.value)


def test_overrides_parse_yaml_values(tiny_config: dict[str, Any]) -> None:
    data = apply_overrides(tiny_config, ["algorithm.inner.lr=0.05", "seed=7",
                                         "algorithm.policy.hidden=[4, 4]",
                                         "algorithm.inner.first_order=true"])
    exp, algo = validate_config(data)
    assert algo.inner.lr == 0.05 and algo.inner.first_order is True  # type: ignore[attr-defined]
    assert exp.seed == 7 and algo.policy.hidden == [4, 4]  # type: ignore[attr-defined]


@pytest.mark.parametrize("bad", ["noequals", "=3", "a..b=1"])
def test_malformed_override(tiny_config: dict[str, Any], bad: str) -> None:
    with pytest.raises(ConfigError):
        apply_overrides(tiny_config, [bad])


def test_yaml_errors_are_config_errors(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)
    p.write_text("!!python/object:os.system 'echo hi'\n")
    with pytest.raises(ConfigError):  # safe_load refuses arbitrary objects
        load_config(p)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_device_must_exist_on_this_machine(tiny_config: dict[str, Any],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    tiny_config["device"] = "cuda"
    with pytest.raises(ConfigError, match="device: .*'cuda' is not available on this machine; "
                                          "allowed here: .*'cpu'"):
        validate_config(tiny_config)
    tiny_config["device"] = "tpu0"
    with pytest.raises(ConfigError, match="invalid device 'tpu0'"):
        validate_config(tiny_config)
    tiny_config["device"] = "cpu"
    assert validate_config(tiny_config)[0].device == "cpu"
