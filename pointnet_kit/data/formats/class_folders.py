"""``class_folders``: your own data, one folder per class.

``<class>/*.<ext>`` (every file in ``train``) or ``<class>/{train,test}/*.<ext>``, with any mesh or
point cloud format :mod:`~pointnet_kit.data.io` reads (``.off .obj .ply .stl .npy .npz .txt .xyz
.pcd .pts``), mixed freely. Each file is sampled (meshes) or reduced/padded (clouds) to the same
number of points and normalised to the unit sphere once, into an HDF5 cache keyed by the files'
names, sizes and times; later runs read the cache. Broken files are skipped and listed in the
cache's report (``data info`` shows them). Normals are kept when every file has them.

A tree of OFF meshes only is the ``off`` format (ModelNet); this format takes any other mix.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..cache import atomic_dir, default_cache_dir, files_fingerprint
from ..duplicates import duplicate_report, file_items
from ..hdf5 import write_hdf5_split
from ..io import CLOUD_SUFFIXES, MESH_SUFFIXES, load_points
from ..prepare import REPORT_NAME, SPLIT_DIRS, parallel_map, read_report
from ..record import stored_points
from ..registry import DatasetFormat, register_format
from .hdf5 import dataset_from_hdf5, split_info

log = logging.getLogger(__name__)

SUFFIXES = tuple(sorted(set(MESH_SUFFIXES + CLOUD_SUFFIXES)))
PARALLEL_FROM = 64  # fewer files are faster in this process than through a process pool
# files that make a folder a dataset of its own, not a class of this one (e.g. data/modelnet40_ply_hdf5_2048/)
DATASET_MARKERS = ("*.h5", "*.hdf5", "*shape_names.txt", "*_files.txt", "synsetoffset2category.txt")


@dataclass(frozen=True)
class Entry:
    path: Path
    rel: str
    class_name: str
    split: str


def discover(root: Path) -> list[Entry]:
    """Every readable-format file under ``root/<class>/`` with its class and split, sorted."""
    entries = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX"))):
        for path in sorted(class_dir.rglob("*")):
            rel = path.relative_to(root)
            if path.suffix.lower() not in SUFFIXES or not path.is_file() or any(part.startswith(".") for part in rel.parts):
                continue
            folders = [p.lower() for p in rel.parts[1:-1]]
            split = next((p for p in folders if p in SPLIT_DIRS), "train")
            entries.append(Entry(path, rel.as_posix(), class_dir.name, split))
    return entries


def _sample_one(task: tuple[str, int, int]) -> tuple[np.ndarray, np.ndarray | None] | str:
    """Worker: one file -> (points, normals or None), or the error message (never raises for a bad file)."""
    path, num_points, seed = task
    try:
        try:
            cloud = load_points(path, num_points=num_points, seed=seed, normalize=True, normals=True)
            return cloud[:, :3], cloud[:, 3:]
        except DataError as exc:
            if "normals were asked for" not in str(exc):
                raise
            return load_points(path, num_points=num_points, seed=seed, normalize=True), None
    except DataError as exc:
        return str(exc)
    except Exception as exc:  # a file that breaks a reader in an unforeseen way is still one skipped file
        return f"{path}: {type(exc).__name__}: {exc}"


def class_folders_cache(root: Path, num_points: int, cache_dir: str | Path | None = None, seed: int = 0) -> Path:
    """The HDF5 cache (all splits) of a class-folder tree, built on first use."""
    root = Path(root).resolve()
    entries = discover(root)
    if not entries:
        raise DataError(f"{root}: no files of a known format ({', '.join(SUFFIXES)}) in its class folders")
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = base / "class_folders" / f"{root.name}-{files_fingerprint((e.rel, e.path) for e in entries)}-n{num_points}-s{seed}"
    if (target / REPORT_NAME).is_file():
        return target
    tasks = [(str(e.path), num_points, (seed * 1_000_003 + zlib.crc32(e.rel.encode())) % 2**32) for e in entries]
    workers = None if len(tasks) >= PARALLEL_FROM else 1
    results = list(parallel_map(_sample_one, tasks, workers, desc=f"sample {root.name}"))
    skipped = [{"file": e.rel, "error": r} for e, r in zip(entries, results) if isinstance(r, str)]
    kept = [(e, r) for e, r in zip(entries, results) if not isinstance(r, str)]
    if not kept:
        raise DataError(f"{root}: all {len(entries)} files are broken; first: {skipped[0]['error']}")
    class_names = sorted({e.class_name for e, _ in kept})
    has_normals = all(r[1] is not None for _, r in kept)
    with atomic_dir(target) as tmp:
        for split in sorted({e.split for e, _ in kept}):
            chosen = [(e, r) for e, r in kept if e.split == split]
            write_hdf5_split(
                tmp, split, np.stack([r[0] for _, r in chosen]),
                np.array([class_names.index(e.class_name) for e, _ in chosen]), class_names,
                normals=np.stack([r[1] for _, r in chosen]) if has_normals else None, ids=[e.rel for e, _ in chosen],
            )  # fmt: skip
        report = {"source": str(root), "num_points": num_points, "prepared": len(kept), "skipped": skipped, "normals": has_normals}
        (tmp / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    if skipped:
        log.warning("%d broken file(s) skipped, see %s", len(skipped), target / REPORT_NAME)
    return target


@register_format
class ClassFoldersFormat(DatasetFormat):
    name = "class_folders"
    task = "classification"
    up_axis = "z"
    layout = f"class folders (<class>/*.ext or <class>/{{train,test}}/*.ext; ext: {' '.join(SUFFIXES)})"

    def detect(self, root: Path) -> bool:
        classes = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if any(any(c.glob(marker)) for c in classes for marker in DATASET_MARKERS):
            return False
        # a tree of OFF meshes only is ModelNet's layout (the ``off`` format, which also reads flat folders)
        return any(e.path.suffix.lower() != ".off" for e in discover(root))

    def read(self, root, split, num_points, use_normals, cache_dir=None):
        found = sorted({e.split for e in discover(root)})
        if split not in found:
            raise DataError(f"{root}: no '{split}' split in these class folders (splits found: {', '.join(found)}; "
                            "put files in <class>/train/ and <class>/test/ to have both)")
        stored = stored_points(num_points)
        folder = class_folders_cache(root, stored, cache_dir)
        return dataset_from_hdf5(folder, split, num_points, use_normals)

    def describe(self, root):
        entries = discover(root)
        class_names = sorted({e.class_name for e in entries})
        splits = {}
        for split in sorted({e.split for e in entries}):
            chosen = [e for e in entries if e.split == split]
            counts = Counter(class_names.index(e.class_name) for e in chosen)
            suffixes = Counter(e.path.suffix.lower() for e in chosen)
            splits[split] = split_info(counts, class_names, None, None, files_by_type=dict(sorted(suffixes.items())))
        items = file_items([(e.split, e.rel, e.path) for e in entries])
        info = {
            "classes": class_names,
            "splits": splits,
            "duplicates": duplicate_report(items, "identical files") if items is not None else None,
            "note": "files are sampled and normalised into a cache on first use",
        }
        cached = sorted((default_cache_dir() / "class_folders").glob(f"{root.resolve().name}-{files_fingerprint((e.rel, e.path) for e in entries)}-*"))
        report = read_report(cached[-1]) if cached else None
        if report:
            info["prepare_report"] = {**{k: report[k] for k in ("num_points", "prepared", "skipped") if k in report}, "file": str(cached[-1] / REPORT_NAME)}
        return info
