"""The dataset format registry: one reader class per layout (``data/formats/``), found from what a folder holds.

A format is a :class:`DatasetFormat` subclass registered with :func:`register_format`. It says
whether a folder is in its layout (``detect``), reads one split into memory (``read``) and tells what
a folder holds without training on it (``describe``, for ``pointnet-kit data info``).
:func:`open_dataset` and :func:`describe` go through the registry; nothing else names a format::

    @register_format
    class MyFormat(DatasetFormat):
        name, task, up_axis, layout = "mine", "classification", "z", "a folder of *.mine files"
        def detect(self, root): return any(root.glob("*.mine"))
        def read(self, root, split, num_points, use_normals, cache_dir=None): ...
        def describe(self, root): ...
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..errors import DataError
from .base import PointCloudDataset
from .record import NORMALS, XYZ, DataSpec

__all__ = [
    "DatasetFormat",
    "register_format",
    "list_formats",
    "get_format",
    "find_format",
    "detect_format",
    "open_dataset",
    "describe",
    "format_info",
]


class DatasetFormat:
    """One dataset layout. Subclasses set the class attributes and implement the three methods.

    Attributes:
        name: registry name, shown by ``data info`` (``"hdf5"``, ``"shapenetpart_v0"``, ...).
        task: ``"classification"`` or ``"part_segmentation"``.
        up_axis: the layout's usual up axis (``data.up_axis`` overrides it).
        layout: one line describing the folder, for the error that lists every format.
        names: for embedded datasets, the ``data.root`` names that select it (no folder).
    """

    name: str = ""
    task: str = "classification"
    up_axis: str = "z"
    layout: str = ""
    names: tuple[str, ...] = ()

    def detect(self, root: Path) -> bool:
        """Whether ``root`` (a folder; for embedded datasets, the name) is in this layout."""
        raise NotImplementedError

    def read(
        self, root: Path, split: str, num_points: int | None, use_normals: bool, cache_dir: str | Path | None = None
    ) -> PointCloudDataset:
        """One split in memory; segmentation formats fill ``part_labels`` and ``spec.part_names`` /
        ``spec.category_parts`` (the registry fills the rest of the spec).

        Raises:
            DataError: absent split (naming those found), malformed file, missing normals.
        """
        raise NotImplementedError

    def describe(self, root: Path) -> dict[str, Any]:
        """``{"classes": [...], "splits": {split: {"shapes", "per_class", "points_per_shape", "normals", ...}}, ...}``
        plus ``"duplicates"`` (see :mod:`~pointnet_kit.data.duplicates`) where the format can tell cheaply."""
        raise NotImplementedError


_FORMATS: dict[str, DatasetFormat] = {}


def register_format(cls: type[DatasetFormat]) -> type[DatasetFormat]:
    """Class decorator: add a format. Detection tries formats registered outside the package first,
    then the built-in ones in ``formats.DETECTION_ORDER`` (most specific first)."""
    if not cls.name or cls.name in _FORMATS:
        raise ValueError(f"format name {cls.name!r} is empty or already registered")
    _FORMATS[cls.name] = cls()
    return cls


def _formats() -> dict[str, DatasetFormat]:
    from .formats import DETECTION_ORDER  # importing the package registers the built-in formats

    extra = [name for name in _FORMATS if name not in DETECTION_ORDER]
    return {name: _FORMATS[name] for name in [*extra, *DETECTION_ORDER]}


def list_formats() -> list[str]:
    """Registered format names, in detection order."""
    return list(_formats())


def get_format(name: str) -> DatasetFormat:
    formats = _formats()
    if name not in formats:
        raise DataError(f"unknown dataset format {name!r} (known: {', '.join(formats)})")
    return formats[name]


def _layouts() -> str:
    lines = [f"{f.name}: {f.layout}" for f in _formats().values() if not f.names]
    embedded = [n for f in _formats().values() for n in f.names[:1]]
    return "; ".join(lines) + f"; or an embedded dataset name ({', '.join(embedded)})"


def _detect_here(root: Path) -> DatasetFormat | None:
    return next((f for f in _formats().values() if not f.names and f.detect(root)), None)


def find_format(root: str | Path) -> tuple[DatasetFormat, Path | str]:
    """``(format, folder)`` for ``data.root``: an embedded dataset name, a dataset folder, or a folder
    holding exactly one dataset folder (as a download extracts). A format that reads single files
    (ScanObjectNN's ``.h5``) also accepts the file.

    Raises:
        DataError: missing or empty folder, several datasets, or a layout no format knows (the
            message lists every format).
    """
    for fmt in _formats().values():
        if fmt.names and str(root) in fmt.names:
            return fmt, str(root)
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"{root}: no such folder; expected {_layouts()}")
    if root.is_file():
        fmt = next((f for f in _formats().values() if not f.names and getattr(f, "accepts_files", False) and f.detect(root)), None)
        if fmt is None:
            raise DataError(f"{root}: is a file, not a dataset folder; expected {_layouts()}")
        return fmt, root
    fmt = _detect_here(root)
    if fmt is not None:
        return fmt, root
    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    if not entries:
        raise DataError(f"{root}: the folder is empty; expected {_layouts()}")
    inside = {p: _detect_here(p) for p in sorted(entries) if p.is_dir()}
    inside = {p: f for p, f in inside.items() if f is not None}
    if len(inside) == 1:
        folder, fmt = next(iter(inside.items()))
        return fmt, folder
    if inside:
        shown = ", ".join(f"{p.name}/ ({f.name})" for p, f in inside.items())
        raise DataError(f"{root}: holds several datasets, not one: {shown}; pass one of these folders")
    shown = ", ".join(sorted(p.name + ("/" if p.is_dir() else "") for p in entries)[:5])
    raise DataError(f"{root}: unknown dataset layout (found {len(entries)} entries: {shown}); expected {_layouts()}")


def detect_format(root: str | Path) -> tuple[str, Path | str]:
    """``(format name, folder)``; see :func:`find_format`."""
    fmt, folder = find_format(root)
    return fmt.name, folder


def open_dataset(
    root: str | Path,
    split: str = "train",
    num_points: int | None = None,
    use_normals: bool = False,
    cache_dir: str | Path | None = None,
) -> PointCloudDataset:
    """Load a split of a dataset into memory, with its :class:`~pointnet_kit.data.record.DataSpec`.

    Args:
        root: an embedded dataset name (``"default"``, ``"default_parts"``) or a folder in any
            registered layout (:func:`list_formats`). Meshes and text files are sampled and
            normalised into a cache on first use and the cache is reused afterwards.
        split: ``"train"``, ``"test"``, or any split the data has.
        num_points: points per shape served (stored clouds are in random order, so a prefix is a
            random subset); ``None`` serves all stored points.
        use_normals: serve 6-channel clouds (xyz + normals); the data must have normals.
        cache_dir: cache root for prepared and generated data (default ``$POINTNET_KIT_CACHE`` or
            ``~/.cache/pointnet-kit``).

    Returns:
        the dataset; ``.spec`` holds the format's task, the up axis of its layout, the served
        ``num_points`` and channels, class names and (segmentation) part names.

    Raises:
        DataError: missing/empty folder, unknown layout, absent split, no normals when asked for.
    """
    if num_points is not None and num_points < 1:
        raise DataError(f"num_points must be >= 1, got {num_points}")
    fmt, folder = find_format(root)
    dataset = fmt.read(folder if fmt.names else Path(folder), split, num_points, use_normals, cache_dir)
    if use_normals and dataset.normals is None:
        raise DataError(f"{root}: use_normals=True but this dataset has no normals")
    base = dataset.spec or DataSpec()
    dataset.spec = dataclasses.replace(
        base,
        task=fmt.task,
        num_points=dataset.num_points,
        channels=XYZ + NORMALS if use_normals else list(XYZ),
        up_axis=fmt.up_axis,
        class_names=list(dataset.class_names),
        source=f"{folder} ({fmt.name})",
    )
    return dataset


def describe(root: str | Path, near_duplicates: bool = False) -> dict[str, Any]:
    """What a dataset holds without loading it for training: format, task, classes, splits (shapes per
    split and class, points per shape, normals; part counts for segmentation) and duplicate shapes
    (identical files or clouds).

    With ``near_duplicates`` every split is loaded and clouds that are the same surface sampled twice
    are grouped too (:func:`~pointnet_kit.data.duplicates.near_duplicate_items`; minutes on ModelNet40).
    """
    fmt, folder = find_format(root)
    info: dict[str, Any] = {"root": str(root), "folder": str(folder), "format": fmt.name, "task": fmt.task, "up_axis": fmt.up_axis}
    info.update(fmt.describe(folder if fmt.names else Path(folder)))
    info["num_classes"] = len(info.get("classes", []))
    if near_duplicates:
        from .duplicates import duplicate_report, near_duplicate_items

        splits = [(s, open_dataset(root, s), None) for s, v in info["splits"].items() if v["shapes"]]
        items = near_duplicate_items([(s, ds.points, ds.ids) for s, ds, _ in splits])
        info["near_duplicates"] = duplicate_report(items, "same surface sampled twice (Chamfer within sampling noise)")
    return info


def format_info(info: dict[str, Any]) -> str:
    """:func:`describe`'s result as a short human-readable text."""
    kind = "categories" if info["task"] == "part_segmentation" else "classes"
    lines = [f"{info['folder']}: {info['format']} dataset, {info['num_classes']} {kind} ({info['task']}, up axis {info['up_axis']})"]
    if info.get("num_parts"):
        lines.append(f"  {info['num_parts']} parts: " + ", ".join(info.get("part_names", [])[:8]) + (", ..." if info["num_parts"] > 8 else ""))
    for split, s in info["splits"].items():
        points = f", {s['points_per_shape']} points per shape" if s.get("points_per_shape") else ""
        normals = "" if s.get("normals") is None else (", normals" if s["normals"] else ", no normals")
        lines.append(f"  {split}: {s['shapes']} shapes{points}{normals}")
        lines.append("    " + ", ".join(f"{k} {v}" for k, v in s["per_class"].items()))
        if s.get("parts_per_shape"):
            counts = s["parts_per_shape"]
            lines.append("    parts per shape: " + ", ".join(f"{k} {v}" for k, v in list(counts.items())[:8]) + (" ..." if len(counts) > 8 else ""))
    dup = info.get("duplicates")
    if dup is not None:
        if dup["groups"]:
            lines.append(
                f"  duplicates: {dup['groups']} group(s) of identical shapes, {dup['extra_shapes']} extra cop(ies)"
                f" ({dup['cross_split']} group(s) span splits); e.g. {', '.join(dup['examples'][0])}"
            )
        else:
            lines.append(f"  duplicates: none ({dup['method']})")
    near = info.get("near_duplicates")
    if near is not None:
        lines.append(
            f"  near duplicates: {near['groups']} group(s), {near['extra_shapes']} extra cop(ies) ({near['cross_split']} span splits)"
            + (f"; e.g. {', '.join(near['examples'][0])}" if near["groups"] else "")
        )
    if "note" in info:
        lines.append(f"  note: {info['note']}")
    report = info.get("prepare_report")
    if report and report.get("skipped"):
        lines.append(f"  skipped when prepared: {len(report['skipped'])} file(s), see {report.get('file', 'the prepare report')}")
    return "\n".join(lines)
