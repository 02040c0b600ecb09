"""Fixtures for engine tests: a tiny, easily separable dataset in the HDF5 release layout."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

CLASS_NAMES = ["stick_x", "stick_z", "blob"]


def _clouds(count: int, num_points: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = np.arange(count) % len(CLASS_NAMES)
    rng.shuffle(labels)
    points = rng.normal(size=(count, num_points, 3)).astype(np.float32)
    points[labels == 0] *= np.array([1.0, 0.15, 0.15], np.float32)
    points[labels == 1] *= np.array([0.15, 0.15, 1.0], np.float32)
    points /= np.linalg.norm(points, axis=2).max(axis=1)[:, None, None]
    return points, labels.astype(np.uint8)


def write_tiny_hdf5(root: Path, train: int = 96, test: int = 30, num_points: int = 64, seed: int = 0) -> Path:
    """Write a ModelNet-style HDF5 folder (``ply_data_{split}0.h5``, ``shape_names.txt``, ``*_files.txt``)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "shape_names.txt").write_text("\n".join(CLASS_NAMES) + "\n")
    for split, count in (("train", train), ("test", test)):
        points, labels = _clouds(count, num_points, rng)
        with h5py.File(root / f"ply_data_{split}0.h5", "w") as f:
            f["data"] = points
            f["label"] = labels[:, None]
        (root / f"{split}_files.txt").write_text(f"ply_data_{split}0.h5\n")
    return root


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    return write_tiny_hdf5(tmp_path_factory.mktemp("tiny") / "tiny_hdf5")


def fast_overrides(root: Path, epochs: int = 2) -> list[str]:
    """Small, quick settings: a handful of CPU seconds per run."""
    return [
        f"data.root={root}",
        "data.num_points=64",
        "data.val_fraction=0.25",
        f"train.epochs={epochs}",
        "train.batch_size=16",
        "runtime.device=cpu",
        "runtime.progress=false",
        "runtime.tensorboard=false",
        "runtime.num_threads=1",
    ]
