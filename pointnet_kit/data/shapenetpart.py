"""ShapeNetPart's fixed tables and what its three layouts share.

The 16 categories in the official order (that of ``synsetoffset2category.txt``) and their 50 parts,
numbered globally 0-49 category after category (Airplane 0-3, Bag 4-5, ..., Table 47-49): the
numbering of the ``v0_normal`` text files and of the HDF5 release. The ``v0`` layout numbers parts
from 1 within each category; :func:`global_part_ids` maps them.

Splits come from ``train_test_split/shuffled_{train,val,test}_file_list.json`` (entries
``shape_data/<synset>/<id>``). Text layouts are sampled once into an HDF5 cache in the release
layout (``data``, ``label`` = category, ``pid`` = global part id, ``normal``), then read from it.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import DataError
from .cache import atomic_dir, default_cache_dir
from .duplicates import duplicate_report, file_items
from .hdf5 import SHAPE_NAMES, write_hdf5_split
from .record import RELEASE_POINTS, DataSpec, part_numbering, segmentation_spec, stored_points
from .registry import DatasetFormat
from .sampling import normalize_unit_sphere, resample

__all__ = [
    "CATEGORIES",
    "SYNSETS",
    "CATEGORY_PART_NAMES",
    "PART_NAMES",
    "CATEGORY_PARTS",
    "part_spec",
    "global_part_ids",
    "read_categories",
    "read_split_lists",
    "text_layout_cache",
    "describe_parts",
    "TextLayoutFormat",
    "PartFile",
    "read_part_file",
]

# category -> its parts, in the official order and numbering
CATEGORY_PART_NAMES: dict[str, list[str]] = {
    "Airplane": ["body", "wing", "tail", "engine"],
    "Bag": ["handle", "body"],
    "Cap": ["panels", "peak"],
    "Car": ["roof", "hood", "wheel", "body"],
    "Chair": ["back", "seat", "leg", "arm"],
    "Earphone": ["earcup", "headband", "cord"],
    "Guitar": ["head", "neck", "body"],
    "Knife": ["blade", "handle"],
    "Lamp": ["base", "shade", "canopy", "tube"],
    "Laptop": ["keyboard", "screen"],
    "Motorbike": ["gas_tank", "seat", "wheel", "handle", "light", "body"],
    "Mug": ["handle", "body"],
    "Pistol": ["barrel", "handle", "trigger"],
    "Rocket": ["body", "fin", "nose"],
    "Skateboard": ["wheel", "deck", "truck"],
    "Table": ["top", "leg", "support"],
}
SYNSETS: dict[str, str] = {
    "Airplane": "02691156", "Bag": "02773838", "Cap": "02954340", "Car": "02958343",
    "Chair": "03001627", "Earphone": "03261776", "Guitar": "03467517", "Knife": "03624134",
    "Lamp": "03636649", "Laptop": "03642806", "Motorbike": "03790512", "Mug": "03797390",
    "Pistol": "03948459", "Rocket": "04099429", "Skateboard": "04225987", "Table": "04379243",
}  # fmt: skip
CATEGORIES: list[str] = list(CATEGORY_PART_NAMES)
PART_NAMES, CATEGORY_PARTS = part_numbering(CATEGORY_PART_NAMES)
SPLIT_FILE = "train_test_split/shuffled_{}_file_list.json"


def part_spec() -> DataSpec:
    """The segmentation fields of every ShapeNetPart layout's spec (the registry fills the rest)."""
    return segmentation_spec(CATEGORY_PART_NAMES)


def global_part_ids(category: str, local: np.ndarray, name: str) -> np.ndarray:
    """The ``v0`` layout's per-category ids (1..k) as global ids (0-49)."""
    k = len(CATEGORY_PART_NAMES[category])
    if local.size and (local.min() < 1 or local.max() > k):
        raise DataError(f"{name}: part ids span {local.min()}..{local.max()}, but {category} has parts 1..{k}")
    return local.astype(np.int64) - 1 + CATEGORY_PARTS[category][0]


def read_categories(root: Path) -> dict[str, str]:
    """``synsetoffset2category.txt`` as ``{synset: category}``, checked against the official table."""
    path = root / "synsetoffset2category.txt"
    if not path.is_file():
        raise DataError(f"{root}: no synsetoffset2category.txt (a ShapeNetPart folder has it)")
    found = {}
    for line in path.read_text().splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[0] not in SYNSETS or SYNSETS[fields[0]] != fields[1]:
            raise DataError(f"{path}: line {line.strip()!r} is not one of the 16 ShapeNetPart categories with its synset")
        found[fields[1]] = fields[0]
    return found


def read_split_lists(root: Path) -> dict[str, list[tuple[str, str]]]:
    """``{split: [(synset, shape_id), ...]}`` from ``train_test_split/``."""
    splits = {}
    for split in ("train", "val", "test"):
        path = root / SPLIT_FILE.format(split)
        if not path.is_file():
            continue
        try:
            entries = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc})") from exc
        pairs = []
        for entry in entries:
            parts = str(entry).split("/")
            if len(parts) < 2:
                raise DataError(f"{path}: entry {entry!r} is not shape_data/<synset>/<id>")
            pairs.append((parts[-2], parts[-1]))
        splits[split] = pairs
    if not splits:
        raise DataError(f"{root}: no {SPLIT_FILE.format('train')} (nor val/test lists): ShapeNetPart splits come from there")
    return splits


def _shape_seed(shape_id: str) -> int:
    return zlib.crc32(shape_id.encode())


# A reader of one shape: (root, synset, category, shape_id) -> (points (n, 3), normals (n, 3) or None, global parts (n,))
ShapeReader = Callable[[Path, str, str, str], tuple[np.ndarray, "np.ndarray | None", np.ndarray]]


def _shape_entries(root: Path, splits: dict[str, list[tuple[str, str]]], shape_file: Callable[[Path, str, str], Path]):
    categories = read_categories(root)
    for split, pairs in splits.items():
        missing = [shape_file(root, s, i) for s, i in pairs if not shape_file(root, s, i).is_file()]
        if missing:
            raise DataError(f"{root / SPLIT_FILE.format(split)}: lists {len(missing)} shape(s) that are not there, first {missing[0]}")
        unknown = sorted({s for s, _ in pairs if s not in categories})
        if unknown:
            raise DataError(f"{root / SPLIT_FILE.format(split)}: synset(s) {', '.join(unknown)} not in synsetoffset2category.txt")
    return categories


def text_layout_cache(
    root: Path, kind: str, read_shape: ShapeReader, shape_file: Callable[[Path, str, str], Path], num_points: int, cache_dir: str | Path | None
) -> Path:
    """The HDF5 cache (release layout, all splits) of a text layout, built on first use: each shape
    resampled to ``num_points`` points (seeded by its id; padded by repeats when it has fewer) and
    normalised to the unit sphere."""
    root = Path(root).resolve()
    splits = read_split_lists(root)
    categories = _shape_entries(root, splits, shape_file)
    # every file of the listed categories: an edited shape or label file makes a new cache
    synsets = sorted({s for pairs in splits.values() for s, _ in pairs})
    listing = sorted((root / "train_test_split").glob("*.json")) + [root / "synsetoffset2category.txt"]
    listing += [p for s in synsets for p in sorted((root / s).rglob("*")) if p.is_file()]
    key = hashlib.sha1("".join(f"{p.relative_to(root)}:{p.stat().st_size}:{p.stat().st_mtime_ns};" for p in listing).encode()).hexdigest()[:12]
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = base / "shapenetpart" / f"{root.name}-{kind}-{key}-n{num_points}"
    if (target / SHAPE_NAMES).is_file():
        return target
    with atomic_dir(target) as tmp:
        for split, pairs in splits.items():
            if not pairs:
                continue
            points, normals, parts, labels, ids = [], [], [], [], []
            for synset, shape_id in pairs:
                category = categories[synset]
                p, n, g = read_shape(root, synset, category, shape_id)
                keep = resample(len(p), num_points, _shape_seed(shape_id))
                points.append(normalize_unit_sphere(p[keep], name=str(shape_file(root, synset, shape_id))))
                normals.append(None if n is None else n[keep])
                parts.append(g[keep])
                labels.append(CATEGORIES.index(category))
                ids.append(f"{synset}/{shape_id}")
            has_normals = all(n is not None for n in normals)
            write_hdf5_split(
                tmp, split, np.stack(points), np.asarray(labels), CATEGORIES,
                normals=np.stack(normals) if has_normals else None, ids=ids, part_labels=np.stack(parts),
            )  # fmt: skip
    return target


def describe_parts(
    root: Path, read_shape: ShapeReader, shape_file: Callable[[Path, str, str], Path], normals: bool, max_shapes: int = 64
) -> dict[str, Any]:
    """``describe`` of a text layout: categories, shapes per split and category, and for each shape
    its points and points per part (the first ``max_shapes`` shapes listed; a histogram of parts
    per shape for all)."""
    splits = read_split_lists(root)
    categories = _shape_entries(root, splits, shape_file)
    info_splits, shapes, files = {}, [], []
    for split, pairs in splits.items():
        counts: Counter = Counter(CATEGORIES.index(categories[s]) for s, _ in pairs)
        parts_hist: Counter = Counter()
        points_range = []
        for synset, shape_id in pairs:
            category = categories[synset]
            p, _, g = read_shape(root, synset, category, shape_id)
            present = Counter(g.tolist())
            parts_hist[len(present)] += 1
            points_range.append(len(p))
            files.append((split, f"{synset}/{shape_id}", shape_file(root, synset, shape_id)))
            if len(shapes) < max_shapes:
                shapes.append({
                    "split": split, "id": f"{synset}/{shape_id}", "category": category, "points": len(p),
                    "num_parts": len(present), "parts": {PART_NAMES[k]: int(v) for k, v in sorted(present.items())},
                })  # fmt: skip
        per_class = {CATEGORIES[k]: int(v) for k, v in sorted(counts.items())}
        info_splits[split] = {
            "shapes": len(pairs), "per_class": per_class,
            "points_per_shape": f"{min(points_range)}-{max(points_range)}" if points_range else None,
            "normals": normals, "parts_per_shape": {str(k): int(v) for k, v in sorted(parts_hist.items())},
        }  # fmt: skip
    items = file_items(files)
    total = sum(s["shapes"] for s in info_splits.values())
    return {
        "classes": list(CATEGORIES),
        "categories_present": sorted({categories[s] for pairs in splits.values() for s, _ in pairs}, key=CATEGORIES.index),
        "num_parts": len(PART_NAMES),
        "part_names": list(PART_NAMES),
        "category_parts": {c: list(v) for c, v in CATEGORY_PARTS.items()},
        "splits": info_splits,
        "shapes": shapes,
        "shapes_listed": f"{len(shapes)} of {total}",
        "duplicates": duplicate_report(items, "identical files") if items is not None else None,
    }



class TextLayoutFormat(DatasetFormat):
    """What the two text layouts (``v0``, ``v0_normal``) share: an HDF5 cache sampled at
    :data:`~pointnet_kit.data.record.RELEASE_POINTS` (or more), ShapeNetPart's spec, ``describe_parts``.

    Subclasses set ``name``, ``layout``, ``kind`` (the cache's name), ``normals`` and two functions:
    ``shape_file(root, synset, shape_id) -> Path`` and ``read_shape`` (a :data:`ShapeReader`).
    """

    task = "part_segmentation"
    up_axis = "y"
    kind: str = ""
    normals: bool = False
    shape_file: Callable[[Path, str, str], Path]
    read_shape: ShapeReader

    def read(self, root, split, num_points, use_normals, cache_dir=None):
        from .formats.hdf5 import dataset_from_hdf5

        stored = stored_points(num_points, RELEASE_POINTS)
        folder = text_layout_cache(root, self.kind, type(self).read_shape, type(self).shape_file, stored, cache_dir)
        dataset = dataset_from_hdf5(folder, split, num_points, use_normals)
        dataset.spec = part_spec()
        return dataset

    def describe(self, root):
        return describe_parts(root, type(self).read_shape, type(self).shape_file, normals=self.normals)

@dataclass
class PartFile:
    """One ShapeNetPart shape file as stored: ``points (n, 3)``, ``normals (n, 3)`` or ``None``,
    ``part_labels (n,)`` global ids 0-49 or ``None``, its ``category`` when its tree tells it, and
    the layouts' ``up_axis``."""

    points: np.ndarray
    normals: np.ndarray | None
    part_labels: np.ndarray | None
    category: str | None
    up_axis: str = TextLayoutFormat.up_axis


def _tree_categories(path: Path) -> dict[str, str]:
    """``{synset: category}`` of the ShapeNetPart tree ``path`` sits in (searched upwards), else ``{}``."""
    for folder in path.resolve().parents:
        if (folder / "synsetoffset2category.txt").is_file():
            return read_categories(folder)
    return {}


def read_part_file(path: str | Path) -> PartFile:
    """One shape of a ShapeNetPart layout, read by its format's own reader: a ``v0`` ``.pts`` (with
    ``../points_label/<id>.seg`` when present) or a ``v0_normal`` ``.txt`` (``x y z nx ny nz part``).

    The category comes from the folder names and the tree's ``synsetoffset2category.txt``; a ``.pts``
    outside a tree has no part labels (its ids are numbered within an unknown category).
    """
    from .formats import shapenetpart_normal, shapenetpart_v0  # they import this module

    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".pts", ".txt"):
        raise DataError(f"{path}: not a ShapeNetPart shape file (.pts or .txt)")
    synset = path.parent.parent.name if suffix == ".pts" else path.parent.name
    category = _tree_categories(path).get(synset)
    reader = shapenetpart_v0 if suffix == ".pts" else shapenetpart_normal
    points, normals, parts = reader.read_shape_file(path, category)
    return PartFile(np.asarray(points, dtype=np.float64), normals, parts, category)
