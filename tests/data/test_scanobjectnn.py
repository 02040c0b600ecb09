"""ScanObjectNN h5 files: split from the file name, variants, and names that name no split."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pointnet_kit.data import open_dataset
from pointnet_kit.data.formats.scanobjectnn import CLASS_NAMES
from pointnet_kit.data.registry import describe, detect_format
from pointnet_kit.errors import DataError


def _write(path, n, seed=0, points=64):
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f["data"] = rng.normal(size=(n, points, 3)).astype(np.float32)
        f["label"] = (np.arange(n) % 15).astype(np.int64)
        f["mask"] = np.where(rng.random((n, points)) < 0.25, -1, 1).astype(np.int32)


@pytest.fixture
def sonn(tmp_path):
    root = tmp_path / "main_split"
    root.mkdir()
    _write(root / "training_objectdataset_augmentedrot_scale75.h5", 20)
    _write(root / "test_objectdataset_augmentedrot_scale75.h5", 6, seed=1)
    return root


def test_split_from_file_name(sonn):
    assert detect_format(sonn)[0] == "scanobjectnn"
    train = open_dataset(sonn, "train", num_points=32)
    test = open_dataset(sonn, "test")
    assert len(train) == 20 and len(test) == 6 and train.class_names == CLASS_NAMES and len(CLASS_NAMES) == 15
    assert train[0]["points"].shape == (32, 3) and train.spec.up_axis == "y" and train.spec.task == "classification"
    info = describe(sonn)
    assert info["splits"]["train"]["shapes"] == 20 and 0.15 < info["splits"]["test"]["background_fraction"] < 0.35
    with pytest.raises(DataError, match=r"no 'val' split \(ScanObjectNN files found for: test, train\)"):
        open_dataset(sonn, "val")


def test_several_variants_need_one_file(sonn):
    _write(sonn / "training_objectdataset.h5", 4)
    _write(sonn / "test_objectdataset.h5", 2)
    with pytest.raises(DataError, match=r"2 ScanObjectNN variants .*pass one file as data.root"):
        open_dataset(sonn)
    chosen = open_dataset(sonn / "test_objectdataset.h5", "train")  # the file picks the variant, the split picks the file
    assert len(chosen) == 4


def test_a_file_name_without_split_is_an_error_not_train(tmp_path):
    _write(tmp_path / "objectdataset_augmented25rot.h5", 4)
    with pytest.raises(DataError, match="names no split"):
        open_dataset(tmp_path, "train")
