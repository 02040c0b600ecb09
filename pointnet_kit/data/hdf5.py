"""The HDF5 folder layout of the ``modelnet40_ply_hdf5_2048`` release: read it and write it.

A folder holds, per split (``train``, ``test``, ...):

- ``ply_data_<split><i>.h5``: ``data`` float32 ``(n, N, 3)``, ``label`` uint8 ``(n, 1)``, and
  optionally ``normal`` float32 ``(n, N, 3)`` and ``pid`` ``(n, N)`` per-point part ids (the
  ``shapenet_part_seg_hdf5_data`` release);
- ``<split>_files.txt`` (or the part release's ``<split>_hdf5_file_list.txt``): the ``.h5`` files of
  the split, one a line (only the file name is used, so the release's
  ``data/modelnet40_ply_hdf5_2048/ply_data_train0.h5`` entries work as they are);
- ``ply_data_<split>_<i>_id2file.json``: the source file of each shape (optional);

and ``shape_names.txt``: one class name a line, in label order.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from ..errors import DataError

__all__ = ["HDF5Split", "hdf5_splits", "read_hdf5_split", "write_hdf5_split", "read_class_names"]

SHAPE_NAMES = "shape_names.txt"


@dataclass
class HDF5Split:
    """One split of an HDF5 folder, read into memory."""

    points: np.ndarray  # (M, N, 3) float32
    labels: np.ndarray  # (M,) int64
    class_names: list[str]
    normals: np.ndarray | None = None  # (M, N, 3) float32
    ids: list[str] | None = None
    part_labels: np.ndarray | None = None  # (M, N) int64, from ``pid``


def _read_text(path: Path) -> str:
    try:
        return Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})") from None


def read_class_names(path: Path) -> list[str]:
    names = [line.strip() for line in _read_text(path).splitlines() if line.strip()]
    if not names:
        raise DataError(f"{path}: no class names in it")
    return names


def hdf5_splits(root: str | Path) -> dict[str, list[Path]]:
    """The ``.h5`` files of each split in ``root``: from ``<split>_files.txt`` where present, else from
    the file names (``..._<split><i>.h5`` / ``..._<split>_<i>.h5``).

    Raises:
        DataError: a listed file is missing, or an unlisted file whose name names no split (it is
            never silently put into ``train``).
    """
    root = Path(root)
    splits: dict[str, list[Path]] = {}
    listings = [(p, p.name[: -len("_hdf5_file_list.txt")]) for p in sorted(root.glob("*_hdf5_file_list.txt"))]
    listings += [(p, p.name[: -len("_files.txt")]) for p in sorted(root.glob("*_files.txt"))]
    for listing, split in listings:
        entries = [line.strip() for line in _read_text(listing).splitlines() if line.strip()]
        files = [root / Path(entry).name for entry in entries]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise DataError(f"{listing}: lists {len(missing)} file(s) that are not in {root}: {', '.join(missing[:3])}")
        if files:
            splits[split] = files
    listed = {f for files in splits.values() for f in files}
    for path in sorted(root.glob("*.h5")) + sorted(root.glob("*.hdf5")):
        if path in listed:
            continue
        match = re.search(r"(train|test|val|valid|validation)_?\d*$", path.stem)
        if match is None:
            raise DataError(
                f"{path}: the file name names no split (expected ..._train0.h5, ..._test1.h5, ... "
                "or a <split>_files.txt listing it)"
            )
        splits.setdefault(match.group(1), []).append(path)
    return splits


def _id2file_path(h5: Path) -> Path:
    # ply_data_train0.h5 -> ply_data_train_0_id2file.json (the release's naming)
    stem = re.sub(r"_?(\d+)$", r"_\1", h5.stem)
    return h5.with_name(f"{stem}_id2file.json")


def read_hdf5_split(
    root: str | Path, split: str = "train", num_points: int | None = None, class_names: Sequence[str] | None = None
) -> HDF5Split:
    """Read one split of an HDF5 folder into memory.

    Args:
        root: the folder.
        split: which split.
        num_points: keep only the first ``num_points`` points of each shape (they are stored in random
            order); ``None`` keeps all.
        class_names: the names of the labels, when the format defines them (else ``shape_names.txt``).

    Raises:
        DataError: the split is absent, a file is malformed, or a label has no class name.
    """
    root = Path(root)
    splits = hdf5_splits(root)
    if split not in splits:
        found = ", ".join(sorted(splits)) or "none"
        raise DataError(f"{root}: no '{split}' split in this HDF5 folder (splits found: {found})")
    files = splits[split]
    shapes, total, n_stored, has_normals, has_parts = [], 0, None, True, True
    for path in files:
        try:
            with h5py.File(path, "r") as f:
                data = f["data"]
                if not all(isinstance(f.get(k), h5py.Dataset) for k in ("data", "label") + (("normal",) if "normal" in f else ())):
                    raise DataError(f"{path}: 'data', 'label' (and 'normal') must be datasets, got {', '.join(f'{k}: {type(f.get(k)).__name__}' for k in f)}"[:300])
                if data.ndim != 3 or data.shape[2] < 3 or "label" not in f:
                    raise DataError(f"{path}: expected 'data' (n, N, 3) and 'label', got data {data.shape}, keys {list(f)}")
                if n_stored is not None and data.shape[1] != n_stored:
                    raise DataError(f"{path}: {data.shape[1]} points per shape, but the other files have {n_stored}")
                n_stored = data.shape[1]
                has_normals &= "normal" in f
                has_parts &= "pid" in f
                shapes.append(data.shape[0])
        except (OSError, KeyError) as exc:
            raise DataError(f"{path}: not a readable HDF5 point cloud file ({exc})") from exc
        total += shapes[-1]
    if total == 0:
        raise DataError(f"{root}: the '{split}' split has no shapes")
    keep = n_stored if num_points is None else num_points
    if keep > n_stored:
        raise DataError(f"{root}: shapes have {n_stored} points, fewer than the {keep} asked for")
    from .io import max_file_bytes  # the readers' limit: declared sizes are checked before allocating

    need = total * keep * 3 * 4 * (2 if has_normals else 1)
    if need > max_file_bytes():
        raise DataError(f"{root}: the '{split}' split declares {total} shapes x {keep} points ({need >> 20} MiB), "
                        f"more than the limit of {max_file_bytes() >> 20} MiB (raise POINTNET_KIT_MAX_FILE_MB if you mean it)")
    points = np.empty((total, keep, 3), np.float32)
    normals = np.empty((total, keep, 3), np.float32) if has_normals else None
    part_labels = np.empty((total, keep), np.int64) if has_parts else None
    labels = np.empty(total, np.int64)
    ids: list[str] | None = []
    start = 0
    for path, n in zip(files, shapes):
        with h5py.File(path, "r") as f:
            _read_into(f["data"], points[start : start + n], keep)
            if normals is not None:
                _read_into(f["normal"], normals[start : start + n], keep)
            if part_labels is not None:
                part_labels[start : start + n] = f["pid"][:, :keep]
            label = np.asarray(f["label"][:]).reshape(-1)
        if len(label) != n:
            raise DataError(f"{path}: {n} shapes but {len(label)} labels")
        labels[start : start + n] = label
        id_file = _id2file_path(path)
        if ids is not None and id_file.is_file():
            ids.extend(json.loads(id_file.read_text()))
        else:
            ids = None
        start += n
    if ids is not None and len(ids) != total:
        ids = None
    if not np.isfinite(points).all():
        raise DataError(f"{root}: the '{split}' split has NaN or infinite coordinates")
    names_file = root / SHAPE_NAMES
    if class_names is not None:
        class_names = list(class_names)
    elif names_file.is_file():
        class_names = read_class_names(names_file)
    else:
        class_names = [f"class_{i}" for i in range(int(labels.max()) + 1)]
    if labels.min() < 0 or labels.max() >= len(class_names):
        raise DataError(f"{root}: labels span {labels.min()}..{labels.max()} but {names_file.name} has {len(class_names)} classes")
    return HDF5Split(points, labels, class_names, normals, ids, part_labels)


def _read_into(dataset: h5py.Dataset, out: np.ndarray, keep: int) -> None:
    if dataset.shape[1] == keep and dataset.shape[2] == 3 and dataset.dtype == np.float32:
        dataset.read_direct(out)
    else:
        out[...] = dataset[:, :keep, :3]


def write_hdf5_split(
    root: str | Path,
    split: str,
    points: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    normals: np.ndarray | None = None,
    ids: Sequence[str] | None = None,
    shard_size: int = 2048,
    part_labels: np.ndarray | None = None,
) -> list[Path]:
    """Write one split in the release layout (shards of ``shard_size`` shapes); returns the ``.h5`` files.

    ``shape_names.txt`` is written too, or checked against ``class_names`` if already there.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    names_file = root / SHAPE_NAMES
    if names_file.is_file() and read_class_names(names_file) != list(class_names):
        raise DataError(f"{names_file}: holds other class names than the split being written")
    names_file.write_text("".join(f"{name}\n" for name in class_names))
    label_dtype = np.uint8 if len(class_names) <= 256 else np.int32
    files = []
    for i, start in enumerate(range(0, len(points), shard_size)):
        stop = start + shard_size
        path = root / f"ply_data_{split}{i}.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("data", data=np.asarray(points[start:stop], np.float32))
            f.create_dataset("label", data=np.asarray(labels[start:stop]).reshape(-1, 1).astype(label_dtype))
            if normals is not None:
                f.create_dataset("normal", data=np.asarray(normals[start:stop], np.float32))
            if part_labels is not None:
                f.create_dataset("pid", data=np.asarray(part_labels[start:stop]).astype(np.uint8 if part_labels.max() < 256 else np.int32))
        if ids is not None:
            _id2file_path(path).write_text(json.dumps(list(ids[start:stop])))
        files.append(path)
    (root / f"{split}_files.txt").write_text("".join(f"{p.name}\n" for p in files))
    return files
