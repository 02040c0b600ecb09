"""The embedded part-segmentation dataset (``data.root: default_parts``): procedural shapes whose
every point is labelled with the part it was sampled from, offline, in seconds.

Six categories built from trimesh primitives (:mod:`~pointnet_kit.data.synthetic`), 17 parts::

    Table:    top, leg, support      (a stretcher between the legs in half the tables)
    Chair:    seat, back, leg, arm   (armrests in half the chairs)
    Lamp:     base, stem, shade      (half are hanging lamps: base on the ceiling, shade below)
    Mug:      body, handle
    Rocket:   body, fin, nose
    Dumbbell: bar, weight

Optional parts, hanging lamps and wide random proportions keep a part from being told by height
and distance from the axis alone (tests/data/test_synthetic_parts.py measures such a baseline).
Like the classification default: random stretch, random rotation about the up axis (+z),
area-weighted sampling, unit sphere, a little noise; cached as HDF5 (with ``pid``) per
``(seed, num_points)``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import trimesh

from ..errors import DataError
from .base import PointCloudDataset
from .cache import atomic_dir, default_cache_dir
from .hdf5 import hdf5_splits, read_hdf5_split, write_hdf5_split
from .record import STORED_POINTS, DataSpec, part_numbering, segmentation_spec
from .sampling import normalize_unit_sphere
from .synthetic import NOISE_SIGMA, STRETCH, Part, _legs, _part, _rot_x

__all__ = ["CATEGORY_PART_NAMES", "CATEGORIES", "PART_NAMES", "CATEGORY_PARTS", "generate_part_shape", "make_default_parts_dataset", "default_parts_dir", "parts_spec"]

VERSION = 1  # bump when the generator changes, so stale caches are not reused
SHAPES_PER_CATEGORY = {"train": 150, "test": 40}

CATEGORY_PART_NAMES: dict[str, list[str]] = {
    "Table": ["top", "leg", "support"],
    "Chair": ["seat", "back", "leg", "arm"],
    "Lamp": ["base", "stem", "shade"],
    "Mug": ["body", "handle"],
    "Rocket": ["body", "fin", "nose"],
    "Dumbbell": ["bar", "weight"],
}
CATEGORIES = list(CATEGORY_PART_NAMES)
PART_NAMES, CATEGORY_PARTS = part_numbering(CATEGORY_PART_NAMES)

Labelled = list[tuple[str, Part]]  # (part name, mesh piece)


def _table(r) -> Labelled:
    w, d, h = r.uniform(0.6, 1.6), r.uniform(0.4, 1.2), r.uniform(0.3, 1.1)
    top, leg = r.uniform(0.03, 0.15), r.uniform(0.03, 0.12)
    pieces = [("top", _part("box", (w, d, top), (0, 0, h - top / 2)))]
    pieces += [("leg", p) for p in _legs(w / 2, d / 2, h - top, leg)]
    if r.random() < 0.5:  # a stretcher between the legs, at a random height
        z, t = r.uniform(0.1, 0.6) * (h - top), r.uniform(0.02, 0.06)
        pieces += [("support", _part("box", (w - leg, t, t), (0, s * (d / 2 - leg / 2), z))) for s in (-1, 1)]
        pieces += [("support", _part("box", (t, d - leg, t), (0, 0, z)))]
    return pieces


def _chair(r) -> Labelled:
    w, d, h = r.uniform(0.4, 0.8), r.uniform(0.4, 0.8), r.uniform(0.25, 0.6)
    seat, leg, back = r.uniform(0.03, 0.12), r.uniform(0.03, 0.07), r.uniform(0.25, 0.9)
    pieces = [("seat", _part("box", (w, d, seat), (0, 0, h - seat / 2)))]
    pieces += [("back", _part("box", (w, seat, back), (0, -d / 2 + seat / 2, h + back / 2)))]
    pieces += [("leg", p) for p in _legs(w / 2, d / 2, h - seat, leg)]
    if r.random() < 0.5:
        arm_h, arm_t = r.uniform(0.12, 0.3), r.uniform(0.03, 0.07)
        for s in (-1, 1):
            x = s * (w / 2 - arm_t / 2)
            pieces += [("arm", _part("box", (arm_t, d * 0.8, arm_t), (x, 0.1 * d, h + arm_h)))]
            pieces += [("arm", _part("box", (arm_t, arm_t, arm_h), (x, 0.45 * d, h + arm_h / 2)))]
    return pieces


def _lamp(r) -> Labelled:
    base_r, base_h = r.uniform(0.1, 0.4), r.uniform(0.02, 0.1)
    stem_r, stem_h = r.uniform(0.015, 0.05), r.uniform(0.3, 1.2)
    shade_r, shade_h = r.uniform(0.15, 0.5), r.uniform(0.15, 0.5)
    pieces = [
        ("base", _part("cylinder", (2 * base_r, 2 * base_r, base_h), (0, 0, base_h / 2))),
        ("stem", _part("cylinder", (2 * stem_r, 2 * stem_r, stem_h), (0, 0, base_h + stem_h / 2))),
        ("shade", _part("cone", (2 * shade_r, 2 * shade_r, shade_h), (0, 0, base_h + stem_h - shade_h / 3))),
    ]
    if r.random() < 0.5:  # a hanging lamp: the whole lamp upside down, its base on the ceiling
        flip = _rot_x(math.pi)
        pieces = [(name, (v @ flip.T, f)) for name, (v, f) in pieces]
    return pieces


def _mug(r) -> Labelled:
    radius, height = r.uniform(0.2, 0.5), r.uniform(0.3, 1.0)
    handle = height * r.uniform(0.25, 0.45)
    z = height * r.uniform(0.35, 0.65)
    return [
        ("body", _part("cylinder", (2 * radius, 2 * radius, height), (0, 0, height / 2))),
        ("handle", _part("torus_mid", (handle, handle, handle * r.uniform(0.8, 1.3)), (radius, 0, z), _rot_x(math.pi / 2))),
    ]


def _rocket(r) -> Labelled:
    radius, length, nose = r.uniform(0.08, 0.25), r.uniform(0.6, 1.6), r.uniform(0.15, 0.6)
    fin_h, fin_w, fins = r.uniform(0.15, 0.5), r.uniform(0.1, 0.35), int(r.integers(3, 5))
    pieces = [
        ("body", _part("cylinder", (2 * radius, 2 * radius, length), (0, 0, length / 2))),
        ("nose", _part("cone", (2 * radius, 2 * radius, nose), (0, 0, length))),
    ]
    for k in range(fins):
        a = 2 * math.pi * k / fins
        c, s = math.cos(a), math.sin(a)
        turn = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        at = turn @ np.array([radius + fin_w / 2, 0, fin_h / 2 + r.uniform(0, 0.1)])
        pieces.append(("fin", _part("box", (fin_w, 0.02, fin_h), at, turn)))
    return pieces


def _dumbbell(r) -> Labelled:
    length, bar_r = r.uniform(0.5, 1.4), r.uniform(0.03, 0.1)
    ends = [r.uniform(0.12, 0.35, 3) * np.array([1, 1, r.uniform(0.8, 1.2)]) for _ in range(2)]
    bar = _part("cylinder", (2 * bar_r, 2 * bar_r, length), rotation=_rot_x(math.pi / 2))
    return [("bar", bar)] + [("weight", _part("sphere", 2 * e, (0, s * length / 2, 0))) for e, s in zip(ends, (-1, 1))]


GENERATORS: dict[str, Callable[[np.random.Generator], Labelled]] = {
    "Table": _table, "Chair": _chair, "Lamp": _lamp, "Mug": _mug, "Rocket": _rocket, "Dumbbell": _dumbbell,
}  # fmt: skip


def generate_part_shape(category: str, num_points: int, seed: int | np.random.Generator = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One random shape: ``(points (N, 3), normals (N, 3), part_ids (N,))``, unit sphere, +z up,
    part ids in the global numbering of :data:`PART_NAMES`."""
    from .transforms import axis_rotation

    rng = np.random.default_rng(seed)
    pieces = GENERATORS[category](rng)
    offsets = np.cumsum([0] + [len(v) for _, (v, _) in pieces[:-1]])
    vertices = np.concatenate([v for _, (v, _) in pieces]) * rng.uniform(1 / STRETCH, STRETCH, 3)
    faces = np.concatenate([f + o for (_, (_, f)), o in zip(pieces, offsets)])
    face_part = np.concatenate([np.full(len(f), PART_NAMES.index(f"{category}/{name}")) for name, (_, f) in pieces])
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    points, face_index = trimesh.sample.sample_surface(mesh, num_points, seed=rng)
    rotation = axis_rotation("z", float(rng.uniform(0, 2 * math.pi))).numpy()
    points = normalize_unit_sphere(points.astype(np.float32) @ rotation.T, name=category)
    points += rng.normal(0, NOISE_SIGMA, points.shape).astype(np.float32)
    normals = (mesh.face_normals[face_index] @ rotation.T).astype(np.float32)
    return points, normals, face_part[face_index].astype(np.int64)


def parts_spec() -> DataSpec:
    """The segmentation fields of the embedded parts dataset's spec (the registry fills the rest)."""
    return segmentation_spec(CATEGORY_PART_NAMES)


def default_parts_dir(num_points: int = STORED_POINTS, seed: int = 0, cache_dir: str | Path | None = None, shapes_per_category: int | None = None) -> Path:
    """The HDF5 folder of the embedded parts dataset, generated (both splits) on first use."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    size = "" if shapes_per_category is None else f"-c{shapes_per_category}"
    target = root / "embedded_parts" / f"v{VERSION}-seed{seed}-n{num_points}{size}"
    if not {"train", "test"} <= set(hdf5_splits(target) if target.is_dir() else {}):
        n_train = shapes_per_category or SHAPES_PER_CATEGORY["train"]
        n_test = max(1, shapes_per_category // 4) if shapes_per_category else SHAPES_PER_CATEGORY["test"]
        with atomic_dir(target) as tmp:
            for split_id, (split, per_cat, first_id) in enumerate((("train", n_train, 1), ("test", n_test, n_train + 1))):
                points, normals, parts, labels, ids = [], [], [], [], []
                for label, category in enumerate(CATEGORIES):
                    for i in range(per_cat):
                        p, n, g = generate_part_shape(category, num_points, np.random.default_rng([seed, split_id, label, i]))
                        points.append(p)
                        normals.append(n)
                        parts.append(g)
                        labels.append(label)
                        ids.append(f"{category}/{category.lower()}_{first_id + i:04d}")
                write_hdf5_split(tmp, split, np.stack(points), np.asarray(labels), CATEGORIES,
                                 normals=np.stack(normals), ids=ids, part_labels=np.stack(parts))  # fmt: skip
    return target


def make_default_parts_dataset(
    split: str = "train",
    num_points: int = STORED_POINTS,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    use_normals: bool = False,
    shapes_per_category: int | None = None,
) -> PointCloudDataset:
    """The embedded part-segmentation dataset (6 categories, 17 parts; 150 train / 40 test shapes each)."""
    if split not in SHAPES_PER_CATEGORY:
        raise DataError(f"the embedded parts dataset has splits train and test, not {split!r}")
    data = read_hdf5_split(default_parts_dir(num_points, seed, cache_dir, shapes_per_category), split)
    return PointCloudDataset(
        data.points, data.labels, data.class_names, normals=data.normals, ids=data.ids,
        use_normals=use_normals, part_labels=data.part_labels, spec=parts_spec(),
    )  # fmt: skip
