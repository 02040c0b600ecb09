"""Reading geometry: meshes through trimesh, point clouds through NumPy (and Open3D for .pcd/.ply).

Every reader returns float32 arrays and raises :class:`~pointnet_kit.errors.DataError` naming the
file and the problem for anything malformed: truncated, wrong counts, non-numeric, NaN/inf, no
faces, zero area.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import trimesh

from ..errors import DataError
from .sampling import farthest_point_sample, normalize_unit_sphere, resample, sample_surface

__all__ = ["MESH_SUFFIXES", "CLOUD_SUFFIXES", "read_off", "read_mesh", "read_point_cloud", "load_points"]

MESH_SUFFIXES = (".off", ".obj", ".ply", ".stl")
CLOUD_SUFFIXES = (".ply", ".pcd", ".xyz", ".npy", ".npz", ".txt", ".pts")


def read_off(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an OFF mesh: ``(vertices (V, 3) float64, faces (F, 3) int64)``, polygons fan-triangulated.

    Handles ModelNet's glued header (``OFF490 518 0`` on one line), comments and blank lines.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("ascii")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text OFF file (binary content)") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if "#" in text:
        text = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    text = text.lstrip()
    if not text.startswith("OFF"):
        raise DataError(f"{path}: not an OFF file (starts with {text[:10]!r}, expected 'OFF')")
    header, _, body_text = text[3:].lstrip().partition("\n")  # text[3:] also un-glues 'OFF490 518 0'
    try:
        counts = [int(v) for v in header.split()]
    except ValueError:
        raise DataError(f"{path}: the counts line {header.strip()!r} is not integers") from None
    if len(counts) < 2 or min(counts[:2]) < 0:
        raise DataError(f"{path}: the counts line {header.strip()!r} should be 'vertices faces edges'")
    nv, nf = counts[:2]
    if nf == 0:
        raise DataError(f"{path}: the mesh has no faces")
    fast = _read_off_fast(body_text, nv, nf)
    vertices, faces = fast if fast is not None else _read_off_lines(path, body_text, nv, nf)
    if not np.isfinite(vertices).all():
        raise DataError(f"{path}: vertices contain NaN or infinite values")
    if len(faces) == 0:
        raise DataError(f"{path}: the mesh has no faces")
    if faces.min() < 0 or faces.max() >= nv:
        raise DataError(f"{path}: a face refers to vertex {int(faces.max() if faces.max() >= nv else faces.min())}, outside 0..{nv - 1}")
    return vertices, faces


def _read_off_fast(body_text: str, nv: int, nf: int) -> tuple[np.ndarray, np.ndarray] | None:
    """NumPy's C parser on the two blocks (4x faster than ``fromstring``); ``None`` when the file is not
    plain (blank lines, polygons, bad tokens), leaving it to the exact line-by-line reader."""
    lines = body_text.split("\n", nv)
    if len(lines) <= nv:
        return None
    try:
        vertices = np.loadtxt(lines[:nv], dtype=np.float64, ndmin=2)
        faces = np.loadtxt(io.StringIO(lines[nv]), dtype=np.int64, ndmin=2)
    except ValueError:
        return None
    if vertices.shape[0] != nv or vertices.shape[1] < 3 or faces.shape != (nf, 4) or np.any(faces[:, 0] != 3):
        return None
    return vertices[:, :3], faces[:, 1:]


def _read_off_lines(path: Path, body_text: str, nv: int, nf: int) -> tuple[np.ndarray, np.ndarray]:
    """Line-by-line OFF body: polygons of any size, extra columns, and an exact error for bad content."""
    body = [line for line in body_text.splitlines() if line.strip()]
    if len(body) < nv + nf:
        raise DataError(f"{path}: truncated: the header says {nv} vertices and {nf} faces but only {len(body)} lines follow")
    if len(body) > nv + nf:
        raise DataError(f"{path}: wrong counts: the header says {nv} vertices and {nf} faces but {len(body)} lines follow")
    return _rows(path, body[:nv], 1, float, 3), _polygons(path, body[nv:], nv + 1)


def _rows(path: Path, lines: list[str], first_line: int, kind, width: int) -> np.ndarray:
    """Slow path for vertex rows with extra columns or bad tokens, to name the offending line."""
    rows = []
    for i, line in enumerate(lines):
        try:
            row = [kind(v) for v in line.split()[:width]]
        except ValueError:
            raise DataError(f"{path}: non-numeric value on data line {first_line + i}: {line.strip()[:60]!r}") from None
        if len(row) < width:
            raise DataError(f"{path}: data line {first_line + i} has {len(row)} values, expected {width}")
        rows.append(row)
    return np.asarray(rows, dtype=np.float64)


def _polygons(path: Path, lines: list[str], first_line: int) -> np.ndarray:
    """Faces of any size (``k i1 .. ik [colour]``), fan-triangulated."""
    faces = []
    for i, line in enumerate(lines):
        try:
            values = [int(v) for v in line.split()]
            k = values[0]
            if k < 3 or len(values) < k + 1:
                raise ValueError
        except (ValueError, IndexError):
            raise DataError(f"{path}: malformed face on data line {first_line + i}: {line.strip()[:60]!r}") from None
        ring = values[1 : k + 1]
        faces.extend([ring[0], ring[j], ring[j + 1]] for j in range(1, k - 1))
    return np.asarray(faces, dtype=np.int64).reshape(-1, 3)


def read_mesh(path: str | Path) -> trimesh.Trimesh:
    """Read a triangle mesh (.off, .obj, .ply, .stl); checks it has faces and non-zero, finite area."""
    path = Path(path)
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise DataError(f"{path}: unsupported mesh format {path.suffix!r} (use {', '.join(MESH_SUFFIXES)})")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix.lower() == ".off":
        vertices, faces = read_off(path)
        mesh = trimesh.Trimesh(vertices, faces, process=False)
    else:
        try:
            mesh = trimesh.load(path, force="mesh", process=False)
        except Exception as exc:  # trimesh raises many kinds; all mean the same to a user
            raise DataError(f"{path}: cannot read mesh ({type(exc).__name__}: {exc})") from exc
        if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
            raise DataError(f"{path}: the mesh has no faces")
        if not np.isfinite(mesh.vertices).all():
            raise DataError(f"{path}: vertices contain NaN or infinite values")
    area = float(mesh.area)
    if not np.isfinite(area) or area <= 0:
        raise DataError(f"{path}: the mesh has zero surface area ({len(mesh.faces)} degenerate faces)")
    return mesh


def _split_columns(path: Path, array: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if array.ndim != 2 or array.shape[1] not in (3, 6):
        raise DataError(f"{path}: expected 3 columns (x y z) or 6 (x y z nx ny nz), got shape {array.shape}")
    if len(array) == 0:
        raise DataError(f"{path}: the point cloud is empty")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise DataError(f"{path}: contains NaN or infinite values")
    return np.ascontiguousarray(array[:, :3]), (np.ascontiguousarray(array[:, 3:]) if array.shape[1] == 6 else None)


def _read_text_cloud(path: Path) -> np.ndarray:
    text = path.read_text(errors="replace")
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith(("#", "//"))]
    if not lines:
        raise DataError(f"{path}: the point cloud is empty")
    try:
        return np.loadtxt(lines, dtype=np.float64, delimiter="," if "," in lines[0] else None, ndmin=2)
    except ValueError:
        pass
    width = len(lines[0].replace(",", " ").split())
    for i, line in enumerate(lines):  # name the first bad row
        tokens = line.replace(",", " ").split()
        if len(tokens) != width:
            raise DataError(f"{path}: row {i + 1} has {len(tokens)} values, the first row has {width}")
        try:
            [float(t) for t in tokens]
        except ValueError:
            raise DataError(f"{path}: non-numeric value on row {i + 1}: {line.strip()[:60]!r}") from None
    raise DataError(f"{path}: cannot parse the numbers")


def _open3d():
    try:
        import open3d as o3d
    except Exception as exc:  # ImportError, or OSError for a missing system library
        raise DataError(f"reading this format needs Open3D, which cannot be imported here ({exc})") from exc
    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
    return o3d


def read_point_cloud(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a point cloud: ``(points (N, 3) float32, normals (N, 3) float32 or None)``.

    Formats: .npy ``(N, 3|6)``; .npz with ``points`` (or ``xyz``/``data``) and optional ``normals``;
    .txt/.xyz/.pts rows of ``x y z [nx ny nz]`` (spaces or commas); .ply/.pcd through Open3D.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CLOUD_SUFFIXES:
        raise DataError(f"{path}: unsupported point cloud format {suffix!r} (use {', '.join(CLOUD_SUFFIXES)})")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        if suffix == ".npy":
            return _split_columns(path, np.load(path, allow_pickle=False))
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                key = next((k for k in ("points", "xyz", "data", "pos") if k in archive), None) or archive.files[0]
                points, normals = _split_columns(path, archive[key])
                if "normals" in archive:
                    normals = _split_columns(path, archive["normals"])[0]
                    if len(normals) != len(points):
                        raise DataError(f"{path}: {len(points)} points but {len(normals)} normals")
                return points, normals
        if suffix in (".txt", ".xyz", ".pts"):
            return _split_columns(path, _read_text_cloud(path))
    except (ValueError, OSError, IndexError) as exc:  # np.load on a corrupt or empty file
        raise DataError(f"{path}: cannot read point cloud ({exc})") from exc
    o3d = _open3d()
    cloud = o3d.io.read_point_cloud(str(path))
    points = np.asarray(cloud.points)
    if len(points) == 0:
        raise DataError(f"{path}: Open3D read no points (empty or malformed {suffix} file)")
    normals = np.asarray(cloud.normals) if cloud.has_normals() else None
    points, _ = _split_columns(path, points)
    return points, None if normals is None else _split_columns(path, normals)[0]


def _has_faces(path: Path) -> bool:
    """Whether a .ply holds a mesh rather than a bare point cloud."""
    try:
        loaded = trimesh.load(path, process=False)
    except Exception:
        return False
    return isinstance(loaded, trimesh.Trimesh) and len(loaded.faces) > 0


def load_points(
    path: str | Path,
    num_points: int = 1024,
    seed: int = 0,
    normalize: bool = True,
    normals: bool = False,
) -> np.ndarray:
    """Any mesh or point cloud file as ``(num_points, 3)`` float32 (``(num_points, 6)`` with ``normals``).

    Meshes are surface-sampled; clouds with more points are reduced by farthest point sampling (after
    a random pre-subsample of huge clouds), clouds with fewer are padded by resampling their points.
    With ``normalize`` the result is centred and scaled to the unit sphere, as the datasets are.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES + CLOUD_SUFFIXES:
        raise DataError(f"{path}: unsupported file type {suffix!r} (meshes: {', '.join(MESH_SUFFIXES)}; clouds: {', '.join(CLOUD_SUFFIXES)})")
    rng = np.random.default_rng(seed)
    if suffix in MESH_SUFFIXES and (suffix != ".ply" or _has_faces(path)):
        sampled = sample_surface(read_mesh(path), num_points, normals=normals, seed=rng, name=str(path))
        points, point_normals = sampled if normals else (sampled, None)
    else:
        points, point_normals = read_point_cloud(path)
        if normals and point_normals is None:
            raise DataError(f"{path}: normals were asked for but the point cloud has no normals")
        if len(points) > num_points:
            keep = resample(len(points), min(len(points), 8 * num_points), rng)
            keep = keep[farthest_point_sample(points[keep], num_points, seed=int(rng.integers(2**31)))]
        else:
            keep = resample(len(points), num_points, rng)
        points = points[keep]
        point_normals = None if point_normals is None else point_normals[keep]
    if normalize:
        points = normalize_unit_sphere(points, name=str(path))
    if normals:
        return np.concatenate([points, point_normals], axis=1).astype(np.float32)
    return points.astype(np.float32)
