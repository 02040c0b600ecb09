"""ModelNet layouts besides HDF5: ``modelnet40_normal_resampled`` text files, and ``describe`` for ``data info``.

``modelnet40_normal_resampled`` (PointNet++) holds ``modelnet40_shape_names.txt``,
``modelnet40_{train,test}.txt`` (shape ids like ``airplane_0001``) and ``<class>/<id>.txt`` with
10,000 rows ``x,y,z,nx,ny,nz``; the ``modelnet10_*`` lists select its ModelNet10 subset. Parsing
12,311 text files takes minutes, so it is done once into an HDF5 cache.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import DataError
from .cache import atomic_dir, default_cache_dir
from .hdf5 import SHAPE_NAMES, hdf5_splits, read_class_names, write_hdf5_split
from .io import read_point_cloud
from .prepare import REPORT_NAME, discover_off, parallel_map, read_report
from .sampling import normalize_unit_sphere

__all__ = ["normal_resampled_cache", "read_normal_resampled", "describe", "format_info"]


def _variant(root: Path) -> str:
    names = sorted(root.glob("modelnet*_shape_names.txt"))
    if not names:
        raise DataError(f"{root}: no modelnet40_shape_names.txt (or modelnet10_...) in this folder")
    prefixes = [p.name[: -len("_shape_names.txt")] for p in names]
    return "modelnet40" if "modelnet40" in prefixes else prefixes[0]


def _normal_resampled_splits(root: Path, variant: str) -> dict[str, list[str]]:
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


def read_normal_resampled(root: str | Path, split: str = "train", num_points: int = 1024, workers: int | None = None, progress: bool | None = None):
    """One split of ``modelnet40_normal_resampled``: ``(points, normals, labels, ids, class_names)``.

    Keeps the first ``num_points`` of each file's points (as PointNet++ does without FPS).
    """
    root = Path(root)
    variant = _variant(root)
    class_names = read_class_names(root / f"{variant}_shape_names.txt")
    splits = _normal_resampled_splits(root, variant)
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


def normal_resampled_cache(root: str | Path, num_points: int = 1024, cache_dir: str | Path | None = None) -> Path:
    """The HDF5 cache of a ``modelnet40_normal_resampled`` folder (all its splits), built on first use."""
    root = Path(root).resolve()
    variant = _variant(root)
    listings = sorted(root.glob(f"{variant}_*.txt"))
    key = hashlib.sha1("".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns};" for p in listings).encode()).hexdigest()[:12]
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = base / "normal_resampled" / f"{root.name}-{variant}-{key}-n{num_points}"
    if not (target / SHAPE_NAMES).is_file():
        with atomic_dir(target) as tmp:
            for split in _normal_resampled_splits(root, variant):
                points, normals, labels, ids, names = read_normal_resampled(root, split, num_points)
                write_hdf5_split(tmp, split, points, labels, names, normals=normals, ids=ids)
    return target


def describe(root: str | Path) -> dict[str, Any]:
    """What a dataset folder holds, without loading the points: format, splits, shapes per split and
    per class, class names, points per shape, normals."""
    from .datasets import detect_format

    fmt, folder = detect_format(root)
    info: dict[str, Any] = {"root": str(Path(root)), "folder": str(folder), "format": fmt}
    splits: dict[str, dict[str, Any]] = {}
    if fmt == "hdf5":
        names_file = folder / SHAPE_NAMES
        class_names = read_class_names(names_file) if names_file.is_file() else None
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
            splits[split] = _split_info(counts, class_names, points, normals, files=len(files))
        info["classes"] = class_names or []
        report = read_report(folder)
        if report:
            info["prepare_report"] = {k: report[k] for k in ("source", "num_points", "prepared", "skipped") if k in report}
    elif fmt == "off":
        entries = discover_off(folder)
        class_names = sorted({e.class_name for e in entries})
        label_of = {n: i for i, n in enumerate(class_names)}
        for split in sorted({e.split for e in entries}):
            counts = Counter(label_of[e.class_name] for e in entries if e.split == split)
            splits[split] = _split_info(counts, class_names, None, None)
        info["classes"] = class_names
        info["note"] = "meshes: 'pointnet-kit data prepare' samples them into points (open_dataset does it on first use)"
    else:
        variant = _variant(folder)
        class_names = read_class_names(folder / f"{variant}_shape_names.txt")
        label_of = {n: i for i, n in enumerate(class_names)}
        for split, ids in sorted(_normal_resampled_splits(folder, variant).items()):
            counts = Counter(label_of.get(i.rsplit("_", 1)[0], -1) for i in ids)
            first = _shape_file(folder, ids[0]) if ids else None
            n = sum(1 for _ in first.open()) if first is not None and first.is_file() else None
            splits[split] = _split_info(counts, class_names, n, True)
        info["classes"] = class_names
        info["variant"] = variant
    info["num_classes"] = len(info["classes"])
    info["splits"] = splits
    return info


def _split_info(counts: Counter, class_names: list[str], points: int | None, normals: bool | None, **extra) -> dict[str, Any]:
    per_class = {class_names[k] if 0 <= k < len(class_names) else f"<unknown label {k}>": int(v) for k, v in sorted(counts.items())}
    return {"shapes": int(sum(counts.values())), "per_class": per_class, "points_per_shape": points, "normals": normals, **extra}


def format_info(info: dict[str, Any]) -> str:
    """``describe``'s result as a short human-readable text."""
    lines = [f"{info['folder']}: {info['format']} dataset, {info['num_classes']} classes"]
    for split, s in info["splits"].items():
        points = f", {s['points_per_shape']} points per shape" if s["points_per_shape"] else ""
        normals = "" if s["normals"] is None else (", normals" if s["normals"] else ", no normals")
        lines.append(f"  {split}: {s['shapes']} shapes{points}{normals}")
        counts = s["per_class"]
        lines.append("    " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if "note" in info:
        lines.append(f"  note: {info['note']}")
    report = info.get("prepare_report")
    if report and report.get("skipped"):
        lines.append(f"  skipped when prepared: {len(report['skipped'])} mesh(es), see {REPORT_NAME}")
    return "\n".join(lines)

