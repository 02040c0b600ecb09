"""data prepare: OFF trees and flat folders -> HDF5, broken meshes reported; OFF and txt layouts in open_dataset."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from pointnet_kit.data import open_dataset
from pointnet_kit.data import prepare as prepare_module
from pointnet_kit.data.registry import describe
from pointnet_kit.data.prepare import REPORT_NAME, discover_off, prepare_off
from pointnet_kit.errors import DataError

BOX = "OFF\n8 6 0\n" + "".join(f"{x} {y} {z}\n" for x in (0, 1) for y in (0, 2) for z in (0, 3)) + (
    "4 0 1 3 2\n4 4 6 7 5\n4 0 4 5 1\n4 2 3 7 6\n4 0 2 6 4\n4 1 5 7 3\n"
)
TETRA = "OFF4 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 2 1\n3 0 1 3\n3 0 3 2\n3 1 2 3\n"  # glued header


@pytest.fixture
def off_tree(tmp_path):
    """ModelNet's layout: <class>/{train,test}/<class>_NNNN.off, with one broken mesh."""
    root = tmp_path / "ModelNetTiny"
    for cls, text in (("box", BOX), ("tetra", TETRA)):
        for split, ids in (("train", (1, 2, 3)), ("test", (4,))):
            folder = root / cls / split
            folder.mkdir(parents=True)
            for i in ids:
                (folder / f"{cls}_{i:04d}.off").write_text(text)
    (root / "box" / "train" / "box_0009.off").write_text("OFF\n8 6 0\n0 0 0\n")  # truncated
    (root / "__MACOSX").mkdir()
    (root / "__MACOSX" / "._box_0001.off").write_text("junk")
    return root


def test_discover_classes_and_splits(off_tree, tmp_path):
    entries = discover_off(off_tree)
    assert len(entries) == 9
    assert {(e.class_name, e.split) for e in entries} == {("box", "train"), ("box", "test"), ("tetra", "train"), ("tetra", "test")}
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "airplane_0001.off").write_text(TETRA)
    (flat / "night_stand_0012.off").write_text(TETRA)
    assert [(e.class_name, e.split) for e in discover_off(flat, default_split="test")] == [("airplane", "test"), ("night_stand", "test")]


def test_prepare_tree_skips_and_reports_broken_mesh(off_tree, tmp_path):
    out = tmp_path / "out"
    report = prepare_off(off_tree, out, num_points=64, normals=True, workers=1, seed=0)
    assert report["splits"] == {"test": 2, "train": 6} and report["classes"] == ["box", "tetra"]
    assert [s["file"] for s in report["skipped"]] == ["box/train/box_0009.off"]
    assert "truncated" in report["skipped"][0]["error"]
    assert json.loads((out / REPORT_NAME).read_text())["skipped"] == report["skipped"]
    assert (out / "shape_names.txt").read_text() == "box\ntetra\n"
    train = open_dataset(out, split="train", use_normals=True)
    assert train.points.shape == (6, 64, 3) and train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert train.ids[0] == "box/train/box_0001.off"
    np.testing.assert_allclose(np.linalg.norm(train.points, axis=2).max(1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(train.normals, axis=2), 1, rtol=1e-5)
    # box points lie on the box's faces: after normalisation each still has an extreme coordinate
    box = train.points[0]
    on_face = np.isclose(box, box.min(0), atol=1e-5) | np.isclose(box, box.max(0), atol=1e-5)
    assert on_face.any(1).all()
    assert describe(out)["prepare_report"]["skipped"][0]["file"] == "box/train/box_0009.off"


def test_prepare_is_seeded_and_independent_of_workers(off_tree, tmp_path):
    a = prepare_off(off_tree, tmp_path / "a", num_points=32, workers=1, seed=1)
    prepare_off(off_tree, tmp_path / "b", num_points=32, workers=2, seed=1)
    prepare_off(off_tree, tmp_path / "c", num_points=32, workers=1, seed=2)
    assert a["workers"] == 1
    read = lambda name: h5py.File(tmp_path / name / "ply_data_train0.h5")["data"][:]
    np.testing.assert_array_equal(read("a"), read("b"))
    assert not np.array_equal(read("a"), read("c"))
    assert "normal" not in h5py.File(tmp_path / "a" / "ply_data_train0.h5")


def test_prepare_refuses_foreign_output_and_empty_source(off_tree, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(DataError, match="not empty and was not made by 'data prepare'"):
        prepare_off(off_tree, foreign, workers=1)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no .off files found"):
        prepare_off(empty, tmp_path / "o", workers=1)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x_0001.off").write_text("OFF\n1 0 0\n")
    with pytest.raises(DataError, match="all 1 meshes are broken; first, .*: the mesh has no faces"):
        prepare_off(broken, tmp_path / "o2", workers=1)


def test_open_dataset_prepares_an_off_tree_once(off_tree, cache_root, monkeypatch):
    test = open_dataset(off_tree, split="test", num_points=128)
    assert len(test) == 2 and test.class_names == ["box", "tetra"] and test[0]["points"].shape == (128, 3)
    calls = []
    monkeypatch.setattr(prepare_module, "prepare_off", lambda *a, **k: calls.append(1))
    again = open_dataset(off_tree, split="train", num_points=128, use_normals=True)
    assert calls == [] and len(again) == 6 and again[0]["points"].shape == (128, 6)
    with pytest.raises(DataError, match=r"no 'val' split among these OFF meshes \(splits found: test, train\)"):
        open_dataset(off_tree, split="val")


def test_shared_meshes_two_commands_worth(shared_data, tmp_path):
    report = prepare_off(shared_data / "meshes", tmp_path / "prepared", num_points=256, normals=True, workers=1)
    assert report["classes"] == ["airplane", "bathtub"] and report["splits"] == {"train": 11} and not report["skipped"]
    ds = open_dataset(tmp_path / "prepared", use_normals=True)
    assert ds.class_counts().tolist() == [6, 5] and ds.points.shape == (11, 256, 3)
    with pytest.raises(DataError, match="no 'test' split"):
        open_dataset(tmp_path / "prepared", split="test")


@pytest.fixture
def normal_resampled(tmp_path):
    """modelnet40_normal_resampled in miniature: comma-separated x,y,z,nx,ny,nz rows."""
    root = tmp_path / "modelnet40_normal_resampled"
    rng = np.random.default_rng(0)
    names = ["airplane", "night_stand"]
    (root).mkdir()
    (root / "modelnet40_shape_names.txt").write_text("\n".join(names) + "\n")
    ids = {"train": ["airplane_0001", "airplane_0002", "night_stand_0001"], "test": ["night_stand_0100"]}
    for split, shape_ids in ids.items():
        (root / f"modelnet40_{split}.txt").write_text("\n".join(shape_ids) + "\n")
        for shape_id in shape_ids:
            folder = root / shape_id.rsplit("_", 1)[0]
            folder.mkdir(exist_ok=True)
            rows = np.concatenate([rng.normal(size=(80, 3)), np.tile([0, 0, 1.0], (80, 1))], 1)
            np.savetxt(folder / f"{shape_id}.txt", rows, delimiter=",", fmt="%.6f")
    return root


def test_normal_resampled_layout(normal_resampled):
    ds = open_dataset(normal_resampled, split="train", num_points=16, use_normals=True)
    assert ds.class_names == ["airplane", "night_stand"] and ds.labels.tolist() == [0, 0, 1]
    assert ds[0]["points"].shape == (16, 6) and ds.ids[2] == "night_stand/night_stand_0001.txt"
    np.testing.assert_allclose(ds.normals[..., 2], 1.0)
    info = describe(normal_resampled)
    assert info["format"] == "normal_resampled" and info["splits"]["test"]["shapes"] == 1
    assert info["splits"]["train"]["points_per_shape"] == 80


def test_normal_resampled_broken_file(normal_resampled):
    (normal_resampled / "airplane" / "airplane_0002.txt").write_text("1,2,3\n")
    with pytest.raises(DataError, match="airplane_0002.txt: expected 6 columns"):
        open_dataset(normal_resampled, num_points=16)
