"""Data: the format registry and its readers, surface sampling, the embedded datasets, augmentation.

Names are imported on first use, so ``pointnet_kit.data.record`` (DataSpec, the num_points default)
stays importable without torch, trimesh or h5py (the config and CLI import it).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PointCloudDataset": "base",
    "stratified_split": "base",
    "train_val_split": "base",
    "DataSpec": "record",
    "DEFAULT_NUM_POINTS": "record",
    "open_dataset": "registry",
    "detect_format": "registry",
    "describe": "registry",
    "list_formats": "registry",
    "load_points": "io",
    "read_mesh": "io",
    "read_off": "io",
    "read_point_cloud": "io",
    "sample_surface": "sampling",
    "farthest_point_sample": "sampling",
    "normalize_unit_sphere": "sampling",
    "make_default_dataset": "synthetic",
    "make_default_parts_dataset": "synthetic_parts",
    "BatchCompose": "transforms",
    "build_batch_transforms": "transforms",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
