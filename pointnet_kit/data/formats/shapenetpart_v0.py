"""``shapenetpart_v0``: ``shapenetcore_partanno_segmentation_benchmark_v0``.

``<synset>/points/<id>.pts`` (``x y z`` rows) and ``<synset>/points_label/<id>.seg`` (one part id
per point, numbered from 1 within the category, mapped here to the global 0-49 numbering), with
``synsetoffset2category.txt`` and ``train_test_split/``. No normals.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DataError
from ..io import read_point_cloud
from ..registry import register_format
from ..shapenetpart import TextLayoutFormat, global_part_ids


def _points_file(root: Path, synset: str, shape_id: str) -> Path:
    return root / synset / "points" / f"{shape_id}.pts"


def read_shape_file(points_file: Path, category: str | None):
    """One ``.pts`` file and its ``../points_label/<id>.seg``: ``(points (n, 3), None, global part ids (n,))``.

    The part ids are ``None`` when there is no ``.seg`` or no ``category`` to number them in.
    """
    points, _ = read_point_cloud(points_file)
    seg = points_file.parent.parent / "points_label" / f"{points_file.stem}.seg"
    if category is None or not seg.is_file():
        return points, None, None
    try:
        local = np.loadtxt(seg, dtype=np.int64, ndmin=1)
    except ValueError as exc:
        raise DataError(f"{seg}: not one integer part id per line ({exc})") from exc
    if len(local) != len(points):
        raise DataError(f"{seg}: {len(local)} labels for {len(points)} points in {points_file.name}")
    return points, None, global_part_ids(category, local, str(seg))


def _read_shape(root: Path, synset: str, category: str, shape_id: str):
    seg = root / synset / "points_label" / f"{shape_id}.seg"
    if not seg.is_file():
        raise DataError(f"{seg}: no such file (every .pts has a .seg with its part labels)")
    return read_shape_file(_points_file(root, synset, shape_id), category)


@register_format
class ShapeNetPartV0Format(TextLayoutFormat):
    name = "shapenetpart_v0"
    layout = "ShapeNetPart v0 (synsetoffset2category.txt + <synset>/points/*.pts + <synset>/points_label/*.seg)"
    kind, normals = "v0", False
    shape_file, read_shape = staticmethod(_points_file), staticmethod(_read_shape)

    def detect(self, root: Path) -> bool:
        return (root / "synsetoffset2category.txt").is_file() and any(root.glob("*/points/*.pts"))
