"""``hdf5``: the ``modelnet40_ply_hdf5_2048`` release layout (``*.h5`` + ``shape_names.txt``).

Also the reader behind every cached format: OFF trees, text clouds and class folders are sampled
once into a folder in this layout, then read back with :func:`dataset_from_hdf5`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np

from ...errors import DataError
from ..base import PointCloudDataset
from ..duplicates import cloud_items, duplicate_report
from ..hdf5 import SHAPE_NAMES, hdf5_splits, read_class_names, read_hdf5_split
from ..prepare import read_report
from ..registry import DatasetFormat, register_format

__all__ = ["HDF5Format", "dataset_from_hdf5", "describe_hdf5", "split_info", "h5_keys"]


def h5_keys(path: Path) -> set[str]:
    """The top-level keys of an HDF5 file; empty for an unreadable one (detection must not raise)."""
    try:
        with h5py.File(path, "r") as f:
            return set(f.keys())
    except OSError:
        return set()


def _h5_files(root: Path) -> list[Path]:
    return sorted(root.glob("*.h5")) + sorted(root.glob("*.hdf5"))


def dataset_from_hdf5(
    folder: Path, split: str, num_points: int | None, use_normals: bool, class_names: Sequence[str] | None = None
) -> PointCloudDataset:
    """One split of a folder in the release layout (with ``pid`` part labels when the files have them)."""
    data = read_hdf5_split(folder, split, num_points=num_points, class_names=class_names)
    if use_normals and data.normals is None:
        raise DataError(f"{folder}: use_normals=True but this dataset has no normals")
    return PointCloudDataset(
        data.points,
        data.labels,
        data.class_names,
        normals=data.normals if use_normals else None,
        ids=data.ids,
        num_points=num_points,
        use_normals=use_normals,
        part_labels=data.part_labels,
    )


def split_info(counts: Counter, class_names: list[str], points: int | None, normals: bool | None, **extra: Any) -> dict[str, Any]:
    """One split's entry of ``describe``: shapes, shapes per class, points per shape, normals."""
    per_class = {class_names[k] if 0 <= k < len(class_names) else f"<unknown label {k}>": int(v) for k, v in sorted(counts.items())}
    return {"shapes": int(sum(counts.values())), "per_class": per_class, "points_per_shape": points, "normals": normals, **extra}


def describe_hdf5(folder: Path, class_names: list[str] | None = None, duplicates: bool = True) -> dict[str, Any]:
    """Classes, splits and (reading the clouds) duplicate shapes of a folder in the release layout."""
    if class_names is None:
        names_file = folder / SHAPE_NAMES
        class_names = read_class_names(names_file) if names_file.is_file() else None
    splits: dict[str, dict[str, Any]] = {}
    items = []
    for split, files in sorted(hdf5_splits(folder).items()):
        counts: Counter = Counter()
        points, normals = None, True
        for path in files:
            try:
                with h5py.File(path, "r") as f:
                    counts.update(np.asarray(f["label"][:]).reshape(-1).tolist())
                    points, normals = f["data"].shape[1], normals and "normal" in f
            except (OSError, KeyError) as exc:
                raise DataError(f"{path}: not a readable HDF5 point cloud file ({exc})") from exc
        if class_names is None:
            class_names = [f"class_{i}" for i in range(max(counts) + 1)]
        splits[split] = split_info(counts, class_names, points, normals, files=len(files))
        if duplicates:
            data = read_hdf5_split(folder, split, class_names=class_names)
            items += cloud_items(split, data.points, data.ids)
    info: dict[str, Any] = {"classes": class_names or [], "splits": splits}
    if duplicates:
        info["duplicates"] = duplicate_report(items, "identical clouds (any point order)")
    report = read_report(folder)
    if report:
        info["prepare_report"] = {k: report[k] for k in ("source", "num_points", "prepared", "skipped") if k in report}
    return info


@register_format
class HDF5Format(DatasetFormat):
    name = "hdf5"
    task = "classification"
    up_axis = "z"  # ../shared data and prepared meshes; the official 2048 release is y-up (data.up_axis=y)
    layout = "an HDF5 folder (*.h5 with data/label + shape_names.txt, as modelnet40_ply_hdf5_2048)"

    def detect(self, root: Path) -> bool:
        return bool(_h5_files(root))

    def read(self, root, split, num_points, use_normals, cache_dir=None):
        return dataset_from_hdf5(root, split, num_points, use_normals)

    def describe(self, root):
        return describe_hdf5(root)
