"""The rendering layer: image size, fitted camera, coverage, true colours, and clear errors when it cannot render."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.spatial import ConvexHull
from .viz_helpers import sphere

from pointnet_kit.errors import PointNetKitError
from pointnet_kit.viz import render as R


def _ink(image: np.ndarray, background: int = 255) -> np.ndarray:
    """Mask of pixels that differ from a uniform background."""
    return np.abs(image.astype(int) - background).max(axis=2) > 8


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return xs.min(), xs.max(), ys.min(), ys.max()


def test_image_has_requested_size_and_is_not_blank():
    with R.Renderer(width=80, height=48) as r:
        image = r.render(R.Cloud(sphere(500)))
    assert image.shape == (48, 80, 3) and image.dtype == np.uint8
    assert 0.05 < _ink(image).mean() < 0.9


def test_fitted_camera_centres_the_object_and_fills_the_image(renderer):
    points = sphere(3000) * np.array([2.0, 0.6, 1.0]) + np.array([5.0, -3.0, 1.0])  # off-centre, elongated
    x0, x1, y0, y1 = _bbox(_ink(renderer.render(R.Cloud(points, point_scale=1.3))))
    w, h = renderer.width, renderer.height
    assert abs((x0 + x1) / 2 - (w - 1) / 2) <= 2 and abs((y0 + y1) / 2 - (h - 1) / 2) <= 2
    fill = max((x1 - x0 + 1) / w, (y1 - y0 + 1) / h)
    assert abs(fill - renderer.view.fill) < 0.06
    assert x0 > 0 and y0 > 0 and x1 < w - 1 and y1 < h - 1  # nothing clipped


def test_fit_camera_projects_inside_the_image():
    points = np.random.default_rng(1).uniform(-3, 7, size=(400, 3))
    for view in (R.View(), R.View(up="y", azimuth=30, elevation=60), R.View(up="x", fill=0.5)):
        extrinsic, intrinsic = R.fit_camera(points, 200, 100, view)
        pix = R.project(points, extrinsic, intrinsic)
        lo, hi = pix.min(0), pix.max(0)
        np.testing.assert_allclose((lo + hi) / 2, [99.5, 49.5], atol=1e-3)
        assert max((hi[0] - lo[0]) / 200, (hi[1] - lo[1]) / 100) == pytest.approx(view.fill, abs=1e-3)
        up = np.eye(3)[R.UP_AXES[view.up]]
        assert (extrinsic[:3, :3] @ up)[1] < 0  # the up axis points up in the image (camera y is down)


def test_known_cloud_covers_its_projected_area(renderer):
    """A dense cube surface covers about the area of its projected outline (a convex polygon)."""
    rng = np.random.default_rng(0)
    cube = rng.uniform(-1, 1, size=(20000, 3))
    face = rng.integers(0, 3, len(cube))
    cube[np.arange(len(cube)), face] = rng.choice([-1.0, 1.0], len(cube))
    coverage = _ink(renderer.render(R.Cloud(cube, point_scale=1.3))).mean()
    extrinsic, intrinsic = R.fit_camera(cube, renderer.width, renderer.height, renderer.view)
    expected = ConvexHull(R.project(cube, extrinsic, intrinsic)).volume / (renderer.width * renderer.height)
    assert expected == pytest.approx(coverage, rel=0.12)


def test_colours_appear_where_they_should(renderer):
    """Red points left, green right (along the camera's right vector); colours are exact, not post-processed."""
    _, _, right = R.view_basis(renderer.view)
    left_blob, right_blob = sphere(800, 1, 0.4) - right, sphere(800, 2, 0.4) + right
    red, green = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.6, 0.0])
    image = renderer.render(
        [R.Cloud(left_blob, np.tile(red, (800, 1))), R.Cloud(right_blob, np.tile(green, (800, 1)))]
    ).astype(int)
    half = image.shape[1] // 2
    is_red = np.all(image == [255, 0, 0], axis=2)
    is_green = np.all(image == [0, 153, 0], axis=2)
    assert is_red[:, :half].sum() > 100 and is_red[:, half:].sum() == 0
    assert is_green[:, half:].sum() > 100 and is_green[:, :half].sum() == 0


def test_background_and_point_size():
    points = sphere(300)
    with R.Renderer(64, 64, background=(0.0, 0.0, 0.0), point_size=1.5) as r:
        small = r.render(R.Cloud(points))
        big = r.render(R.Cloud(points, point_scale=3))
    assert np.all(small[0, 0] == 0) and np.all(small[-1, -1] == 0)
    assert _ink(big, 0).mean() > 1.5 * _ink(small, 0).mean()


def test_mesh_is_shaded(renderer):
    vertices = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float)
    faces = np.array(
        [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
         [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]]
    )  # fmt: skip
    image = renderer.render(R.Mesh(vertices, faces))
    mask = _ink(image)
    assert mask.mean() > 0.3
    assert len(np.unique(image[mask].mean(axis=1).round(-1))) >= 2  # faces lit differently, not a flat silhouette


def test_renderers_of_different_sizes_coexist(renderer):
    """Open3D windows break each other; renderers share one, so using and closing another is harmless."""
    cloud = R.Cloud(sphere(300, 4))
    before = renderer.render(cloud)
    with R.Renderer(40, 30) as other:
        assert other.render(cloud).shape == (30, 40, 3)
        assert np.array_equal(renderer.render(cloud), before)
        assert other.render(cloud).shape == (30, 40, 3)
    assert np.array_equal(renderer.render(cloud), before)


def test_each_render_is_independent_of_the_previous(renderer):
    """The window's view keeps state between renders; a huge mesh first must not change the next image."""
    small = R.Cloud(sphere(500, 3))
    first = renderer.render(small)
    vertices = np.array([[0, 0, 0], [500, 0, 0], [0, 500, 0]], dtype=float)
    renderer.render(R.Mesh(vertices, np.array([[0, 1, 2]])))
    assert np.array_equal(renderer.render(small), first)


def test_wrong_colour_shape_is_an_error(renderer):
    with pytest.raises(PointNetKitError, match="colors must be"):
        renderer.render(R.Cloud(sphere(10), np.zeros((9, 3))))
    with pytest.raises(PointNetKitError, match="nothing to render"):
        renderer.render(R.Cloud(np.zeros((0, 3))))


def test_no_renderer_names_the_missing_packages(monkeypatch):
    """When Open3D cannot create a context, the error says which apt packages to install."""
    o3d = R.import_open3d()
    R._HiddenWindow.release()
    monkeypatch.setattr(o3d.visualization.Visualizer, "create_window", lambda self, **kwargs: False)
    monkeypatch.setattr(R, "missing_system_packages", lambda: ["libegl-mesa0", "libgl1-mesa-dri"])
    with pytest.raises(R.RenderError) as info:
        R.Renderer(32, 32)
    message = str(info.value)
    assert "Missing system packages: libegl-mesa0 libgl1-mesa-dri" in message
    assert "apt-get install" in message and all(p in message for p in R.SYSTEM_PACKAGES)


def test_old_open3d_without_display_is_told_to_upgrade(monkeypatch):
    o3d = R.import_open3d()
    R._HiddenWindow.release()
    monkeypatch.setattr(o3d.visualization.Visualizer, "create_window", lambda self, **kwargs: False)
    monkeypatch.setattr(o3d, "__version__", "0.19.0")
    monkeypatch.setattr(R, "has_display", lambda: False)
    with pytest.raises(R.RenderError, match=r"needs Open3D >= 0.20 \(found 0.19.0\)"):
        R.Renderer(32, 32)


def test_missing_system_packages_detects_absent_libraries(monkeypatch, tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("the check is for Linux")
    real_cdll = R.ctypes.CDLL

    def cdll(name, *args, **kwargs):
        if name == "libEGL_mesa.so.0":
            raise OSError(f"{name}: cannot open shared object file")
        return real_cdll(name, *args, **kwargs)

    monkeypatch.setattr(R.ctypes, "CDLL", cdll)
    monkeypatch.setattr(R, "_DRI_DIRS", (str(tmp_path),))
    monkeypatch.setenv("LIBGL_DRIVERS_PATH", str(tmp_path))
    assert R.missing_system_packages() == ["libegl-mesa0", "libgl1-mesa-dri"]


def test_open3d_import_failures_are_clear_errors(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def broken_import(name, *args, **kwargs):
        if name == "open3d":
            raise ImportError("libusb-1.0.so.0: cannot open shared object file: No such file or directory")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "open3d")
    monkeypatch.setattr(builtins, "__import__", broken_import)
    with pytest.raises(R.RenderError, match="(?s)cannot import open3d.*libusb.*apt-get install .*libusb-1.0-0"):
        R.Renderer(32, 32)
    monkeypatch.setattr(builtins, "__import__", real_import)
    monkeypatch.setitem(sys.modules, "open3d", None)  # as if not installed
    with pytest.raises(R.RenderError, match="Open3D is not installed: pip install"):
        R.Renderer(32, 32)


def test_show_needs_a_display(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(R.RenderError, match="needs a display"):
        R.show([[R.Cloud(sphere(10))]])


def test_show_lays_out_scenes_in_one_window(monkeypatch, capfd):
    """The interactive path, with the window's event loop stubbed out (no display here)."""
    o3d = R.import_open3d()
    added = []
    real_add = o3d.visualization.Visualizer.add_geometry
    real_create = o3d.visualization.Visualizer.create_window

    def noisy_create(self, *args, **kwargs):  # what GLFW/Wayland print on some desktops
        os.write(2, b"error: XDG_RUNTIME_DIR is invalid or not set in the environment.\n")
        return real_create(self, *args, **{**kwargs, "visible": False})

    monkeypatch.setattr(R, "has_display", lambda: True)
    monkeypatch.setattr(o3d.visualization.Visualizer, "run", lambda self: None)
    monkeypatch.setattr(o3d.visualization.Visualizer, "create_window", noisy_create)
    monkeypatch.setattr(
        o3d.visualization.Visualizer,
        "add_geometry",
        lambda self, geometry, *a, **k: added.append(np.asarray(geometry.points)) or real_add(self, geometry, *a, **k),
    )
    speck, big = sphere(50, 1) * 0.01, sphere(50, 2) * 100 + 7
    R.show([[R.Cloud(speck)], [R.Cloud(big), R.Cloud(sphere(20, 3) * 50)]], ["first", "second"])
    assert len(added) == 3
    assert np.linalg.norm(added[0].mean(0) - added[1].mean(0)) > 2  # the two scenes side by side, apart
    for cloud in added[:2]:  # every scene scaled to the unit sphere, a speck and a giant alike
        centre = (cloud.min(0) + cloud.max(0)) / 2
        assert np.linalg.norm(cloud - centre, axis=1).max() == pytest.approx(1.0, abs=0.05)
    out, err = capfd.readouterr()
    assert out.splitlines() == ["[1] first", "[2] second"]
    assert "XDG_RUNTIME_DIR" not in err


def test_layout_offsets_place_scenes_apart_facing_the_camera():
    clouds = [sphere(50, i) * (i + 1) + i for i in range(6)]
    view = R.View()
    offsets = R.layout_offsets(clouds, view, columns=4)
    assert len(offsets) == 6
    centres = np.array([(c.min(0) + c.max(0)) / 2 + o for c, o in zip(clouds, offsets)])
    direction, _, _ = R.view_basis(view)
    np.testing.assert_allclose(centres @ direction, 0, atol=1e-9)  # all in one plane facing the camera
    distances = np.linalg.norm(centres[:, None] - centres[None], axis=2)[np.triu_indices(6, 1)]
    assert distances.min() >= 2 * 6  # at least the largest cloud's size apart


def test_save_png_round_trip(tmp_path):
    from PIL import Image

    image = np.random.default_rng(0).integers(0, 255, size=(20, 30, 3), dtype=np.uint8)
    path = R.save_png(image, tmp_path / "a" / "b.png")
    assert np.array_equal(np.asarray(Image.open(path)), image)


def test_importing_viz_does_not_import_open3d_or_matplotlib():
    code = (
        "import sys, pointnet_kit.viz, pointnet_kit.cli.viz; "
        "assert 'open3d' not in sys.modules and 'matplotlib' not in sys.modules, 'eager import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_upward_faces_are_lit_and_winding_does_not_matter(renderer):
    import trimesh

    box = trimesh.creation.box(extents=(2, 1.5, 0.6))
    v, f = np.asarray(box.vertices), np.asarray(box.faces)
    out, inward = renderer.render([R.Mesh(v, f)]), renderer.render([R.Mesh(v, f[:, ::-1])])
    np.testing.assert_array_equal(out, inward)  # two-sided: faces wound inwards look the same
    extrinsic, intrinsic = R.fit_camera(v, 96, 96, renderer.view)
    top, side = R.project(np.array([[0, 0, 0.3], [0, -0.75, 0]]), extrinsic, intrinsic).round().astype(int)
    brightness = out.astype(int).sum(axis=2)
    assert brightness[top[1], top[0]] > brightness[side[1], side[0]] + 40  # the top face is the brightest


def test_shade_mesh_gives_every_face_its_own_vertices():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
    f = np.array([[0, 1, 2], [0, 1, 3]])
    vertices, faces, colors = R.shade_mesh(v, f, (1.0, 1.0, 1.0))
    assert vertices.shape == (6, 3) and faces.tolist() == [[0, 1, 2], [3, 4, 5]] and colors.shape == (6, 3)
    assert np.all(colors[:3] == colors[0]) and not np.allclose(colors[0], colors[3])  # flat per face
