"""The contract other areas rely on: names exported from pointnet_kit.data and their signatures."""

from __future__ import annotations

import inspect

import pointnet_kit.data as data


def test_contract_is_exported():
    for name in ("open_dataset", "load_points", "make_default_dataset", "read_mesh", "read_point_cloud", "sample_surface",
                 "normalize_unit_sphere", "farthest_point_sample", "build_batch_transforms", "PointCloudDataset", "stratified_split"):
        assert hasattr(data, name) and name in data.__all__, name
    params = inspect.signature(data.open_dataset).parameters
    assert list(params)[:5] == ["root", "split", "num_points", "use_normals", "cache_dir"]
    assert params["split"].default == "train" and params["num_points"].default is None
    params = inspect.signature(data.load_points).parameters
    assert list(params)[:4] == ["path", "num_points", "seed", "normalize"] and params["num_points"].default == 1024
    params = inspect.signature(data.make_default_dataset).parameters
    assert list(params)[:4] == ["split", "num_points", "seed", "cache_dir"]
