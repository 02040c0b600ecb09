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
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import yaml

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
    """``default`` (the embedded synthetic dataset) or a dataset folder (HDF5, OFF tree, txt)."""
    num_points: int = 128
    """Points per shape (the default job's 128 keeps it to minutes on a CPU; the paper uses 1024)."""
    use_normals: bool = False
    """Feed per-point normals too (6 input channels); the data must have them."""
    up_axis: str = "z"
    """The shapes' up axis: ``z`` (ModelNet OFF meshes, ../shared data, the embedded dataset) or ``y``
    (the official modelnet40_ply_hdf5_2048 release). ``rotate_z`` augmentation and test-time votes
    turn about it unless a spec names its own ``axis``."""
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
    feature_transform_weight: float = 0.001
    """Weight of ``||I - A A^T||^2`` on the 64x64 feature transform."""
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
    select_metric: str = "val_oa"
    """Validation metric that picks ``checkpoint_best.pt``: ``val_oa`` or ``val_macc``."""


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
        (config.train.select_metric in ("val_oa", "val_macc"), "train.select_metric must be val_oa or val_macc"),
        (0.0 <= config.train.label_smoothing < 1.0, "train.label_smoothing must be in [0, 1)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    from ..data.transforms import build_batch_transforms  # late: data imports nothing from the engine

    if config.data.up_axis not in ("x", "y", "z"):
        raise ConfigError(f"data.up_axis must be x, y or z, got {config.data.up_axis!r}")
    build_batch_transforms(augmentation_specs(config))  # unknown augmentation names/arguments fail here
    return config


def augmentation_specs(config: Config) -> list[dict[str, Any]]:
    """``train.augmentations`` with ``data.up_axis`` filled in for rotations about the up axis."""
    return [
        {**spec, "axis": config.data.up_axis} if spec.get("name") == "rotate_z" and "axis" not in spec else dict(spec)
        for spec in config.train.augmentations
    ]


def config_from_dict(data: Mapping[str, Any] | None = None, overrides: Sequence[str] = ()) -> Config:
    """Build a validated :class:`Config` from a (partial) nested dict plus ``key=value`` overrides."""
    merged: dict[str, Any] = dict(data or {})
    for text in overrides:
        merged = _merge(merged, parse_override(text))
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
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a mapping of sections (model, data, optim, ...)")
    return config_from_dict(data, overrides)
