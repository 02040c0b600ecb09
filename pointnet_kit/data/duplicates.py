"""Finding duplicate shapes in a dataset: identical clouds (in any point order) or identical files.

A duplicate across train and test inflates test accuracy; inside train it weighs a shape twice.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

__all__ = ["cloud_digest", "file_digest", "duplicate_report", "cloud_items", "file_items", "FILE_BYTES_LIMIT"]

FILE_BYTES_LIMIT = 512 << 20  # hashing more than this many bytes of files is too slow for `data info`


def cloud_digest(points: np.ndarray) -> str:
    """A digest of a ``(N, C)`` cloud that ignores the order of its points (rows sorted first)."""
    points = np.ascontiguousarray(points, dtype=np.float32)
    rows = points[np.lexsort(points.T[::-1])]
    return hashlib.sha1(rows.tobytes()).hexdigest()


def file_digest(path: str | Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def duplicate_report(items: Iterable[tuple[str, str, str]], method: str, max_examples: int = 5) -> dict:
    """Group ``(split, id, digest)`` items by digest.

    Returns:
        ``{"method", "groups": groups of 2+ identical shapes, "extra_shapes": shapes beyond the first
        of each group, "cross_split": groups spanning two splits, "per_split": {split: extra copies
        inside that split}, "examples": [[ "split:id", ...], ...]}``.
    """
    by_digest: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for split, shape_id, digest in items:
        by_digest[digest].append((split, shape_id))
    groups = [members for members in by_digest.values() if len(members) > 1]
    groups.sort(key=lambda m: (-len(m), m))
    per_split: dict[str, int] = defaultdict(int)
    for members in groups:
        for split in {s for s, _ in members}:
            per_split[split] += sum(1 for s, _ in members if s == split) - 1
    return {
        "method": method,
        "groups": len(groups),
        "extra_shapes": sum(len(m) - 1 for m in groups),
        "cross_split": sum(1 for m in groups if len({s for s, _ in m}) > 1),
        "per_split": {k: v for k, v in sorted(per_split.items()) if v},
        "examples": [[f"{s}:{i}" for s, i in m] for m in groups[:max_examples]],
    }


def cloud_items(split: str, points: np.ndarray, ids: Sequence[str] | None) -> list[tuple[str, str, str]]:
    """``(split, id, digest)`` for every cloud of ``points (M, N, 3)`` (ids default to row numbers)."""
    names = list(ids) if ids is not None else [f"#{i}" for i in range(len(points))]
    return [(split, names[i], cloud_digest(points[i])) for i in range(len(points))]


def file_items(entries: Sequence[tuple[str, str, Path]], limit: int = FILE_BYTES_LIMIT) -> list[tuple[str, str, str]] | None:
    """``(split, id, digest)`` of files given as ``(split, id, path)``; ``None`` when they hold more
    than ``limit`` bytes in total (the caller says the check was skipped)."""
    if sum(p.stat().st_size for _, _, p in entries) > limit:
        return None
    return [(split, shape_id, file_digest(path)) for split, shape_id, path in entries]
