"""Surface sampling, farthest point sampling, and unit-sphere normalisation."""

from __future__ import annotations

import numpy as np
import torch
import trimesh

from ..errors import DataError
from ..layers import grouping

__all__ = ["sample_surface", "farthest_point_sample", "normalize_unit_sphere", "resample"]


def sample_surface(
    mesh: trimesh.Trimesh,
    num_points: int,
    normals: bool = False,
    oversample: int = 1,
    seed: int | np.random.Generator = 0,
    name: str = "mesh",
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Area-weighted uniform random points on a mesh's surface (trimesh).

    Args:
        mesh: a triangle mesh with non-zero area.
        num_points: number of points ``N`` to return.
        normals: also return the normal of the face each point lies on.
        oversample: if > 1, draw ``oversample * N`` points and keep ``N`` of them by farthest point
            sampling (more even coverage, slower).
        seed: seed or ``np.random.Generator``.
        name: what to call the mesh in errors (usually its file).

    Returns:
        ``points (N, 3) float32``, and ``normals (N, 3) float32`` when asked.
    """
    if num_points < 1 or oversample < 1:
        raise ValueError(f"num_points and oversample must be >= 1, got {num_points}, {oversample}")
    area = float(mesh.area) if len(mesh.faces) else 0.0
    if not np.isfinite(area) or area <= 0:
        raise DataError(f"{name}: the mesh has zero surface area ({len(mesh.faces)} faces), nothing to sample")
    rng = np.random.default_rng(seed)
    points, face_index = trimesh.sample.sample_surface(mesh, num_points * oversample, seed=rng)
    points = points.astype(np.float32)
    if oversample > 1:
        keep = farthest_point_sample(points, num_points, seed=int(rng.integers(2**31)))
        points, face_index = points[keep], face_index[keep]
    if not normals:
        return points
    return points, mesh.face_normals[face_index].astype(np.float32)


def farthest_point_sample(points: np.ndarray | torch.Tensor, k: int, seed: int | None = 0) -> np.ndarray | torch.Tensor:
    """Indices of ``k`` points chosen greedily, each the farthest from those already chosen: the
    data-side face of :func:`~pointnet_kit.layers.grouping.farthest_point_sample` (the one implementation).

    Args:
        points: ``(N, C)`` or ``(B, N, C)`` (the first 3 channels are used), NumPy or torch (runs on
            the tensor's device, in float32, vectorised over the batch).
        k: how many to keep (``k <= N``).
        seed: picks the first point; ``None`` starts from point 0.

    Returns:
        ``(k,)`` or ``(B, k)`` int64 indices, of the same kind (NumPy/torch) as ``points``.
    """
    is_numpy = isinstance(points, np.ndarray)
    x = torch.from_numpy(np.asarray(points, dtype=np.float32)) if is_numpy else points
    single = x.dim() == 2
    x = x.unsqueeze(0) if single else x
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    chosen = grouping.farthest_point_sample(x[..., :3].float(), k, generator=generator)
    chosen = chosen[0] if single else chosen
    return chosen.numpy() if is_numpy else chosen


def normalize_unit_sphere(points: np.ndarray, name: str = "points") -> np.ndarray:
    """Centre on the centroid and scale so the farthest point is at distance 1.

    Args:
        points: ``(N, 3)`` or ``(B, N, 3)``, each cloud normalised on its own.

    Returns:
        float32 array of the same shape. The arithmetic is float64: far-from-origin (e.g. UTM)
        coordinates would lose their detail if cast to float32 before centring.
    """
    points = np.asarray(points, dtype=np.float64)
    centred = points - points.mean(axis=-2, keepdims=True)
    radius = np.linalg.norm(centred, axis=-1).max(axis=-1, keepdims=True)[..., None]
    if not np.all(np.isfinite(radius)) or np.any(radius <= 0):
        raise DataError(f"{name}: cannot normalise a cloud whose points are all the same or not finite")
    return (centred / radius).astype(np.float32)


def resample(num_available: int, num_points: int, seed: int | np.random.Generator = 0) -> np.ndarray:
    """Indices picking ``num_points`` of ``num_available`` at random: without replacement when there are
    enough, otherwise all of them plus random repeats (padding by resampling)."""
    rng = np.random.default_rng(seed)
    if num_available >= num_points:
        return rng.choice(num_available, num_points, replace=False)
    extra = rng.choice(num_available, num_points - num_available, replace=True)
    return np.concatenate([np.arange(num_available), extra])
