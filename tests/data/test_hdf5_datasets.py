"""open_dataset on HDF5 folders: the release layout, real ModelNet40, and every bad folder."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pointnet_kit.data import PointCloudDataset, detect_format, open_dataset, train_val_split
from pointnet_kit.data.hdf5 import hdf5_splits, read_hdf5_split
from pointnet_kit.errors import DataError


def test_roundtrip_of_the_release_layout(h5_folder):
    assert sorted(p.name for p in h5_folder.iterdir())[:4] == [
        "ply_data_test0.h5",
        "ply_data_test1.h5",
        "ply_data_test2.h5",
        "ply_data_test_0_id2file.json",
    ]
    assert (h5_folder / "train_files.txt").read_text().split() == ["ply_data_train0.h5", "ply_data_train1.h5", "ply_data_train2.h5"]
    ds = open_dataset(h5_folder, split="test", num_points=32, use_normals=True)
    assert isinstance(ds, PointCloudDataset)
    assert len(ds) == 10 and ds.class_names == ["cube", "ball", "ring"]
    assert ds.points.shape == (10, 32, 3) and ds.normals.shape == (10, 32, 3)
    assert ds.ids[1] == "ball/ball_0001.off"
    x, y = ds[1]["points"], ds[1]["labels"]
    assert x.shape == (32, 6) and y == 1
    with h5py.File(h5_folder / "ply_data_test0.h5") as f:
        np.testing.assert_array_equal(ds.points[:4], f["data"][:, :32])
        assert f["label"].dtype == np.uint8 and f["label"].shape == (4, 1)


def test_release_style_listing_with_folder_prefix(h5_folder):
    (h5_folder / "train_files.txt").write_text(
        "".join(f"data/modelnet40_ply_hdf5_2048/ply_data_train{i}.h5\n" for i in range(3))
    )
    assert len(open_dataset(h5_folder).labels) == 10


def test_splits_from_file_names_without_listings(h5_folder):
    for listing in h5_folder.glob("*_files.txt"):
        listing.unlink()
    splits = hdf5_splits(h5_folder)
    assert sorted(splits) == ["test", "train"] and len(splits["train"]) == 3


def test_nested_single_folder_is_found(tmp_path, make_h5):
    make_h5(tmp_path / "modelnet40" / "modelnet40_ply_hdf5_2048")
    fmt, folder = detect_format(tmp_path / "modelnet40")
    assert fmt == "hdf5" and folder.name == "modelnet40_ply_hdf5_2048"
    assert len(open_dataset(tmp_path / "modelnet40", split="test")) == 10


def test_validation_split_is_stratified_and_seeded(h5_folder):
    ds = open_dataset(h5_folder)
    train, val = train_val_split(ds, val_fraction=0.3, seed=0)
    assert len(train) + len(val) == len(ds)
    assert set(val.labels) == {0, 1, 2}  # one of each class
    assert not set(val.ids) & set(train.ids)
    assert train_val_split(ds, 0.3, seed=0)[1].ids == val.ids


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p / "nope", "no such folder"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "folder is empty"),
        (lambda p: (p / "x.txt").write_text("hi") and p, "unknown dataset layout .*x.txt.*expected .*hdf5: an HDF5 folder.*class_folders"),
        (lambda p: (p / "f.h5").write_text("not hdf5") and p / "f.h5", "is a file"),
    ],
    ids=["missing", "empty", "unknown", "file"],
)
def test_bad_folders_raise_one_clear_error(tmp_path, make, match):
    with pytest.raises(DataError, match=match):
        open_dataset(make(tmp_path))


def test_missing_split_says_which_exist(tmp_path, make_h5):
    root = make_h5(tmp_path / "h5", splits=("train",))
    with pytest.raises(DataError, match=r"no 'test' split .*splits found: train"):
        open_dataset(root, split="test")


def test_corrupt_or_inconsistent_files(h5_folder):
    (h5_folder / "ply_data_train1.h5").write_bytes(b"garbage")
    with pytest.raises(DataError, match="ply_data_train1.h5: not a readable HDF5"):
        open_dataset(h5_folder)
    (h5_folder / "ply_data_train1.h5").unlink()
    with pytest.raises(DataError, match="lists 1 file.*ply_data_train1.h5"):
        open_dataset(h5_folder)


def test_more_points_or_normals_than_stored(tmp_path, make_h5):
    root = make_h5(tmp_path / "h5", normals=False)
    with pytest.raises(DataError, match="64 points, fewer than the 128"):
        open_dataset(root, num_points=128)
    with pytest.raises(DataError, match="no normals"):
        open_dataset(root, use_normals=True)


def test_labels_beyond_class_names(h5_folder):
    (h5_folder / "shape_names.txt").write_text("cube\nball\n")
    with pytest.raises(DataError, match="labels span 0..2 but shape_names.txt has 2 classes"):
        read_hdf5_split(h5_folder, "train")


def test_real_modelnet40_1024(shared_data):
    root = shared_data / "modelnet40_ply_hdf5_1024"
    ds = open_dataset(root, num_points=1024)  # its speed: scripts/bench_data.py
    assert len(ds) == 9843 and ds.points.shape == (9843, 1024, 3)
    assert ds.num_classes == 40 and ds.class_names[0] == "airplane" and ds.class_names[-1] == "xbox"
    assert ds.class_counts().min() > 0 and ds.ids[0].endswith(".off")
    assert np.abs(np.linalg.norm(ds.points, axis=2).max(1) - 1).max() < 1e-3  # unit sphere
    with pytest.raises(DataError, match=r"no 'test' split .*splits found: train"):
        open_dataset(root, split="test")
    with pytest.raises(DataError, match="no normals"):
        open_dataset(root, use_normals=True)
