"""HDF5 folders (data/hdf5.py): declared sizes against the limit, groups instead of datasets, non-UTF-8 lists."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pointnet_kit.data.hdf5 import read_hdf5_split
from pointnet_kit.errors import DataError


def test_declared_size_beyond_the_limit_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setenv("POINTNET_KIT_MAX_FILE_MB", "16")
    with h5py.File(tmp_path / "ply_data_train0.h5", "w") as f:
        f.create_dataset("data", shape=(100_000, 2048, 3), dtype="f4", chunks=(1, 2048, 3))  # 2.4 GB declared, nothing stored
        f.create_dataset("label", data=np.zeros((100_000, 1), np.uint8))
    assert (tmp_path / "ply_data_train0.h5").stat().st_size < 2 << 20
    with pytest.raises(DataError, match="more than the limit of 16 MiB"):
        read_hdf5_split(tmp_path, "train")


def test_group_in_place_of_a_dataset(tmp_path):
    with h5py.File(tmp_path / "ply_data_train0.h5", "w") as f:
        f.create_group("data")
        f.create_dataset("label", data=np.zeros((1, 1), np.uint8))
    with pytest.raises(DataError, match="must be datasets"):
        read_hdf5_split(tmp_path, "train")


def test_non_utf8_lists(tmp_path):
    with h5py.File(tmp_path / "ply_data_train0.h5", "w") as f:
        f.create_dataset("data", data=np.zeros((2, 8, 3), np.float32))
        f.create_dataset("label", data=np.zeros((2, 1), np.uint8))
    (tmp_path / "shape_names.txt").write_bytes("ch\xe4ir\n".encode("latin-1"))
    with pytest.raises(DataError, match="shape_names.txt: not UTF-8"):
        read_hdf5_split(tmp_path, "train")
    (tmp_path / "train_files.txt").write_bytes(b"\xff\xfe")
    with pytest.raises(DataError, match="train_files.txt: not UTF-8"):
        read_hdf5_split(tmp_path, "train")
