"""``shapenetpart_hdf5``: the ``shapenet_part_seg_hdf5_data`` release.

``ply_data_{train,val,test}<i>.h5`` with ``data`` ``(n, 2048, 3)``, ``label`` ``(n, 1)`` (category,
official order) and ``pid`` ``(n, 2048)`` (global part ids 0-49), listed by
``<split>_hdf5_file_list.txt``; ``all_object_categories.txt`` names the categories.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..duplicates import cloud_items, duplicate_report
from ..hdf5 import hdf5_splits, read_hdf5_split
from ..registry import DatasetFormat, register_format
from ..shapenetpart import CATEGORIES, CATEGORY_PARTS, PART_NAMES, part_spec
from .hdf5 import dataset_from_hdf5, h5_keys


def _check_categories(root: Path) -> None:
    path = root / "all_object_categories.txt"
    if path.is_file():
        names = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
        if names != CATEGORIES:
            raise DataError(f"{path}: categories {names[:3]}... are not the 16 ShapeNetPart categories in the official order")


@register_format
class ShapeNetPartHDF5Format(DatasetFormat):
    name = "shapenetpart_hdf5"
    task = "part_segmentation"
    up_axis = "y"
    layout = "shapenet_part_seg_hdf5_data (*.h5 with data/label/pid + all_object_categories.txt)"

    def detect(self, root: Path) -> bool:
        if (root / "all_object_categories.txt").is_file():
            return True
        first = next(iter(sorted(root.glob("*.h5"))), None)
        return first is not None and "pid" in h5_keys(first)

    def read(self, root, split, num_points, use_normals, cache_dir=None):
        _check_categories(root)
        dataset = dataset_from_hdf5(root, split, num_points, use_normals, class_names=CATEGORIES)
        if dataset.part_labels is None:
            raise DataError(f"{root}: the '{split}' files have no 'pid' (per-point part ids)")
        for k, category in enumerate(CATEGORIES):
            rows = dataset.labels == k
            allowed = CATEGORY_PARTS[category]
            if rows.any() and (dataset.part_labels[rows].min() < allowed[0] or dataset.part_labels[rows].max() > allowed[-1]):
                raise DataError(f"{root}: a {category} shape in '{split}' has part ids outside {allowed[0]}..{allowed[-1]}")
        dataset.spec = part_spec()
        return dataset

    def describe(self, root):
        _check_categories(root)
        splits, items, shapes = {}, [], []
        for split in sorted(hdf5_splits(root)):
            data = read_hdf5_split(root, split, class_names=CATEGORIES)
            counts = Counter(data.labels.tolist())
            present = [np.unique(row) for row in data.part_labels] if data.part_labels is not None else []
            hist = Counter(len(p) for p in present)
            splits[split] = {
                "shapes": len(data.labels),
                "per_class": {CATEGORIES[k]: int(v) for k, v in sorted(counts.items())},
                "points_per_shape": data.points.shape[1],
                "normals": data.normals is not None,
                "parts_per_shape": {str(k): int(v) for k, v in sorted(hist.items())},
            }
            for i, parts in enumerate(present[: max(0, 64 - len(shapes))]):
                values, n = np.unique(data.part_labels[i], return_counts=True)
                shapes.append({
                    "split": split, "id": data.ids[i] if data.ids else f"#{i}", "category": CATEGORIES[data.labels[i]],
                    "points": data.points.shape[1], "num_parts": len(parts),
                    "parts": {PART_NAMES[k]: int(c) for k, c in zip(values, n)},
                })  # fmt: skip
            items += cloud_items(split, data.points, data.ids)
        return {
            "classes": list(CATEGORIES),
            "num_parts": len(PART_NAMES),
            "part_names": list(PART_NAMES),
            "category_parts": {c: list(v) for c, v in CATEGORY_PARTS.items()},
            "splits": splits,
            "shapes": shapes,
            "duplicates": duplicate_report(items, "identical clouds (any point order)"),
        }
