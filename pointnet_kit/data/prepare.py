"""Prepare a folder of OFF meshes into the HDF5 layout, in parallel, skipping (and reporting) broken meshes.

Which class and split each mesh belongs to, from its path under the source folder:

- ``<class>/train/<name>.off`` / ``<class>/test/<name>.off`` (the official ModelNet zips): the class
  is the folder above ``train``/``test``;
- anything else, e.g. a flat folder of ``airplane_0001.off`` files, or folders of them: the class is
  the file name without its trailing ``_NNNN`` number, and the split is ``default_split`` ("train").
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import trimesh
from tqdm import tqdm

from ..errors import DataError
from .cache import atomic_dir, default_cache_dir, files_fingerprint
from .hdf5 import write_hdf5_split
from .io import read_mesh
from .record import RELEASE_POINTS, STORED_POINTS
from .sampling import normalize_unit_sphere, sample_surface

__all__ = ["MeshEntry", "discover_off", "prepare_off", "prepared_cache", "parallel_map", "read_report", "REPORT_NAME"]

log = logging.getLogger(__name__)

REPORT_NAME = "prepare_report.json"
SPLIT_DIRS = ("train", "test", "val", "valid", "validation")


@dataclass(frozen=True)
class MeshEntry:
    path: Path
    rel: str  # path relative to the source folder, with '/' separators
    class_name: str
    split: str


MAX_POINTS = 1_000_000  # per shape: more would not fit any model or memory budget for a dataset


def non_regular_off(src: str | Path) -> list[str]:
    """``.off`` entries under ``src`` that are not regular files (broken links, FIFOs, folders), relative."""
    src = Path(src)
    return sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.suffix.lower() == ".off" and not p.is_file()
                  and not any(part.startswith((".", "__MACOSX")) for part in p.relative_to(src).parts))


def discover_off(src: str | Path, default_split: str = "train") -> list[MeshEntry]:
    """Every ``.off`` regular file under ``src`` with its class and split (see the module docstring), sorted."""
    src = Path(src)
    entries = []
    for path in sorted(src.rglob("*")):
        if path.suffix.lower() != ".off" or not path.is_file():
            continue  # non-regular entries are reported by non_regular_off
        rel = path.relative_to(src)
        if any(part.startswith((".", "__MACOSX")) for part in rel.parts):
            continue  # macOS resource forks and hidden files that some zips carry
        folders = list(rel.parts[:-1])
        split_at = next((i for i, p in enumerate(folders) if p.lower() in SPLIT_DIRS), None)
        if split_at is not None and split_at > 0:
            class_name, split = folders[split_at - 1], folders[split_at].lower()
        else:
            match = re.match(r"^(.+?)_\d+$", path.stem)
            class_name = match.group(1) if match else (folders[-1] if folders else path.stem)
            split = folders[split_at].lower() if split_at is not None else default_split
        entries.append(MeshEntry(path, rel.as_posix(), class_name, split))
    return entries


def _sample_one(task: tuple[str, int, bool, int, int]) -> tuple[np.ndarray, np.ndarray | None] | str:
    """Worker: one mesh -> normalised samples, or the error message (never raises for a bad mesh)."""
    path, num_points, normals, seed, oversample = task
    try:
        mesh = read_mesh(path)
        # Sample a copy near the origin: float32 samples of far-from-origin coordinates lose their detail.
        mesh = trimesh.Trimesh(mesh.vertices - mesh.bounds.mean(axis=0), mesh.faces, process=False)
        points, point_normals = sample_surface(mesh, num_points, normals=True, oversample=oversample, seed=seed, name=path)
        points = normalize_unit_sphere(points, name=path)
    except DataError as exc:
        return str(exc)
    except Exception as exc:  # a mesh that breaks trimesh in an unforeseen way is still just one skipped file
        return f"{path}: {type(exc).__name__}: {exc}"
    return points, (point_normals if normals else None)


def parallel_map(fn: Callable[[Any], Any], items: Sequence[Any], workers: int | None = None, desc: str = "", progress: bool | None = None) -> Iterable[Any]:
    """``map(fn, items)`` over a process pool (``workers`` processes; 1 runs here), in order, with a
    tqdm progress bar that is quiet when stderr is not a terminal (``progress=None``)."""
    workers = max(1, workers or os.cpu_count() or 1)
    disable = not (progress if progress is not None else _is_tty())
    bar = tqdm(total=len(items), desc=desc, unit="shape", disable=disable, dynamic_ncols=True)
    try:
        if workers == 1 or len(items) <= 1:
            for item in items:
                yield fn(item)
                bar.update()
        else:
            chunk = max(1, min(16, len(items) // (workers * 8)))
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for result in pool.map(fn, items, chunksize=chunk):
                    yield result
                    bar.update()
    finally:
        bar.close()


def _is_tty() -> bool:
    return sys.stderr.isatty()


def _seed_for(seed: int, rel: str) -> int:
    """A per-file seed that depends on the file, not on the order or the worker that handles it."""
    return (seed * 1_000_003 + zlib.crc32(rel.encode())) % 2**32


def prepare_off(
    src: str | Path,
    out: str | Path,
    num_points: int = RELEASE_POINTS,
    normals: bool = False,
    workers: int | None = None,
    seed: int = 0,
    default_split: str = "train",
    oversample: int = 1,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Sample every OFF mesh under ``src`` into an HDF5 folder ``out`` (the release layout).

    Broken meshes (and ``.off`` entries that are not regular files) are skipped and listed in the
    returned report, which is also written to ``out/prepare_report.json``; classes are those of the
    meshes kept. Points are area-weighted surface samples in random order, normalised to the unit
    sphere. The folder is built beside ``out`` and renamed into place, so ``out`` is never half written.

    Args:
        src: the OFF folder (see the module docstring for how classes and splits are read).
        out: output folder; created, or overwritten if it holds an earlier prepare.
        num_points: points per shape.
        normals: also store the face normal of each point (``normal`` dataset).
        workers: processes (default: all cores).
        seed: sampling seed; each file gets its own seed derived from it and its path.
        default_split: split of meshes that are not under a ``train``/``test`` folder.
        oversample: if > 1, sample ``oversample * num_points`` and keep ``num_points`` by farthest
            point sampling (more even, slower).

    Raises:
        DataError: no OFF files, an output folder that holds something else, or every mesh broken.
    """
    src, out = Path(src), Path(out)
    if not 1 <= num_points <= MAX_POINTS:
        raise DataError(f"--num-points must be in 1..{MAX_POINTS}, got {num_points}")
    if not 1 <= oversample <= 64 or num_points * oversample > 16 * MAX_POINTS:
        raise DataError(f"--fps must be in 1..64 and fps x num-points at most {16 * MAX_POINTS}, got {oversample} x {num_points}")
    if not src.is_dir():
        raise DataError(f"{src}: no such folder (expected a folder of .off meshes)")
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder; choose another --out")
    if out.exists() and any(out.iterdir()) and not (out / REPORT_NAME).is_file():
        raise DataError(f"{out}: the output folder is not empty and was not made by 'data prepare'; choose another --out")
    entries = discover_off(src, default_split)
    irregular = [{"file": rel, "error": f"{src / rel}: not a regular file (broken link, FIFO or folder)"} for rel in non_regular_off(src)]
    if not entries:
        extra = f" ({len(irregular)} .off entries are not regular files)" if irregular else ""
        raise DataError(f"{src}: no .off files found{extra} (expected <class>/train|test/*.off or <class>_NNNN.off files)")
    tasks = [(str(e.path), num_points, normals, _seed_for(seed, e.rel), oversample) for e in entries]
    start = time.perf_counter()
    results = list(parallel_map(_sample_one, tasks, workers, desc=f"prepare {src.name}", progress=progress))
    seconds = time.perf_counter() - start
    skipped = irregular + [{"file": e.rel, "error": r} for e, r in zip(entries, results) if isinstance(r, str)]
    kept = [(e, r) for e, r in zip(entries, results) if not isinstance(r, str)]
    if not kept:
        first = skipped[-1]
        reason = first["error"].split(": ", 1)[-1]  # the error names the full path; the relative one is enough here
        raise DataError(f"{src}: all {len(entries)} meshes are broken; first, {first['file']}: {reason}")
    class_names = sorted({e.class_name for e, _ in kept})  # a broken mesh's name is not a class
    label_of = {name: i for i, name in enumerate(class_names)}
    with _replace_dir(out) as tmp:
        splits = _write_splits(tmp, kept, class_names, label_of, normals)
        used_workers = max(1, workers or os.cpu_count() or 1)
        report = {
            "source": str(src.resolve()),
            "num_points": num_points,
            "normals": normals,
            "seed": seed,
            "oversample": oversample,
            "workers": used_workers,
            "classes": class_names,
            "splits": splits,
            "meshes": len(entries) + len(irregular),
            "prepared": len(kept),
            "skipped": skipped,
            "seconds": round(seconds, 3),
            "shapes_per_second": round(len(entries) / seconds, 2) if seconds > 0 else None,
            "shapes_per_second_per_core": round(len(entries) / seconds / used_workers, 2) if seconds > 0 else None,
        }
        (tmp / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    return report


TMP_MARK = ".prepare-tmp-"


@contextmanager
def _replace_dir(out: Path) -> Iterator[Path]:
    """A fresh folder beside ``out`` to write into; on success it replaces ``out`` (an earlier prepare,
    or an empty folder), on failure it is removed. Orphans of killed runs are cleaned up first."""
    out.parent.mkdir(parents=True, exist_ok=True)
    for orphan in out.parent.glob(f".{out.name}{TMP_MARK}*"):
        shutil.rmtree(orphan, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}{TMP_MARK}", dir=out.parent))
    try:
        yield tmp
        if out.exists() and any(out.iterdir()):  # an earlier prepare: move it aside, then swap
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}{TMP_MARK}old-", dir=out.parent))
            os.replace(out, old / "old")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)  # onto nothing or an empty folder
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_splits(out: Path, kept: list, class_names: list[str], label_of: dict[str, int], normals: bool) -> dict[str, int]:
    splits: dict[str, int] = {}
    for split in sorted({e.split for e, _ in kept}):
        chosen = [(e, r) for e, r in kept if e.split == split]
        write_hdf5_split(
            out,
            split,
            np.stack([r[0] for _, r in chosen]),
            np.array([label_of[e.class_name] for e, _ in chosen]),
            class_names,
            normals=np.stack([r[1] for _, r in chosen]) if normals else None,
            ids=[e.rel for e, _ in chosen],
        )
        splits[split] = len(chosen)
    return splits


def prepared_cache(
    src: str | Path,
    split: str = "train",
    num_points: int = STORED_POINTS,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    seed: int = 0,
) -> Path:
    """The HDF5 cache of an OFF folder (with normals), prepared on first use and reused while the
    files are unchanged.

    Raises:
        DataError: no OFF files, or no mesh of ``split``.
    """
    src = Path(src).resolve()
    entries = discover_off(src)
    if not entries:
        raise DataError(f"{src}: no .off files found")
    found = sorted({e.split for e in entries})
    if split not in found:
        raise DataError(f"{src}: no '{split}' split among these OFF meshes (splits found: {', '.join(found)})")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = files_fingerprint((f"{e.rel}\0{e.class_name}\0{e.split}", e.path) for e in entries)
    target = root / "prepared" / f"{src.name}-{key}-n{num_points}-s{seed}"
    if not (target / REPORT_NAME).is_file():
        with atomic_dir(target) as tmp:
            report = prepare_off(src, tmp, num_points=num_points, normals=True, workers=workers, seed=seed)
        if report["skipped"]:
            log.warning("%d broken mesh(es) skipped, see %s", len(report["skipped"]), target / REPORT_NAME)
    return target


def read_report(folder: str | Path) -> dict[str, Any] | None:
    """The prepare report of a folder, if it has one."""
    path = Path(folder) / REPORT_NAME
    return json.loads(path.read_text()) if path.is_file() else None
