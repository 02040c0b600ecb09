"""``open_dataset``: one entry point for every dataset layout, detected from what a folder holds."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .base import PointCloudDataset, stratified_split
from .hdf5 import read_hdf5_split

__all__ = ["open_dataset", "detect_format", "train_val_split", "EMBEDDED_NAMES", "LAYOUTS"]

EMBEDDED_NAMES = ("default", "embedded")
LAYOUTS = (
    "an HDF5 folder (*.h5 + shape_names.txt, as modelnet40_ply_hdf5_2048), "
    "a ModelNet OFF tree (<class>/{train,test}/*.off, or flat <class>_NNNN.off files), "
    "or modelnet40_normal_resampled (modelnet40_shape_names.txt + <class>/<class>_NNNN.txt)"
)


def _format_here(root: Path) -> str | None:
    if any(root.glob("*.h5")) or any(root.glob("*.hdf5")):
        return "hdf5"
    if any(root.glob("modelnet*_shape_names.txt")):
        return "normal_resampled"
    off = ("*.off", "*/*.off", "*/train/*.off", "*/test/*.off")  # flat, folders of flat, <class>/<split>/
    if any(any(root.glob(pattern)) for pattern in off):
        return "off"
    return None


def detect_format(root: str | Path) -> tuple[str, Path]:
    """``(format, folder)`` for a dataset folder: ``"hdf5"``, ``"off"`` or ``"normal_resampled"``.

    A folder with exactly one dataset sub-folder (``data/modelnet40/ModelNet40/`` as a download
    extracts) is looked into; one with several says which they are.

    Raises:
        DataError: missing or empty folder, or a layout that is none of the above.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"{root}: no such folder; expected {LAYOUTS}, or 'default' for the embedded dataset")
    if not root.is_dir():
        raise DataError(f"{root}: is a file, not a dataset folder; expected {LAYOUTS}")
    fmt = _format_here(root)
    if fmt is not None:
        return fmt, root
    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    if not entries:
        raise DataError(f"{root}: the folder is empty; expected {LAYOUTS}")
    inside = {p: _format_here(p) for p in sorted(entries) if p.is_dir()}
    inside = {p: fmt for p, fmt in inside.items() if fmt is not None}
    if len(inside) == 1:
        return next(iter(inside.values())), next(iter(inside))
    if inside:
        shown = ", ".join(f"{p.name}/ ({fmt})" for p, fmt in inside.items())
        raise DataError(f"{root}: holds several datasets, not one: {shown}; pass one of these folders")
    shown = ", ".join(sorted(p.name + ("/" if p.is_dir() else "") for p in entries)[:5])
    raise DataError(f"{root}: unknown dataset layout (found {len(entries)} entries: {shown}); expected {LAYOUTS}")


def open_dataset(
    root: str | Path,
    split: str = "train",
    num_points: int | None = None,
    use_normals: bool = False,
    cache_dir: str | Path | None = None,
) -> PointCloudDataset:
    """Load a split of a dataset into memory.

    Args:
        root: ``"default"`` (or ``"embedded"``) for the embedded synthetic dataset, else a folder in
            one of the layouts of :func:`detect_format`. OFF meshes are prepared into an HDF5 cache on
            first use and the cache is reused afterwards.
        split: ``"train"``, ``"test"``, or any split the folder has.
        num_points: points per shape served (a random subset: stored clouds are in random order);
            ``None`` serves all stored points.
        use_normals: serve 6-channel clouds (xyz + normals); the data must have normals.
        cache_dir: cache root for prepared and generated data (default ``$POINTNET_KIT_CACHE`` or
            ``~/.cache/pointnet-kit``).

    Raises:
        DataError: missing/empty folder, unknown layout, absent split, no normals when asked for.
    """
    if num_points is not None and num_points < 1:
        raise DataError(f"num_points must be >= 1, got {num_points}")
    if str(root) in EMBEDDED_NAMES:
        from .synthetic import make_default_dataset

        generated = max(num_points or 1024, 1024)
        data = make_default_dataset(split, num_points=generated, cache_dir=cache_dir, use_normals=use_normals)
        data.num_points = min(num_points or generated, generated)
        return data
    fmt, folder = detect_format(root)
    if fmt == "off":
        from .prepare import prepared_cache

        folder = prepared_cache(folder, split=split, num_points=max(num_points or 1024, 1024), cache_dir=cache_dir)
    elif fmt == "normal_resampled":
        from .modelnet import normal_resampled_cache

        folder = normal_resampled_cache(folder, num_points=num_points or 1024, cache_dir=cache_dir)
    data = read_hdf5_split(folder, split, num_points=num_points)
    if use_normals and data.normals is None:
        raise DataError(f"{root}: use_normals=True but this dataset has no normals")
    return PointCloudDataset(
        data.points,
        data.labels,
        data.class_names,
        normals=data.normals if use_normals else None,
        ids=data.ids,
        num_points=num_points,
        use_normals=use_normals,
    )


def train_val_split(dataset: PointCloudDataset, val_fraction: float = 0.1, seed: int = 0) -> tuple[PointCloudDataset, PointCloudDataset]:
    """A stratified, seeded validation set carved from a training set, so epochs are never picked on test."""
    train_idx, val_idx = stratified_split(dataset.labels, val_fraction, seed)
    return dataset.subset(train_idx), dataset.subset(val_idx)
