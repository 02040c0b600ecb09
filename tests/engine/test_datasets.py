"""engine/datasets.py: load_split returns the run's splits, each with the run's DataSpec."""

from __future__ import annotations

import pytest

from pointnet_kit.data.record import DEFAULT_NUM_POINTS, DataSpec
from pointnet_kit.engine.config import DataConfig, config_from_dict
from pointnet_kit.engine.datasets import load_split
from pointnet_kit.errors import ConfigError
from tests.data.conftest import make_h5_folder


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("POINTNET_KIT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def test_one_num_points_default():
    assert DataConfig().num_points == DEFAULT_NUM_POINTS == DataSpec().num_points
    assert DataConfig().up_axis is None  # the format's


def test_classification_spec_and_up_axis_override(tmp_path):
    root = make_h5_folder(tmp_path / "h5", shapes=12)
    data = DataConfig(root=str(root), num_points=32, val_fraction=0.3)
    train, val, test = (load_split(data, s) for s in ("train", "val", "test"))
    assert len(train) + len(val) == 12 and len(test) == 12
    for ds in (train, val, test):
        assert ds.spec.num_points == 32 and ds.spec.up_axis == "z" and ds.spec.task == "classification"
    data.up_axis = "y"
    assert load_split(data, "train").spec.up_axis == "y"
    data.classes = ["ring", "cube"]
    picked = load_split(data, "test")
    assert picked.spec.class_names == ["ring", "cube"] and set(picked.labels.tolist()) == {0, 1}
    assert DataSpec.from_dict(picked.spec.to_dict()) == picked.spec


def test_segmentation_spec_from_the_format(shared_data):
    data = DataConfig(root=str(shared_data / "shapenetpart_sample" / "v0"), num_points=256, classes=["Mug", "Table", "Chair"])
    test_like = load_split(data, "train")
    spec = test_like.spec
    assert spec.task == "part_segmentation" and spec.up_axis == "y" and spec.num_points == 256
    assert spec.class_names == ["Mug", "Table", "Chair"] and len(spec.part_names) == 50
    assert spec.category_parts == {"Mug": [36, 37], "Table": [47, 48, 49], "Chair": [12, 13, 14, 15]}
    assert test_like.as_tensors()["part_labels"].shape == (len(test_like), 256)
    for label, parts in zip(test_like.labels, test_like.part_labels):
        assert set(parts.tolist()) <= set(spec.category_parts[spec.class_names[label]])


def test_up_axis_is_checked():
    with pytest.raises(ConfigError, match="data.up_axis must be x, y, z or null"):
        config_from_dict({}, ["data.up_axis=w"])
    assert config_from_dict({}, ["data.up_axis=y"]).data.up_axis == "y"
