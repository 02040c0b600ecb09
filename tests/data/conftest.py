"""Fixtures for the data tests: a private cache folder, tiny HDF5 folders, the embedded dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pointnet_kit.data.hdf5 import write_hdf5_split


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _private_cache(cache_root, monkeypatch):
    """Nothing a test does may write to the user's ~/.cache."""
    monkeypatch.setenv("POINTNET_KIT_CACHE", str(cache_root))


def make_h5_folder(root: Path, splits=("train", "test"), shapes: int = 10, points: int = 64, normals: bool = True) -> Path:
    """A tiny folder in the release layout with 3 classes."""
    rng = np.random.default_rng(0)
    names = ["cube", "ball", "ring"]
    for split in splits:
        p = rng.normal(size=(shapes, points, 3)).astype(np.float32)
        n = rng.normal(size=(shapes, points, 3)).astype(np.float32) if normals else None
        labels = np.arange(shapes) % len(names)
        ids = [f"{names[l]}/{names[l]}_{i:04d}.off" for i, l in enumerate(labels)]
        write_hdf5_split(root, split, p, labels, names, normals=n, ids=ids, shard_size=4)
    return root


@pytest.fixture
def make_h5():
    """The factory :func:`make_h5_folder`, for tests that need other settings."""
    return make_h5_folder


@pytest.fixture
def h5_folder(tmp_path) -> Path:
    return make_h5_folder(tmp_path / "tiny_h5")
