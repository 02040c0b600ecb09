"""Class folders of mixed mesh and cloud files: train with data.root=FOLDER, no prepare step."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from pointnet_kit.data import open_dataset
from pointnet_kit.data.formats import class_folders as cf
from pointnet_kit.data.registry import describe, detect_format
from pointnet_kit.errors import DataError


def _box(path, extents=(1, 2, 3)):
    trimesh.creation.box(extents=extents).export(path)


@pytest.fixture
def folders(tmp_path):
    """cube/ with .ply and .obj meshes and an .npy cloud; rod/ with .npy, .xyz and .stl; one broken file."""
    root = tmp_path / "my_data"
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (root / "cube" / split).mkdir(parents=True)
        (root / "rod" / split).mkdir(parents=True)
    _box(root / "cube" / "train" / "a.ply")
    _box(root / "cube" / "train" / "b.obj", (2, 2, 2))
    np.save(root / "cube" / "train" / "c.npy", rng.uniform(-1, 1, (500, 3)))
    np.save(root / "rod" / "train" / "a.npy", np.c_[rng.normal(size=(400, 1)), rng.normal(0, 0.05, (400, 2))])
    np.savetxt(root / "rod" / "train" / "b.xyz", np.c_[rng.normal(size=(300, 1)), rng.normal(0, 0.05, (300, 2))])
    _box(root / "rod" / "train" / "c.stl", (0.1, 0.1, 3))
    (root / "rod" / "train" / "broken.obj").write_text("v 0 0 0\n")
    _box(root / "cube" / "test" / "d.off")
    _box(root / "rod" / "test" / "d.ply", (0.1, 3, 0.1))
    return root


def test_mixed_formats_train_and_test(folders, cache_root):
    assert detect_format(folders)[0] == "class_folders"
    train = open_dataset(folders, "train", num_points=128)
    assert train.class_names == ["cube", "rod"] and train.class_counts().tolist() == [3, 3]  # the broken file is skipped
    assert train.points.shape == (6, 128, 3) and train.normals is None  # clouds without normals: xyz only
    assert np.linalg.norm(train.points, axis=2).max() <= 1 + 1e-5  # a prefix of the unit-sphere cloud
    stored = open_dataset(folders, "train")
    np.testing.assert_allclose(np.linalg.norm(stored.points, axis=2).max(1), 1, atol=1e-5)
    assert sorted(train.ids)[0] == "cube/train/a.ply" and train.spec.source.endswith("(class_folders)")
    test = open_dataset(folders, "test", num_points=128)
    assert test.labels.tolist() == [0, 1]
    report = (cache_root / "class_folders").glob("my_data-*/prepare_report.json")
    assert any("broken.obj" in p.read_text() for p in report)


def test_sampled_once_then_read_from_the_cache(folders, monkeypatch):
    first = open_dataset(folders, "train", num_points=64)
    monkeypatch.setattr(cf, "_sample_one", lambda task: (_ for _ in ()).throw(AssertionError("resampled")))
    again = open_dataset(folders, "train", num_points=64)
    np.testing.assert_array_equal(first.points, again.points)


def test_flat_class_folders_are_all_train(tmp_path):
    root = tmp_path / "flat"
    for k, cls in enumerate(("a", "b")):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            np.save(root / cls / f"{i}.npy", np.random.default_rng([k, i]).normal(size=(50, 6)))
    ds = open_dataset(root, "train", num_points=32, use_normals=True)
    assert ds[0]["points"].shape == (32, 6) and len(ds) == 4
    info = describe(root)
    assert info["format"] == "class_folders" and info["splits"]["train"]["files_by_type"] == {".npy": 4}
    assert info["duplicates"]["groups"] == 0
    with pytest.raises(DataError, match=r"no 'test' split in these class folders \(splits found: train"):
        open_dataset(root, "test")


def test_identical_files_are_reported_as_duplicates(tmp_path):
    root = tmp_path / "dups"
    for cls in ("a", "b"):
        (root / cls / "train").mkdir(parents=True)
        (root / cls / "test").mkdir(parents=True)
    cloud = np.random.default_rng(0).normal(size=(40, 3))
    np.save(root / "a" / "train" / "x.npy", cloud)
    np.save(root / "a" / "test" / "y.npy", cloud)  # the same shape in train and test
    np.save(root / "b" / "train" / "z.npy", cloud + 1)
    dup = describe(root)["duplicates"]
    assert dup["groups"] == 1 and dup["cross_split"] == 1 and dup["examples"] == [["test:a/test/y.npy", "train:a/train/x.npy"]]


def test_off_only_tree_stays_modelnet_off(tmp_path):
    (tmp_path / "t" / "box" / "train").mkdir(parents=True)
    _box(tmp_path / "t" / "box" / "train" / "box_0001.off")
    assert detect_format(tmp_path / "t")[0] == "off"


def test_the_cli_trains_evaluates_and_predicts_on_class_folders(folders, tmp_path, capsys, monkeypatch):
    """The issue's promise, through the CLI: data.root=FOLDER of .ply/.obj/.npy/... trains, no prepare step."""
    from pointnet_kit.cli.main import main

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run = tmp_path / "run"
    fast = ["train.epochs=1", "data.num_points=32", "train.batch_size=4", "runtime.progress=false", "runtime.num_threads=1"]
    assert main(["train", f"data.root={folders}", *fast, "--out", str(run)]) == 0
    summary = (run / "summary.json").read_text()
    assert '"classes": 2' in summary and "val_oa" in summary
    capsys.readouterr()
    assert main(["eval", str(run), "--split", "test", "--json"]) == 0
    import json

    result = json.loads(capsys.readouterr().out)
    assert result["num_shapes"] == 2 and 0 <= result["oa"] <= 1  # cube/test/d.off and rod/test/d.ply
    assert main(["predict", str(run), str(folders / "cube" / "train" / "a.ply"), "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert {p["class"] for p in record["predictions"]} <= {"cube", "rod"}
