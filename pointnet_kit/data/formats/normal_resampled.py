"""``normal_resampled``: PointNet++'s ``modelnet40_normal_resampled`` text files.

The folder holds ``modelnet40_shape_names.txt``, ``modelnet40_{train,test}.txt`` (shape ids like
``airplane_0001``) and ``<class>/<id>.txt`` with 10,000 rows ``x,y,z,nx,ny,nz``; the
``modelnet10_*`` lists select its ModelNet10 subset. Parsing 12,311 text files takes minutes, so it
is done once into an HDF5 cache.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..cache import atomic_dir, default_cache_dir
from ..duplicates import duplicate_report, file_items
from ..hdf5 import SHAPE_NAMES, read_class_names, write_hdf5_split
from ..io import read_point_cloud
from ..prepare import parallel_map
from ..record import STORED_POINTS
from ..registry import DatasetFormat, register_format
from ..sampling import normalize_unit_sphere
from .hdf5 import dataset_from_hdf5, split_info

__all__ = ["NormalResampledFormat", "read_normal_resampled", "normal_resampled_cache"]


def _variant(root: Path) -> str:
    names = sorted(root.glob("modelnet*_shape_names.txt"))
    if not names:
        raise DataError(f"{root}: no modelnet40_shape_names.txt (or modelnet10_...) in this folder")
    prefixes = [p.name[: -len("_shape_names.txt")] for p in names]
    return "modelnet40" if "modelnet40" in prefixes else prefixes[0]


def _splits(root: Path, variant: str) -> dict[str, list[str]]:
    splits = {}
    for listing in sorted(root.glob(f"{variant}_*.txt")):
        split = listing.stem[len(variant) + 1 :]
        if split == "shape_names":
            continue
        splits[split] = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    return splits


def _shape_file(root: Path, shape_id: str) -> Path:
    return root / shape_id.rsplit("_", 1)[0] / f"{shape_id}.txt"


def _read_one(task: tuple[str, int]) -> tuple[np.ndarray, np.ndarray] | str:
    path, num_points = task
    try:
        points, normals = read_point_cloud(path)
        if normals is None:
            raise DataError(f"{path}: expected 6 columns x,y,z,nx,ny,nz")
        if len(points) < num_points:
            raise DataError(f"{path}: {len(points)} points, fewer than {num_points}")
        return normalize_unit_sphere(points[:num_points], name=path), normals[:num_points]
    except DataError as exc:
        return str(exc)


def read_normal_resampled(root: str | Path, split: str, num_points: int, workers: int | None = None, progress: bool | None = None):
    """One split of ``modelnet40_normal_resampled``: ``(points, normals, labels, ids, class_names)``.

    Keeps the first ``num_points`` of each file's points (as PointNet++ does without FPS).
    """
    root = Path(root)
    variant = _variant(root)
    class_names = read_class_names(root / f"{variant}_shape_names.txt")
    splits = _splits(root, variant)
    if split not in splits:
        raise DataError(f"{root}: no {variant}_{split}.txt (splits found: {', '.join(sorted(splits)) or 'none'})")
    ids = splits[split]
    label_of = {name: i for i, name in enumerate(class_names)}
    labels = []
    for shape_id in ids:
        cls = shape_id.rsplit("_", 1)[0]
        if cls not in label_of:
            raise DataError(f"{root / f'{variant}_{split}.txt'}: shape {shape_id!r} has class {cls!r}, not in {variant}_shape_names.txt")
        labels.append(label_of[cls])
    tasks = [(str(_shape_file(root, i)), num_points) for i in ids]
    results = list(parallel_map(_read_one, tasks, workers, desc=f"read {variant} {split}", progress=progress))
    broken = [r for r in results if isinstance(r, str)]
    if broken:
        raise DataError(f"{root}: {len(broken)} broken shape file(s); first: {broken[0]}")
    points = np.stack([r[0] for r in results])
    normals = np.stack([r[1] for r in results])
    return points, normals, np.asarray(labels), [f"{i.rsplit('_', 1)[0]}/{i}.txt" for i in ids], class_names


def normal_resampled_cache(root: str | Path, num_points: int, cache_dir: str | Path | None = None) -> Path:
    """The HDF5 cache of a ``modelnet40_normal_resampled`` folder (all its splits), built on first use."""
    root = Path(root).resolve()
    variant = _variant(root)
    listings = sorted(root.glob(f"{variant}_*.txt"))
    key = hashlib.sha1("".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns};" for p in listings).encode()).hexdigest()[:12]
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = base / "normal_resampled" / f"{root.name}-{variant}-{key}-n{num_points}"
    if not (target / SHAPE_NAMES).is_file():
        with atomic_dir(target) as tmp:
            for split in _splits(root, variant):
                points, normals, labels, ids, names = read_normal_resampled(root, split, num_points)
                write_hdf5_split(tmp, split, points, labels, names, normals=normals, ids=ids)
    return target


@register_format
class NormalResampledFormat(DatasetFormat):
    name = "normal_resampled"
    task = "classification"
    up_axis = "y"  # the PointNet++ text release is y-up, like the 2048 HDF5 release
    layout = "modelnet40_normal_resampled (modelnet40_shape_names.txt + <class>/<class>_NNNN.txt)"

    def detect(self, root: Path) -> bool:
        return any(root.glob("modelnet*_shape_names.txt"))

    def read(self, root, split, num_points, use_normals, cache_dir=None):
        folder = normal_resampled_cache(root, num_points=num_points or STORED_POINTS, cache_dir=cache_dir)
        return dataset_from_hdf5(folder, split, num_points, use_normals)

    def describe(self, root):
        variant = _variant(root)
        class_names = read_class_names(root / f"{variant}_shape_names.txt")
        label_of = {n: i for i, n in enumerate(class_names)}
        splits, entries = {}, []
        for split, ids in sorted(_splits(root, variant).items()):
            counts = Counter(label_of.get(i.rsplit("_", 1)[0], -1) for i in ids)
            first = _shape_file(root, ids[0]) if ids else None
            n = sum(1 for _ in first.open()) if first is not None and first.is_file() else None
            splits[split] = split_info(counts, class_names, n, True)
            entries += [(split, i, _shape_file(root, i)) for i in ids if _shape_file(root, i).is_file()]
        items = file_items(entries)
        return {
            "classes": class_names,
            "splits": splits,
            "variant": variant,
            "duplicates": duplicate_report(items, "identical files") if items is not None else None,
        }
