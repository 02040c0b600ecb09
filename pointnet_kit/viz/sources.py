"""Where ``viz`` and ``report`` get clouds, datasets and predictions: thin calls into the data layer and
the engine, so the figures stay free of I/O and tests have one place to substitute.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import PointCloudDataset, read_mesh
from ..data import load_points as _load_points
from ..data import open_dataset as _open_dataset
from ..data.io import MESH_SUFFIXES
from ..engine.evaluate import dataset_for_checkpoint
from ..engine.trainer import predict_logits as _predict_logits
from ..errors import DataError

__all__ = ["load_points", "load_mesh", "open_dataset", "dataset_for_checkpoint", "predict_logits", "predict_split"]


def load_points(path: str | os.PathLike, num_points: int = 1024, seed: int = 0) -> np.ndarray:
    """``(num_points, 3)`` float32 points of any mesh or cloud file the data layer reads, normalised."""
    return _load_points(path, num_points=num_points, seed=seed, normalize=True)


def load_mesh(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray] | None:
    """``(vertices (V, 3), faces (F, 3))`` when ``path`` is a readable mesh with faces, else ``None``."""
    if Path(path).suffix.lower() not in MESH_SUFFIXES:
        return None
    try:
        mesh = read_mesh(path)
    except DataError:  # not a mesh with faces (a .ply cloud, say): let the point reader judge the file
        return None
    return np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64)


def open_dataset(root: str | os.PathLike, split: str = "train", num_points: int | None = None) -> PointCloudDataset:
    """A dataset by root folder (or ``"default"``), through the data layer."""
    return _open_dataset(root, split=split, num_points=num_points)


def predict_logits(
    model: nn.Module, points: torch.Tensor, batch_size: int = 64, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Logits ``(M, num_classes)`` (on the CPU) of ``points: (M, N, C)``, in batches, without gradients."""
    model = model.to(device)
    return _predict_logits(model, points.to(device), batch_size=batch_size).cpu()


def predict_split(
    checkpoint: str | os.PathLike,
    data: str | None = None,
    split: str = "val",
    device: str = "auto",
    batch_size: int = 64,
) -> tuple[nn.Module, dict[str, Any], PointCloudDataset, np.ndarray]:
    """Load a checkpoint and one split of its data and classify it: ``(model, ckpt, dataset, probs (M, K))``.

    The split is the one the run used (same classes, points and validation carve-out).
    """
    from ..engine.checkpoint import load_model
    from ..utils import resolve_device

    model, ckpt = load_model(checkpoint)
    dataset = dataset_for_checkpoint(ckpt, data=data, split=split)
    if len(dataset) == 0:
        raise DataError(f"the {split} split of the data is empty")
    points = dataset.as_tensors()["points"]
    logits = predict_logits(model, points, batch_size=batch_size, device=resolve_device(device))
    return model, ckpt, dataset, torch.softmax(logits.float(), dim=1).numpy()
