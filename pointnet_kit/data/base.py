"""The in-memory point cloud dataset every loader returns, and the stratified validation split."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .record import DataSpec


class PointCloudDataset(Dataset):
    """Labelled point clouds held in memory as arrays (ModelNet40 at 1024 points is ~120 MB).

    Args:
        points: ``(M, N, 3)`` float32 clouds.
        labels: ``(M,)`` integer class indices.
        class_names: name of each class index.
        normals: optional ``(M, N, 3)`` float32 normals.
        ids: optional name of each shape (e.g. ``"chair/chair_0042.off"``).
        num_points: if set and smaller than ``N``, ``__getitem__`` returns the first ``num_points``
            points (loaders store clouds in random order, so a prefix is a random subsample).
        part_labels: optional ``(M, N)`` integer per-point part ids (global numbering), for part
            segmentation; kept aligned with ``points`` by every operation here.
        spec: the run's :class:`~pointnet_kit.data.record.DataSpec`, set by the engine's ``load_split``.

    ``__getitem__`` returns a dict ``{"points": (num_points, C) float32, "labels": () int64}`` (plus
    ``"part_labels": (num_points,)``) where ``C`` is 3, or 6 with ``use_normals``;
    :meth:`as_tensors` returns the same dict for every shape at once (the engine keeps it on the device).
    """

    def __init__(
        self,
        points: np.ndarray,
        labels: np.ndarray,
        class_names: Sequence[str],
        normals: np.ndarray | None = None,
        ids: Sequence[str] | None = None,
        num_points: int | None = None,
        use_normals: bool = False,
        part_labels: np.ndarray | None = None,
        spec: DataSpec | None = None,
    ) -> None:
        points = np.ascontiguousarray(points, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if points.ndim != 3 or points.shape[2] != 3:
            raise ValueError(f"points must be (M, N, 3), got {points.shape}")
        if len(points) != len(labels):
            raise ValueError(f"{len(points)} clouds but {len(labels)} labels")
        if use_normals and normals is None:
            raise ValueError("use_normals=True but the dataset has no normals")
        self.points = points
        self.labels = labels
        self.class_names = list(class_names)
        self.normals = None if normals is None else np.ascontiguousarray(normals, dtype=np.float32)
        self.ids = None if ids is None else list(ids)
        self.num_points = min(num_points or points.shape[1], points.shape[1])
        self.use_normals = use_normals
        if part_labels is not None:
            part_labels = np.ascontiguousarray(part_labels, dtype=np.int64)
            if part_labels.shape != points.shape[:2]:
                raise ValueError(f"part_labels must be {points.shape[:2]} (one per point), got {part_labels.shape}")
        self.part_labels = part_labels
        self.spec = spec

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        return 6 if self.use_normals else 3

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {key: value[0] for key, value in self._batch(np.array([index])).items()}

    def as_tensors(self, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Every shape as one batch dict on ``device``: ``points (M, num_points, C) float32``,
        ``labels (M,) int64`` and, for segmentation data, ``part_labels (M, num_points) int64``."""
        return {key: value.to(device) for key, value in self._batch(slice(None)).items()}

    def _batch(self, rows: slice | np.ndarray) -> dict[str, torch.Tensor]:
        cloud = self.points[rows, : self.num_points]
        if self.use_normals:
            cloud = np.concatenate([cloud, self.normals[rows, : self.num_points]], axis=2)
        batch = {
            "points": torch.from_numpy(np.ascontiguousarray(cloud)),
            "labels": torch.from_numpy(np.ascontiguousarray(self.labels[rows])),
        }
        if self.part_labels is not None:
            batch["part_labels"] = torch.from_numpy(np.ascontiguousarray(self.part_labels[rows, : self.num_points]))
        return batch

    def subset(self, indices: Sequence[int] | np.ndarray) -> "PointCloudDataset":
        """A new dataset of the chosen shapes (copies; same class names)."""
        indices = np.asarray(indices, dtype=np.int64)
        return PointCloudDataset(
            self.points[indices],
            self.labels[indices],
            self.class_names,
            normals=None if self.normals is None else self.normals[indices],
            ids=None if self.ids is None else [self.ids[i] for i in indices],
            num_points=self.num_points,
            use_normals=self.use_normals,
            part_labels=None if self.part_labels is None else self.part_labels[indices],
            spec=self.spec,
        )

    def class_counts(self) -> np.ndarray:
        """Shapes per class, ``(num_classes,)``."""
        return np.bincount(self.labels, minlength=self.num_classes)

    def __repr__(self) -> str:
        normals = ", normals" if self.normals is not None else ""
        return (
            f"{type(self).__name__}(shapes={len(self)}, classes={self.num_classes}, "
            f"points={self.points.shape[1]}, num_points={self.num_points}{normals})"
        )


def stratified_split(labels: np.ndarray, val_fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of indices into train and validation, keeping each class's proportion.

    Every class with at least two shapes keeps at least one in train and puts
    ``round(count * val_fraction)`` (at least one) in validation.

    Returns:
        ``(train_indices, val_indices)``, each sorted.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    labels = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        rng.shuffle(members)
        n_val = 0 if len(members) < 2 else min(max(1, round(len(members) * val_fraction)), len(members) - 1)
        val.append(members[:n_val])
        train.append(members[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def train_val_split(dataset: PointCloudDataset, val_fraction: float = 0.1, seed: int = 0) -> tuple[PointCloudDataset, PointCloudDataset]:
    """A stratified, seeded validation set carved from a training set, so epochs are never picked on test."""
    train_idx, val_idx = stratified_split(dataset.labels, val_fraction, seed)
    return dataset.subset(train_idx), dataset.subset(val_idx)
