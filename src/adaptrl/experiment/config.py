"""The experiment config: schema, validation with readable errors, overrides, YAML I/O.

A config is YAML (read with a safe loader only, which also refuses a key given twice in a
section) validated by pydantic. The
``algorithm`` section is validated by the schema its ``name`` registers, so every
meta-learner brings its own fields while sharing one file format. A user mistake
(unknown key, wrong type, out-of-range value, unknown name) raises :class:`ConfigError`
whose message names each offending field, the value and what is allowed: no traceback.
Numbers must be finite (:mod:`adaptrl.schema`), a run name is one path component, and a
task family's parameters are checked against the types its constructor declares.
"""

from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from adaptrl.algorithms.base import AlgorithmConfig
from adaptrl.algorithms.registry import algorithm_spec, algorithms
from adaptrl.errors import UserError
from adaptrl.experiment.selection import SelectionConfig
from adaptrl.rollouts.ray_sampler import SamplerConfig
from adaptrl.rollouts.sampler import BatchUnit
from adaptrl.rollouts.schedule import ScheduleConfig
from adaptrl.schema import STRICT, ConfigModel, Seed
from adaptrl.tasks.registry import load_entry_point, registered

CheckpointName = Literal["best", "latest"]
CHECKPOINT_NAMES: tuple[str, ...] = get_args(CheckpointName)


class ConfigError(UserError):
    """A config that cannot be used; ``str(err)`` lists every problem, one per line."""


def unknown_name(kind: str, value: Any, allowed: Iterable[str]) -> str:
    """``unknown <kind> 'x'; did you mean 'y'? allowed: [...]`` (the hint when one is close)."""
    allowed = sorted(allowed)
    close = difflib.get_close_matches(str(value), allowed, n=1) if isinstance(value, str) else []
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {value!r}{hint}; allowed: {allowed}"


class FamilyConfig(ConfigModel):
    """Which task family to train and test on, and its parameters.

    A family registered outside adaptrl is named by ``entry_point``,
    ``package.module:factory``, as gymnasium's ``register(entry_point=...)`` names an env:
    the factory is imported and called with ``params``; ``name`` is then the family's label
    (eval.json, plots, compare), and must not be a registered family's. Validating such a
    config imports the module, which runs its code: that is what naming it asks for, so name
    only code you trust. Every later command on the run (evaluate, plot, compare, report,
    export) imports it again from the run's config.yaml, so it must stay importable.
    """

    # before `name`: the name's check depends on whether the family comes from an entry point
    entry_point: str | None = Field(
        None, description="package.module:factory that makes the family (a family not "
                          "registered in adaptrl); null: `name` is a registered family")
    name: str = Field(description="a registered task family (see `adaptrl list`), or the "
                                  "label of the entry point's family")
    params: dict[str, Any] = Field(default_factory=dict, description="family parameters")
    rescale_actions: bool = Field(
        False, description="the agent acts in [-1, 1]^d, mapped linearly onto the family's "
                           "action box (rllab's normalize; the MAML reference code's setting)")

    @field_validator("entry_point")
    @classmethod
    def _importable(cls, v: str | None) -> str | None:
        if v is not None:
            load_entry_point(v)
        return v

    @field_validator("name")
    @classmethod
    def _known(cls, v: str, info: ValidationInfo) -> str:
        if "entry_point" not in info.data:  # a bad entry point: its own error says why
            return v
        if info.data["entry_point"] is None and v not in registered():
            raise ValueError(unknown_name("task family", v, registered()))
        if info.data["entry_point"] is not None and v in registered():
            raise ValueError(f"{v!r} is a registered family; a family from entry_point needs "
                             "a name of its own (its label in eval.json, plots and compare)")
        return v

    def factory(self) -> Callable[..., Any]:
        """What makes the family: the entry point's callable, or the registered factory."""
        if self.entry_point is not None:
            return load_entry_point(self.entry_point)
        return registered()[self.name].factory


BaselineName = Literal["pretrained", "pretrained_adam", "scratch", "oracle", "aggregation",
                       "dqn_pretrained", "dqn_scratch", "dqn_tuned", "adam_tuned",
                       "rmsprop_tuned", "mb", "mb_finetune", "mpc_oracle", "dqn_metagrad",
                       "dqn_metatuned"]
"""A baseline an evaluation may score (adaptrl.algorithms.baselines; oracle: the family's)."""
DEFAULT_BASELINES: tuple[BaselineName, ...] = ("pretrained", "scratch", "oracle")


class EvaluationConfig(ConfigModel):
    """The meta-test protocol: held-out tasks, K adaptation units, scores with 95% CIs."""

    num_tasks: int = Field(40, ge=2, description="held-out test tasks")
    steps: int = Field(3, ge=0, description="adaptation units K (gradient steps, episodes or "
                       "env_steps_per_unit env steps)")
    episodes: int = Field(40, ge=1, description="episodes per task per adaptation step")
    env_steps_per_unit: int = Field(
        1000, ge=1, description="env steps of online learning per adaptation unit, for an "
        "agent whose unit is env_steps (a DQN): scored after 0, 1, ..., steps units")
    batch_unit: BatchUnit = Field(
        "episodes", description="episodes: exactly `episodes` per step; steps: whole "
        "episodes up to episodes x horizon steps per step; finished_steps: `episodes` "
        "workers run episodes back to back until the finished ones hold episodes x horizon "
        "steps, the running ones dropped (the MAML reference code's test sampler)")
    step_sizes: list[float] = Field(
        default_factory=lambda: [0.1, 0.05],
        description="inner step size per adaptation step; the last one repeats")
    seed: Seed = Field(12345, description="evaluation seed (test tasks and sampling)")
    tasks_file: str | None = Field(
        None, description="a JSON file of fixed tasks scored instead of sampling the test "
        "split (a paper's own test tasks, e.g. configs/tasks/; adaptrl.tasks.files), "
        "relative to the working directory; num_tasks takes the first that many")
    baselines: list[BaselineName] = Field(
        default_factory=lambda: list(DEFAULT_BASELINES),
        description="baselines evaluated beside the agent")
    checkpoint: CheckpointName = Field(
        "best", description="which checkpoint to evaluate (paper: the best)")

    @field_validator("step_sizes")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if not v or any(s <= 0 for s in v):
            raise ValueError("step_sizes must be a non-empty list of values > 0")
        return v


class BaselinesConfig(ConfigModel):
    """How the trained baselines are trained: *pretrained* (multi-task TRPO, no
    meta-learning), *pretrained_adam* (multi-task VPG with one Adam step per iteration: the
    MAML reference code's pretrained baseline, opt-in) and *aggregation* (averaged per-task
    policies, opt-in)."""

    pretrained_iterations: int | None = Field(
        None, ge=1, description="training iterations (default: the same as the meta-learner)")
    pretrained_adam_iterations: int | None = Field(
        None, ge=1, description="training iterations (default: the same as the meta-learner)")
    aggregation_iterations: int | None = Field(
        None, ge=1, description="training iterations (default: the same as the meta-learner)")
    dqn_pretrained_iterations: int | None = Field(
        None, ge=1, description="training iterations (default: the same as the meta-learner)")
    mb_iterations: int | None = Field(
        None, ge=1, description="training iterations (default: the same as the meta-learner)")
    mb_finetune_iterations: int | None = Field(
        None, ge=1, description="training iterations (default: the same as the meta-learner)")

    def above(self, iterations: int) -> dict[str, int]:
        """The baselines set to train more than ``iterations`` iterations, with their setting
        (``{"pretrained": 60}``): what ``adaptrl train --iterations N`` caps at ``N``, so that a
        short run does not train a long baseline."""
        return {name.removesuffix("_iterations"): value
                for name, value in self.model_dump().items()
                if name.endswith("_iterations") and value is not None and value > iterations}


class WandbConfig(ConfigModel):
    """A Weights & Biases run beside TensorBoard (needs ``pip install 'adaptrl[wandb]'``)."""

    project: str = Field(min_length=1, description="W&B project the run is logged to")
    entity: str | None = Field(None, description="W&B user or team (default: your default "
                               "entity)")
    mode: Literal["online", "offline", "disabled"] = Field(
        "online", description="online: stream to the W&B server; offline: write to "
        "RUN_DIR/wandb only (upload later with `wandb sync`); disabled: log nothing")
    tags: list[str] = Field(default_factory=list, description="tags of the W&B run")


class LoggingConfig(ConfigModel):
    """What a run shows while it trains and the scalars it logs (:mod:`.progress`,
    :mod:`.scalars`)."""

    tensorboard: bool = Field(
        True, description="write TensorBoard scalars to RUN_DIR/tensorboard (against "
        "iterations, and env steps under by_env_steps/), evaluation scores and the config "
        "as hyperparameters; needs the tensorboard package (adaptrl[tensorboard]): without "
        "it a warning, and the run goes on")
    progress: bool | Literal["lines"] = Field(
        True, description="true: a progress bar on a terminal, plain lines when stdout is "
        "not a terminal (a file, a pipe, a batch job); lines: always plain lines; "
        "false: silent")
    every_iterations: int = Field(
        10, ge=1, description="plain progress lines: one every this many iterations (or "
        "every_seconds, whichever comes first), and one at the last iteration")
    every_seconds: float = Field(
        60.0, gt=0, description="plain progress lines: one at least every this many "
        "seconds (or every_iterations, whichever comes first)")
    wandb: WandbConfig | None = Field(
        None, description="log to Weights & Biases too (project, entity, mode, tags); "
        "null: no W&B")

    @field_validator("progress", mode="before")
    @classmethod
    def _progress_setting(cls, v: Any) -> Any:
        if isinstance(v, bool) or v == "lines":
            return v
        raise ValueError("must be true (a bar on a terminal, plain lines otherwise), lines "
                         "or false (silent)")


class ExperimentConfig(ConfigModel):
    """A whole experiment: what to train, on what, for how long, and how to score it."""

    name: str = Field("run", description="run name (default run directory: runs/<name>): one "
                      "path component, no '/' or '\\', not '.' or '..'")
    seed: Seed = Field(0, description="seed of the run's torch.Generator, in [0, 2**64)")
    device: str = Field("cpu", description="torch device, e.g. cpu or cuda")
    iterations: int = Field(500, ge=1, description="meta-iterations")
    checkpoint_every: int = Field(10, ge=1, description="iterations between checkpoints")
    family: FamilyConfig
    algorithm: dict[str, Any] = Field(description="the meta-learner and its settings")
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    baselines: BaselinesConfig = Field(default_factory=BaselinesConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    schedule: ScheduleConfig = Field(
        default_factory=ScheduleConfig, description="which training tasks each iteration "
        "draws: iid (default) or a stream of stages scored for forgetting")
    sampler: SamplerConfig = Field(
        default_factory=SamplerConfig, description="where episodes are sampled: local "
        "(default) or ray (workers, address; docs/distributed.md)")

    @model_validator(mode="after")
    def _stream_fills_the_run(self) -> ExperimentConfig:
        total = self.schedule.total_iterations()
        if total is not None and total != self.iterations:
            raise ValueError(f"schedule: the stream lasts {total} iterations (num_stages x "
                             f"iterations_per_stage), iterations is {self.iterations}; make "
                             "them equal")
        return self

    @field_validator("name")
    @classmethod
    def _one_path_component(cls, v: str) -> str:
        # runs/<name> must stay inside runs/: no separators, no '..', no absolute path
        if v in ("", ".", "..") or any(c in v for c in "/\\\0") or len(v) > 255:
            raise ValueError("name must be a single path component (the run directory is "
                             "runs/<name>): not empty, '.' or '..', without '/', '\\' or NUL, "
                             "at most 255 characters")
        return v

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
    """The model inside an optional section's annotation (RL²'s ``ImitationConfig | None``)."""
    for arg in get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return annotation


def _format(err: ValidationError, model: type[BaseModel], prefix: str = "") -> list[str]:
    """One line per problem of ``err``: the field's dotted path (after ``prefix``), what is
    wrong and allowed, and the value given."""
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
            across = e["type"] == "value_error" and isinstance(got, dict)  # a model validator
            shown = "" if across else f" (got {got!r})"
            # a check across fields (a model validator) names its fields in its message
            lines.append(f"{prefix}{msg}" if across and not loc else f"{path}: {msg}{shown}")
    return lines


def _family_signature(factory: Callable[..., Any]) -> tuple[set[str] | None, dict[str, Any]]:
    """The parameter names a family factory takes (``None``: any, it has ``**kwargs``) and
    the types it declares for them (empty where its annotations cannot be resolved)."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    params = dict(inspect.signature(factory).parameters)
    names = None if any(p.kind is p.VAR_KEYWORD for p in params.values()) else set(params)
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - names only importable for type checkers: no types
        hints = {}
    return names, {n: hints[n] for n in params if n in hints}


def check_family_params(family: FamilyConfig) -> tuple[dict[str, Any], list[str]]:
    """``family.params`` checked against its factory's signature: unknown names (with a
    did-you-mean) and values of the wrong type or not finite are problems, one line each.
    Returns the params with scalars converted to the declared type (``'5'`` -> ``5``)."""
    names, hints = _family_signature(family.factory())
    params, problems = dict(family.params), []
    for key, value in family.params.items():
        where = f"family.params.{key}"
        if names is not None and key not in names:
            problems.append(f"{where}: " + unknown_name(f"parameter of {family.name}", key,
                                                        names))
            continue
        if key not in hints:
            continue
        try:
            adapter = TypeAdapter(hints[key], config=STRICT)
        except Exception:  # noqa: BLE001 - a type pydantic cannot check (a tensor): skip
            continue
        try:
            checked = adapter.validate_python(value)
        except ValidationError as err:
            problems += _format(err, FamilyConfig, prefix=where + ".")
            continue
        if type(checked) in (int, float, bool, str):  # lists stay lists (YAML-dumpable)
            params[key] = checked
    return params, problems


def validate_config(data: Any) -> tuple[ExperimentConfig, AlgorithmConfig]:
    """Validate a raw config dict; returns the experiment and the algorithm config."""
    if not isinstance(data, dict):
        raise ConfigError("config must be a mapping of keys to values, got "
                          f"{type(data).__name__}")
    problems: list[str] = []
    exp: ExperimentConfig | None = None
    try:
        exp = ExperimentConfig.model_validate(data)
    except ValidationError as err:
        problems += _format(err, ExperimentConfig)
    if exp is not None:
        params, family_problems = check_family_params(exp.family)
        problems += family_problems
        exp.family.params = params
    algo = data.get("algorithm")
    algo_cfg: AlgorithmConfig | None = None
    if isinstance(algo, dict):  # otherwise ExperimentConfig has said what is wrong
        name = algo.get("name")
        if name is None:
            problems.append("algorithm.name: required field is missing; allowed: "
                            f"{sorted(algorithms())}")
        elif name not in algorithms():
            problems.append("algorithm.name: " + unknown_name("algorithm", name, algorithms()))
        else:
            cls = algorithm_spec(name).config_cls
            try:
                algo_cfg = cls.model_validate(algo)
            except ValidationError as err:
                problems += _format(err, cls, prefix="algorithm.")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    assert exp is not None and algo_cfg is not None
    exp = exp.model_copy(update={"algorithm": algo_cfg.model_dump()})
    return exp, algo_cfg


# -- files and overrides --------------------------------------------------------------
class DuplicateKeyError(yaml.YAMLError):
    """A key given twice in one mapping (YAML would silently keep the last one)."""


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader (plain data only, no Python objects), refusing a key that a
    mapping holds twice: a duplicated key is a mistake that the last value would hide."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)):  # unhashable: pydantic refuses it
                continue
            line = key_node.start_mark.line + 1
            if key in seen:
                raise DuplicateKeyError(f"line {line}: duplicate key {key!r} (first on line "
                                        f"{seen[key]}); a key may appear once per section")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str) -> Any:
    """Parse one YAML document safely, refusing duplicate keys (:class:`UniqueKeyLoader`)."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a config file: a non-empty YAML mapping, else a :class:`ConfigError` naming the
    file and what is wrong (unreadable, not UTF-8 text, not YAML, a duplicate key, empty, or
    not a mapping)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror}") from err
    except UnicodeDecodeError as err:
        byte = err.object[err.start:err.start + 1].hex()
        raise ConfigError(f"{path} is not a text file (not UTF-8: byte 0x{byte} at offset "
                          f"{err.start}); a config is YAML text") from err
    try:
        data = parse_yaml(text)
    except DuplicateKeyError as err:
        raise ConfigError(f"{path}, {err}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from err
    if data is None:
        raise ConfigError(f"{path} is empty; a config is a mapping with at least `family` and "
                          "`algorithm` (see configs/)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values, got "
                          f"a {type(data).__name__}")
    return data


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
            value = parse_yaml(raw)
        except DuplicateKeyError as err:
            raise ConfigError(f"--set {key}: value {raw!r}, {err}") from err
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
                ) -> tuple[ExperimentConfig, AlgorithmConfig]:
    """Read, override and validate a config file."""
    data = read_yaml(path)
    return validate_config(apply_overrides(data, overrides or []))


def dump_config(config: ExperimentConfig, path: Path) -> None:
    """Write the resolved config (every default filled in) as YAML, atomically: a crash
    mid-write leaves the previous config.yaml, never half of one."""
    from adaptrl.experiment.atomic import atomic_write_text  # the run's one write path

    atomic_write_text(Path(path), yaml.safe_dump(config.model_dump(), sort_keys=False))
