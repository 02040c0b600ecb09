"""The one rendering layer: point clouds and meshes to images with Open3D, headless or in a window.

Offscreen images come from Open3D's legacy ``Visualizer`` with a hidden window: with no display it
renders through EGL on Mesa's software rasterizer (a few ms per tile), so it works on servers and
in CI with only the system packages in :data:`SYSTEM_PACKAGES`. Open3D is imported on first use,
so the rest of the toolkit works where it cannot render.

The camera is fixed and fitted: it looks at the object from ``azimuth``/``elevation`` around the
up axis (``z`` for ModelNet meshes and the data prepared from them), and its position and focal
length are chosen so the object's projection is centred and fills ``fill`` of the image.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import glob
import os
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Sequence, Union

import numpy as np

from ..errors import PointNetKitError
from .colors import CLOUD, MESH

# Debian/Ubuntu packages Open3D needs to import (libusb) and to render headless through EGL + Mesa.
SYSTEM_PACKAGES = ("libusb-1.0-0", "libgl1", "libegl1", "libegl-mesa0", "libgl1-mesa-dri")
_SHARED_LIBRARIES = {  # package -> a library it ships, as the dynamic loader names it
    "libusb-1.0-0": "libusb-1.0.so.0",
    "libgl1": "libGL.so.1",
    "libegl1": "libEGL.so.1",
    "libegl-mesa0": "libEGL_mesa.so.0",
}
_DRI_DIRS = ("/usr/lib/x86_64-linux-gnu/dri", "/usr/lib/aarch64-linux-gnu/dri", "/usr/lib64/dri", "/usr/lib/dri")

UP_AXES = {"x": 0, "y": 1, "z": 2}
SUPERSAMPLE = 2  # render at 2x and downsample: smooth point and mesh edges


class RenderError(PointNetKitError):
    """Open3D cannot render here (no display for ``--show``, or no OpenGL/EGL driver)."""


@dataclass
class Cloud:
    """A point cloud to draw. ``points: (N, 3)``; ``colors: (N, 3)`` floats in ``[0, 1]`` or ``None``
    for the default blue; ``point_scale`` multiplies the renderer's point size (clouds of different
    scales are drawn in separate passes and composited by depth); ``depth_cue`` ``False`` keeps the
    colours flat (context points that should stay light)."""

    points: np.ndarray
    colors: np.ndarray | None = None
    point_scale: float = 1.0
    depth_cue: bool = True


@dataclass
class Mesh:
    """A triangle mesh to draw: ``vertices (V, 3)``, ``faces (F, 3)`` int, one RGB ``color``."""

    vertices: np.ndarray
    faces: np.ndarray
    color: tuple[float, float, float] = MESH


Geometry = Union[Cloud, Mesh]


@dataclass(frozen=True)
class View:
    """Where the camera looks from.

    Args:
        up: the object's up axis, ``"x"``, ``"y"`` or ``"z"`` (ModelNet: ``"z"``).
        azimuth: degrees around the up axis, measured from the first horizontal axis.
        elevation: degrees above the horizontal plane.
        distance: camera distance in bounding-sphere radii (larger = flatter perspective).
        fill: fraction of the image the object's projection spans in its tighter direction.
    """

    up: str = "z"
    azimuth: float = -60.0
    elevation: float = 22.0
    distance: float = 3.0
    fill: float = 0.9

    def __post_init__(self) -> None:
        if self.up not in UP_AXES:
            raise PointNetKitError(f"up axis must be one of x, y, z, got {self.up!r}")
        if not 0.0 < self.fill <= 1.0:
            raise PointNetKitError(f"fill must be in (0, 1], got {self.fill}")


def _points_of(geometries: Sequence[Geometry]) -> np.ndarray:
    parts = [np.asarray(g.points if isinstance(g, Cloud) else g.vertices, dtype=np.float64) for g in geometries]
    parts = [p.reshape(-1, 3) for p in parts if p.size]
    if not parts:
        raise PointNetKitError("nothing to render: every geometry is empty")
    return np.concatenate(parts)


def view_basis(view: View) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors of a view: ``direction`` (object -> camera), world ``up``, and image ``right``."""
    up_i = UP_AXES[view.up]
    eye = np.eye(3)
    # Right-handed horizontal axes for each up axis (cyclic order keeps handedness).
    h1, h2 = eye[(up_i + 1) % 3], eye[(up_i + 2) % 3]
    az, el = np.radians(view.azimuth), np.radians(view.elevation)
    direction = np.cos(el) * (np.cos(az) * h1 + np.sin(az) * h2) + np.sin(el) * eye[up_i]
    right = np.cross(-direction, eye[up_i])
    return direction, eye[up_i], right / np.linalg.norm(right)


def fit_camera(points: np.ndarray, width: int, height: int, view: View = View()) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole camera that frames ``points: (N, 3)`` in a ``width x height`` image.

    Returns:
        ``extrinsic (4, 4)`` world -> camera (x right, y down, z forward) and ``intrinsic (3, 3)``.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    direction, up, right = view_basis(view)
    lo, hi = points.min(0), points.max(0)
    center = (lo + hi) / 2
    radius = max(float(np.linalg.norm(points - center, axis=1).max()), 1e-6)
    eye = center + view.distance * radius * direction
    forward = -direction
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])  # rows: camera axes in world coordinates
    extrinsic = np.eye(4)
    extrinsic[:3, :3] = rotation
    extrinsic[:3, 3] = -rotation @ eye

    # Open3D's window camera keeps the principal point at the image centre, so centre the object by
    # sliding the camera sideways (a few fixed-point steps: perspective makes it slightly nonlinear).
    cam = (points - eye) @ rotation.T  # (N, 3), z > 0 in front of the camera
    shift = np.zeros(2)
    for _ in range(4):
        uv = (cam[:, :2] - shift) / cam[:, 2:3]
        shift += (uv.min(0) + uv.max(0)) / 2 * float(np.median(cam[:, 2]))
    uv = (cam[:, :2] - shift) / cam[:, 2:3]
    eye = eye + shift[0] * right + shift[1] * down
    extrinsic[:3, 3] = -rotation @ eye
    half = np.maximum(np.abs(uv).max(0), 1e-9)
    focal = view.fill * min(width / (2 * half[0]), height / (2 * half[1]))
    intrinsic = np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0.0, 0.0, 1.0]])
    return extrinsic, intrinsic


def _depth_normalizer(points: np.ndarray, extrinsic: np.ndarray):
    """``f(points) -> (N,)`` camera depth scaled so ``points`` span ``[0, 1]`` (clipped outside)."""
    z = points @ extrinsic[2, :3] + extrinsic[2, 3]
    lo, span = float(z.min()), max(float(np.ptp(z)), 1e-9)
    return lambda p: np.clip(
        (np.asarray(p, np.float64).reshape(-1, 3) @ extrinsic[2, :3] + extrinsic[2, 3] - lo) / span, 0, 1
    )


def project(points: np.ndarray, extrinsic: np.ndarray, intrinsic: np.ndarray) -> np.ndarray:
    """Pixel coordinates ``(N, 2)`` (x right, y down) of ``points: (N, 3)`` under a camera."""
    cam = np.asarray(points, dtype=np.float64) @ extrinsic[:3, :3].T + extrinsic[:3, 3]
    pix = cam @ intrinsic.T
    return pix[:, :2] / pix[:, 2:3]


def missing_system_packages() -> list[str]:
    """Which of :data:`SYSTEM_PACKAGES` this (Linux) machine seems to lack; ``[]`` elsewhere."""
    if not sys.platform.startswith("linux"):
        return []
    missing = []
    for package, library in _SHARED_LIBRARIES.items():
        try:
            ctypes.CDLL(library)
        except OSError:
            missing.append(package)
    dri_dirs = [os.environ.get("LIBGL_DRIVERS_PATH", ""), *_DRI_DIRS]
    if not any(glob.glob(os.path.join(d, "swrast_dri.so")) for d in dri_dirs if d):
        missing.append("libgl1-mesa-dri")
    return missing


def _no_renderer_message(what: str, detail: str = "") -> str:
    missing = missing_system_packages()
    lines = [f"{what}."]
    if missing:
        lines.append(f"Missing system packages: {' '.join(missing)}.")
    lines.append(
        "On Debian/Ubuntu install them with: apt-get install -y --no-install-recommends " + " ".join(SYSTEM_PACKAGES)
    )
    if detail:
        lines.append(f"Open3D said: {detail}")
    return "\n".join(lines)


def import_open3d():
    """``import open3d``, turning a missing system library into a :class:`RenderError` naming the package."""
    try:
        import open3d
    except ModuleNotFoundError as exc:
        if exc.name != "open3d":
            raise
        raise RenderError("Open3D is not installed: pip install open3d-cpu (Linux x86-64) or open3d") from exc
    except (ImportError, OSError) as exc:  # a shared library it links against is missing
        raise RenderError(_no_renderer_message(f"cannot import open3d ({exc})")) from exc
    return open3d


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[list[str]]:
    """Silence C-level stderr (Mesa, GLFW, Open3D chatter); yields a list that receives what was said."""
    said: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace")
            said.extend(line.strip() for line in text.splitlines() if line.strip())


def cloud_colors(cloud: Cloud, depth: np.ndarray | None = None, depth_cue: float = 0.0) -> np.ndarray:
    """The colours a cloud is drawn with, ``(N, 3)``: its own or the default, darkened by ``depth_cue``
    times ``depth`` (``(N,)`` in ``[0, 1]``, 0 = nearest) so near points stand out from far ones."""
    points = np.asarray(cloud.points).reshape(-1, 3)
    if cloud.colors is None:
        colors = np.tile(np.asarray(CLOUD, dtype=np.float64), (len(points), 1))
    else:
        colors = np.asarray(cloud.colors, dtype=np.float64)
        if colors.shape != points.shape:
            raise PointNetKitError(f"colors must be (N, 3) like the points {points.shape}, got {colors.shape}")
    if depth is not None and depth_cue > 0:
        colors = colors * (1.0 - depth_cue * np.asarray(depth)[:, None])
    return np.clip(colors, 0.0, 1.0)


def shade_mesh(
    vertices: np.ndarray, faces: np.ndarray, color: Sequence[float], view: View = View()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat, two-sided shading baked into per-vertex colours: ``(vertices (3F, 3), faces (F, 3), colors (3F, 3))``.

    Open3D's legacy lights sit where its own camera would be, not ours, so with our fitted camera
    upward faces came out dark; and faces wound inwards (common in ModelNet) are dark from the front.
    Here a key light from above and in front of the camera and a headlight light each face by the
    absolute value of its normal's cosine, so winding does not matter; every face gets its own three
    vertices so edges stay sharp.
    """
    vertices = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    corners = vertices[faces]  # (F, 3, 3)
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    direction, up, right = view_basis(view)
    key = 0.45 * direction + 0.8 * up + 0.35 * right
    key /= np.linalg.norm(key)
    light = 0.3 + 0.7 * np.abs(normals @ key) + 0.3 * np.abs(normals @ direction)  # (F,)
    colors = np.clip(np.asarray(color, dtype=np.float64)[None] * light[:, None], 0.0, 1.0)
    return corners.reshape(-1, 3), np.arange(3 * len(faces)).reshape(-1, 3), np.repeat(colors, 3, axis=0)


def _to_open3d(o3d, geometry: Geometry, colors: np.ndarray | None = None, view: View = View()):
    if isinstance(geometry, Cloud):
        cloud = o3d.geometry.PointCloud(
            o3d.utility.Vector3dVector(np.asarray(geometry.points, np.float64).reshape(-1, 3))
        )
        cloud.colors = o3d.utility.Vector3dVector(cloud_colors(geometry) if colors is None else colors)
        return cloud
    vertices, faces, shaded = shade_mesh(geometry.vertices, geometry.faces, geometry.color, view)
    mesh = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(vertices), o3d.utility.Vector3iVector(faces.astype(np.int32))
    )
    mesh.vertex_colors = o3d.utility.Vector3dVector(shaded)
    return mesh


class _HiddenWindow:
    """The process's one hidden Open3D window, shared by every :class:`Renderer`.

    Open3D's legacy windows share global GL state: destroying one breaks the others (their shaders
    stop compiling), so there is never more than one; a renderer of another size replaces it.
    """

    vis = None
    size: tuple[int, int] | None = None

    @classmethod
    def acquire(cls, width: int, height: int):
        if cls.vis is not None and cls.size == (width, height):
            return cls.vis
        cls.release()
        o3d = import_open3d()
        vis = o3d.visualization.Visualizer()
        with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error), _quiet_stderr() as said:
            ok = vis.create_window(window_name="pointnet-kit", width=width, height=height, visible=False)
        if not ok:
            version = tuple(int(p) for p in o3d.__version__.split(".")[:2] if p.isdigit())
            if version < (0, 20) and not has_display():
                raise RenderError(f"headless rendering needs Open3D >= 0.20 (found {o3d.__version__}); upgrade it")
            raise RenderError(
                _no_renderer_message("Open3D cannot create an offscreen OpenGL context", " / ".join(said[-3:]))
            )
        cls.vis, cls.size = vis, (width, height)
        return vis

    @classmethod
    def release(cls) -> None:
        if cls.vis is not None:
            vis, cls.vis, cls.size = cls.vis, None, None
            vis.destroy_window()


atexit.register(_HiddenWindow.release)


@dataclass
class Renderer:
    """Offscreen renderer of ``width x height`` RGB images; reuse one for many tiles.

    All renderers draw through one hidden Open3D window (see :class:`_HiddenWindow`); :meth:`close`
    or leaving a ``with`` block frees it.

    Args:
        width, height: output image size in pixels.
        point_size: point diameter in output pixels (default: scaled to the image, ~3.6 px at 256).
        background: RGB in ``[0, 1]``.
        view: camera placement (see :class:`View`).
        depth_cue: how much the farthest points are darkened (0 = flat colours).

    Raises :class:`RenderError` naming the missing system packages when no renderer is available.
    """

    width: int = 256
    height: int = 256
    point_size: float | None = None
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    view: View = field(default_factory=View)
    depth_cue: float = 0.35

    def __post_init__(self) -> None:
        if self.width < 16 or self.height < 16:
            raise PointNetKitError(f"image size must be at least 16x16, got {self.width}x{self.height}")
        if self.point_size is None:
            self.point_size = max(1.5, min(self.width, self.height) / 70)
        self._o3d = import_open3d()
        _HiddenWindow.acquire(self.width * SUPERSAMPLE, self.height * SUPERSAMPLE)  # fail now, not mid-figure

    def render(self, geometries: Geometry | Sequence[Geometry], fit: np.ndarray | None = None) -> np.ndarray:
        """Draw ``geometries`` with the camera fitted to ``fit`` points (default: the geometries' own).

        Returns:
            ``(height, width, 3)`` uint8 RGB.
        """
        geometries = [geometries] if isinstance(geometries, (Cloud, Mesh)) else list(geometries)
        fit_points = _points_of(geometries) if fit is None else np.asarray(fit, dtype=np.float64).reshape(-1, 3)
        s = SUPERSAMPLE
        extrinsic, intrinsic = fit_camera(fit_points, self.width * s, self.height * s, self.view)
        depth_of = _depth_normalizer(fit_points, extrinsic)
        o3d, vis = self._o3d, _HiddenWindow.acquire(self.width * s, self.height * s)
        camera = o3d.camera.PinholeCameraParameters()
        camera.extrinsic = extrinsic
        camera.intrinsic = o3d.camera.PinholeCameraIntrinsic(
            self.width * s, self.height * s, intrinsic[0, 0], intrinsic[1, 1], intrinsic[0, 2], intrinsic[1, 2]
        )
        # Open3D's legacy renderer has one point size per draw: one pass per size, composited by depth.
        # Larger points (the ones a figure is about) win over smaller ones up to a small depth margin,
        # so a context point just in front of a highlighted one does not punch a hole in it.
        passes: dict[float, list[Geometry]] = {}
        for geometry in geometries:
            passes.setdefault(geometry.point_scale if isinstance(geometry, Cloud) else 1.0, []).append(geometry)
        margin = 0.08 * float(np.linalg.norm(fit_points - fit_points.mean(0), axis=1).max())
        image = depth = None
        for scale, group in sorted(passes.items()):
            vis.clear_geometries()
            for geometry in group:
                colors = None
                if isinstance(geometry, Cloud):
                    cue = self.depth_cue if geometry.depth_cue else 0.0
                    colors = cloud_colors(geometry, depth_of(geometry.points), cue)
                vis.add_geometry(_to_open3d(o3d, geometry, colors, self.view), reset_bounding_box=True)
            vis.reset_view_point(True)  # add_geometry only grows the view's bounding box; near/far planes follow it
            option = vis.get_render_option()
            option.background_color = np.asarray(self.background, dtype=np.float64)
            option.point_size = float(np.clip(self.point_size * scale * s, 1.0, 25.0))
            option.mesh_show_back_face = True
            option.light_on = False  # meshes carry their own shading (shade_mesh); points are flat colours
            control = vis.get_view_control()
            with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
                control.convert_from_pinhole_camera_parameters(camera, allow_arbitrary=True)
            vis.poll_events()
            vis.update_renderer()
            layer = np.asarray(vis.capture_screen_float_buffer(do_render=True), dtype=np.float32)
            if len(passes) == 1:
                image = layer
                break
            layer_depth = np.asarray(vis.capture_depth_float_buffer(do_render=True), dtype=np.float32)
            layer_depth[layer_depth <= 0] = np.inf  # background
            if image is None:
                image, depth = layer, layer_depth
            else:
                nearer = layer_depth < depth + margin
                image[nearer], depth[nearer] = layer[nearer], np.minimum(layer_depth, depth)[nearer]
        if s > 1:  # box-filter downsample (strided sums: much faster than a reshaped mean)
            image = sum(image[i::s, j::s] for i in range(s) for j in range(s)) / (s * s)
        return (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)

    def close(self) -> None:
        """Free the hidden window (rendering again opens a new one)."""
        _HiddenWindow.release()

    def __enter__(self) -> "Renderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def render_image(
    geometries: Geometry | Sequence[Geometry], width: int = 256, height: int = 256, **kwargs
) -> np.ndarray:
    """One image of ``geometries``: ``(height, width, 3)`` uint8 (builds and closes a :class:`Renderer`)."""
    fit = kwargs.pop("fit", None)
    with Renderer(width, height, **kwargs) as renderer:
        return renderer.render(geometries, fit=fit)


def has_display() -> bool:
    """Whether an on-screen window can be opened (always assumed on macOS and Windows)."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def require_display() -> None:
    """Raise :class:`RenderError` unless an interactive window can be opened."""
    if not has_display():
        raise RenderError("--show needs a display (DISPLAY or WAYLAND_DISPLAY is not set); drop --show to write PNGs")


def show(
    scenes: Sequence[Sequence[Geometry]],
    titles: Sequence[str] | None = None,
    view: View = View(),
    point_size: float = 4.0,
    window_name: str = "pointnet-kit",
    width: int = 1280,
    height: int = 800,
) -> None:
    """Open an interactive Open3D window with each scene laid out side by side (rows of up to 4).

    ``titles`` (one per scene) are printed, in layout order, since the legacy window draws no text.
    """
    require_display()
    o3d = import_open3d()
    _HiddenWindow.release()  # two live legacy windows break each other
    # Each scene scaled to the unit sphere, as the models see shapes: a raw-scale airplane is no speck.
    normalized = [normalize_scene(scene) for scene in scenes]
    offsets = layout_offsets([_points_of(scene) for scene in normalized], view)
    drawables = []
    for scene, offset in zip(normalized, offsets):
        for geometry in scene:
            drawables.append(_to_open3d(o3d, geometry, view=view).translate(offset))
    for i, title in enumerate(titles or []):
        print(f"[{i + 1}] {title}")
    vis = o3d.visualization.Visualizer()
    # GLFW, Mesa and Wayland talk on stderr ("error: XDG_RUNTIME_DIR is invalid..." looks like ours):
    # keep it out, and quote it only when the window cannot open.
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error), _quiet_stderr() as said:
        opened = vis.create_window(window_name=window_name, width=width, height=height)
    if not opened:
        raise RenderError(_no_renderer_message("Open3D cannot open a window", " / ".join(said[-3:])))
    try:
        for drawable in drawables:
            vis.add_geometry(drawable)
        option = vis.get_render_option()
        option.point_size = point_size
        option.mesh_show_back_face = True
        option.light_on = False  # meshes carry their own two-sided shading
        direction, up_vector, _ = view_basis(view)
        control = vis.get_view_control()
        control.set_up(up_vector)
        control.set_front(direction)
        with _quiet_stderr():
            vis.run()
    finally:
        vis.destroy_window()


def normalize_scene(scene: Sequence[Geometry]) -> list[Geometry]:
    """Copies of a scene's geometries moved and scaled together so the scene fits the unit sphere
    (bounding-box centre at the origin, farthest point at distance 1)."""
    points = _points_of(scene)
    center = (points.min(0) + points.max(0)) / 2
    radius = max(float(np.linalg.norm(points - center, axis=1).max()), 1e-12)
    out: list[Geometry] = []
    for g in scene:
        if isinstance(g, Cloud):
            out.append(replace(g, points=(np.asarray(g.points, np.float64) - center) / radius))
        else:
            out.append(replace(g, vertices=(np.asarray(g.vertices, np.float64) - center) / radius))
    return out


def layout_offsets(
    clouds: Sequence[np.ndarray], view: View = View(), columns: int = 4, gap: float = 0.25
) -> list[np.ndarray]:
    """Translations that place each cloud ``(N_i, 3)`` (centred on its box) on a grid facing ``view``.

    Columns run to the image's right, rows down the image, like a page.
    """
    direction, _, right = view_basis(view)
    up = np.cross(direction, right)  # the image's up: rows stay in the plane facing the camera
    cell = max((float(np.ptp(c, axis=0).max()) for c in clouds), default=0.0) * (1 + gap)
    offsets = []
    for i, cloud in enumerate(clouds):
        row, col = divmod(i, columns)
        center = (cloud.min(0) + cloud.max(0)) / 2
        offsets.append(col * cell * right - row * cell * up - center)
    return offsets


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an ``(H, W, 3)`` uint8 image as PNG, creating the folder; returns the path."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(image)).save(path, optimize=True)
    return path
