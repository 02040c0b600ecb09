"""Self-describing, atomically written checkpoints, loaded with ``weights_only=True``."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.record import NORMALS, XYZ, DataSpec
from ..errors import CheckpointError, NonFiniteError
from ..models import create_model
from ..models.contract import PointModel
from ..tasks import Task, get_task
from ..utils import atomic_write_bytes
from .config import Config, DataConfig, config_from_dict

FORMAT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, model: nn.Module, **extra: Any) -> Path:
    """Write a checkpoint atomically (temp file in the same folder, fsync, then rename).

    The file holds ``model_name``, ``model_kwargs`` and ``model_state`` so :func:`load_model` needs
    nothing else, plus whatever ``extra`` holds (``class_names``, ``config``, ``epoch``,
    ``optimizer``, ``scheduler``, ``rng``, ``metrics``...). Values must be tensors, numbers,
    strings, or lists/dicts of them (``weights_only`` loading allows nothing else).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = getattr(model, "module", model)  # unwrap DDP
    model = getattr(model, "_orig_mod", model)  # unwrap torch.compile
    if not hasattr(model, "model_name"):
        raise CheckpointError("model was not built with create_model(); cannot describe it in a checkpoint")
    payload = {
        "format_version": FORMAT_VERSION,
        "model_name": model.model_name,
        "model_kwargs": dict(model.model_kwargs),
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **extra,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    # Readable as any file the user writes (0666 - umask), replaced atomically, errors name the path.
    atomic_write_bytes(path, buffer.getbuffer())
    return path


def non_finite_tensors(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors in ``state`` holding NaN or infinity."""
    return [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]


def assert_finite_model(model: nn.Module, what: str = "model") -> None:
    """Refuse a model whose weights or buffers hold NaN or infinity (a diverged run): such a model
    answers ``nan`` for everything, which must never pass as a prediction or an exported model.

    Raises:
        NonFiniteError: naming ``what`` (e.g. the checkpoint path) and the first bad tensors.
    """
    model = getattr(model, "module", model)
    bad = non_finite_tensors(model.state_dict())
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise NonFiniteError(
            f"{what} has non-finite weights (NaN or inf in {', '.join(bad[:3])}{more}): its training diverged; "
            "use an earlier checkpoint or retrain with a lower optim.lr"
        )


def assert_finite(tensor: torch.Tensor, what: str) -> torch.Tensor:
    """Return ``tensor`` if every value is finite, else raise :class:`NonFiniteError` naming ``what``."""
    if tensor.is_floating_point() and not torch.isfinite(tensor).all():
        count = int((~torch.isfinite(tensor)).sum())
        raise NonFiniteError(f"{what}: {count} of {tensor.numel()} values are NaN or infinite; refusing to report them")
    return tensor


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; clear errors for missing or foreign files.

    ``path`` may also name a shipped pretrained model (``"modelnet40"``) when no such file exists.
    """
    from ..models.pretrained import PRETRAINED, load_pretrained

    if str(path) in PRETRAINED and not Path(path).exists():
        return load_pretrained(str(path), map_location)
    path = Path(path)
    if path.is_dir():
        for name in ("checkpoint_best.pt", "checkpoint_last.pt"):
            if (path / name).is_file():
                path = path / name
                break
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path}: it holds Python objects beyond tensors and plain data "
            "(not a pointnet-kit checkpoint, or from an untrusted source)"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - any other failure means a truncated or corrupt file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: {first}") from exc
    if not isinstance(payload, dict) or "model_name" not in payload or "model_state" not in payload:
        raise CheckpointError(f"{path} is not a pointnet-kit checkpoint (no model_name/model_state)")
    return payload


def load_model(
    path: str | os.PathLike | dict[str, Any],
    map_location: str | torch.device = "cpu",
    expected_model: str | None = None,
    expected_num_classes: int | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model stored in a checkpoint (in eval mode) and return it with the checkpoint dict.

    Raises :class:`CheckpointError` when the checkpoint is of another model or class count than
    ``expected_model`` / ``expected_num_classes``, or its weights do not fit the architecture.
    """
    ckpt = path if isinstance(path, dict) else load_checkpoint(path, map_location)
    name, kwargs = ckpt["model_name"], dict(ckpt["model_kwargs"])
    if expected_model is not None and name != expected_model:
        raise CheckpointError(f"checkpoint holds model {name!r}, expected {expected_model!r}")
    num_classes = kwargs.get("num_classes")
    if expected_num_classes is not None and num_classes != expected_num_classes:
        raise CheckpointError(
            f"checkpoint was trained for {num_classes} classes, the data has {expected_num_classes}"
        )
    model = create_model(name, **kwargs)
    try:
        model.load_state_dict(ckpt["model_state"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint weights do not fit model {name!r}: {str(exc).splitlines()[0]}") from exc
    return model.to(map_location).eval(), ckpt


def migrate_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """A checkpoint's stored config in today's keys (older runs kept PointNet's regularizer weight in
    ``train.feature_transform_weight``; it now lives in ``model.kwargs``)."""
    config = {key: dict(value) if isinstance(value, dict) else value for key, value in (config or {}).items()}
    train = config.get("train") or {}
    if "feature_transform_weight" in train:
        weight = train.pop("feature_transform_weight")
        model = config.setdefault("model", {})
        model["kwargs"] = {"feature_transform_weight": weight, **dict(model.get("kwargs") or {})}
    return config


def checkpoint_config(ckpt: dict[str, Any]) -> Config:
    """The resolved config stored in a checkpoint (migrated to today's keys)."""
    return config_from_dict(migrate_config(ckpt.get("config")))


def data_spec_for(data: DataConfig, task: str, class_names: list[str], num_points: int | None = None,
                  part_names: list[str] | None = None) -> DataSpec:
    """The :class:`DataSpec` of data that does not carry one: from the run's data config."""
    return DataSpec(
        task=task,
        num_points=num_points or data.num_points,
        channels=XYZ + NORMALS if data.use_normals else list(XYZ),
        up_axis=data.up_axis or "z",  # null: the format's (data branch), z before formats had one
        class_names=list(class_names),
        part_names=part_names,
        source=data.root,
    )


def load_run(
    path: str | os.PathLike | dict[str, Any], map_location: str | torch.device = "cpu"
) -> tuple[PointModel, Task, DataSpec, dict[str, Any]]:
    """Everything a checkpoint (or a run directory: its ``checkpoint_best.pt``) says about its run.

    Returns ``(model, task, spec, ckpt)``: the model in eval mode on ``map_location``, the task that
    turns its logits into predictions and metrics, the run's :class:`DataSpec` (points, channels, up
    axis, class and part names) and the raw checkpoint dict. Checkpoints from before tasks and specs
    existed get a spec rebuilt from their stored config. A checkpoint with NaN or infinite weights is
    refused (:class:`NonFiniteError`): nothing it answers would mean anything.
    """
    model, ckpt = load_model(path, map_location)
    assert_finite_model(model, f"checkpoint {path}" if not isinstance(path, dict) else f"the checkpoint of epoch {ckpt.get('epoch')}")
    if ckpt.get("data_spec"):
        spec = DataSpec.from_dict(ckpt["data_spec"])
    else:
        config = checkpoint_config(ckpt)
        names = list(ckpt.get("class_names") or [str(i) for i in range(model.num_classes)])
        spec = data_spec_for(config.data, model.task, names)
    task = get_task(ckpt.get("task") or spec.task, spec)
    if task.num_outputs != model.num_classes:
        raise CheckpointError(
            f"checkpoint's model has {model.num_classes} outputs but its data spec describes {task.num_outputs}"
        )
    return model, task, spec, ckpt
