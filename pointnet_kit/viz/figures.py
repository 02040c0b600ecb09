"""The figures of the ``viz`` commands, built once as :class:`Panels` and then rendered or shown.

Each ``*_panels`` function takes arrays (no files, no argparse) and says what to draw: scenes,
captions and their colours, a title, an optional shared camera fit and colour bar.
:func:`render_panels` turns that into one ``(H, W, 3)`` uint8 image; :func:`show_panels` opens it
in an interactive window instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import PointNetKitError
from . import colors as C
from .grid import add_title, grid, hstack, label_below, pad
from .render import UP_AXES, Cloud, Geometry, Renderer, View, show

Color = tuple[float, float, float]


@dataclass
class Panels:
    """What a figure shows, before rendering.

    Args:
        scenes: one list of geometries per tile.
        captions, caption_colors: text under each tile and its colour.
        title: text above the figure.
        columns: tiles per row (default: near-square).
        fit: points every tile's camera is fitted to (default: each tile's own geometries).
        colorbar: keyword arguments of :func:`colors.colorbar` (``vmin``, ``vmax``, ``cmap``, ``label``, ``log``).
    """

    scenes: list[list[Geometry]]
    captions: list[str] | None = None
    caption_colors: list[Color] | None = None
    title: str | None = None
    columns: int | None = None
    fit: np.ndarray | None = None
    colorbar: dict[str, Any] | None = field(default=None)


def render_panels(
    panels: Panels, renderer: Renderer | None = None, size: int = 256, view: View | None = None
) -> np.ndarray:
    """Render every scene in its own tile and compose the figure; ``(H, W, 3)`` uint8.

    Uses ``renderer`` if given, else a ``size x size`` one looking from ``view``.
    """
    own = renderer is None
    renderer = renderer or Renderer(size, size, view=view or View())
    try:
        tiles = [renderer.render(scene, fit=panels.fit) for scene in panels.scenes]
    finally:
        if own:
            renderer.close()
    if panels.colorbar is not None:
        tile = tiles[0]
        if panels.captions:
            tile = label_below(tile, panels.captions[0], font_size=int(np.clip(tile.shape[1] // 24, 11, 18)))
        tile = hstack([tile, C.colorbar(tiles[0].shape[0], **panels.colorbar)], gap=4, align="top")
        image = pad(tile, top=6, right=6, bottom=6, left=6)
        return add_title(image, panels.title) if panels.title else image
    return grid(tiles, panels.captions, panels.caption_colors, columns=panels.columns, title=panels.title)


def show_panels(panels: Panels, view: View | None = None, point_size: float = 4.0) -> None:
    """Open the figure's scenes side by side in an interactive Open3D window (captions are printed)."""
    if panels.title:
        print(panels.title)
    if panels.colorbar is not None:
        bar = panels.colorbar
        print(
            f"{bar.get('label', 'value')}: {bar['vmin']:.4g} .. {bar['vmax']:.4g} ({bar.get('cmap', C.DEFAULT_CMAP)})"
        )
    show(panels.scenes, panels.captions, view=view or View(), point_size=point_size)


def choose_samples(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` indices, spread over classes: a seeded shuffle, then round-robin across classes."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    by_class = [rng.permutation(np.flatnonzero(labels == c)) for c in rng.permutation(np.unique(labels))]
    picked: list[int] = []
    depth = 0
    while len(picked) < min(n, len(labels)):
        for members in by_class:
            if depth < len(members) and len(picked) < n:
                picked.append(int(members[depth]))
        depth += 1
    return np.asarray(picked, dtype=np.int64)


def dataset_panels(
    points: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    n: int = 16,
    seed: int = 0,
    title: str | None = None,
) -> Panels:
    """``n`` samples of ``points: (M, N, 3)``, spread over classes, each with its class name."""
    chosen = choose_samples(labels, n, seed)
    return Panels(
        scenes=[[Cloud(points[i])] for i in chosen],
        captions=[class_names[int(labels[i])] for i in chosen],
        title=title,
    )


def prediction_caption(true: str, predicted: str, prob: float) -> str:
    """``"chair -> table (p=0.93)"``."""
    return f"{true} -> {predicted} (p={prob:.2f})"


def predictions_panels(
    points: np.ndarray,
    labels: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    n: int = 16,
    wrong_only: bool = False,
    seed: int = 0,
    title: str | None = None,
) -> Panels:
    """Shapes captioned ``true -> predicted (p=..)``, green when right and red when wrong.

    Args:
        points: ``(M, N, 3)`` clouds; ``labels: (M,)``; ``probs: (M, num_classes)`` softmax outputs.
        wrong_only: only the mistakes, most confident first.
    """
    labels = np.asarray(labels)
    predicted = probs.argmax(1)
    if wrong_only:
        wrong = np.flatnonzero(predicted != labels)
        if not len(wrong):
            raise PointNetKitError(f"no mistakes to show: all {len(labels)} shapes are classified correctly")
        chosen = wrong[np.argsort(-probs[wrong, predicted[wrong]], kind="stable")][:n]
    else:
        chosen = choose_samples(labels, n, seed)
    if title is None:
        correct = int((predicted == labels).sum())
        title = f"{correct}/{len(labels)} correct ({correct / len(labels):.1%})"
        title += f"; {len(chosen)} mistakes shown" if wrong_only else f"; {len(chosen)} shown"
    return Panels(
        scenes=[[Cloud(points[i])] for i in chosen],
        captions=[
            prediction_caption(class_names[labels[i]], class_names[predicted[i]], float(probs[i, predicted[i]]))
            for i in chosen
        ],
        caption_colors=[C.CORRECT if predicted[i] == labels[i] else C.WRONG for i in chosen],
        title=title,
    )


def heatmap_panels(
    points: np.ndarray,
    values: np.ndarray,
    label: str,
    title: str | None = None,
    cmap: str = C.DEFAULT_CMAP,
    log: bool = False,
    caption: str | None = None,
) -> Panels:
    """One cloud coloured by a per-point scalar ``values: (N,)``, with a colour bar labelled ``label``
    and an optional ``caption`` under the cloud.

    With ``log`` the scale is logarithmic and points at zero are grey (for counts such as
    max-pool wins, where most points have none).
    """
    points = np.asarray(points)[:, :3]
    values = np.asarray(values, dtype=np.float64)
    shown = values > 0 if log else np.ones(len(values), dtype=bool)
    if not shown.any():  # all zero: nothing stands out, use the plain scale
        shown[:], log = True, False
    lo, hi = float(values[shown].min()), float(values[shown].max())
    clouds: list[Geometry] = []
    if not shown.all():
        clouds.append(Cloud(points[~shown], np.tile(C.NONE, (int((~shown).sum()), 1))))
    order = np.flatnonzero(shown)[np.argsort(values[shown], kind="stable")]  # highest drawn last, on top
    clouds.append(Cloud(points[order], C.scalar_colors(values[order], cmap, lo, hi, log=log)))
    return Panels(
        scenes=[clouds],
        captions=None if caption is None else [caption],
        title=title,
        fit=points,
        colorbar={"vmin": lo, "vmax": hi, "cmap": cmap, "label": label, "log": log},
    )


def feature_map(
    model, points: np.ndarray, map: str = "wins", layer: str | None = None, channel: int | None = None
) -> tuple[np.ndarray, str, str, str | None]:
    """Per-point values for a heat map of one cloud ``points: (N, 3)``.

    ``map``: ``"wins"`` (max-pool dimensions each point wins), ``"norm"`` (norm of ``layer``'s
    features, default the last) or ``"channel"`` (``channel`` of ``layer``).
    Returns ``(values (N,), colour-bar label, title, caption or None)``.
    """
    import torch

    from . import features as F

    points = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))
    if map == "wins":
        pooled = F.max_pool_inputs(model, points)["global"]  # (1, D, N)
        wins = F.max_pool_wins(pooled)[0].cpu().numpy()
        note = f"{int((wins > 0).sum())} of {len(wins)} points win; grey: none"
        return wins, f"max-pool dimensions won (of {pooled.shape[1]})", "max-pool wins per point", note
    if map not in ("norm", "channel"):
        raise PointNetKitError(f"unknown feature map {map!r}; use wins, norm or channel")
    layer = layer or F.layer_names(model)[-1]
    feats = F.layer_features(model, points, [layer])[layer][0]  # (C, N)
    if map == "norm":
        norms = feats.norm(dim=0).cpu().numpy()
        return norms, f"{layer} feature norm", f"feature norm of {layer} ({feats.shape[0]}-d)", None
    if channel is None or not 0 <= channel < feats.shape[0]:
        raise PointNetKitError(f"channel must be in 0..{feats.shape[0] - 1} for layer {layer}, got {channel}")
    values = feats[channel].cpu().numpy()
    return values, f"{layer} channel {channel}", f"channel {channel} of {layer}", None


def critical_panels(
    points: np.ndarray,
    critical: np.ndarray,
    upper_bound: np.ndarray,
    global_winners: np.ndarray | None = None,
    title: str | None = None,
) -> Panels:
    """Input | critical points | upper-bound shape, side by side with one shared camera.

    Args:
        points: ``(N, 3)`` the input cloud; ``critical: (K,)`` indices into it.
        upper_bound: ``(M, 3)`` upper-bound points.
        global_winners: optional indices (a subset of ``critical``) that win the global max pool;
            the other critical points (needed by the T-Nets' pools) are then drawn lighter.
    """
    points = np.asarray(points)[:, :3]
    upper_bound = np.asarray(upper_bound).reshape(-1, 3)
    critical = np.asarray(critical, dtype=np.int64)
    colors = np.tile(C.CRITICAL, (len(critical), 1))
    caption = f"critical points ({len(critical)})"
    if global_winners is not None:
        main = np.isin(critical, global_winners)
        colors[~main] = C.CRITICAL_TNET
        caption = f"critical points ({int(main.sum())} + {int((~main).sum())} for T-Nets)"
    # Dense shapes get smaller points so they still read as a shape.
    upper_scale = float(np.clip(np.sqrt(len(points) / max(len(upper_bound), 1)), 0.5, 1.0))
    return Panels(
        scenes=[
            [Cloud(points)],
            [Cloud(points[critical], colors, point_scale=1.2)],
            [Cloud(upper_bound, np.tile(C.UPPER_BOUND, (len(upper_bound), 1)), point_scale=upper_scale)],
        ],
        captions=[f"input ({len(points)} points)", caption, f"upper-bound shape ({len(upper_bound)})"],
        title=title,
        columns=3,
        # One camera, fitted to everything drawn, so the panels line up and nothing is clipped.
        fit=np.concatenate([points, upper_bound]),
    )


def transform_panels(
    points: np.ndarray, transformed: np.ndarray, matrix: np.ndarray, up: str = "z", title: str | None = None
) -> Panels:
    """The input cloud beside the cloud after the learned input transform.

    Points keep one colour each (by height in the input), so the panels show where every point went.
    Each panel has its own fitted camera; the title gives the matrix's scales (singular values) and
    determinant, which fitting hides.
    """
    points = np.asarray(points)[:, :3]
    colors = C.scalar_colors(points[:, UP_AXES[up]], "viridis")
    matrix = np.asarray(matrix, dtype=np.float64)
    if title is None:
        scales = " / ".join(f"{s:.2f}" for s in np.linalg.svd(matrix, compute_uv=False))
        title = f"input transform: scales {scales}, det {np.linalg.det(matrix):.2f}"
    return Panels(
        scenes=[[Cloud(points, colors)], [Cloud(np.asarray(transformed)[:, :3], colors)]],
        captions=["input", "after the input transform"],
        title=title,
        columns=2,
    )
