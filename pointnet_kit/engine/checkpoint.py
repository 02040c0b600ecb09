"""Self-describing, atomically written checkpoints, loaded with ``weights_only=True``."""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..models import create_model

FORMAT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, model: nn.Module, **extra: Any) -> Path:
    """Write a checkpoint atomically (temp file in the same folder, then rename).

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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; clear errors for missing or foreign files."""
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
