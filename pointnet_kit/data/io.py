"""Reading geometry: strict readers for every mesh and point cloud format we accept.

Each reader parses the whole file itself and vouches for every value it returns: counts in headers
are checked against the file size *before* anything is allocated, every declared element must be
present (no truncation, no trailing garbage), indices must be in range, values finite. Anything else
is a :class:`~pointnet_kit.errors.DataError` naming the file and the problem. Nothing is unpickled.
Only regular files are read (a FIFO or a device would block or never end).

Limits (environment variables): ``POINTNET_KIT_MAX_POINTS`` (vertices, points or faces per file,
default 50 million) and ``POINTNET_KIT_MAX_FILE_MB`` (bytes read or decompressed per file, default 4096).
"""

from __future__ import annotations

import functools
import io
import os
import re
import stat
import struct
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
import trimesh

from ..errors import DataError
from .record import STORED_POINTS
from .sampling import farthest_point_sample, normalize_unit_sphere, resample, sample_surface

__all__ = [
    "MESH_SUFFIXES", "CLOUD_SUFFIXES", "read_off", "read_ply", "read_mesh", "read_point_cloud", "load_points",
    "max_points", "max_file_bytes",
]

MESH_SUFFIXES = (".off", ".obj", ".ply", ".stl")
CLOUD_SUFFIXES = (".ply", ".pcd", ".xyz", ".npy", ".npz", ".txt", ".pts")


_F = TypeVar("_F", bound=Callable)


def _quiet(fn: _F) -> _F:
    """Readers judge damaged input themselves: NumPy's warnings about it (empty input, NaN casts) would
    only add noise next to the one-line error."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def max_points() -> int:
    """Most vertices / points / faces one file may declare (``POINTNET_KIT_MAX_POINTS``)."""
    return _env_int("POINTNET_KIT_MAX_POINTS", 50_000_000)


def max_file_bytes() -> int:
    """Most bytes one file may hold or decompress to (``POINTNET_KIT_MAX_FILE_MB``, in MiB)."""
    return _env_int("POINTNET_KIT_MAX_FILE_MB", 4096) << 20


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw.strip() else default
    except ValueError:
        raise DataError(f"environment variable {name}={raw!r} is not an integer") from None
    if value < 1:
        raise DataError(f"environment variable {name}={raw!r} must be >= 1")
    return value


def _clip(text: str | bytes, n: int = 40) -> str:
    """A short, printable excerpt of file content for an error message."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    text = text.strip()
    return repr(text[:n] + ("..." if len(text) > n else ""))


def _check_count(path: Path, what: str, count: int, limit: int | None = None) -> int:
    limit = max_points() if limit is None else limit
    if count < 0:
        raise DataError(f"{path}: negative {what} count {count}")
    if count > limit:
        raise DataError(f"{path}: the header declares {count} {what}, more than the limit of {limit} "
                        "(raise POINTNET_KIT_MAX_POINTS if the file really is that large)")
    return count


def _regular_file(path: Path) -> int:
    """The size of ``path``, which must be a regular file (symlinks to one are fine) within the size limit."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (a device, FIFO or socket)"
        raise DataError(f"{path}: {kind}, expected a mesh or point cloud file")
    if st.st_size > max_file_bytes():
        raise DataError(f"{path}: {st.st_size} bytes, more than the limit of {max_file_bytes() >> 20} MiB "
                        "(raise POINTNET_KIT_MAX_FILE_MB if you mean it)")
    return st.st_size


def _read_bytes(path: Path) -> bytes:
    _regular_file(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def _ascii_text(path: Path, data: bytes, kind: str) -> str:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text {kind} file (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # Windows and old-Mac line endings


def _finite(path: Path, array: np.ndarray, what: str = "vertices") -> np.ndarray:
    if not np.isfinite(array).all():
        raise DataError(f"{path}: {what} contain NaN or infinite values")
    return array


def _check_faces(path: Path, faces: np.ndarray, nv: int) -> np.ndarray:
    if len(faces) and (faces.min() < 0 or faces.max() >= nv):
        bad = int(faces.max() if faces.max() >= nv else faces.min())
        raise DataError(f"{path}: a face refers to vertex {bad}, outside 0..{nv - 1}")
    return faces


# --- OFF -----------------------------------------------------------------------------------------


@_quiet
def read_off(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an OFF mesh: ``(vertices (V, 3) float64, faces (F, 3) int64)``, polygons fan-triangulated.

    Handles ModelNet's glued header (``OFF490 518 0`` on one line), comments, blank lines and any line
    ending (``\\n``, ``\\r\\n``, old-Mac ``\\r``).
    """
    path = Path(path)
    text = _ascii_text(path, _read_bytes(path), "OFF")
    if "#" in text:
        text = "\n".join(line.split("#", 1)[0] for line in text.split("\n"))
    text = text.lstrip()
    keyword = re.match(r"(?:ST)?C?N?OFF", text)  # NOFF / COFF / CNOFF: extra vertex columns, ignored
    if keyword is None:
        raise DataError(f"{path}: not an OFF file (starts with {_clip(text, 10)}, expected 'OFF')")
    header, _, body_text = text[keyword.end():].lstrip().partition("\n")  # also un-glues 'OFF490 518 0'
    try:
        counts = [int(v) for v in header.split()]
    except ValueError:
        raise DataError(f"{path}: the counts line {_clip(header)} is not integers") from None
    if len(counts) < 2 or min(counts[:2]) < 0:
        raise DataError(f"{path}: the counts line {_clip(header)} should be 'vertices faces edges'")
    nv, nf = _check_count(path, "vertices", counts[0]), _check_count(path, "faces", counts[1])
    if nf == 0:
        raise DataError(f"{path}: the mesh has no faces")
    # Every vertex line takes at least 6 characters ('0 0 0\n'), every face more ('3 0 1 2\n').
    if 6 * (nv + nf) - 1 > len(body_text):
        raise DataError(f"{path}: truncated: the header says {nv} vertices and {nf} faces, which cannot fit in "
                        f"the {len(body_text)} characters that follow")
    fast = _read_off_fast(body_text, nv, nf)
    vertices, faces = fast if fast is not None else _read_off_lines(path, body_text, nv, nf)
    _finite(path, vertices)
    if len(faces) == 0:
        raise DataError(f"{path}: the mesh has no faces")
    return vertices, _check_faces(path, faces, nv)


def _read_off_fast(body_text: str, nv: int, nf: int) -> tuple[np.ndarray, np.ndarray] | None:
    """NumPy's C parser on the two blocks (4x faster than ``fromstring``); ``None`` when the file is not
    plain (blank lines, polygons, bad tokens), leaving it to the exact line-by-line reader."""
    lines = body_text.split("\n", nv)
    if len(lines) <= nv:
        return None
    try:
        vertices = np.loadtxt(lines[:nv], dtype=np.float64, ndmin=2)
        faces = np.loadtxt(io.StringIO(lines[nv]), dtype=np.int64, ndmin=2)
    except (ValueError, OverflowError):
        return None
    if vertices.shape[0] != nv or vertices.shape[1] < 3 or faces.shape != (nf, 4) or np.any(faces[:, 0] != 3):
        return None
    return vertices[:, :3], faces[:, 1:]


def _read_off_lines(path: Path, body_text: str, nv: int, nf: int) -> tuple[np.ndarray, np.ndarray]:
    """Line-by-line OFF body: polygons of any size, extra columns, and an exact error for bad content."""
    body = [line for line in body_text.split("\n") if line.strip()]
    if len(body) < nv + nf:
        raise DataError(f"{path}: truncated: the header says {nv} vertices and {nf} faces but only {len(body)} lines follow")
    if len(body) > nv + nf:
        raise DataError(f"{path}: wrong counts: the header says {nv} vertices and {nf} faces but {len(body)} lines follow")
    return _rows(path, body[:nv], 1, 3), _polygons(path, body[nv:], nv + 1)


def _rows(path: Path, lines: list[str], first_line: int, width: int) -> np.ndarray:
    """Slow path for vertex rows with extra columns or bad tokens, to name the offending line."""
    rows = []
    for i, line in enumerate(lines):
        try:
            row = [float(v) for v in line.split()[:width]]
        except ValueError:
            raise DataError(f"{path}: non-numeric value on data line {first_line + i}: {_clip(line)}") from None
        if len(row) < width:
            raise DataError(f"{path}: data line {first_line + i} has {len(row)} values, expected {width}")
        rows.append(row)
    return np.asarray(rows, dtype=np.float64).reshape(-1, width)


def _polygons(path: Path, lines: list[str], first_line: int) -> np.ndarray:
    """Faces of any size (``k i1 .. ik [colour]``), fan-triangulated."""
    faces = []
    limit = max_points()
    for i, line in enumerate(lines):
        try:
            values = [int(v) for v in line.split()]
            k = values[0]
            if k < 3 or len(values) < k + 1:
                raise ValueError
        except (ValueError, IndexError):
            raise DataError(f"{path}: malformed face on data line {first_line + i}: {_clip(line)}") from None
        ring = values[1 : k + 1]
        faces.extend([ring[0], ring[j], ring[j + 1]] for j in range(1, k - 1))
        if len(faces) > limit:
            raise DataError(f"{path}: more than {limit} triangles after triangulating polygons")
    return _int_array(path, faces)


def _int_array(path: Path, faces: list) -> np.ndarray:
    try:
        return np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    except OverflowError:
        raise DataError(f"{path}: a face index does not fit in 64 bits") from None


# --- PLY -----------------------------------------------------------------------------------------

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_TRAILING_OK = b" \t\r\n\x00"


@dataclass
class _PlyElement:
    name: str
    count: int
    props: list[tuple[str, str, str | None]]  # (name, value type, list count type or None)


@dataclass
class PlyData:
    """What :func:`read_ply` returns: float64 vertices, optional normals, optional triangles."""

    vertices: np.ndarray  # (V, 3) float64
    normals: np.ndarray | None  # (V, 3) float64
    faces: np.ndarray | None  # (F, 3) int64, fan-triangulated


def _ply_header(path: Path, data: bytes) -> tuple[str, list[_PlyElement], int]:
    end = re.search(rb"end_header[ \t]*\r?\n", data[: 1 << 16])
    if not data.startswith(b"ply") or end is None:
        what = "no 'end_header' line in the first 64 KiB" if data.startswith(b"ply") else f"starts with {_clip(data[:10])}"
        raise DataError(f"{path}: not a PLY file ({what})")
    try:
        lines = data[: end.start()].decode("ascii").replace("\r", "").split("\n")
    except UnicodeDecodeError:
        raise DataError(f"{path}: the PLY header is not ASCII text") from None
    fmt, elements = None, []
    for number, line in enumerate(lines[1:], start=2):
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        bad = DataError(f"{path}: malformed PLY header line {number}: {_clip(line)}")
        if words[0] == "format":
            if len(words) != 3 or words[1] not in ("ascii", "binary_little_endian", "binary_big_endian"):
                raise bad
            fmt = words[1]
        elif words[0] == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise bad
            elements.append(_PlyElement(words[1], _check_count(path, f"'{words[1]}' elements", int(words[2])), []))
        elif words[0] == "property":
            if not elements:
                raise bad
            if len(words) == 3 and words[1] in _PLY_TYPES:
                elements[-1].props.append((words[2], _PLY_TYPES[words[1]], None))
            elif len(words) == 5 and words[1] == "list" and words[2] in _PLY_TYPES and words[3] in _PLY_TYPES:
                if _PLY_TYPES[words[2]][0] == "f":
                    raise bad
                elements[-1].props.append((words[4], _PLY_TYPES[words[3]], _PLY_TYPES[words[2]]))
            else:
                raise bad
        else:
            raise bad
    if fmt is None:
        raise DataError(f"{path}: the PLY header has no 'format' line")
    return fmt, elements, end.end()


@_quiet
def read_ply(path: str | Path) -> PlyData:
    """Read a PLY file (ascii or binary) with its own strict parser: every declared element must be
    present and fully parsed, nothing may follow the last one, faces must index existing vertices."""
    path = Path(path)
    data = _read_bytes(path)
    fmt, elements, start = _ply_header(path, data)
    vertex = next((e for e in elements if e.name == "vertex"), None)
    if vertex is None:
        raise DataError(f"{path}: the PLY header declares no 'vertex' element")
    names = [p[0] for p in vertex.props if p[2] is None]
    if not {"x", "y", "z"} <= set(names):
        raise DataError(f"{path}: the PLY vertices have no x, y, z properties (they have {', '.join(names) or 'none'})")
    payload = memoryview(data)[start:]
    parse = _ply_ascii if fmt == "ascii" else _ply_binary
    values = parse(path, payload, elements, ">" if fmt == "binary_big_endian" else "<")
    v = values["vertex"]
    if len(v["x"]) == 0:
        raise DataError(f"{path}: the PLY file has no vertices")
    vertices = _finite(path, np.stack([v["x"], v["y"], v["z"]], axis=1).astype(np.float64))
    normals = None
    if {"nx", "ny", "nz"} <= set(names):
        normals = _finite(path, np.stack([v["nx"], v["ny"], v["nz"]], axis=1).astype(np.float64), "normals")
    faces = None
    face = values.get("face")
    if face is not None:
        key = next((k for k in ("vertex_indices", "vertex_index") if k in face), None)
        if key is not None and len(face[key]):
            faces = _check_faces(path, _triangulate(path, face[key]), len(vertices))
    return PlyData(vertices, normals, faces)


def _triangulate(path: Path, rings: list[np.ndarray] | np.ndarray) -> np.ndarray:
    if isinstance(rings, np.ndarray):  # (F, k) fixed-size polygons
        if rings.shape[1] < 3:
            raise DataError(f"{path}: a face has {rings.shape[1]} vertices, at least 3 are needed")
        tris = [np.stack([rings[:, 0], rings[:, j], rings[:, j + 1]], axis=1) for j in range(1, rings.shape[1] - 1)]
        return np.concatenate(tris).astype(np.int64)
    out = []
    for ring in rings:
        if len(ring) < 3:
            raise DataError(f"{path}: a face has {len(ring)} vertices, at least 3 are needed")
        out.extend([ring[0], ring[j], ring[j + 1]] for j in range(1, len(ring) - 1))
    return _int_array(path, out)


def _ply_binary(path: Path, payload: memoryview, elements: list[_PlyElement], order: str) -> dict[str, dict]:
    pos, out = 0, {}
    size = len(payload)
    for el in elements:
        scalar_bytes = sum(np.dtype(t).itemsize for _, t, c in el.props if c is None)
        list_min = sum(np.dtype(c).itemsize for _, _, c in el.props if c is not None)
        if el.count * (scalar_bytes + list_min) > size - pos:
            raise DataError(f"{path}: truncated: the header declares {el.count} '{el.name}' elements, which need at least "
                            f"{el.count * (scalar_bytes + list_min)} bytes, only {size - pos} remain")
        if all(c is None for _, _, c in el.props):
            dtype = np.dtype([(n, order + t) for n, t, _ in el.props])
            table = np.frombuffer(payload, dtype, count=el.count, offset=pos)
            out[el.name] = {n: table[n] for n in table.dtype.names or ()}
            pos += el.count * dtype.itemsize
        else:
            out[el.name], pos = _ply_binary_lists(path, payload, el, order, pos)
    rest = bytes(payload[pos:])
    if rest.strip(_TRAILING_OK):
        raise DataError(f"{path}: {len(rest)} bytes of unparsed data after the last PLY element (wrong counts in the header?)")
    return out


def _ply_binary_lists(path: Path, payload: memoryview, el: _PlyElement, order: str, pos: int) -> tuple[dict, int]:
    """An element with list properties: fast when every row has the same list lengths (all triangles),
    else row by row."""
    if el.count == 0:
        return {n: [] for n, _, _ in el.props}, pos
    # Guess fixed list lengths from the first row, then check every row agrees.
    lengths, cursor = [], pos
    for _, t, c in el.props:
        if c is None:
            cursor += np.dtype(t).itemsize
            continue
        if cursor + np.dtype(c).itemsize > len(payload):
            raise DataError(f"{path}: truncated inside the first '{el.name}' element")
        k = int(np.frombuffer(payload, order + c, count=1, offset=cursor)[0])
        lengths.append(k)
        cursor += np.dtype(c).itemsize + k * np.dtype(t).itemsize
    fields, li = [], 0
    for i, (n, t, c) in enumerate(el.props):
        if c is None:
            fields.append((f"s{i}", order + t))
        else:
            fields.append((f"c{i}", order + c))
            fields.append((f"v{i}", order + t, (lengths[li],)))
            li += 1
    dtype = np.dtype(fields)
    if pos + el.count * dtype.itemsize <= len(payload):
        table = np.frombuffer(payload, dtype, count=el.count, offset=pos)
        li, ok = 0, True
        for i, (_, _, c) in enumerate(el.props):
            if c is not None:
                ok &= bool(np.all(table[f"c{i}"] == lengths[li]))
                li += 1
        if ok:
            values = {n: (table[f"v{i}"] if c is not None else table[f"s{i}"]) for i, (n, _, c) in enumerate(el.props)}
            return values, pos + el.count * dtype.itemsize
    values: dict[str, list] = {n: [] for n, _, _ in el.props}
    for row in range(el.count):
        for n, t, c in el.props:
            if c is None:
                need = np.dtype(t).itemsize
                if pos + need > len(payload):
                    raise DataError(f"{path}: truncated: '{el.name}' element {row} of {el.count} is cut off")
                values[n].append(np.frombuffer(payload, order + t, count=1, offset=pos)[0])
                pos += need
            else:
                cs = np.dtype(c).itemsize
                if pos + cs > len(payload):
                    raise DataError(f"{path}: truncated: '{el.name}' element {row} of {el.count} is cut off")
                k = int(np.frombuffer(payload, order + c, count=1, offset=pos)[0])
                pos += cs
                need = k * np.dtype(t).itemsize
                if k < 0 or pos + need > len(payload):
                    raise DataError(f"{path}: truncated: '{el.name}' element {row} of {el.count} is cut off")
                values[n].append(np.frombuffer(payload, order + t, count=k, offset=pos))
                pos += need
    return values, pos


def _ply_ascii(path: Path, payload: memoryview, elements: list[_PlyElement], order: str) -> dict[str, dict]:
    text = _ascii_text(path, bytes(payload), "PLY")
    lines = [line for line in text.split("\n") if line.strip()]
    total = sum(e.count for e in elements)
    if len(lines) != total:
        what = "truncated" if len(lines) < total else "wrong counts"
        raise DataError(f"{path}: {what}: the header declares {total} element lines, the file has {len(lines)}")
    out, at = {}, 0
    for el in elements:
        block, at = lines[at : at + el.count], at + el.count
        out[el.name] = _ply_ascii_block(path, el, block)
    return out


def _ply_ascii_block(path: Path, el: _PlyElement, block: list[str]) -> dict:
    if el.count == 0:
        return {n: [] for n, _, _ in el.props}
    try:
        table = np.loadtxt(block, dtype=np.float64, ndmin=2)
    except ValueError:
        table = None
    if table is not None and all(c is None for _, _, c in el.props):
        if table.shape[1] != len(el.props):
            raise DataError(f"{path}: '{el.name}' rows have {table.shape[1]} values, the header declares {len(el.props)}")
        return {n: table[:, i] for i, (n, _, _) in enumerate(el.props)}
    if table is not None:  # uniform rows with lists: fixed list lengths, read off the first row
        col, cols, ok = 0, {}, True
        for n, _, c in el.props:
            if c is None:
                cols[n], col = table[:, col], col + 1
            else:
                if col >= table.shape[1]:
                    ok = False
                    break
                k = table[0, col]
                if k < 0 or k != int(k) or not np.all(table[:, col] == k):
                    ok = False
                    break
                cols[n], col = table[:, col + 1 : col + 1 + int(k)], col + 1 + int(k)
        if ok and col == table.shape[1]:
            return {n: (_as_int(path, v, el.name) if c is not None else v) for (n, _, c), v in zip(el.props, cols.values())}
    values: dict[str, list] = {n: [] for n, _, _ in el.props}
    for row, line in enumerate(block):
        tokens = line.split()
        try:
            for n, t, c in el.props:
                if c is None:
                    values[n].append(float(tokens.pop(0)))
                else:
                    k = int(tokens.pop(0))
                    if k < 0 or len(tokens) < k:
                        raise IndexError
                    values[n].append([int(tokens.pop(0)) for _ in range(k)])
            if tokens:
                raise IndexError
        except (IndexError, ValueError):
            raise DataError(f"{path}: malformed '{el.name}' element {row}: {_clip(line)}") from None
    return {n: (np.asarray(v, dtype=np.float64) if c is None else v) for (n, _, c), v in zip(el.props, values.values())}


def _as_int(path: Path, values: np.ndarray, name: str) -> np.ndarray:
    if not np.all(np.isfinite(values)) or np.any(values != np.round(values)) or np.abs(values).max(initial=0) > 2**62:
        raise DataError(f"{path}: '{name}' indices are not integers")
    return values.astype(np.int64)


# --- OBJ -----------------------------------------------------------------------------------------

_OBJ_IGNORED = {"vn", "vt", "vp", "g", "o", "s", "usemtl", "mtllib", "l", "p", "cstype", "deg", "curv", "curv2",
                "surf", "parm", "trim", "hole", "end", "bmat", "step", "mg", "lod", "shadow_obj", "trace_obj",
                "ctech", "stech", "usemap", "maplib", "bevel", "c_interp", "d_interp", "con", "sp", "call", "csh"}


@_quiet
def read_obj(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an OBJ mesh's vertices and (fan-triangulated) faces; relative (negative) indices resolved.

    Strict: every ``v`` line has 3, 4 or 6-7 numbers, every ``f`` line at least 3 vertex references that
    exist; unknown statements (a sign of a damaged or non-OBJ file) are refused.
    """
    path = Path(path)
    text = _read_bytes(path).decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
    vertices: list[list[float]] = []
    faces: list[list[int]] = []
    limit = max_points()
    for number, line in enumerate(text.split("\n"), start=1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        key = words[0]
        if key == "v":
            if len(words) not in (4, 5, 7, 8):
                raise DataError(f"{path}: line {number}: a vertex needs 3 coordinates: {_clip(line)}")
            try:
                vertices.append([float(w) for w in words[1:4]])
            except ValueError:
                raise DataError(f"{path}: line {number}: non-numeric vertex {_clip(line)}") from None
        elif key == "f":
            refs = words[1:]
            if len(refs) < 3:
                raise DataError(f"{path}: line {number}: a face needs at least 3 vertices: {_clip(line)}")
            ring = []
            for ref in refs:
                head = ref.split("/", 1)[0]
                try:
                    i = int(head)
                except ValueError:
                    raise DataError(f"{path}: line {number}: malformed face {_clip(line)}") from None
                i = i - 1 if i > 0 else len(vertices) + i if i < 0 else -(2**62)
                if not 0 <= i < len(vertices):
                    raise DataError(f"{path}: line {number}: a face refers to vertex {head}, but only {len(vertices)} are defined")
                ring.append(i)
            faces.extend([ring[0], ring[j], ring[j + 1]] for j in range(1, len(ring) - 1))
        elif key not in _OBJ_IGNORED:
            raise DataError(f"{path}: line {number}: not an OBJ statement: {_clip(line)}")
        if len(vertices) > limit or len(faces) > limit:
            raise DataError(f"{path}: more than {limit} vertices or faces")
    array = _finite(path, np.asarray(vertices, dtype=np.float64).reshape(-1, 3))
    return array, np.asarray(faces, dtype=np.int64).reshape(-1, 3)


# --- STL -----------------------------------------------------------------------------------------


@_quiet
def read_stl(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a binary or ASCII STL as ``(vertices (3F, 3), faces (F, 3))`` (a triangle soup).

    Binary: the triangle count at byte 80 must match the file size exactly. ASCII: every facet complete,
    ending in ``endsolid``."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) >= 84:
        (n,) = struct.unpack_from("<I", data, 80)
        if len(data) == 84 + 50 * n:
            _check_count(path, "triangles", n)
            table = np.frombuffer(data, np.dtype([("normal", "<f4", 3), ("tri", "<f4", (3, 3)), ("attr", "<u2")]), count=n, offset=84)
            vertices = _finite(path, table["tri"].reshape(-1, 3).astype(np.float64))
            return vertices, np.arange(3 * n, dtype=np.int64).reshape(-1, 3)
    if data.lstrip()[:5].lower() != b"solid":
        n = struct.unpack_from("<I", data, 80)[0] if len(data) >= 84 else None
        what = f"its header declares {n} triangles ({84 + 50 * n} bytes) but it has {len(data)} bytes" if n is not None else f"only {len(data)} bytes"
        raise DataError(f"{path}: not a valid STL file: binary, but {what}")
    return _read_stl_ascii(path, _ascii_text(path, data, "STL"))


def _read_stl_ascii(path: Path, text: str) -> tuple[np.ndarray, np.ndarray]:
    lines = [line.split() for line in text.split("\n") if line.strip()]
    expect = ["facet", "outer", "vertex", "vertex", "vertex", "endloop", "endfacet"]
    corners: list[list[float]] = []
    i, limit = 1, max_points()
    while i < len(lines) and lines[i][0].lower() != "endsolid":
        for j, word in enumerate(expect):
            if i + j >= len(lines) or lines[i + j][0].lower() != word:
                got = " ".join(lines[i + j])[:30] if i + j < len(lines) else "the end of the file"
                raise DataError(f"{path}: malformed ASCII STL near statement {i + j + 1}: expected '{word}', got {_clip(got)}")
            if word == "vertex":
                if len(lines[i + j]) != 4:
                    raise DataError(f"{path}: malformed ASCII STL vertex: {_clip(' '.join(lines[i + j]))}")
                try:
                    corners.append([float(v) for v in lines[i + j][1:]])
                except ValueError:
                    raise DataError(f"{path}: non-numeric ASCII STL vertex: {_clip(' '.join(lines[i + j]))}") from None
        i += len(expect)
        if len(corners) > 3 * limit:
            raise DataError(f"{path}: more than {limit} triangles")
    if i >= len(lines):
        raise DataError(f"{path}: truncated ASCII STL: no 'endsolid' after {len(corners) // 3} facets")
    if i != len(lines) - 1:
        raise DataError(f"{path}: {len(lines) - 1 - i} lines after 'endsolid' (more than one solid is not supported)")
    vertices = _finite(path, np.asarray(corners, dtype=np.float64).reshape(-1, 3))
    return vertices, np.arange(len(vertices), dtype=np.int64).reshape(-1, 3)


# --- meshes --------------------------------------------------------------------------------------


@_quiet
def read_mesh(path: str | Path) -> trimesh.Trimesh:
    """Read a triangle mesh (.off, .obj, .ply, .stl); checks it has faces and non-zero, finite area."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise DataError(f"{path}: unsupported mesh format {path.suffix!r} (use {', '.join(MESH_SUFFIXES)})")
    _regular_file(path)
    if suffix == ".ply":
        ply = read_ply(path)
        vertices, faces = ply.vertices, ply.faces if ply.faces is not None else np.zeros((0, 3), np.int64)
    else:
        vertices, faces = {".off": read_off, ".obj": read_obj, ".stl": read_stl}[suffix](path)
    if len(faces) == 0:
        raise DataError(f"{path}: the mesh has no faces")
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    area = float(mesh.area)
    if not np.isfinite(area) or area <= 0:
        raise DataError(f"{path}: the mesh has zero surface area ({len(mesh.faces)} degenerate faces)")
    return mesh


# --- point clouds --------------------------------------------------------------------------------


def _split_columns(path: Path, array: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``(points (N, 3) float64, normals (N, 3) float64 or None)`` from an ``(N, 3|6)`` numeric array."""
    if array.ndim != 2 or array.shape[1] not in (3, 6):
        raise DataError(f"{path}: expected 3 columns (x y z) or 6 (x y z nx ny nz), got shape {array.shape}")
    if len(array) == 0:
        raise DataError(f"{path}: the point cloud is empty")
    if array.dtype.kind not in "fiu":
        raise DataError(f"{path}: holds {array.dtype} values, expected numbers")
    array = _finite(path, array.astype(np.float64), "points")
    if np.abs(array).max() > 1e30:  # finite, but squaring them (distances) would overflow
        raise DataError(f"{path}: coordinates beyond 1e30")
    return np.ascontiguousarray(array[:, :3]), (np.ascontiguousarray(array[:, 3:]) if array.shape[1] == 6 else None)


def _read_text_cloud(path: Path) -> np.ndarray:
    text = _read_bytes(path).decode("utf-8", errors="replace")
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith(("#", "//"))]
    if not lines:
        raise DataError(f"{path}: the point cloud is empty")
    if len(lines) > max_points():
        _check_count(path, "points", len(lines))
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
            raise DataError(f"{path}: non-numeric value on row {i + 1}: {_clip(line)}") from None
    raise DataError(f"{path}: cannot parse the numbers")


_MAGIC = {
    b"\x1f\x8b": "gzip-compressed; decompress it first (gunzip)",
    b"PK\x03\x04": "a zip archive (an .npz?); name it .npz",
    b"\x80": "a Python pickle, which is never loaded (it could run code)",
    b"BZh": "bzip2-compressed; decompress it first",
    b"\xfd7zXZ": "xz-compressed; decompress it first",
}


def _npy_header(path: Path, f, available: int, what: str) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    """Read and check a .npy header from ``f``: ``(dtype, shape, fortran_order, data bytes)``."""
    head = f.read(6)
    if head != b"\x93NUMPY":
        reason = next((r for m, r in _MAGIC.items() if head.startswith(m)), f"no .npy signature (starts with {_clip(head)})")
        raise DataError(f"{path}: {what} is not a NumPy array file: {reason}")
    f.seek(0)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except Exception as exc:  # noqa: BLE001 - numpy's header parser raises many kinds on damaged input
        raise DataError(f"{path}: {what} has a corrupt .npy header ({_clip(str(exc), 80)})") from None
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in "fiub":
        raise DataError(f"{path}: {what} holds {dtype} values, expected plain numbers (object arrays are never loaded)")
    if len(shape) != 2:
        raise DataError(f"{path}: {what} has shape {shape}, expected (N, 3) or (N, 6)")
    count = int(np.prod(shape, dtype=object))
    _check_count(path, "points", int(shape[0]))
    nbytes = count * dtype.itemsize
    if nbytes > max_file_bytes():
        raise DataError(f"{path}: {what} declares {nbytes} bytes of data, more than the limit of {max_file_bytes() >> 20} MiB")
    return dtype, tuple(shape), bool(fortran), nbytes


def _read_npy_payload(path: Path, f, dtype, shape, fortran, nbytes: int, available: int, what: str) -> np.ndarray:
    if available < nbytes:
        raise DataError(f"{path}: {what} is truncated: its header declares shape {shape} ({nbytes} bytes), only {available} bytes follow")
    if available > nbytes:
        raise DataError(f"{path}: {what} has {available - nbytes} bytes after the array its header declares (shape {shape})")
    raw = f.read(nbytes)
    if len(raw) != nbytes:
        raise DataError(f"{path}: {what} is truncated: {len(raw)} of {nbytes} bytes")
    array = np.frombuffer(raw, dtype=dtype, count=nbytes // dtype.itemsize if dtype.itemsize else 0)
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def _read_npy(path: Path) -> np.ndarray:
    size = _regular_file(path)
    with open(path, "rb") as f:
        dtype, shape, fortran, nbytes = _npy_header(path, f, size, "the file")
        return _read_npy_payload(path, f, dtype, shape, fortran, nbytes, size - f.tell(), "the file")


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    _regular_file(path)
    try:
        with zipfile.ZipFile(path) as zf:
            members = {info.filename: info for info in zf.infolist()}
            if len(members) > 10_000:
                raise DataError(f"{path}: {len(members)} members, too many for a point cloud archive")
            arrays = {name[:-4]: info for name, info in members.items() if name.endswith(".npy")}
            if not arrays:
                raise DataError(f"{path}: no arrays in this .npz")
            key = next((k for k in ("points", "xyz", "data", "pos") if k in arrays), None) or sorted(arrays)[0]
            points = _npz_member(path, zf, arrays[key], key)
            normals = _npz_member(path, zf, arrays["normals"], "normals") if "normals" in arrays else None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz archive ({_clip(f'{type(exc).__name__}: {exc}', 80)})") from None
    return points, normals


def _npz_member(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, key: str) -> np.ndarray:
    what = f"array {key!r}"
    if info.file_size > max_file_bytes():
        raise DataError(f"{path}: {what} declares {info.file_size} bytes uncompressed, more than the limit of {max_file_bytes() >> 20} MiB")
    with zf.open(info) as f:
        dtype, shape, fortran, nbytes = _npy_header(path, f, info.file_size, what)
        array = _read_npy_payload(path, f, dtype, shape, fortran, nbytes, info.file_size - f.tell(), what)
        f.read(1)  # reach the end of the member, where zipfile checks its CRC
    return array


# --- PCD -----------------------------------------------------------------------------------------

_PCD_TYPES = {("F", 4): "f4", ("F", 8): "f8", ("I", 1): "i1", ("I", 2): "i2", ("I", 4): "i4", ("I", 8): "i8",
              ("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4", ("U", 8): "u8"}


@_quiet
def read_pcd(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a PCD (ascii, binary or binary_compressed) with its own strict parser:
    ``(points (N, 3) float64, normals (N, 3) float64 or None)``."""
    path = Path(path)
    data = _read_bytes(path)
    end = re.search(rb"^DATA[ \t]+(\S+)[ \t]*\r?\n", data[: 1 << 16], re.MULTILINE)
    if end is None:
        raise DataError(f"{path}: not a PCD file (no 'DATA' line in the first 64 KiB)")
    try:
        header_text = data[: end.start()].decode("ascii")
    except UnicodeDecodeError:
        raise DataError(f"{path}: the PCD header is not ASCII text") from None
    header: dict[str, list[str]] = {}
    for line in header_text.replace("\r", "").split("\n"):
        words = line.split("#", 1)[0].split()
        if words:
            header[words[0].upper()] = words[1:]
    mode = end.group(1).decode("ascii", "replace")
    fields = header.get("FIELDS", [])
    try:
        sizes = [int(v) for v in header.get("SIZE", [])]
        counts = [int(v) for v in header.get("COUNT", ["1"] * len(fields))]
        width, height = int(header.get("WIDTH", ["-1"])[0]), int(header.get("HEIGHT", ["1"])[0])
        npoints = int(header.get("POINTS", [str(width * height)])[0])
    except (ValueError, IndexError):
        raise DataError(f"{path}: malformed PCD header (SIZE, COUNT, WIDTH, HEIGHT or POINTS not integers)") from None
    types = header.get("TYPE", [])
    if not fields or not (len(fields) == len(sizes) == len(types) == len(counts)):
        raise DataError(f"{path}: malformed PCD header: FIELDS, SIZE, TYPE and COUNT must list the same number of entries")
    if any(c < 1 for c in counts) or any((t.upper(), s) not in _PCD_TYPES for t, s in zip(types, sizes)):
        raise DataError(f"{path}: malformed PCD header: unsupported TYPE/SIZE/COUNT {types} {sizes} {counts}")
    if not {"x", "y", "z"} <= set(fields):
        raise DataError(f"{path}: the PCD has no x, y, z fields (it has {', '.join(fields)})")
    _check_count(path, "points", npoints)
    if width < 0 or height < 0 or width * height != npoints:
        raise DataError(f"{path}: inconsistent PCD header: WIDTH {width} x HEIGHT {height} != POINTS {npoints}")
    columns = [(f"{name}_{i}" if c > 1 else name, _PCD_TYPES[(t.upper(), s)], c) for i, (name, t, s, c) in enumerate(zip(fields, types, sizes, counts))]
    dtype = np.dtype([(n, "<" + t, (c,)) if c > 1 else (n, "<" + t) for n, t, c in columns])
    payload = memoryview(data)[end.end():]
    if mode == "ascii":
        table = _pcd_ascii(path, bytes(payload), npoints, dtype)
    elif mode == "binary":
        need = npoints * dtype.itemsize
        if len(payload) < need or bytes(payload[need:]).strip(_TRAILING_OK):
            raise DataError(f"{path}: {'truncated' if len(payload) < need else 'wrong counts'}: the header declares "
                            f"{npoints} points ({need} bytes), the file has {len(payload)} bytes of data")
        table = np.frombuffer(payload, dtype, count=npoints)
    elif mode == "binary_compressed":
        table = _pcd_compressed(path, payload, npoints, dtype)
    else:
        raise DataError(f"{path}: unknown PCD DATA type {mode!r} (ascii, binary or binary_compressed)")
    points = np.stack([table["x"], table["y"], table["z"]], axis=1).astype(np.float64)
    normals = None
    if {"normal_x", "normal_y", "normal_z"} <= set(fields):
        normals = np.stack([table["normal_x"], table["normal_y"], table["normal_z"]], axis=1).astype(np.float64)
    return points, normals


def _pcd_ascii(path: Path, payload: bytes, npoints: int, dtype: np.dtype) -> np.ndarray:
    text = _ascii_text(path, payload, "PCD")
    lines = [line for line in text.split("\n") if line.strip()]
    if len(lines) != npoints:
        raise DataError(f"{path}: {'truncated' if len(lines) < npoints else 'wrong counts'}: the header declares "
                        f"{npoints} points, the file has {len(lines)} data lines")
    width = sum(int(np.prod(dtype[n].shape)) if dtype[n].shape else 1 for n in dtype.names)
    try:
        values = np.loadtxt(lines, dtype=np.float64, ndmin=2) if lines else np.zeros((0, width))
    except ValueError:
        raise DataError(f"{path}: non-numeric or ragged PCD data lines") from None
    if values.shape[1] != width:
        raise DataError(f"{path}: PCD data lines have {values.shape[1]} values, the header declares {width}")
    table = np.zeros(npoints, dtype)
    col = 0
    for n in dtype.names:
        k = int(np.prod(dtype[n].shape)) if dtype[n].shape else 1
        table[n] = values[:, col : col + k].reshape(table[n].shape) if k > 1 else values[:, col]
        col += k
    return table


def _pcd_compressed(path: Path, payload: memoryview, npoints: int, dtype: np.dtype) -> np.ndarray:
    if len(payload) < 8:
        raise DataError(f"{path}: truncated binary_compressed PCD (no size header)")
    compressed, raw_size = struct.unpack_from("<II", payload, 0)
    need = npoints * dtype.itemsize
    if raw_size != need:
        raise DataError(f"{path}: binary_compressed PCD declares {raw_size} bytes uncompressed, {npoints} points need {need}")
    if 8 + compressed > len(payload) or bytes(payload[8 + compressed :]).strip(_TRAILING_OK):
        raise DataError(f"{path}: {'truncated' if 8 + compressed > len(payload) else 'wrong sizes'}: binary_compressed PCD declares "
                        f"{compressed} compressed bytes, {len(payload) - 8} follow")
    raw = _lzf_decompress(path, bytes(payload[8 : 8 + compressed]), raw_size)
    # The data is stored field by field (all x, then all y, ...).
    table = np.zeros(npoints, dtype)
    at = 0
    for n in dtype.names:
        field = dtype[n]
        size = field.itemsize * npoints
        table[n] = np.frombuffer(raw, field.base, count=npoints * max(1, int(np.prod(field.shape))), offset=at).reshape(table[n].shape)
        at += size
    return table


def _lzf_decompress(path: Path, src: bytes, size: int) -> bytes:
    """LZF (as PCL writes it), with every back-reference and literal run bounds-checked."""
    out = bytearray()
    i, n = 0, len(src)
    bad = DataError(f"{path}: corrupt binary_compressed PCD data")
    while i < n:
        ctrl = src[i]
        i += 1
        if ctrl < 32:  # literal run of ctrl + 1 bytes
            run = ctrl + 1
            if i + run > n or len(out) + run > size:
                raise bad
            out += src[i : i + run]
            i += run
        else:
            length = ctrl >> 5
            if length == 7:
                if i >= n:
                    raise bad
                length += src[i]
                i += 1
            if i >= n:
                raise bad
            ref = len(out) - ((ctrl & 0x1F) << 8) - src[i] - 1
            i += 1
            length += 2
            if ref < 0 or len(out) + length > size:
                raise bad
            for k in range(length):  # may overlap its own output
                out.append(out[ref + k])
    if len(out) != size:
        raise bad
    return bytes(out)


@_quiet
def _read_cloud64(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Points and normals as float64, for centring before any float32 cast."""
    suffix = path.suffix.lower()
    if suffix not in CLOUD_SUFFIXES:
        raise DataError(f"{path}: unsupported point cloud format {suffix!r} (use {', '.join(CLOUD_SUFFIXES)})")
    _regular_file(path)
    if suffix == ".npy":
        return _split_columns(path, _read_npy(path))
    if suffix == ".npz":
        raw_points, raw_normals = _read_npz(path)
        points, normals = _split_columns(path, raw_points)
        if raw_normals is not None:
            normals = _split_columns(path, raw_normals)[0]
            if len(normals) != len(points):
                raise DataError(f"{path}: {len(points)} points but {len(normals)} normals")
        return points, normals
    if suffix in (".txt", ".xyz", ".pts"):
        return _split_columns(path, _read_text_cloud(path))
    if suffix == ".ply":
        ply = read_ply(path)
        points, normals = ply.vertices, ply.normals
    else:
        points, normals = read_pcd(path)
    if len(points) == 0:
        raise DataError(f"{path}: the point cloud is empty")
    points = _split_columns(path, points)[0]
    return points, None if normals is None else _split_columns(path, normals)[0]


@_quiet
def read_point_cloud(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a point cloud: ``(points (N, 3) float32, normals (N, 3) float32 or None)``.

    Formats: .npy ``(N, 3|6)``; .npz with ``points`` (or ``xyz``/``data``/``pos``) and optional
    ``normals``; .txt/.xyz/.pts rows of ``x y z [nx ny nz]`` (spaces or commas); .ply (vertices;
    faces ignored); .pcd (ascii, binary, binary_compressed). Use :func:`load_points` for large
    (e.g. georeferenced) coordinates: it centres them in float64 first.
    """
    points, normals = _read_cloud64(Path(path))
    return points.astype(np.float32), None if normals is None else normals.astype(np.float32)


@_quiet
def load_points(
    path: str | Path,
    num_points: int = STORED_POINTS,
    seed: int = 0,
    normalize: bool = True,
    normals: bool = False,
) -> np.ndarray:
    """Any mesh or point cloud file as ``(num_points, 3)`` float32 (``(num_points, 6)`` with ``normals``).

    Meshes are surface-sampled; clouds with more points are reduced by farthest point sampling (after
    a random pre-subsample of huge clouds), clouds with fewer are padded by resampling their points.
    With ``normalize`` the result is centred and scaled to the unit sphere, as the datasets are; the
    centring happens in float64, so far-from-origin (e.g. UTM) coordinates give the same points as
    the same shape near the origin.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES + CLOUD_SUFFIXES:
        raise DataError(f"{path}: unsupported file type {suffix!r} (meshes: {', '.join(MESH_SUFFIXES)}; clouds: {', '.join(CLOUD_SUFFIXES)})")
    rng = np.random.default_rng(seed)
    ply = read_ply(path) if suffix == ".ply" else None
    if suffix in MESH_SUFFIXES and (ply is None or ply.faces is not None):
        mesh = read_mesh(path)
        offset = mesh.bounds.mean(axis=0)  # sample a copy near the origin: float32 samples keep their precision
        local = trimesh.Trimesh(mesh.vertices - offset, mesh.faces, process=False)
        sampled = sample_surface(local, num_points, normals=normals, seed=rng, name=str(path))
        local_points, point_normals = sampled if normals else (sampled, None)
        points = local_points.astype(np.float64) + offset
    else:
        points, point_normals = _read_cloud64(path)
        if normals and point_normals is None:
            raise DataError(f"{path}: normals were asked for but the point cloud has no normals")
        if len(points) > num_points:
            keep = resample(len(points), min(len(points), 8 * num_points), rng)
            local = points[keep] - points[keep].mean(axis=0)
            keep = keep[farthest_point_sample(local, num_points, seed=int(rng.integers(2**31)))]
        else:
            keep = resample(len(points), num_points, rng)
        points = points[keep]
        point_normals = None if point_normals is None else point_normals[keep]
    if normalize:
        points = normalize_unit_sphere(points, name=str(path))
    points = points.astype(np.float32)
    if normals:
        return np.concatenate([points, point_normals.astype(np.float32)], axis=1)
    return points
