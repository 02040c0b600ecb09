"""Readers, surface sampling, FPS and normalisation, on fixtures written here (and the real meshes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from pointnet_kit.data import farthest_point_sample, normalize_unit_sphere, sample_surface
from pointnet_kit.data.io import load_points, read_mesh, read_off, read_point_cloud
from pointnet_kit.errors import DataError

QUAD = "OFF\n4 1 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n"
TETRA_BODY = "4 4 6\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 2 1\n3 0 1 3\n3 0 3 2\n3 1 2 3\n"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_quad_face_is_triangulated(tmp_path):
    vertices, faces = read_off(write(tmp_path, "quad.off", QUAD))
    assert vertices.shape == (4, 3) and faces.tolist() == [[0, 1, 2], [0, 2, 3]]
    assert read_mesh(tmp_path / "quad.off").area == pytest.approx(1.0)


def test_glued_header_comments_and_blank_lines(tmp_path):
    plain = read_off(write(tmp_path, "plain.off", "OFF\n" + TETRA_BODY))
    glued = read_off(write(tmp_path, "glued.off", "OFF" + TETRA_BODY))  # ModelNet's 'OFF490 518 0'
    assert glued[1].shape == (4, 3)
    commented = read_off(write(tmp_path, "c.off", "# made by hand\nOFF\n\n" + TETRA_BODY.replace("0 0 1\n", "0 0 1  # apex\n\n")))
    for other in (glued, commented):
        np.testing.assert_array_equal(other[0], plain[0])
        np.testing.assert_array_equal(other[1], plain[1])


@pytest.mark.parametrize(
    "text, match",
    [
        ("OFF\n4 4 0\n0 0 0\n1 0 0\n0 1 0\n", "truncated: the header says 4 vertices and 4 faces"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n3 0 1 2\n", "wrong counts"),
        ("OFF\n3 1 0\n0 0 0\n1 zero 0\n0 1 0\n3 0 1 2\n", "non-numeric value on data line 2"),
        ("OFF\nthree 1 0\n", "counts line 'three 1 0' is not integers"),
        ("OFF\n3 1 0\n0 0 0\nnan 0 0\n0 1 0\n3 0 1 2\n", "NaN or infinite"),
        ("OFF\n3 1 0\n0 0 0\ninf 0 0\n0 1 0\n3 0 1 2\n", "NaN or infinite"),
        ("OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n", "no faces"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", "face refers to vertex 7, outside 0..2"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1\n", "malformed face"),
        ("ply\nformat ascii 1.0\n", "not an OFF file"),
        ("OFF\n", "counts line '' should be"),
    ],
    ids=["truncated", "wrong-counts", "non-numeric", "bad-counts", "nan", "inf", "no-faces", "bad-index", "short-face", "not-off", "empty"],
)
def test_broken_off_files_raise_one_clear_error(tmp_path, text, match):
    path = write(tmp_path, "broken.off", text)
    with pytest.raises(DataError, match=match) as info:
        read_mesh(path)
    assert str(path) in str(info.value)


def test_zero_area_and_binary_and_missing(tmp_path):
    flat = write(tmp_path, "line.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n2 0 0\n3 0 1 2\n")
    with pytest.raises(DataError, match="line.off: the mesh has zero surface area"):
        read_mesh(flat)
    binary = tmp_path / "bin.off"
    binary.write_bytes(b"OFF\n\xff\xfe\x00")
    with pytest.raises(DataError, match="binary"):
        read_mesh(binary)
    with pytest.raises(DataError, match="no such file"):
        read_mesh(tmp_path / "absent.off")
    with pytest.raises(DataError, match="unsupported mesh format '.dae'"):
        read_mesh(tmp_path / "x.dae")


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".stl"])
def test_other_mesh_formats_through_trimesh(tmp_path, suffix):
    box = trimesh.creation.box(extents=(1, 2, 3))
    path = tmp_path / f"box{suffix}"
    box.export(path)
    assert read_mesh(path).area == pytest.approx(box.area)
    points = load_points(path, num_points=256, seed=0)
    assert points.shape == (256, 3)


def test_broken_obj_has_no_faces(tmp_path):
    with pytest.raises(DataError, match="no faces"):
        read_mesh(write(tmp_path, "empty.obj", "# nothing\nv 0 0 0\n"))


def test_sample_surface_on_a_box():
    box = trimesh.creation.box(extents=(1, 1, 1))
    points, normals = sample_surface(box, 500, normals=True, seed=3)
    assert points.shape == (500, 3) and points.dtype == np.float32
    assert np.all(np.isclose(np.abs(points).max(1), 0.5, atol=1e-6))  # every point is on a face
    np.testing.assert_allclose(np.abs(normals).max(1), 1.0, atol=1e-6)  # axis-aligned unit normals
    np.testing.assert_array_equal(sample_surface(box, 500, seed=3), points)
    assert not np.array_equal(sample_surface(box, 500, seed=4), points)
    # oversampling + FPS spreads points more evenly: the closest pair is farther apart
    even = sample_surface(box, 200, oversample=4, seed=0)
    plain = sample_surface(box, 200, seed=0)
    closest = lambda p: torch.cdist(torch.from_numpy(p), torch.from_numpy(p)).fill_diagonal_(9).min()
    assert closest(even) > 2 * closest(plain)


def test_farthest_point_sample_batched_and_single():
    rng = np.random.default_rng(0)
    clusters = np.concatenate([rng.normal(c, 0.01, (50, 3)) for c in np.eye(3) * 5]).astype(np.float32)
    idx = farthest_point_sample(clusters, 3, seed=0)
    assert sorted(idx // 50) == [0, 1, 2]  # one point from each cluster
    batch = torch.from_numpy(np.stack([clusters, clusters[::-1].copy()]))
    bidx = farthest_point_sample(batch, 10, seed=1)
    assert bidx.shape == (2, 10) and all(len(set(row.tolist())) == 10 for row in bidx)



def test_farthest_point_sample_is_the_layers_one():
    from pointnet_kit.layers.grouping import farthest_point_sample as layer_fps

    clouds = np.random.default_rng(2).normal(size=(3, 200, 6))
    for seed in (None, 0, 9):
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        expected = layer_fps(torch.from_numpy(clouds).float(), 32, generator=generator).numpy()
        np.testing.assert_array_equal(farthest_point_sample(clouds, 32, seed=seed), expected)
        single = layer_fps(torch.from_numpy(clouds[:1]).float(), 32, generator=None if seed is None else torch.Generator().manual_seed(seed))
        np.testing.assert_array_equal(farthest_point_sample(clouds[0], 32, seed=seed), single[0].numpy())
    with pytest.raises(ValueError, match="cannot sample 201 of 200"):
        farthest_point_sample(clouds, 201)

def test_normalize_unit_sphere():
    points = np.random.default_rng(0).normal(5, 3, (100, 3))
    out = normalize_unit_sphere(points)
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-5)
    assert np.linalg.norm(out, axis=1).max() == pytest.approx(1.0)
    batch = normalize_unit_sphere(np.stack([points, 2 * points]))
    np.testing.assert_allclose(batch[0], batch[1], atol=1e-6)
    with pytest.raises(DataError, match="all the same"):
        normalize_unit_sphere(np.ones((10, 3)))


def test_point_cloud_formats(tmp_path):
    rng = np.random.default_rng(0)
    xyzn = rng.normal(size=(300, 6)).astype(np.float32)
    np.save(tmp_path / "a.npy", xyzn)
    np.savez(tmp_path / "b.npz", points=xyzn[:, :3], normals=xyzn[:, 3:])
    np.savetxt(tmp_path / "c.txt", xyzn, delimiter=",")
    np.savetxt(tmp_path / "d.xyz", xyzn[:, :3])
    for name, has_normals in [("a.npy", True), ("b.npz", True), ("c.txt", True), ("d.xyz", False)]:
        points, normals = read_point_cloud(tmp_path / name)
        np.testing.assert_allclose(points, xyzn[:, :3], rtol=1e-5, err_msg=name)
        assert (normals is not None) == has_normals
        if has_normals:
            np.testing.assert_allclose(normals, xyzn[:, 3:], rtol=1e-5)


def test_open3d_formats(tmp_path):
    o3d = pytest.importorskip("open3d")
    xyz = np.random.default_rng(0).normal(size=(200, 3))
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
    cloud.normals = o3d.utility.Vector3dVector(np.tile([0.0, 0.0, 1.0], (200, 1)))
    for name in ("e.pcd", "f.ply"):
        assert o3d.io.write_point_cloud(str(tmp_path / name), cloud)
        points, normals = read_point_cloud(tmp_path / name)
        np.testing.assert_allclose(points, xyz, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(normals[:, 2], 1.0)
        assert load_points(tmp_path / name, num_points=64).shape == (64, 3)  # a .ply without faces is a cloud


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("w.txt", "1 2\n3 4\n", "expected 3 columns"),
        ("r.txt", "1 2 3\n4 5\n", "row 2 has 2 values"),
        ("n.txt", "1 2 3\n4 five 6\n", "non-numeric value on row 2"),
        ("i.txt", "1 2 3\nnan 5 6\n", "NaN or infinite"),
        ("e.xyz", "\n", "empty"),
        ("x.npy", "not numpy", "not a NumPy array file"),
        ("p.pcd", "garbage", "not a PCD file"),
    ],
)
def test_broken_point_clouds(tmp_path, name, content, match):
    path = write(tmp_path, name, content)
    with pytest.raises(DataError, match=match) as info:
        read_point_cloud(path)
    assert str(path) in str(info.value)


def test_load_points_resamples_and_normalises(tmp_path):
    few = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    np.save(tmp_path / "few.npy", few)
    padded = load_points(tmp_path / "few.npy", num_points=256)
    assert padded.shape == (256, 3) and padded.dtype == np.float32
    assert np.linalg.norm(padded, axis=1).max() == pytest.approx(1.0)
    raw = load_points(tmp_path / "few.npy", num_points=100, normalize=False)
    assert sorted(map(tuple, raw)) == sorted(map(tuple, few))  # all points, none invented
    many = np.random.default_rng(1).normal(size=(5000, 3)).astype(np.float32)
    np.save(tmp_path / "many.npy", many)
    a, b = load_points(tmp_path / "many.npy", 128, seed=0), load_points(tmp_path / "many.npy", 128, seed=0)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(DataError, match="no normals"):
        load_points(tmp_path / "many.npy", 128, normals=True)
    with pytest.raises(DataError, match="unsupported file type '.csv'"):
        load_points(tmp_path / "x.csv")


def test_load_points_from_mesh_with_normals(tmp_path):
    path = write(tmp_path, "quad.off", QUAD)
    out = load_points(path, num_points=512, normals=True)
    assert out.shape == (512, 6)
    np.testing.assert_allclose(np.abs(out[:, 5]), 1.0)  # the quad's normal is +-z
    np.testing.assert_allclose(out[:, 2], 0.0, atol=1e-6)


def test_real_modelnet_meshes(shared_data):
    paths = sorted((shared_data / "meshes").rglob("*.off"))
    assert len(paths) == 11
    for path in sorted(paths, key=lambda p: p.stat().st_size)[:3]:
        vertices, faces = read_off(path)
        reference = trimesh.load(path, force="mesh", process=False)  # trimesh's own (slower) reader agrees
        np.testing.assert_allclose(vertices, reference.vertices)
        np.testing.assert_array_equal(faces, reference.faces)
    points = load_points(paths[0], num_points=1024, seed=0)
    assert points.shape == (1024, 3) and np.linalg.norm(points, axis=1).max() == pytest.approx(1.0, abs=1e-5)
