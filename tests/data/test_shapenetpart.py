"""ShapeNetPart in its three layouts: real samples (v0, v0_normal), generated files (v0 ids, hdf5 release)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from pointnet_kit.data import open_dataset
from pointnet_kit.data.registry import describe, detect_format
from pointnet_kit.data.shapenetpart import CATEGORIES, CATEGORY_PARTS, PART_NAMES, SYNSETS, read_part_file
from pointnet_kit.errors import DataError

PARTS_PER_CATEGORY = {"Airplane": 4, "Bag": 2, "Cap": 2, "Car": 4, "Chair": 4, "Earphone": 3, "Guitar": 3, "Knife": 2,
                      "Lamp": 4, "Laptop": 2, "Motorbike": 6, "Mug": 2, "Pistol": 3, "Rocket": 3, "Skateboard": 3, "Table": 3}


def test_the_50_part_table():
    assert CATEGORIES == list(PARTS_PER_CATEGORY) and len(PART_NAMES) == 50
    assert {c: len(v) for c, v in CATEGORY_PARTS.items()} == PARTS_PER_CATEGORY
    assert CATEGORY_PARTS["Skateboard"] == [44, 45, 46] and CATEGORY_PARTS["Table"] == [47, 48, 49]
    assert sum(CATEGORY_PARTS.values(), []) == list(range(50))
    assert all(name.startswith(c + "/") for c, ids in CATEGORY_PARTS.items() for name in (PART_NAMES[i] for i in ids))


def _write_common(root, synsets, splits):
    root.mkdir(parents=True, exist_ok=True)
    (root / "synsetoffset2category.txt").write_text("".join(f"{c}\t{s}\n" for c, s in SYNSETS.items()))
    (root / "train_test_split").mkdir()
    for split, entries in splits.items():
        (root / "train_test_split" / f"shuffled_{split}_file_list.json").write_text(json.dumps([f"shape_data/{s}/{i}" for s, i in entries]))


@pytest.fixture
def v0_tiny(tmp_path):
    """Two Mug shapes and one Cap in the v0 layout, per-category ids from 1."""
    root = tmp_path / "shapenetcore_partanno_segmentation_benchmark_v0"
    rng = np.random.default_rng(0)
    shapes = [(SYNSETS["Mug"], "m1", [1, 2]), (SYNSETS["Mug"], "m2", [2]), (SYNSETS["Cap"], "c1", [1, 2])]
    for synset, shape_id, parts in shapes:
        (root / synset / "points").mkdir(parents=True, exist_ok=True)
        (root / synset / "points_label").mkdir(exist_ok=True)
        n = 300
        np.savetxt(root / synset / "points" / f"{shape_id}.pts", rng.normal(size=(n, 3)), fmt="%.5f")
        np.savetxt(root / synset / "points_label" / f"{shape_id}.seg", np.resize(parts, n), fmt="%d")
    _write_common(root, None, {"train": [(s, i) for s, i, _ in shapes[:2]], "test": [(shapes[2][0], "c1")]})
    return root


def test_v0_maps_category_ids_to_global_ones(v0_tiny):
    assert detect_format(v0_tiny)[0] == "shapenetpart_v0"
    train = open_dataset(v0_tiny, "train", num_points=256)
    mug = CATEGORIES.index("Mug")
    assert train.labels.tolist() == [mug, mug] and train.part_labels.shape == (2, 256)
    assert set(train.part_labels[0].tolist()) == set(CATEGORY_PARTS["Mug"])  # 1, 2 -> 36, 37
    assert set(train.part_labels[1].tolist()) == {CATEGORY_PARTS["Mug"][1]}
    spec = train.spec
    assert spec.task == "part_segmentation" and spec.class_names == CATEGORIES and spec.part_names == PART_NAMES
    assert spec.category_parts["Cap"] == CATEGORY_PARTS["Cap"] and spec.up_axis == "y" and spec.num_points == 256
    np.testing.assert_allclose(np.linalg.norm(train.points, axis=2).max(1), 1, atol=1e-5)
    batch = train.as_tensors()
    assert batch["part_labels"].shape == (2, 256) and batch["points"].shape == (2, 256, 3)
    test = open_dataset(v0_tiny, "test", num_points=64)
    assert test.labels.tolist() == [CATEGORIES.index("Cap")] and set(test.part_labels[0].tolist()) == set(CATEGORY_PARTS["Cap"])



def test_one_shape_file_reads_as_its_format_does(v0_tiny, tmp_path):
    pts = v0_tiny / SYNSETS["Mug"] / "points" / "m1.pts"
    shape = read_part_file(pts)
    assert shape.category == "Mug" and shape.points.shape == (300, 3) and shape.normals is None
    assert shape.part_labels.tolist() == np.resize(CATEGORY_PARTS["Mug"], 300).tolist()  # 1, 2 -> 36, 37
    (v0_tiny / SYNSETS["Mug"] / "points_label" / "m1.seg").unlink()
    assert read_part_file(pts).part_labels is None  # no labels, still a shape
    loose = tmp_path / "loose.txt"
    loose.write_text("".join(f"{i} 0 0 0 0 1 {47 + i % 3}\n" for i in range(9)))
    shape = read_part_file(loose)
    assert shape.category is None and shape.part_labels.tolist() == [47, 48, 49] * 3 and shape.normals.shape == (9, 3)
    loose.write_text("0 0 0 0 0 1 50\n")
    with pytest.raises(DataError, match=r"loose.txt: part ids span 50..50, but ShapeNetPart's global ids are 0..49"):
        read_part_file(loose)
    with pytest.raises(DataError, match=r"synsetoffset2category.txt: not rows of 7 numbers"):
        read_part_file(v0_tiny / "synsetoffset2category.txt")
    (tmp_path / "shape.ply").write_text("ply")
    with pytest.raises(DataError, match=r"shape.ply: not a ShapeNetPart shape file \(.pts or .txt\)"):
        read_part_file(tmp_path / "shape.ply")

def test_v0_errors_name_the_file(v0_tiny):
    with pytest.raises(DataError, match=r"no 'val' split.*splits found: test, train"):
        open_dataset(v0_tiny, "val")
    seg = v0_tiny / SYNSETS["Mug"] / "points_label" / "m1.seg"
    seg.write_text("1\n3\n" * 150)
    with pytest.raises(DataError, match=r"m1.seg: part ids span 1..3, but Mug has parts 1..2"):
        open_dataset(v0_tiny, "train")
    seg.write_text("1\n")
    with pytest.raises(DataError, match=r"m1.seg: 1 labels for 300 points"):
        describe(v0_tiny)


def test_real_v0_sample(shared_data):
    root = shared_data / "shapenetpart_sample" / "v0"
    ds = open_dataset(root, "train", num_points=1024)
    assert len(ds) == 16 and sorted(ds.labels.tolist()) == list(range(16))
    for category, label in zip(CATEGORIES, range(16)):
        parts = set(ds.part_labels[ds.labels == label].ravel().tolist())
        assert parts <= set(CATEGORY_PARTS[category]), category
    info = describe(root)
    assert info["format"] == "shapenetpart_v0" and info["num_classes"] == 16 and info["num_parts"] == 50
    assert info["splits"]["train"]["per_class"] == {c: 1 for c in CATEGORIES}
    shapes = info["shapes"]
    assert len(shapes) == 16 and all(1 <= s["num_parts"] <= PARTS_PER_CATEGORY[s["category"]] for s in shapes)
    assert all(sum(s["parts"].values()) == s["points"] for s in shapes)
    assert sum(int(k) * v for k, v in info["splits"]["train"]["parts_per_shape"].items()) == sum(s["num_parts"] for s in shapes)


def test_real_v0_normal_sample(shared_data):
    root = shared_data / "shapenetpart_sample" / "v0_normal"
    train = open_dataset(root, "train", num_points=512, use_normals=True)
    assert len(train) == 2 and train[0]["points"].shape == (512, 6) and train.spec.channels[3:] == ["nx", "ny", "nz"]
    assert set(train.part_labels.ravel().tolist()) <= set(CATEGORY_PARTS["Skateboard"] + CATEGORY_PARTS["Table"])
    np.testing.assert_allclose(np.linalg.norm(train.normals, axis=2), 1, atol=1e-2)
    assert len(open_dataset(root, "test")) == 2
    info = describe(root)
    assert info["format"] == "shapenetpart_v0_normal" and info["num_classes"] == 16
    assert [s["category"] for s in info["shapes"]] == ["Skateboard", "Table", "Skateboard", "Table"]
    assert info["splits"]["val"]["shapes"] == 0


def test_sample_root_with_both_layouts_asks_for_one(shared_data):
    with pytest.raises(DataError, match=r"several datasets.*v0/ \(shapenetpart_v0\).*v0_normal/ \(shapenetpart_v0_normal\)"):
        open_dataset(shared_data / "shapenetpart_sample")


@pytest.fixture
def seg_h5(tmp_path):
    """The shapenet_part_seg_hdf5_data release in miniature."""
    root = tmp_path / "hdf5_data"
    root.mkdir()
    rng = np.random.default_rng(0)
    (root / "all_object_categories.txt").write_text("".join(f"{c}\t{s}\n" for c, s in SYNSETS.items()))
    for split, n in (("train", 5), ("val", 2), ("test", 3)):
        labels = np.arange(n) % 16
        pid = np.stack([rng.choice(CATEGORY_PARTS[CATEGORIES[k]], 128) for k in labels])
        with h5py.File(root / f"ply_data_{split}0.h5", "w") as f:
            f["data"] = rng.normal(size=(n, 128, 3)).astype(np.float32)
            f["label"] = labels.reshape(-1, 1).astype(np.uint8)
            f["pid"] = pid.astype(np.uint8)
        (root / f"{split}_hdf5_file_list.txt").write_text(f"hdf5_data/ply_data_{split}0.h5\n")
    return root


def test_hdf5_release(seg_h5):
    assert detect_format(seg_h5)[0] == "shapenetpart_hdf5"
    ds = open_dataset(seg_h5, "val", num_points=100)
    assert len(ds) == 2 and ds.part_labels.shape == (2, 100) and ds.spec.task == "part_segmentation"
    assert ds.labels.tolist() == [0, 1] and set(ds.part_labels[1].tolist()) <= set(CATEGORY_PARTS["Bag"])
    info = describe(seg_h5)
    assert info["splits"]["train"]["shapes"] == 5 and info["duplicates"]["groups"] == 0
    with h5py.File(seg_h5 / "ply_data_test0.h5", "r+") as f:
        f["pid"][0, 0] = 49  # an Airplane point labelled as a Table part
    with pytest.raises(DataError, match=r"a Airplane shape in 'test' has part ids outside 0..3"):
        open_dataset(seg_h5, "test")
