"""Strict readers (data/io.py): every damaged file is one DataError naming it, checked before allocating."""

from __future__ import annotations

import gzip
import io
import os
import struct
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
import trimesh

from pointnet_kit.data.io import load_points, read_mesh, read_point_cloud
from pointnet_kit.errors import DataError

TETRA = "OFF\n4 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n3 0 1 3\n3 0 2 3\n3 1 2 3\n"


def _raises(path, match, reader=read_point_cloud):
    with pytest.raises(DataError, match=match) as info:
        reader(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def _ply_binary(n: int, declared: int | None = None, faces: str = "") -> bytes:
    header = f"ply\nformat binary_little_endian 1.0\nelement vertex {declared if declared is not None else n}\n"
    header += "property float x\nproperty float y\nproperty float z\n" + faces + "end_header\n"
    return header.encode() + np.random.default_rng(0).normal(size=(n, 3)).astype("<f4").tobytes()


@pytest.mark.parametrize("cut", [1, 100, 1000])
def test_truncated_binary_ply_is_refused(tmp_path, cut):
    path = tmp_path / "t.ply"
    data = _ply_binary(200)
    path.write_bytes(data[: len(data) - cut])
    _raises(path, "truncated")
    _raises(path, "truncated", load_points)


def test_ply_header_lies_both_ways(tmp_path):
    (tmp_path / "more.ply").write_bytes(_ply_binary(100, declared=150))
    _raises(tmp_path / "more.ply", "truncated")
    (tmp_path / "less.ply").write_bytes(_ply_binary(100, declared=50))
    _raises(tmp_path / "less.ply", "unparsed data after the last PLY element")
    (tmp_path / "huge.ply").write_bytes(_ply_binary(10, declared=10**12))
    _raises(tmp_path / "huge.ply", "more than the limit")


def test_ply_face_index_out_of_range(tmp_path):
    text = "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
    text += "element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 9\n"
    (tmp_path / "f.ply").write_text(text)
    _raises(tmp_path / "f.ply", "face refers to vertex 9", read_mesh)
    _raises(tmp_path / "f.ply", "face refers to vertex 9", load_points)


def test_truncated_pcd_and_lying_header(tmp_path):
    pts = np.random.default_rng(0).normal(size=(100, 3)).astype("<f4")
    header = "VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH {n}\nHEIGHT 1\nPOINTS {n}\nDATA binary\n"
    (tmp_path / "t.pcd").write_bytes(header.format(n=100).encode() + pts.tobytes()[:-7])
    _raises(tmp_path / "t.pcd", "truncated")
    (tmp_path / "w.pcd").write_bytes(header.format(n=100).replace("WIDTH 100", "WIDTH 99").encode() + pts.tobytes())
    _raises(tmp_path / "w.pcd", "WIDTH 99 x HEIGHT 1 != POINTS 100")
    (tmp_path / "ok.pcd").write_bytes(header.format(n=100).encode() + pts.tobytes())
    np.testing.assert_array_equal(read_point_cloud(tmp_path / "ok.pcd")[0], pts)


def test_truncated_obj_and_stl(tmp_path):
    box = trimesh.creation.box()
    text = trimesh.exchange.obj.export_obj(box)
    (tmp_path / "t.obj").write_text(text[: text.index("f ") + 5])  # 'f 1 2' - cut inside the first face
    _raises(tmp_path / "t.obj", "face needs at least 3 vertices|malformed", read_mesh)
    (tmp_path / "r.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 4\n")
    _raises(tmp_path / "r.obj", "refers to vertex 4", read_mesh)
    stl = trimesh.exchange.stl.export_stl(box)
    (tmp_path / "t.stl").write_bytes(stl[:-10])
    _raises(tmp_path / "t.stl", "header declares 12 triangles", read_mesh)
    ascii_stl = trimesh.exchange.stl.export_stl_ascii(box)
    (tmp_path / "a.stl").write_text(ascii_stl[: len(ascii_stl) // 2])
    _raises(tmp_path / "a.stl", "malformed ASCII STL|truncated", read_mesh)


def test_off_absurd_counts_and_old_mac_line_endings(tmp_path):
    (tmp_path / "big.off").write_text(f"OFF\n{2**63} 1 0\n0 0 0\n")
    _raises(tmp_path / "big.off", "more than the limit", read_mesh)
    (tmp_path / "lie.off").write_text("OFF\n4000000 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n")
    _raises(tmp_path / "lie.off", "truncated", read_mesh)
    (tmp_path / "mac.off").write_text(TETRA.replace("\n", "\r"))
    assert read_mesh(tmp_path / "mac.off").area == pytest.approx(read_mesh(_write(tmp_path, "unix.off", TETRA)).area)


def _write(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    return tmp_path / name


def test_npy_pickle_gzip_and_truncation(tmp_path):
    arr = np.random.default_rng(0).normal(size=(50, 3))
    buf = io.BytesIO()
    np.save(buf, arr)
    (tmp_path / "g.npy").write_bytes(gzip.compress(buf.getvalue()))
    _raises(tmp_path / "g.npy", "gzip-compressed")
    np.save(tmp_path / "o.npy", np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True)
    _raises(tmp_path / "o.npy", "object")
    (tmp_path / "t.npy").write_bytes(buf.getvalue()[:-5])
    _raises(tmp_path / "t.npy", "truncated")
    (tmp_path / "e.npy").write_bytes(b"")
    _raises(tmp_path / "e.npy", "not a NumPy array file")


def test_npz_bomb_is_refused_before_decompressing(tmp_path, monkeypatch):
    # 2 GB of zeros declared, ~2 MB on disk: refused from the header, cheaply.
    monkeypatch.setenv("POINTNET_KIT_MAX_FILE_MB", "64")
    path = tmp_path / "bomb.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (89_478_485, 3)})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("points.npy", "w", force_zip64=True) as f:
            f.write(header.getvalue())
            zero = bytes(1 << 20)
            for _ in range(70):
                f.write(zero)
    tracemalloc.start()
    start = time.perf_counter()
    _raises(path, "more than the limit")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert time.perf_counter() - start < 1.0 and peak < 16 << 20


def test_corrupt_and_empty_npz(tmp_path):
    np.savez_compressed(tmp_path / "ok.npz", points=np.ones((20, 3)) * np.arange(20)[:, None])
    data = bytearray((tmp_path / "ok.npz").read_bytes())
    data[60:70] = b"\xff" * 10
    (tmp_path / "c.npz").write_bytes(bytes(data))
    _raises(tmp_path / "c.npz", "npz|NumPy|header")
    (tmp_path / "e.npz").write_bytes(b"")
    _raises(tmp_path / "e.npz", "not a readable .npz")
    with zipfile.ZipFile(tmp_path / "n.npz", "w"):
        pass
    _raises(tmp_path / "n.npz", "no arrays")


def test_non_regular_files_are_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe.xyz")
    _raises(tmp_path / "pipe.xyz", "not a regular file")
    (tmp_path / "dir.ply").mkdir()
    _raises(tmp_path / "dir.ply", "a folder")


def test_nan_and_overflowing_values(tmp_path):
    _raises(_write(tmp_path, "n.xyz", "0 0 0\n1 nan 0\n"), "NaN or infinite")
    _raises(_write(tmp_path, "big.xyz", "0 0 0\n1e300 0 0\n"), "beyond 1e30")
    _raises(_write(tmp_path, "nan.off", TETRA.replace("0 0 1\n", "0 nan 1\n")), "NaN", read_mesh)


def test_utm_offsets_give_the_same_points(tmp_path):
    box = trimesh.creation.box((1.0, 2.0, 0.5))
    box.export(tmp_path / "local.off")
    box.apply_translation([512345.67, 5412345.89, 312.0])
    box.export(tmp_path / "utm.off")
    a, b = load_points(tmp_path / "local.off", 256), load_points(tmp_path / "utm.off", 256)
    np.testing.assert_allclose(a, b, atol=1e-6)
    cloud = np.random.default_rng(0).normal(size=(3000, 3))
    np.save(tmp_path / "l.npy", cloud)
    np.save(tmp_path / "u.npy", cloud + [512345.67, 5412345.89, 312.0])
    np.testing.assert_allclose(load_points(tmp_path / "l.npy", 256), load_points(tmp_path / "u.npy", 256), atol=1e-6)


def test_binary_stl_with_exact_size_and_solid_header(tmp_path):
    box = trimesh.creation.box()
    stl = bytearray(trimesh.exchange.stl.export_stl(box))
    stl[:5] = b"solid"  # some exporters start binary STLs with 'solid'
    (tmp_path / "s.stl").write_bytes(bytes(stl))
    assert read_mesh(tmp_path / "s.stl").area == pytest.approx(box.area)
    assert struct.unpack_from("<I", stl, 80)[0] == 12
