"""The format registry: detection order, the error listing every format, a format defined in a test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pointnet_kit.data import PointCloudDataset, list_formats, open_dataset
from pointnet_kit.data import registry
from pointnet_kit.data.registry import DatasetFormat, describe, format_info, register_format
from pointnet_kit.errors import DataError


def test_every_builtin_format_is_registered_in_detection_order():
    names = list_formats()
    assert names[:2] == ["embedded", "embedded_parts"] and names[-2:] == ["class_folders", "off"]
    for fmt in ("hdf5", "normal_resampled", "shapenetpart_v0", "shapenetpart_v0_normal", "shapenetpart_hdf5", "scanobjectnn"):
        assert fmt in names
    assert names.index("shapenetpart_hdf5") < names.index("hdf5") and names.index("scanobjectnn") < names.index("hdf5")


def test_unknown_layout_lists_the_formats(tmp_path):
    (tmp_path / "notes.md").write_text("hi")
    with pytest.raises(DataError) as info:
        open_dataset(tmp_path)
    message = str(info.value)
    assert "unknown dataset layout" in message and "\n" not in message
    for name in list_formats():
        if name.startswith("embedded"):
            continue
        assert f"{name}: " in message, name
    assert "default_parts" in message


def test_a_format_defined_here_needs_no_package_change(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_FORMATS", dict(registry._FORMATS))

    @register_format
    class Csv(DatasetFormat):
        name, task, up_axis, layout = "test_csv", "classification", "x", "a folder of <class>.csv clouds"

        def detect(self, root: Path) -> bool:
            return any(root.glob("*.csv"))

        def read(self, root, split, num_points, use_normals, cache_dir=None):
            files = sorted(root.glob("*.csv"))
            points = np.stack([np.loadtxt(f, delimiter=",", dtype=np.float32) for f in files])
            return PointCloudDataset(points, np.arange(len(files)), [f.stem for f in files], num_points=num_points)

        def describe(self, root):
            return {"classes": [f.stem for f in sorted(root.glob("*.csv"))], "splits": {}}

    for name in ("a", "b"):
        np.savetxt(tmp_path / f"{name}.csv", np.random.default_rng(0).normal(size=(20, 3)), delimiter=",")
    ds = open_dataset(tmp_path, num_points=10)
    assert ds.spec.up_axis == "x" and ds.spec.source.endswith("(test_csv)") and ds.spec.num_points == 10
    info = describe(tmp_path)
    assert info["format"] == "test_csv" and info["num_classes"] == 2 and "test_csv dataset, 2 classes" in format_info(info)


def test_spec_of_an_opened_dataset(h5_folder):
    ds = open_dataset(h5_folder, "test", num_points=16, use_normals=True)
    spec = ds.spec
    assert spec.task == "classification" and spec.num_points == 16 and spec.in_channels == 6
    assert spec.class_names == ["cube", "ball", "ring"] and spec.part_names is None and spec.up_axis == "z"
    assert ds.subset([0, 1]).spec == spec
