"""A tiny part segmentation dataset: two categories of boxes whose bottom and top halves are parts."""

from __future__ import annotations

import numpy as np

from pointnet_kit.data import PointCloudDataset
from pointnet_kit.data.record import DataSpec

CATEGORIES = ["tall", "flat"]
PARTS = ["tall/bottom", "tall/top", "flat/bottom", "flat/top"]
EXTENTS = {"tall": (0.3, 0.3, 1.0), "flat": (1.0, 1.0, 0.35)}


def box_cloud(category: str, num_points: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points on the surface of a jittered box, ``(N, 3)``, and their global part ids ``(N,)``."""
    extent = np.array(EXTENTS[category]) * rng.uniform(0.8, 1.2, size=3)
    points = rng.uniform(-1, 1, size=(num_points, 3))
    face = rng.integers(0, 3, size=num_points)
    points[np.arange(num_points), face] = np.sign(points[np.arange(num_points), face])  # push onto a face
    points *= extent
    angle = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(angle), np.sin(angle)
    points = points @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]).T
    parts = 2 * CATEGORIES.index(category) + (points[:, 2] > 0)
    points /= np.linalg.norm(points, axis=1).max()
    return points.astype(np.float32), parts.astype(np.int64)


def box_parts_dataset(count: int, num_points: int = 64, seed: int = 0) -> PointCloudDataset:
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 2
    clouds = [box_cloud(CATEGORIES[label], num_points, rng) for label in labels]
    spec = DataSpec(
        task="part_segmentation",
        num_points=num_points,
        up_axis="z",
        class_names=list(CATEGORIES),
        part_names=list(PARTS),
        category_parts={"tall": [0, 1], "flat": [2, 3]},
        source="boxes (test)",
    )
    return PointCloudDataset(
        np.stack([c[0] for c in clouds]),
        labels,
        CATEGORIES,
        part_labels=np.stack([c[1] for c in clouds]),
        ids=[f"{CATEGORIES[label]}_{i}" for i, label in enumerate(labels)],
        spec=spec,
    )


def fake_load_split(data, split: str, root: str | None = None) -> PointCloudDataset:
    """Stands in for ``engine.datasets.load_split`` until a part segmentation format is registered."""
    full = box_parts_dataset(80 if split != "test" else 20, seed=0 if split != "test" else 1)
    if split == "test":
        return full
    return full.subset(np.arange(0, 60) if split == "train" else np.arange(60, 80))
