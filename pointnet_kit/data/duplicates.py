"""Finding duplicate shapes in a dataset: identical clouds (in any point order) or identical files.

A duplicate across train and test inflates test accuracy; inside train it weighs a shape twice.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["cloud_digest", "file_digest", "duplicate_report", "cloud_items", "file_items", "near_duplicate_items", "FILE_BYTES_LIMIT"]

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


NEAR_RATIO = 1.25  # two random samplings of one surface score 1.0-1.2 (11 ModelNet meshes); different shapes mostly > 1.3
DESC_TOL = 0.08  # descriptor distance (at 1024 points; noise grows as 1/sqrt(N)) beyond which clouds are not compared
NEIGHBOURS = 8


def _descriptors(points: "torch.Tensor") -> "torch.Tensor":
    """Per-cloud statistics that do not depend on which points were sampled: per-axis spread and
    extent, and the histogram of distances from the centroid."""
    import torch

    centred = points - points.mean(1, keepdim=True)
    radius = centred.norm(dim=2)
    bins = torch.bucketize(radius / radius.amax(1, keepdim=True).clamp_min(1e-12), torch.linspace(0, 1, 17)[1:-1])
    hist = torch.zeros(len(points), 16).scatter_add_(1, bins, torch.ones_like(radius)) / points.shape[1]
    return torch.cat([centred.std(1), centred.amin(1), centred.amax(1), hist], 1)


def _chamfer(a: "torch.Tensor", b: "torch.Tensor") -> float:
    import torch

    d = torch.cdist(a, b)
    return float(d.min(1).values.mean() + d.min(0).values.mean()) / 2


def _sampling_noise(cloud: "torch.Tensor") -> float:
    """The Chamfer distance two independent samplings of this cloud's surface would have: from two
    random halves of it, scaled from N/2 to N points (NN distances on a surface go as 1/sqrt(N))."""
    import torch

    order = torch.randperm(len(cloud), generator=torch.Generator().manual_seed(0))
    half = len(cloud) // 2
    return _chamfer(cloud[order[:half]], cloud[order[half:]]) / 2**0.5


def near_duplicate_items(splits: Sequence[tuple[str, np.ndarray, Sequence[str] | None]]) -> list[tuple[str, str, str]]:
    """``(split, id, group)`` items (for :func:`duplicate_report`) grouping clouds that are the same
    surface sampled twice: Chamfer distance no larger than ``NEAR_RATIO`` times the sampling noise.

    Sampled datasets (ModelNet's HDF5) never repeat a cloud exactly: a duplicated mesh gives two
    different samplings, which only this test finds. Candidates come from cheap descriptors, so the
    cost is one descriptor distance matrix plus a few point-by-point comparisons.
    """
    import torch

    names = [(split, ids[i] if ids is not None else f"#{i}") for split, points, ids in splits for i in range(len(points))]
    if len(names) < 2:
        return []
    clouds = torch.from_numpy(np.concatenate([np.asarray(p[..., :3], np.float32) for _, p, _ in splits]))
    desc = _descriptors(clouds)
    parent = list(range(len(clouds)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    noise: dict[int, float] = {}
    tol = DESC_TOL * (1024 / clouds.shape[1]) ** 0.5
    k = min(NEIGHBOURS + 1, len(clouds))
    for start in range(0, len(clouds), 1024):
        dist = torch.cdist(desc[start : start + 1024], desc)
        values, index = dist.topk(k, largest=False)
        for row, (vals, cols) in enumerate(zip(values.tolist(), index.tolist())):
            i = start + row
            for v, j in zip(vals, cols):
                if j <= i or v > tol or find(i) == find(j):
                    continue
                for m in (i, j):
                    if m not in noise:
                        noise[m] = _sampling_noise(clouds[m])
                if _chamfer(clouds[i], clouds[j]) <= NEAR_RATIO * (noise[i] + noise[j]) / 2:
                    parent[find(j)] = find(i)
    return [(split, shape_id, str(find(i))) for i, (split, shape_id) in enumerate(names)]
