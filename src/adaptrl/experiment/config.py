"""The experiment config: schema, validation with readable errors, overrides, YAML I/O.

A config is YAML (read with ``yaml.safe_load`` only) validated by pydantic. The
``algorithm`` section is validated by the schema its ``name`` registers, so every
meta-learner brings its own fields while sharing one file format. A user mistake
(unknown key, wrong type, out-of-range value, unknown name) raises :class:`ConfigError`
whose message names each offending field and what is allowed: no traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from adaptrl.algorithms.registry import algorithm_spec, algorithms
from adaptrl.errors import UserError
from adaptrl.experiment.iterate_averaging import AveragingConfig
from adaptrl.experiment.selection import SelectionConfig
from adaptrl.rollouts.sampler import BatchUnit
from adaptrl.tasks.registry import registered


CheckpointName = Literal["best", "latest", "average"]
CHECKPOINT_NAMES: tuple[str, ...] = get_args(CheckpointName)


class ConfigError(UserError):
    """A config that cannot be used; ``str(err)`` lists every problem, one per line."""


class FamilyConfig(BaseModel):
    """Which task family to train and test on, and its parameters."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="a registered task family (see `adaptrl list`)")
    params: dict[str, Any] = Field(default_factory=dict, description="family parameters")
    rescale_actions: bool = Field(
        False, description="the agent acts in [-1, 1]^d, mapped linearly onto the family's "
                           "action box (rllab's normalize; the MAML reference code's setting)")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in registered():
            raise ValueError(f"unknown task family {v!r}; allowed: {sorted(registered())}")
        return v


class EvaluationConfig(BaseModel):
    """The meta-test protocol: held-out tasks, K adaptation units, scores with 95% CIs."""

    model_config = ConfigDict(extra="forbid")
    num_tasks: int = Field(40, ge=2, description="held-out test tasks")
    steps: int = Field(3, ge=0, description="adaptation units K (gradient steps or episodes)")
    episodes: int = Field(40, ge=1, description="episodes per task per adaptation step")
    batch_unit: BatchUnit = Field(
        "episodes", description="episodes: exactly `episodes` per step; steps: whole "
        "episodes up to episodes x horizon steps per step; finished_steps: `episodes` "
        "workers run episodes back to back until the finished ones hold episodes x horizon "
        "steps, the running ones dropped (the MAML reference code's test sampler)")
    step_sizes: list[float] = Field(
        default_factory=lambda: [0.1, 0.05],
        description="inner step size per adaptation step; the last one repeats")
    seed: int = Field(12345, description="evaluation seed (test tasks and sampling)")
    tasks_file: str | None = Field(
        None, description="a JSON file of fixed tasks scored instead of sampling the test "
        "split (a paper's own test tasks, e.g. configs/tasks/; adaptrl.tasks.files), "
        "relative to the working directory; num_tasks takes the first that many")
    baselines: list[Literal["pretrained", "pretrained_adam", "scratch", "oracle",
                            "aggregation"]] = Field(
        default_factory=lambda: ["pretrained", "scratch", "oracle"],
        description="baselines evaluated beside the agent")
    checkpoint: CheckpointName = Field(
        "best", description="which checkpoint to evaluate (paper: the best); average: the "
        "latest checkpoint's averaged policy (needs the `averaging` section)")

    @field_validator("step_sizes")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if not v or any(s <= 0 for s in v):
            raise ValueError(f"step_sizes must be a non-empty list of values > 0, got {v}")
        return v


class BaselinesConfig(BaseModel):
    """How the trained baselines are trained: *pretrained* (multi-task TRPO, no
    meta-learning), *pretrained_adam* (multi-task VPG with one Adam step per iteration: the
    MAML reference code's pretrained baseline, opt-in) and *aggregation* (averaged per-task
    policies, opt-in)."""

    model_config = ConfigDict(extra="forbid")
    pretrained_iterations: int | None = Field(
        None, ge=1, description="training iterations (default: the same as the meta-learner)")
    pretrained_adam_iterations: int | None = Field(
        None, ge=1, description="training iterations (default: the same as the meta-learner)")
    aggregation_iterations: int | None = Field(
        None, ge=1, description="training iterations (default: the same as the meta-learner)")


class LoggingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tensorboard: bool = Field(True, description="write TensorBoard scalars when installed")
    progress: bool = Field(True, description="show a progress bar")


class ExperimentConfig(BaseModel):
    """A whole experiment: what to train, on what, for how long, and how to score it."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field("run", description="run name (default run directory: runs/<name>)")
    seed: int = Field(0, description="seed of the run's torch.Generator")
    device: str = Field("cpu", description="torch device, e.g. cpu or cuda")
    iterations: int = Field(500, ge=1, description="meta-iterations")
    checkpoint_every: int = Field(10, ge=1, description="iterations between checkpoints")
    family: FamilyConfig
    algorithm: dict[str, Any] = Field(description="the meta-learner and its settings")
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    baselines: BaselinesConfig = Field(default_factory=BaselinesConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    averaging: AveragingConfig | None = Field(
        None, description="keep an average of the policy's weights over iterations "
        "(SWA); null: none")
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @model_validator(mode="after")
    def _average_is_kept(self) -> ExperimentConfig:
        if self.evaluation.checkpoint == "average" and self.averaging is None:
            raise ValueError("evaluation.checkpoint: average needs an `averaging` section "
                             "(averaging.start, averaging.every); allowed without it: best, "
                             "latest")
        if self.averaging is not None and self.averaging.start > self.iterations:
            raise ValueError(f"averaging.start must be <= iterations ({self.iterations}), "
                             f"got {self.averaging.start}")
        return self

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        import torch

        try:
            device = torch.device(v)
        except RuntimeError as err:
            raise ValueError(f"invalid device {v!r}; allowed: cpu, cuda, cuda:N, mps") from err
        available = {"cpu": True, "cuda": torch.cuda.is_available(),
                     "mps": torch.backends.mps.is_available()}
        if not available.get(device.type, False):
            usable = [k for k, ok in available.items() if ok]
            raise ValueError(f"device {v!r} is not available on this machine; allowed here: "
                             f"{usable}")
        if device.type == "cuda" and device.index is not None and \
                device.index >= torch.cuda.device_count():
            raise ValueError(f"device {v!r}: this machine has {torch.cuda.device_count()} "
                             "CUDA device(s)")
        return v

    def algorithm_config(self) -> BaseModel:
        """The validated algorithm section (its schema comes from the algorithm registry)."""
        return algorithm_spec(self.algorithm["name"]).config_cls.model_validate(self.algorithm)


# -- error formatting -------------------------------------------------------------------
def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The field names allowed at ``loc`` inside ``model`` (for unknown-key errors)."""
    current: Any = model
    for part in loc[:-1]:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = _model_in(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return None


def _model_in(annotation: Any) -> Any:
    """The model inside an optional section's annotation (``AveragingConfig | None``)."""
    for arg in get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return annotation


def _format(err: ValidationError, model: type[BaseModel], prefix: str = "") -> list[str]:
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        path = (prefix + ".".join(str(p) for p in loc)).rstrip(".")
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc)
            hint = f"; allowed keys: {allowed}" if allowed else ""
            lines.append(f"{path}: unknown key{hint}")
        elif e["type"] == "missing":
            lines.append(f"{path}: required field is missing")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            got = e.get("input")
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            # a check across fields (a model validator) names its fields in its message
            lines.append(f"{path}: {msg}{shown}" if path else f"{msg}{shown}")
    return lines


def validate_config(data: Any) -> tuple[ExperimentConfig, BaseModel]:
    """Validate a raw config dict; returns the experiment and the algorithm config."""
    if not isinstance(data, dict):
        raise ConfigError(f"config must be a mapping of keys to values, got {type(data).__name__}")
    problems: list[str] = []
    exp: ExperimentConfig | None = None
    try:
        exp = ExperimentConfig.model_validate(data)
    except ValidationError as err:
        problems += _format(err, ExperimentConfig)
    algo = data.get("algorithm")
    algo_cfg: BaseModel | None = None
    if isinstance(algo, dict):
        name = algo.get("name")
        if name not in algorithms():
            problems.append(f"algorithm.name: unknown algorithm {name!r}; "
                            f"allowed: {sorted(algorithms())}")
        else:
            cls = algorithm_spec(name).config_cls
            try:
                algo_cfg = cls.model_validate(algo)
            except ValidationError as err:
                problems += _format(err, cls, prefix="algorithm.")
    elif algo is not None:
        problems.append("algorithm: must be a mapping with at least a `name`")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    assert exp is not None and algo_cfg is not None
    exp = exp.model_copy(update={"algorithm": algo_cfg.model_dump()})
    return exp, algo_cfg


# -- files and overrides --------------------------------------------------------------
def read_yaml(path: Path) -> Any:
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror}") from err
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``KEY=VALUE`` overrides with dotted keys; values are parsed as YAML scalars/lists."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE with a dotted KEY, got {item!r}")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"--set: malformed key {key!r}")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML") from err
        node = data
        for p in parts[:-1]:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {p!r} is not a section")
            node = child
        node[parts[-1]] = value
    return data


def load_config(path: Path, overrides: list[str] | None = None
                ) -> tuple[ExperimentConfig, BaseModel]:
    """Read, override and validate a config file."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return validate_config(apply_overrides(data, overrides or []))


def dump_config(config: ExperimentConfig, path: Path) -> None:
    """Write the resolved config (every default filled in) as YAML."""
    Path(path).write_text(yaml.safe_dump(config.model_dump(), sort_keys=False))
