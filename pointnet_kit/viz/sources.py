"""Where ``viz`` and ``report`` get clouds, datasets and predictions: thin calls into the data layer and
the engine, so the figures stay free of I/O and tests have one place to substitute.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import PointCloudDataset, read_mesh, read_point_cloud
from ..data import load_points as _load_points
from ..data import open_dataset as _open_dataset
from ..data.io import MESH_SUFFIXES
from ..data.record import RELEASE_POINTS, DataSpec
from ..engine.evaluate import dataset_for_checkpoint
from ..errors import DataError, PointNetKitError

__all__ = [
    "DISPLAY_POINTS",
    "load_points",
    "load_display_points",
    "model_points",
    "load_mesh",
    "open_dataset",
    "load_run",
    "dataset_for_checkpoint",
    "predict_logits",
    "predict_split",
    "SplitPredictions",
    "PartSample",
    "read_part_file",
    "predict_dense",
]

DISPLAY_POINTS = RELEASE_POINTS  # points drawn from a mesh (or at most from a cloud file) unless --num-points says otherwise


def load_points(path: str | os.PathLike, num_points: int, seed: int = 0) -> np.ndarray:
    """``(num_points, 3)`` float32 points of any mesh or cloud file the data layer reads, normalised."""
    return _load_points(path, num_points=num_points, seed=seed, normalize=True)


def load_display_points(path: str | os.PathLike, num_points: int | None = None, seed: int = 0) -> np.ndarray:
    """The points of a file as drawn: ``(M, 3)`` float32, normalised to the unit sphere.

    ``num_points`` defaults to :data:`DISPLAY_POINTS` for meshes and to the cloud's own count (at most
    :data:`DISPLAY_POINTS`) for point cloud files, so a cloud is never padded with repeated points.
    """
    if num_points is None:
        num_points = DISPLAY_POINTS
        if load_mesh(path) is None:
            num_points = min(DISPLAY_POINTS, len(read_point_cloud(path)[0]))
    return load_points(path, num_points=num_points, seed=seed)


def model_points(display: np.ndarray, num_points: int, seed: int = 0) -> np.ndarray:
    """Indices ``(num_points,)`` of the drawn points the model sees: a seeded random subset, as the
    datasets serve a random subset of their stored points (``display`` must hold at least ``num_points``)."""
    if len(display) < num_points:
        raise DataError(f"{len(display)} points drawn but the model sees {num_points}; raise --num-points")
    return np.sort(np.random.default_rng(seed).permutation(len(display))[:num_points])


def load_run(checkpoint: str | os.PathLike) -> tuple[nn.Module, DataSpec, dict[str, Any]]:
    """A checkpoint's model (eval mode, CPU), its data spec and the checkpoint dict, through the
    engine's one reader (``engine.checkpoint.load_run``)."""
    from ..engine.checkpoint import load_run as engine_load_run

    model, _task, spec, ckpt = engine_load_run(checkpoint)
    return model.eval(), spec, ckpt


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
    model: nn.Module,
    points: torch.Tensor,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    category: torch.Tensor | None = None,
) -> torch.Tensor:
    """Logits ``(M, K)`` or ``(M, N, K)`` (on the CPU) of ``points: (M, N, C)``, in batches, without
    gradients, through the engine's ``predict_logits`` (the one inference path).

    ``category (M,)`` is passed to models that take the shape category (``num_categories > 0``).
    """
    from ..engine.inference import predict_logits as engine_predict

    model, points = model.to(device), points.to(device)
    if not getattr(model, "num_categories", 0):
        category = None
    if category is not None:
        category = category.to(device)
    return engine_predict(model, points, batch_size=batch_size, category=category).cpu()


@dataclass
class SplitPredictions:
    """One split of a run's data with the model's outputs.

    ``probs``: softmax outputs, ``(M, K)`` for classification or ``(M, N, K)`` per point for part
    segmentation (over the ``dataset.num_points`` points the model saw).
    """

    model: nn.Module
    spec: DataSpec
    ckpt: dict[str, Any]
    dataset: PointCloudDataset
    probs: np.ndarray
    display_points: np.ndarray | None = None  # (M, D, 3) the same shapes with all stored points, D >= N

    def drawn(self, num_points: int | None = None) -> np.ndarray:
        """``(M, D, 3)`` points to draw: all the data holds (or the first ``num_points``); the model saw
        the first ``dataset.num_points`` of each."""
        points = self.display_points if self.display_points is not None else self.dataset.points
        return points[:, :num_points]


def predict_split(
    checkpoint: str | os.PathLike,
    data: str | None = None,
    split: str = "val",
    device: str = "auto",
    batch_size: int = 64,
) -> SplitPredictions:
    """Load a checkpoint and one split of its data and run the model on it.

    The split is the one the run used (same classes, points and validation carve-out).
    """
    from ..utils import resolve_device

    model, spec, ckpt = load_run(checkpoint)
    dataset = dataset_for_checkpoint(ckpt, data=data, split=split)
    if len(dataset) == 0:
        raise DataError(f"the {split} split of the data is empty")
    batch = dataset.as_tensors()
    logits = predict_logits(
        model, batch["points"], batch_size=batch_size, device=resolve_device(device), category=batch["labels"]
    )
    probs = torch.softmax(logits.float(), dim=-1).numpy()
    return SplitPredictions(model, spec, ckpt, dataset, probs, _display_points(ckpt, data, split, dataset))


def _display_points(
    ckpt: dict[str, Any], data: str | None, split: str, dataset: PointCloudDataset
) -> np.ndarray | None:
    """The split's clouds with every stored point, when the loader trimmed them to what the model sees.

    Used only when it provably holds the same shapes, whose first points are exactly the model's.
    """
    if dataset.points.shape[1] > dataset.num_points:
        return None  # the dataset already holds more points than the model sees
    import dataclasses

    from ..engine.datasets import data_config_from_checkpoint, load_split

    try:
        full = load_split(dataclasses.replace(data_config_from_checkpoint(ckpt), num_points=None), split, root=data)
    except (PointNetKitError, TypeError, ValueError):
        return None
    n = dataset.num_points
    same = (
        len(full) == len(dataset)
        and np.array_equal(full.labels, dataset.labels)
        and full.points.shape[1] > n
        and np.array_equal(full.points[:, :n], dataset.points[:, :n])
    )
    return full.points if same else None


@dataclass
class PartSample:
    """One part-labelled shape file: ``points (N, 3)`` normalised, ``part_labels (N,)`` global part ids
    or ``None``, its ``category`` name when the file's place in a ShapeNetPart tree tells it, and the
    up axis it was ``turned_from`` to meet the run's (``None``: not turned)."""

    points: np.ndarray
    part_labels: np.ndarray | None
    category: str | None
    turned_from: str | None = None


def read_part_file(path: str | os.PathLike, spec: DataSpec | None = None) -> PartSample:
    """A ShapeNetPart shape (``.pts`` with its ``.seg``, or a ``v0_normal`` ``.txt``) through the data
    layer's reader, in the run's terms: part ids renumbered into ``spec``'s parts by name
    (``"Chair/seat"``; a part the run does not know becomes -1), and the shape turned from its layout's
    up axis (y) to the run's, so the model sees it standing as in training. Any other file the data
    layer reads gives points without labels.
    """
    from ..data import normalize_unit_sphere
    from ..data import shapenetpart as S
    from ..data.transforms import change_up_axis

    path = Path(path)
    if path.suffix.lower() not in (".pts", ".txt"):
        return PartSample(load_display_points(path), None, None)
    shape = S.read_part_file(path)
    labels = shape.part_labels
    if labels is not None and spec is not None and spec.part_names and list(spec.part_names) != S.PART_NAMES:
        index = {name: i for i, name in enumerate(spec.part_names)}
        labels = np.array([index.get(name, -1) for name in S.PART_NAMES], dtype=np.int64)[labels]
    points = normalize_unit_sphere(shape.points, name=str(path)).astype(np.float32)
    if spec is None or spec.up_axis == shape.up_axis:
        return PartSample(points, labels, shape.category)
    return PartSample(change_up_axis(points, shape.up_axis, spec.up_axis), labels, shape.category, shape.up_axis)


@torch.no_grad()
def predict_dense(
    model: nn.Module,
    points: np.ndarray,
    num_points: int,
    category: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Per-point logits ``(M, K)`` of every one of ``points (M, 3)``, the model seeing ``num_points`` at a time.

    The points are split, in a seeded random order, into batch items of ``num_points`` (the last one
    topped up with other points), so every point is predicted at the density the model was trained on.
    """
    m = len(points)
    order = np.random.default_rng(seed).permutation(m)
    items = -(-m // num_points)
    padded = np.concatenate([order, order[: items * num_points - m]]) if items * num_points > m else order
    while len(padded) < items * num_points:  # fewer points than one item: repeat
        padded = np.concatenate([padded, order])[: items * num_points]
    batch = torch.from_numpy(np.ascontiguousarray(points[padded].reshape(items, num_points, -1), dtype=np.float32))
    cat = None if category is None else torch.full((items,), int(category), dtype=torch.long)
    logits = predict_logits(model, batch, category=cat).reshape(items * num_points, -1).numpy()
    out = np.empty((m, logits.shape[1]), dtype=np.float32)
    out[padded] = logits  # repeated points get one of their (identical-input) predictions
    return out
