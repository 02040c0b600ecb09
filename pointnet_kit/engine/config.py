"""Typed run configuration: dataclasses loaded from YAML, with dotted ``key=value`` overrides.

The defaults are the built-in default job (``pointnet-kit train`` with no config: PointNet on the
embedded dataset, a few minutes on a CPU); ``pointnet_kit/configs/*.yaml`` (shipped in the wheel, and
linked as ``configs/`` at the repository root) hold the published recipes, reachable by name.

Unknown keys and wrong types are :class:`ConfigError`; the resolved config is saved with every run
and inside every checkpoint.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import yaml

from ..data.record import DEFAULT_NUM_POINTS, UP_AXES
from ..errors import ConfigError


@dataclass
class ModelConfig:
    name: str = "pointnet"
    """A name from ``pointnet_kit.list_models()``; ``num_classes``/``in_channels`` come from the data."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra factory arguments, e.g. ``{dropout: 0.3}``."""


@dataclass
class DataConfig:
    root: str = "default"
    """``default`` / ``default_parts`` (the embedded datasets) or a dataset folder in any registered
    format (``pointnet_kit.data.list_formats()``: HDF5, OFF tree, class folders, ShapeNetPart, ...)."""
    num_points: int = DEFAULT_NUM_POINTS
    """Points per shape (the default job's 128 keeps it to minutes on a CPU; the paper uses 1024).
    The one default of the package: everything else reads the run's value from its DataSpec."""
    use_normals: bool = False
    """Feed per-point normals too (6 input channels); the data must have them."""
    up_axis: str | None = None
    """The shapes' up axis, ``x``/``y``/``z``; ``null`` takes the format's (``z`` for ModelNet OFF
    meshes, ../shared data, class folders and the embedded datasets; ``y`` for ShapeNetPart,
    ScanObjectNN and modelnet40_normal_resampled). Set ``y`` for the official modelnet40_ply_hdf5_2048
    release. ``rotate_up`` augmentation, test-time votes and viz turn about it (``spec.up_axis``)."""
    classes: list[str] | None = None
    """Keep only these classes (e.g. the ModelNet10 subset of ModelNet40); ``null`` keeps all."""
    val_fraction: float = 0.1
    """Share of each class carved from train for validation (model selection never sees test)."""
    split_seed: int = 0
    """Seed of the stratified train/validation split."""


@dataclass
class OptimConfig:
    name: str = "adam"
    """``adam``, ``adamw`` or ``sgd``."""
    lr: float = 1e-3
    """Base learning rate (reached after warmup, then decayed by the schedule)."""
    weight_decay: float = 0.0
    """L2 penalty (decoupled for ``adamw``)."""
    momentum: float = 0.9
    """SGD only."""


@dataclass
class ScheduleConfig:
    name: str = "step"
    """``step`` (multiply by ``gamma`` every ``step_size`` epochs), ``cosine`` or ``constant``."""
    step_size: int = 4
    """Epochs between two ``step`` decays."""
    gamma: float = 0.5
    """Factor of each ``step`` decay."""
    min_lr: float = 1e-5
    """Floor of the learning rate (step and cosine)."""
    warmup_epochs: int = 0
    """Epochs of linear warmup (epoch e of W runs at ``lr * (e + 1) / (W + 1)``; 0: none)."""


@dataclass
class TrainConfig:
    epochs: int = 8
    """Epochs to train (``--resume`` continues up to this number)."""
    batch_size: int = 32
    """Global batch: split across processes under torchrun."""
    eval_batch_size: int = 256
    """Batch size for validation and evaluation."""
    drop_last: bool = True
    """Skip the last incomplete training batch of each epoch."""
    label_smoothing: float = 0.0
    """Cross-entropy label smoothing in [0, 1)."""
    augmentations: list[dict[str, Any]] = field(
        default_factory=lambda: [{"name": "rotate_z"}, {"name": "jitter", "sigma": 0.01, "clip": 0.05}]
    )
    """Batched training augmentations, in order, as ``{name: ..., option: value}``."""
    bn_momentum: float | None = 0.5
    """PyTorch BatchNorm momentum at epoch 0, decayed like the paper's BN decay; ``null`` keeps 0.1."""
    bn_momentum_decay: float = 0.5
    """Factor applied to the BatchNorm momentum every ``bn_momentum_step`` epochs."""
    bn_momentum_step: int = 20
    """Epochs between two BatchNorm momentum decays."""
    bn_momentum_min: float = 0.01
    """Floor of the decayed BatchNorm momentum."""
    grad_clip: float | None = None
    """Clip the gradient norm to this value; ``null``: no clipping."""
    select_metric: str | None = None
    """Validation metric that picks ``checkpoint_best.pt``, ``val_<metric>`` of the task (``val_oa``,
    ``val_macc``; ``val_instance_miou``, ``val_category_miou``, ``val_point_acc``); ``null``: the
    task's default (``val_oa`` / ``val_instance_miou``)."""


@dataclass
class RuntimeConfig:
    device: str = "auto"
    """``auto`` (cuda, then mps, then cpu), ``cpu``, ``cuda``, ``cuda:N``, ``mps``."""
    amp: str = "auto"
    """``auto`` (bf16 autocast on CUDA, off elsewhere), ``bf16``, ``fp16`` or ``off``."""
    compile: bool = False
    """Run the model through ``torch.compile``."""
    seed: int = 0
    """Seed of weights, batch order and augmentation."""
    num_threads: int | None = None
    """CPU threads for PyTorch; ``null`` leaves PyTorch's default."""
    progress: bool = True
    """Progress bars (shown only on a terminal)."""
    tensorboard: bool = True
    """Log to TensorBoard when it is installed."""


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    """Which model and its extra arguments."""
    data: DataConfig = field(default_factory=DataConfig)
    """Which data and how the model sees it."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """The optimizer."""
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    """The learning-rate schedule, stepped once per epoch."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Training loop, loss and augmentation."""
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    """Device, precision, seed and logging."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# --- building from dicts, with type checking ---------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a mapping of {_field_names(tp)}, got {value!r}")
        return _build(tp, value, key)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {type(value).__name__} {value!r}")
        (item_tp,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a mapping, got {type(value).__name__} {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"{key} must be {_type_name(tp)}, got {type(value).__name__} {value!r}")


def _field_names(cls: type) -> str:
    return ", ".join(f.name for f in dataclasses.fields(cls))


def _build(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {(prefix + '.' if prefix else '') + close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown config key {dotted!r}{hint}; valid keys here: {', '.join(names)}")
        kwargs[key] = _coerce(value, hints[key], dotted)
    return cls(**kwargs)


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict) and key != "kwargs":
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML would silently keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # SafeLoader itself refuses unhashable keys, with its own message
            if key in seen:
                raise ConfigError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1} "
                                  f"(first at line {seen[key].start_mark.line + 1})")
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def parse_override(text: str) -> dict[str, Any]:
    """``"train.lr=0.01"`` -> ``{"train": {"lr": 0.01}}``; values are parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not key=value (e.g. train.epochs=10)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    nested: dict[str, Any] = value
    for part in reversed(key.split(".")):
        nested = {part: nested}
    return nested


def validate(config: Config) -> Config:
    """Value checks beyond types."""
    checks = [
        (config.train.epochs >= 1, "train.epochs must be >= 1"),
        (config.train.batch_size >= 2, "train.batch_size must be >= 2 (BatchNorm needs 2 shapes per batch)"),
        (config.train.eval_batch_size >= 1, "train.eval_batch_size must be >= 1"),
        (config.data.num_points >= 1, "data.num_points must be >= 1"),
        (0.0 < config.data.val_fraction < 1.0, "data.val_fraction must be in (0, 1)"),
        (config.optim.name in ("adam", "adamw", "sgd"), f"optim.name must be adam, adamw or sgd, got {config.optim.name!r}"),
        (config.optim.lr > 0, "optim.lr must be > 0"),
        (config.schedule.name in ("step", "cosine", "constant"),
         f"schedule.name must be step, cosine or constant, got {config.schedule.name!r}"),
        (config.schedule.step_size >= 1, "schedule.step_size must be >= 1"),
        (config.runtime.amp in ("auto", "bf16", "fp16", "off"), f"runtime.amp must be auto, bf16, fp16 or off, got {config.runtime.amp!r}"),
        (config.train.select_metric is None or config.train.select_metric.startswith("val_"),
         f"train.select_metric must name a validation metric, val_<metric> (e.g. val_oa), got {config.train.select_metric!r}"),
        (0.0 <= config.train.label_smoothing < 1.0, "train.label_smoothing must be in [0, 1)"),
        *_range_checks(config),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    from ..data.transforms import build_batch_transforms  # late: data imports nothing from the engine

    if config.data.up_axis is not None and config.data.up_axis not in UP_AXES:
        raise ConfigError(f"data.up_axis must be x, y, z or null (the format's), got {config.data.up_axis!r}")
    build_batch_transforms(augmentation_specs(config))  # unknown augmentation names/arguments fail here
    _check_model_kwargs(config.model)
    return config


SEED_RANGE = 2**63  # torch.manual_seed takes a signed 64-bit integer


def _range_checks(config: Config) -> list[tuple[bool, str]]:
    """Values of the right type that cannot be meant."""
    train, runtime, data = config.train, config.runtime, config.data
    classes = data.classes
    duplicates = sorted({c for c in classes if classes.count(c) > 1}) if classes is not None else []
    return [
        (train.grad_clip is None or train.grad_clip > 0, f"train.grad_clip must be > 0 or null, got {train.grad_clip}"),
        (train.bn_momentum is None or 0.0 < train.bn_momentum <= 1.0, f"train.bn_momentum must be in (0, 1] or null, got {train.bn_momentum}"),
        (0.0 < train.bn_momentum_decay <= 1.0, f"train.bn_momentum_decay must be in (0, 1], got {train.bn_momentum_decay}"),
        (0.0 < train.bn_momentum_min <= 1.0, f"train.bn_momentum_min must be in (0, 1], got {train.bn_momentum_min}"),
        (train.bn_momentum_step >= 1, f"train.bn_momentum_step must be >= 1, got {train.bn_momentum_step}"),
        (all(math.isfinite(v) for v in (config.optim.lr, config.optim.weight_decay, config.optim.momentum)),
         "optim.lr, optim.weight_decay and optim.momentum must be finite numbers"),
        (config.optim.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {config.optim.weight_decay}"),
        (0.0 <= config.optim.momentum < 1.0, f"optim.momentum must be in [0, 1), got {config.optim.momentum}"),
        (0.0 < config.schedule.gamma <= 1.0, f"schedule.gamma must be in (0, 1], got {config.schedule.gamma}"),
        (config.schedule.min_lr >= 0, f"schedule.min_lr must be >= 0, got {config.schedule.min_lr}"),
        (config.schedule.warmup_epochs >= 0, f"schedule.warmup_epochs must be >= 0, got {config.schedule.warmup_epochs}"),
        (runtime.num_threads is None or runtime.num_threads >= 1, f"runtime.num_threads must be >= 1 or null, got {runtime.num_threads}"),
        (0 <= runtime.seed < SEED_RANGE, f"runtime.seed must be in [0, 2^63), got {runtime.seed}"),
        (0 <= data.split_seed < SEED_RANGE, f"data.split_seed must be in [0, 2^63), got {data.split_seed}"),
        (classes is None or len(classes) >= 2, f"data.classes must name at least 2 classes (or be null for all), got {classes}"),
        (not duplicates, f"data.classes lists {', '.join(map(repr, duplicates))} more than once"),
    ]


DATA_KWARGS = ("num_classes", "in_channels")  # set from the data, never in model.kwargs


def _check_model_kwargs(model: ModelConfig) -> None:
    """``model.kwargs`` against the factory's signature (and, for ``**kwargs`` factories, the class it
    builds), so a typo is a ConfigError listing what is accepted instead of a TypeError mid-run."""
    import inspect

    from ..models import registry

    factories = getattr(registry, "_MODELS", {})
    factory = factories.get(model.name)
    if factory is None:
        raise ConfigError(f"model.name {model.name!r} is not a registered model; available: {', '.join(sorted(factories))}")
    given = [k for k in model.kwargs if k in DATA_KWARGS]
    if given:
        raise ConfigError(f"model.kwargs.{given[0]} is set from the data; remove it from model.kwargs")
    accepted: set[str] = set()
    targets = [factory]
    try:
        returned = typing.get_type_hints(factory).get("return")
    except Exception:  # noqa: BLE001 - unresolvable annotations: check the factory alone
        returned = None
    if inspect.isclass(returned):
        targets.append(returned.__init__)
    for target in targets:
        params = inspect.signature(target).parameters.values()
        accepted |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    else:
        return  # every level takes **kwargs: nothing to check against
    accepted -= set(DATA_KWARGS)
    unknown = [k for k in model.kwargs if k not in accepted]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), sorted(accepted), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"model.kwargs.{unknown[0]} is not an argument of model {model.name!r}{hint}; "
                          f"accepted: {', '.join(sorted(accepted)) or 'none'}")


def augmentation_specs(config: Config, up_axis: str | None = None) -> list[dict[str, Any]]:
    """``train.augmentations`` with the up axis filled in for rotations about it (``rotate_up`` and its
    old name ``rotate_z``): ``up_axis`` (pass the run's ``spec.up_axis``), else ``data.up_axis``, else ``z``."""
    axis = up_axis or config.data.up_axis or "z"
    return [
        {**spec, "axis": axis}
        if spec.get("name") in ("rotate_up", "rotate_z") and "axis" not in spec and "up_axis" not in spec
        else dict(spec)
        for spec in config.train.augmentations
    ]


MOVED_KEYS = {
    ("train", "feature_transform_weight"): "model.kwargs.feature_transform_weight",
}
"""Keys that moved, with where they live now (PointNet's regularizer belongs to the model)."""


def check_moved_keys(data: Mapping[str, Any], source: str = "config") -> None:
    """A :class:`ConfigError` naming the new place of a key that moved."""
    for (section, key), new in MOVED_KEYS.items():
        if isinstance(data.get(section), Mapping) and key in data[section]:
            raise ConfigError(f"{source}: {section}.{key} moved to {new} (set it there, e.g. {new}=0.001)")


def config_from_dict(data: Mapping[str, Any] | None = None, overrides: Sequence[str] = ()) -> Config:
    """Build a validated :class:`Config` from a (partial) nested dict plus ``key=value`` overrides."""
    merged: dict[str, Any] = dict(data or {})
    check_moved_keys(merged)
    for text in overrides:
        override = parse_override(text)
        check_moved_keys(override, f"override {text!r}")
        merged = _merge(merged, override)
    return validate(_build(Config, merged))


# --- shipped configs ------------------------------------------------------------------------------

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
"""The configs shipped inside the package (package data)."""


def list_configs() -> list[str]:
    """Names of the shipped configs (``pointnet_modelnet40``, ...), sorted."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve_config(name_or_path: str | os.PathLike) -> Path:
    """A YAML file path as given, or a shipped config by name (``pointnet_modelnet40[.yaml]``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = CONFIG_DIR / (path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml")
    if path.parent == Path(".") or path.parent.name == "configs":  # a name, or configs/NAME.yaml elsewhere
        if shipped.is_file():
            return shipped
    close = difflib.get_close_matches(path.stem, list_configs(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(
        f"config not found: {name_or_path}{hint}; give a YAML file or a shipped config: {', '.join(list_configs())}"
    )


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> Config:
    """Load a YAML file or a shipped config by name (or the defaults when ``path`` is None) and apply overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = resolve_config(path)
        try:
            data = yaml.load(path.read_bytes().decode("utf-8"), Loader=_UniqueKeyLoader) or {}
        except ConfigError as exc:  # a duplicate key
            raise ConfigError(f"{path}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {' '.join(str(exc).split())[:200]}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a mapping of sections (model, data, optim, ...)")
        check_moved_keys(data, str(path))
    return config_from_dict(data, overrides)
