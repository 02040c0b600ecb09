"""A seeded corpus of damaged geometry files for the fuzz tests (and ``python -m tests.robustness.fuzz_corpus``).

Each case is ``(name, data, damage, must_refuse)``. ``must_refuse`` is True when the damage is always
detectable by a strict reader (a header count that lies, truncation of a format whose header or
grammar fixes its length, garbage, empty, NaN): accepting such a file is a wrong answer. Bit flips in
a binary payload, or truncation at a line of a count-free text format (.xyz, .txt, .obj), can leave a
valid file, so those may be accepted (the answer must still be finite).
"""

from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import dataclass

import numpy as np

FORMATS = ("off", "obj", "ply_ascii", "ply_binary", "pcd_ascii", "pcd_binary", "npy", "npz", "xyz", "txt", "stl", "stl_ascii")
SUFFIX = {"ply_ascii": "ply", "ply_binary": "ply", "pcd_ascii": "pcd", "pcd_binary": "pcd", "stl_ascii": "stl"}
# Formats whose length is fixed by a header or a closing statement: any truncation is detectable.
COUNTED = {"off", "ply_ascii", "ply_binary", "pcd_ascii", "pcd_binary", "npy", "npz", "stl", "stl_ascii"}
DAMAGES = ("truncate", "bitflip", "header_lie", "huge_count", "garbage", "empty", "nan")


@dataclass
class Case:
    name: str  # file name, with the format's suffix
    data: bytes
    fmt: str
    damage: str
    must_refuse: bool


def _mesh(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random closed-ish mesh: a jittered octahedron subdivided once (18 vertices, 32 faces)."""
    v = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    f = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    verts, faces, mid = list(v), [], {}

    def midpoint(a: int, b: int) -> int:
        key = (min(a, b), max(a, b))
        if key not in mid:
            mid[key] = len(verts)
            verts.append((verts[a] + verts[b]) / 2)
        return mid[key]

    for a, b, c in f:
        ab, bc, ca = midpoint(a, b), midpoint(b, c), midpoint(c, a)
        faces += [[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]
    verts = np.asarray(verts) * rng.uniform(0.5, 2.0, 3) + rng.normal(0, 0.02, (len(verts), 3))
    return verts, np.asarray(faces)


def valid_file(fmt: str, rng: np.random.Generator) -> bytes:
    """An undamaged file of ``fmt`` (meshes for off/obj/stl/ply, clouds for the rest)."""
    v, f = _mesh(rng)
    pts = rng.normal(size=(int(rng.integers(40, 120)), 3))
    if fmt == "off":
        return ("OFF\n" + f"{len(v)} {len(f)} 0\n" + "".join(f"{a:.6f} {b:.6f} {c:.6f}\n" for a, b, c in v)
                + "".join(f"3 {a} {b} {c}\n" for a, b, c in f)).encode()
    if fmt == "obj":
        return ("".join(f"v {a:.6f} {b:.6f} {c:.6f}\n" for a, b, c in v) + "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in f)).encode()
    if fmt in ("ply_ascii", "ply_binary"):
        binary = fmt == "ply_binary"
        head = (f"ply\nformat {'binary_little_endian' if binary else 'ascii'} 1.0\nelement vertex {len(v)}\n"
                "property float x\nproperty float y\nproperty float z\n"
                f"element face {len(f)}\nproperty list uchar int vertex_indices\nend_header\n").encode()
        if binary:
            faces = np.zeros(len(f), np.dtype([("k", "u1"), ("i", "<i4", 3)]))
            faces["k"], faces["i"] = 3, f
            return head + v.astype("<f4").tobytes() + faces.tobytes()
        return head + ("".join(f"{a:.6f} {b:.6f} {c:.6f}\n" for a, b, c in v) + "".join(f"3 {a} {b} {c}\n" for a, b, c in f)).encode()
    if fmt in ("pcd_ascii", "pcd_binary"):
        binary = fmt == "pcd_binary"
        head = (f"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH {len(pts)}\nHEIGHT 1\n"
                f"VIEWPOINT 0 0 0 1 0 0 0\nPOINTS {len(pts)}\nDATA {'binary' if binary else 'ascii'}\n").encode()
        return head + (pts.astype("<f4").tobytes() if binary else "".join(f"{a:.6f} {b:.6f} {c:.6f}\n" for a, b, c in pts).encode())
    if fmt == "npy":
        buf = io.BytesIO()
        np.save(buf, pts.astype(np.float32))
        return buf.getvalue()
    if fmt == "npz":
        buf = io.BytesIO()
        np.savez_compressed(buf, points=pts.astype(np.float32))
        return buf.getvalue()
    if fmt in ("xyz", "txt"):
        sep = "," if fmt == "txt" else " "
        return "".join(f"{a:.6f}{sep}{b:.6f}{sep}{c:.6f}\n" for a, b, c in pts).encode()
    if fmt == "stl":
        tri = v[f].astype("<f4")
        table = np.zeros(len(f), np.dtype([("n", "<f4", 3), ("t", "<f4", (3, 3)), ("a", "<u2")]))
        table["t"] = tri
        return b"\0" * 80 + struct.pack("<I", len(f)) + table.tobytes()
    if fmt == "stl_ascii":
        body = "".join("facet normal 0 0 0\nouter loop\n" + "".join(f"vertex {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in v[t])
                       + "endloop\nendfacet\n" for t in f)
        return f"solid fuzz\n{body}endsolid fuzz\n".encode()
    raise ValueError(fmt)


def _header_count(fmt: str, data: bytes, new: int) -> bytes | None:
    """``data`` with its main count replaced by ``new``; None when the format has no count."""
    if fmt == "off":
        lines = data.split(b"\n")
        parts = lines[1].split()
        parts[0] = str(new).encode()
        lines[1] = b" ".join(parts)
        return b"\n".join(lines)
    if fmt.startswith("ply"):
        return data.replace(b"element vertex ", b"element vertex %d\nelement_was " % new, 1).replace(b"\nelement_was ", b"\ncomment ", 1)
    if fmt.startswith("pcd"):
        out = data
        for key in (b"WIDTH ", b"POINTS "):
            start = out.index(key) + len(key)
            out = out[:start] + str(new).encode() + out[out.index(b"\n", start):]
        return out
    if fmt == "npy":
        arr = np.load(io.BytesIO(data))
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (new, 3)})
        return buf.getvalue() + arr.tobytes()
    if fmt == "npz":
        arr = np.load(io.BytesIO(data))["points"]
        head = io.BytesIO()
        np.lib.format.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False, "shape": (new, 3)})
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("points.npy", head.getvalue() + arr.tobytes())
        return buf.getvalue()
    if fmt == "stl":
        return data[:80] + struct.pack("<I", new % 2**32) + data[84:]
    return None


def _true_count(fmt: str, data: bytes) -> int:
    if fmt == "off":
        return int(data.split(b"\n")[1].split()[0])
    if fmt.startswith("ply"):
        return int(data.split(b"element vertex ")[1].split(b"\n")[0])
    if fmt.startswith("pcd"):
        return int(data.split(b"POINTS ")[1].split(b"\n")[0])
    if fmt in ("npy", "npz"):
        return len(np.load(io.BytesIO(data)) if fmt == "npy" else np.load(io.BytesIO(data))["points"])
    return struct.unpack_from("<I", data, 80)[0]


def _with_nan(fmt: str, data: bytes, rng: np.random.Generator) -> bytes:
    if fmt in ("off", "obj", "ply_ascii", "pcd_ascii", "xyz", "txt", "stl_ascii"):
        text = data.decode()
        lines = text.split("\n")
        # a coordinate line: after the header for off/ply/pcd, any 'v'/'vertex' line otherwise
        marker = {"ply_ascii": "end_header", "pcd_ascii": "DATA"}.get(fmt)
        starts = {"off": 2, fmt: text[: text.index(marker)].count("\n") + 1} if marker else {"off": 2}
        if fmt in ("obj", "stl_ascii"):
            candidates = [i for i, line in enumerate(lines) if line.startswith(("v ", "vertex"))]
        else:
            first = starts.get(fmt, 0)
            count = _true_count(fmt, data) if fmt in starts else len([x for x in lines if x])
            candidates = list(range(first, first + count))
        i = int(rng.choice(candidates))
        words = lines[i].split(" " if fmt != "txt" else ",")
        j = len(words) - 1 - int(rng.integers(3))
        words[j] = str(rng.choice(["nan", "inf", "-inf", "NaN"]))
        lines[i] = (" " if fmt != "txt" else ",").join(words)
        return "\n".join(lines).encode()
    arr_bytes = bytearray(data)
    nan = struct.pack("<f", float("nan"))
    if fmt == "ply_binary":
        start, count = data.index(b"end_header\n") + 11, _true_count(fmt, data) * 3
    elif fmt == "pcd_binary":
        start, count = data.index(b"DATA binary\n") + 12, _true_count(fmt, data) * 3
    elif fmt == "stl":
        k = int(rng.integers(_true_count(fmt, data)))
        at = 84 + 50 * k + 12 + 4 * int(rng.integers(9))
        arr_bytes[at : at + 4] = nan
        return bytes(arr_bytes)
    elif fmt == "npy":
        arr = np.load(io.BytesIO(data))
        arr[int(rng.integers(len(arr))), int(rng.integers(3))] = np.nan
        buf = io.BytesIO()
        np.save(buf, arr)
        return buf.getvalue()
    else:  # npz
        arr = np.load(io.BytesIO(data))["points"]
        arr[int(rng.integers(len(arr))), int(rng.integers(3))] = np.inf
        buf = io.BytesIO()
        np.savez_compressed(buf, points=arr)
        return buf.getvalue()
    at = start + 4 * int(rng.integers(count))
    arr_bytes[at : at + 4] = nan
    return bytes(arr_bytes)


def damaged(fmt: str, damage: str, rng: np.random.Generator) -> tuple[bytes, bool] | None:
    """``(data, must_refuse)`` for one damage of one format, or None when it does not apply."""
    data = valid_file(fmt, rng)
    if damage == "truncate":
        cut = int(len(data) * rng.uniform(0.0, 0.9))
        return data[:cut], fmt in COUNTED
    if damage == "bitflip":
        out = bytearray(data)
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(len(out)))
            out[i] ^= 1 << int(rng.integers(8))
        return bytes(out), False
    if damage == "header_lie":
        true = _true_count(fmt, data) if fmt in COUNTED and fmt != "stl_ascii" else None
        if true is None:
            return None
        new = int(rng.choice([true + 1, true - 1, 2 * true, true + int(rng.integers(2, 1000)), max(0, true // 2)]))
        out = _header_count(fmt, data, new)
        return out, out is not None and new != true
    if damage == "huge_count":
        if fmt not in COUNTED or fmt == "stl_ascii":
            return None
        new = int(rng.choice([2**31 - 1, 2**32 - 1, 10**9, 10**12, 2**63 - 1, 2**63 + 5, 10**30]))
        if fmt == "stl":
            new = int(rng.choice([2**31 - 1, 2**32 - 1, 10**9]))
        if fmt in ("npy", "npz"):
            new = min(new, 2**62)
        return _header_count(fmt, data, new), True
    if damage == "garbage":
        n = int(rng.integers(1, 4096))
        return rng.integers(0, 256, n, dtype=np.uint8).tobytes(), True
    if damage == "empty":
        return b"", True
    if damage == "nan":
        return _with_nan(fmt, data, rng), True
    raise ValueError(damage)


def corpus(seed: int, per_format: int, formats: tuple[str, ...] = FORMATS) -> list[Case]:
    """``per_format`` damaged files for each format, damages drawn in turn, all from ``seed``."""
    rng = np.random.default_rng(seed)
    cases = []
    for fmt in formats:
        made, attempt = 0, 0
        while made < per_format:
            damage = DAMAGES[attempt % len(DAMAGES)]
            attempt += 1
            result = damaged(fmt, damage, rng)
            if result is None:
                continue
            data, must = result
            cases.append(Case(f"{fmt}_{made:04d}_{damage}.{SUFFIX.get(fmt, fmt)}", data, fmt, damage, must))
            made += 1
    return cases
