"""``shapenetpart_v0_normal``: ``shapenetcore_partanno_segmentation_benchmark_v0_normal``.

``<synset>/<id>.txt`` with ``x y z nx ny nz part`` rows (part ids global, 0-49), with
``synsetoffset2category.txt`` and ``train_test_split/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DataError
from ..registry import register_format
from ..shapenetpart import CATEGORY_PARTS, PART_NAMES, TextLayoutFormat


def _shape_file(root: Path, synset: str, shape_id: str) -> Path:
    return root / synset / f"{shape_id}.txt"


def read_shape_file(path: Path, category: str | None):
    """One ``x y z nx ny nz part`` file: ``(points (n, 3), normals (n, 3), global part ids (n,))``, the
    ids checked against ``category``'s when it is known."""
    try:
        rows = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise DataError(f"{path}: not rows of 7 numbers x y z nx ny nz part ({exc})") from exc
    if rows.shape[1] != 7 or len(rows) == 0:
        raise DataError(f"{path}: expected rows of 7 numbers x y z nx ny nz part, got shape {rows.shape}")
    if not np.isfinite(rows).all():
        raise DataError(f"{path}: contains NaN or infinite values")
    parts = rows[:, 6].astype(np.int64)
    allowed = CATEGORY_PARTS[category] if category is not None else [0, len(PART_NAMES) - 1]
    if parts.min() < allowed[0] or parts.max() > allowed[-1]:
        owner = f"{category}'s global ids are" if category is not None else "ShapeNetPart's global ids are"
        raise DataError(f"{path}: part ids span {parts.min()}..{parts.max()}, but {owner} {allowed[0]}..{allowed[-1]}")
    return rows[:, :3].astype(np.float32), rows[:, 3:6].astype(np.float32), parts


def _read_shape(root: Path, synset: str, category: str, shape_id: str):
    return read_shape_file(_shape_file(root, synset, shape_id), category)


@register_format
class ShapeNetPartNormalFormat(TextLayoutFormat):
    name = "shapenetpart_v0_normal"
    layout = "ShapeNetPart v0_normal (synsetoffset2category.txt + <synset>/*.txt with x y z nx ny nz part)"
    kind, normals = "v0_normal", True
    shape_file, read_shape = staticmethod(_shape_file), staticmethod(_read_shape)

    def detect(self, root: Path) -> bool:
        return (root / "synsetoffset2category.txt").is_file() and any(root.glob("[0-9]*/*.txt"))
