"""``scanobjectnn``: ScanObjectNN's HDF5 files.

``training_objectdataset<variant>.h5`` and ``test_objectdataset<variant>.h5`` with ``data``
``(n, 2048, 3)``, ``label`` ``(n,)`` and ``mask`` ``(n, 2048)`` (object vs background points); the
variant suffix is e.g. empty or ``_augmentedrot_scale75`` (the hardest, PB_T50_RS). The split comes
from the file name: a file that names no split is an error, never silently train. A folder holding
several variants needs one file chosen: ``data.root=.../training_objectdataset_augmentedrot_scale75.h5``.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import h5py
import numpy as np

from ...errors import DataError
from ..base import PointCloudDataset
from ..duplicates import cloud_items, duplicate_report
from ..registry import DatasetFormat, register_format
from .hdf5 import split_info

CLASS_NAMES = ["bag", "bin", "box", "cabinet", "chair", "desk", "display", "door", "shelf", "table", "bed", "pillow", "sink", "sofa", "toilet"]
PREFIXES = {"training": "train", "test": "test"}
_NAME = re.compile(r"^(?:(training|test)_)?(.*objectdataset)(.*)\.h5$")


def _files(root: Path) -> list[Path]:
    return [root] if root.is_file() else sorted(p for p in root.glob("*.h5") if _NAME.match(p.name))


def _parse(path: Path) -> tuple[str, str]:
    """``(split, variant)`` of a file name."""
    match = _NAME.match(path.name)
    if match is None or match.group(1) is None:
        raise DataError(f"{path}: the file name names no split (expected training_objectdataset*.h5 or test_objectdataset*.h5)")
    return PREFIXES[match.group(1)], match.group(2) + match.group(3)


def _split_files(root: Path) -> dict[str, Path]:
    """The file of each split for the one variant ``root`` selects (a folder with one variant, or a file)."""
    files = _files(root)
    parsed = {p: _parse(p) for p in files}
    folder = root.parent if root.is_file() else root
    variants = sorted({v for _, v in parsed.values()})
    if len(variants) > 1:
        raise DataError(
            f"{root}: holds {len(variants)} ScanObjectNN variants ({', '.join(variants)}); "
            f"pass one file as data.root, e.g. {folder / ('training_' + variants[0] + '.h5')}"
        )
    variant = variants[0]
    return {
        split: folder / f"{prefix}_{variant}.h5"
        for prefix, split in PREFIXES.items()
        if (folder / f"{prefix}_{variant}.h5").is_file()
    }


def _read(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    try:
        with h5py.File(path, "r") as f:
            points = np.asarray(f["data"][:], np.float32)
            labels = np.asarray(f["label"][:]).reshape(-1).astype(np.int64)
            mask = np.asarray(f["mask"][:]) if "mask" in f else None
    except (OSError, KeyError) as exc:
        raise DataError(f"{path}: not a ScanObjectNN file with 'data' and 'label' ({exc})") from exc
    if points.ndim != 3 or points.shape[2] < 3 or len(points) != len(labels):
        raise DataError(f"{path}: expected data (n, N, 3) and n labels, got {points.shape} and {labels.shape}")
    if labels.min() < 0 or labels.max() >= len(CLASS_NAMES):
        raise DataError(f"{path}: labels span {labels.min()}..{labels.max()}, ScanObjectNN has {len(CLASS_NAMES)} classes")
    if not np.isfinite(points).all():
        raise DataError(f"{path}: contains NaN or infinite coordinates")
    return points[..., :3], labels, mask


@register_format
class ScanObjectNNFormat(DatasetFormat):
    name = "scanobjectnn"
    task = "classification"
    up_axis = "y"  # as PointNeXt and others treat it (gravity along y)
    layout = "ScanObjectNN (training_objectdataset*.h5 + test_objectdataset*.h5 with data/label/mask)"
    accepts_files = True

    def detect(self, root: Path) -> bool:
        return bool(_files(root)) if root.is_dir() else bool(_NAME.match(root.name))

    def read(self, root, split, num_points, use_normals, cache_dir=None):
        files = _split_files(root)
        if split not in files:
            raise DataError(f"{root}: no '{split}' split (ScanObjectNN files found for: {', '.join(sorted(files)) or 'none'})")
        if use_normals:
            raise DataError(f"{root}: use_normals=True but ScanObjectNN has no normals")
        points, labels, _ = _read(files[split])
        if num_points is not None and num_points > points.shape[1]:
            raise DataError(f"{files[split]}: shapes have {points.shape[1]} points, fewer than the {num_points} asked for")
        ids = [f"{files[split].name}#{i}" for i in range(len(labels))]
        return PointCloudDataset(points, labels, CLASS_NAMES, ids=ids, num_points=num_points)

    def describe(self, root):
        splits, items = {}, []
        for split, path in sorted(_split_files(root).items()):
            points, labels, mask = _read(path)
            extra = {"file": path.name}
            if mask is not None:
                extra["background_fraction"] = round(float((mask == -1).mean()), 4)
            splits[split] = split_info(Counter(labels.tolist()), CLASS_NAMES, points.shape[1], False, **extra)
            items += cloud_items(split, points, [f"{path.name}#{i}" for i in range(len(labels))])
        return {"classes": list(CLASS_NAMES), "splits": splits, "duplicates": duplicate_report(items, "identical clouds (any point order)")}
