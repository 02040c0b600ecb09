"""``off``: a ModelNet OFF tree (``<class>/{train,test}/*.off``, or flat ``<class>_NNNN.off`` files).

Meshes are surface-sampled once into an HDF5 cache (``data/prepare.py``), then read from it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..duplicates import duplicate_report, file_items
from ..prepare import discover_off, prepared_cache
from ..record import stored_points
from ..registry import DatasetFormat, register_format
from .hdf5 import dataset_from_hdf5, split_info

OFF_PATTERNS = ("*.off", "*/*.off", "*/train/*.off", "*/test/*.off")  # flat, folders of flat, <class>/<split>/


@register_format
class ModelNetOFFFormat(DatasetFormat):
    name = "off"
    task = "classification"
    up_axis = "z"
    layout = "a ModelNet OFF tree (<class>/{train,test}/*.off, or flat <class>_NNNN.off files)"

    def detect(self, root: Path) -> bool:
        return any(any(root.glob(pattern)) for pattern in OFF_PATTERNS)

    def read(self, root, split, num_points, use_normals, cache_dir=None):
        stored = stored_points(num_points)
        folder = prepared_cache(root, split=split, num_points=stored, cache_dir=cache_dir)
        return dataset_from_hdf5(folder, split, num_points, use_normals)

    def describe(self, root):
        entries = discover_off(root)
        class_names = sorted({e.class_name for e in entries})
        label_of = {n: i for i, n in enumerate(class_names)}
        splits = {}
        for split in sorted({e.split for e in entries}):
            counts = Counter(label_of[e.class_name] for e in entries if e.split == split)
            splits[split] = split_info(counts, class_names, None, None)
        items = file_items([(e.split, e.rel, e.path) for e in entries])
        duplicates = duplicate_report(items, "identical files") if items is not None else None
        return {
            "classes": class_names,
            "splits": splits,
            "duplicates": duplicates,
            "note": "meshes: sampled into points in a cache on first use ('pointnet-kit data prepare' does it explicitly)",
        }
