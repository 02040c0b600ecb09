"""The embedded default dataset: labelled shapes generated from trimesh primitives, offline, in seconds.

Twelve classes, from single primitives with random proportions (box, cylinder, cone, ellipsoid,
torus) to simple compositions (cross, arch, table, chair, lamp, mug, dumbbell). Every shape
gets random part sizes, a random rotation about the up axis (+z), area-weighted surface sampling,
normalisation to the unit sphere (as ModelNet) and a little Gaussian sampling noise. Proportions vary
so widely that per-shape statistics (coordinate spread, bounding box) overlap between classes: the
class is in the shape, not in its size.

Generated once per ``(seed, num_points)`` into an HDF5 folder in the release layout under the cache
(``$POINTNET_KIT_CACHE`` or ``~/.cache/pointnet-kit``), then read back in well under a second.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import trimesh

from .base import PointCloudDataset
from .cache import atomic_dir, default_cache_dir
from .hdf5 import hdf5_splits, read_hdf5_split, write_hdf5_split
from .record import STORED_POINTS
from .sampling import normalize_unit_sphere, sample_surface

__all__ = ["CLASS_NAMES", "make_default_dataset", "default_dataset_dir", "generate_shape", "generate_split"]

VERSION = 4  # bump when the generator changes, so stale caches are not reused
SHAPES_PER_CLASS = {"train": 200, "test": 50}
NOISE_SIGMA = 0.01
STRETCH = 1.35

Part = tuple[np.ndarray, np.ndarray]  # (vertices (V, 3), faces (F, 3))


@lru_cache(maxsize=None)
def _template(name: str) -> Part:
    """Unit-sized primitives, centred on the origin unless said otherwise."""
    c = trimesh.creation
    mesh = {
        "box": lambda: c.box(extents=(1, 1, 1)),
        "cylinder": lambda: c.cylinder(radius=0.5, height=1, sections=24),
        "cone": lambda: c.cone(radius=0.5, height=1, sections=24),  # base at z=0, apex at z=1
        "sphere": lambda: c.icosphere(subdivisions=2, radius=0.5),
        "torus_thin": lambda: c.torus(major_radius=1, minor_radius=0.15, major_sections=32, minor_sections=12),
        "torus_mid": lambda: c.torus(major_radius=1, minor_radius=0.28, major_sections=32, minor_sections=12),
        "torus_thick": lambda: c.torus(major_radius=1, minor_radius=0.42, major_sections=32, minor_sections=12),
    }[name]()
    return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)


def _part(name: str, size, at=(0.0, 0.0, 0.0), rotation: np.ndarray | None = None) -> Part:
    v, f = _template(name)
    v = v * np.asarray(size, np.float64)
    if rotation is not None:
        v = v @ rotation.T
    return v + np.asarray(at, np.float64), f


def _rot_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _legs(half_w: float, half_d: float, height: float, thick: float) -> list[Part]:
    return [
        _part("box", (thick, thick, height), (sx * (half_w - thick / 2), sy * (half_d - thick / 2), height / 2))
        for sx in (-1, 1)
        for sy in (-1, 1)
    ]


def _box(r):
    return [_part("box", r.uniform(0.25, 1.0, 3))]


def _cylinder(r):
    radius, height = r.uniform(0.15, 0.55), r.uniform(0.25, 1.4)
    return [_part("cylinder", (2 * radius, 2 * radius, height))]


def _cone(r):
    radius, height = r.uniform(0.2, 0.6), r.uniform(0.3, 1.4)
    return [_part("cone", (2 * radius, 2 * radius, height))]


def _cross(r):
    long_x, long_y, width, height = r.uniform(0.6, 1.4), r.uniform(0.6, 1.4), r.uniform(0.12, 0.3), r.uniform(0.1, 0.8)
    return [_part("box", (long_x, width, height)), _part("box", (width, long_y, height))]


def _ellipsoid(r):
    return [_part("sphere", r.uniform(0.3, 1.2, 3))]


def _torus(r):
    name = ("torus_thin", "torus_mid", "torus_thick")[r.integers(3)]
    standing = _rot_x(math.pi / 2) if r.random() < 0.5 else None  # a wheel rather than a ring
    return [_part(name, (1.0, r.uniform(0.7, 1.0), r.uniform(0.6, 1.4)), rotation=standing)]


def _arch(r):
    span, depth, height = r.uniform(0.6, 1.4), r.uniform(0.1, 0.5), r.uniform(0.4, 1.2)
    pillar, beam = r.uniform(0.08, 0.25), r.uniform(0.08, 0.25)
    legs = [_part("box", (pillar, depth, height), (s * (span - pillar) / 2, 0, height / 2)) for s in (-1, 1)]
    return legs + [_part("box", (span, depth, beam), (0, 0, height + beam / 2))]


def _table(r):
    w, d, h = r.uniform(0.7, 1.6), r.uniform(0.4, 1.2), r.uniform(0.35, 1.0)
    top, leg = r.uniform(0.03, 0.1), r.uniform(0.03, 0.1)
    return [_part("box", (w, d, top), (0, 0, h - top / 2))] + _legs(w / 2, d / 2, h - top, leg)


def _chair(r):
    w, d, h = r.uniform(0.4, 0.8), r.uniform(0.4, 0.8), r.uniform(0.3, 0.6)
    seat, leg, back = r.uniform(0.03, 0.08), r.uniform(0.03, 0.07), r.uniform(0.3, 0.9)
    return (
        [_part("box", (w, d, seat), (0, 0, h - seat / 2))]
        + [_part("box", (w, seat, back), (0, -d / 2 + seat / 2, h + back / 2))]
        + _legs(w / 2, d / 2, h - seat, leg)
    )


def _lamp(r):
    base_r, base_h = r.uniform(0.12, 0.35), r.uniform(0.02, 0.08)
    pole_r, pole_h = r.uniform(0.015, 0.04), r.uniform(0.3, 1.2)
    shade_r, shade_h = r.uniform(0.15, 0.5), r.uniform(0.15, 0.45)
    return [
        _part("cylinder", (2 * base_r, 2 * base_r, base_h), (0, 0, base_h / 2)),
        _part("cylinder", (2 * pole_r, 2 * pole_r, pole_h), (0, 0, base_h + pole_h / 2)),
        _part("cone", (2 * shade_r, 2 * shade_r, shade_h), (0, 0, base_h + pole_h - shade_h / 3)),
    ]


def _mug(r):
    radius, height = r.uniform(0.2, 0.45), r.uniform(0.3, 1.0)
    handle = height * r.uniform(0.3, 0.45)
    return [
        _part("cylinder", (2 * radius, 2 * radius, height), (0, 0, height / 2)),
        _part("torus_mid", (handle, handle, handle * r.uniform(0.8, 1.3)), (radius, 0, height / 2), _rot_x(math.pi / 2)),
    ]


def _dumbbell(r):
    length, bar_r = r.uniform(0.5, 1.4), r.uniform(0.03, 0.09)
    ends = [r.uniform(0.12, 0.35, 3) * np.array([1, 1, r.uniform(0.8, 1.2)]) for _ in range(2)]
    bar = _part("cylinder", (2 * bar_r, 2 * bar_r, length), rotation=_rot_x(math.pi / 2))
    return [bar] + [_part("sphere", 2 * e, (0, s * length / 2, 0)) for e, s in zip(ends, (-1, 1))]


GENERATORS: dict[str, Callable[[np.random.Generator], list[Part]]] = {
    "box": _box,
    "cylinder": _cylinder,
    "cone": _cone,
    "cross": _cross,
    "ellipsoid": _ellipsoid,
    "torus": _torus,
    "arch": _arch,
    "table": _table,
    "chair": _chair,
    "lamp": _lamp,
    "mug": _mug,
    "dumbbell": _dumbbell,
}
CLASS_NAMES = list(GENERATORS)


def generate_shape(class_name: str, num_points: int = STORED_POINTS, seed: int | np.random.Generator = 0) -> tuple[np.ndarray, np.ndarray]:
    """One random shape of a class: ``(points (N, 3), normals (N, 3))`` float32, unit sphere, +z up."""
    rng = np.random.default_rng(seed)
    parts = GENERATORS[class_name](rng)
    offsets = np.cumsum([0] + [len(v) for v, _ in parts[:-1]])
    # a random stretch of the whole shape blurs its proportions, so that its bounding box and
    # coordinate spread say little about its class
    vertices = np.concatenate([v for v, _ in parts]) * rng.uniform(1 / STRETCH, STRETCH, 3)
    faces = np.concatenate([f + o for (_, f), o in zip(parts, offsets)])
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    points, normals = sample_surface(mesh, num_points, normals=True, seed=rng, name=class_name)
    from .transforms import axis_rotation  # the package's one rotation about an axis

    rotation = axis_rotation("z", float(rng.uniform(0, 2 * math.pi))).numpy()
    points = normalize_unit_sphere(points @ rotation.T, name=class_name)
    points += rng.normal(0, NOISE_SIGMA, points.shape).astype(np.float32)
    return points, normals @ rotation.T


def generate_split(split: str, num_points: int = STORED_POINTS, seed: int = 0, per_class: int | None = None, first_id: int = 1):
    """All shapes of a split: ``(points (M, N, 3), normals (M, N, 3), labels (M,), ids)``.

    Each shape has its own seed ``(seed, split, class, index)``, so train and test never share one;
    ids are ``<class>/<class>_<first_id + index>`` (ModelNet numbers test shapes after train ones).
    """
    per_class = per_class or SHAPES_PER_CLASS[split]
    split_id = {"train": 0, "test": 1}[split]
    points, normals, labels, ids = [], [], [], []
    for label, name in enumerate(CLASS_NAMES):
        for i in range(per_class):
            p, n = generate_shape(name, num_points, seed=np.random.default_rng([seed, split_id, label, i]))
            points.append(p)
            normals.append(n)
            labels.append(label)
            ids.append(f"{name}/{name}_{first_id + i:04d}")
    return np.stack(points), np.stack(normals).astype(np.float32), np.asarray(labels, np.int64), ids


def default_dataset_dir(
    num_points: int = STORED_POINTS, seed: int = 0, cache_dir: str | Path | None = None, shapes_per_class: int | None = None
) -> Path:
    """The HDF5 folder of the embedded dataset, generated (both splits) on first use."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    size = "" if shapes_per_class is None else f"-c{shapes_per_class}"
    target = root / "embedded" / f"v{VERSION}-seed{seed}-n{num_points}{size}"
    if not {"train", "test"} <= set(hdf5_splits(target) if target.is_dir() else {}):
        with atomic_dir(target) as tmp:
            n_train = shapes_per_class or SHAPES_PER_CLASS["train"]
            n_test = max(1, shapes_per_class // 4) if shapes_per_class else SHAPES_PER_CLASS["test"]
            for split, per_class, first_id in (("train", n_train, 1), ("test", n_test, n_train + 1)):
                points, normals, labels, ids = generate_split(split, num_points, seed, per_class, first_id)
                write_hdf5_split(tmp, split, points, labels, CLASS_NAMES, normals=normals, ids=ids)
    return target


def make_default_dataset(
    split: str = "train",
    num_points: int = STORED_POINTS,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    use_normals: bool = False,
    shapes_per_class: int | None = None,
) -> PointCloudDataset:
    """The embedded synthetic dataset (12 classes, 200 train / 50 test shapes each), offline.

    Args:
        split: ``"train"`` or ``"test"``.
        num_points: points per shape.
        seed: generation seed (a different seed gives a different dataset).
        cache_dir: cache root (default ``$POINTNET_KIT_CACHE`` or ``~/.cache/pointnet-kit``).
        use_normals: return 6-channel clouds (xyz + normals).
        shapes_per_class: train shapes per class (test gets a quarter as many); default 200.
    """
    if split not in SHAPES_PER_CLASS:
        from ..errors import DataError

        raise DataError(f"the embedded dataset has splits train and test, not {split!r}")
    data = read_hdf5_split(default_dataset_dir(num_points, seed, cache_dir, shapes_per_class), split)
    return PointCloudDataset(
        data.points, data.labels, data.class_names, normals=data.normals, ids=data.ids, use_normals=use_normals
    )
