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
from .grid import add_title, grid, hstack, label_below, legend_strip, pad, vstack
from .render import UP_AXES, Cloud, Geometry, Renderer, View, show

Color = tuple[float, float, float]


def plural(count: int, word: str) -> str:
    """``"1 class"``, ``"2 classes"``, ``"3 shapes"``."""
    if count == 1:
        return f"1 {word}"
    return f"{count} {word}es" if word.endswith(("s", "sh", "ch", "x")) else f"{count} {word}s"


def nearest_values(points: np.ndarray, sources: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values (K,)`` given at ``sources (K, 3)`` carried to every ``points (M, 3)``: each takes its nearest
    source's value (exact at the sources themselves)."""
    from scipy.spatial import cKDTree

    _, nearest = cKDTree(np.asarray(sources, dtype=np.float64)).query(np.asarray(points, dtype=np.float64))
    return np.asarray(values)[nearest]


CONTEXT_SCALE = 0.75  # point size of context points (drawn so the shape reads) relative to the renderer's
HIGHLIGHT_SCALE = 1.5  # point size of the points a figure is about, drawn over context


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
        legend: ``(colour, meaning)`` pairs drawn as swatches under the figure.
    """

    scenes: list[list[Geometry]]
    captions: list[str] | None = None
    caption_colors: list[Color] | None = None
    title: str | None = None
    columns: int | None = None
    fit: np.ndarray | None = None
    colorbar: dict[str, Any] | None = field(default=None)
    legend: list[tuple[Color, str]] | None = None


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
            tile = label_below(tile, panels.captions[0], font_size=int(np.clip(tile.shape[1] // 24, 11, 18)), lines=2)
        tile = hstack([tile, C.colorbar(tiles[0].shape[0], **panels.colorbar)], gap=4, align="top")
        image = pad(tile, top=6, right=6, bottom=6, left=6)
    else:
        image = grid(tiles, panels.captions, panels.caption_colors, columns=panels.columns)
    if panels.legend:
        image = vstack([image, legend_strip(panels.legend, image.shape[1])], gap=0)
    return add_title(image, panels.title) if panels.title else image


def show_panels(panels: Panels, view: View | None = None, point_size: float = 4.0) -> None:
    """Open the figure's scenes side by side in an interactive Open3D window (captions are printed)."""
    if panels.title:
        print(panels.title)
    for color, meaning in panels.legend or []:
        print(f"  rgb({', '.join(f'{int(255 * c)}' for c in color)}): {meaning}")
    if panels.colorbar is not None:
        bar = panels.colorbar
        print(
            f"{bar.get('label', 'value')}: {bar['vmin']:.4g} .. {bar['vmax']:.4g} ({bar.get('cmap', C.DEFAULT_CMAP)})"
        )
    show(panels.scenes, panels.captions, view=view or View(), point_size=point_size)


def choose_samples(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` distinct indices spread over classes (a seeded shuffle, then round-robin across classes),
    ordered by class so shapes of one class sit side by side (never two rows of look-alike tiles)."""
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
    picked_arr = np.asarray(picked, dtype=np.int64)
    order = {int(c): i for i, c in enumerate(dict.fromkeys(labels[picked_arr].tolist()))}
    return picked_arr[np.argsort([order[int(labels[i])] for i in picked_arr], kind="stable")]


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
    seen_points: int | None = None,
) -> Panels:
    """Shapes captioned ``true -> predicted (p=..)``, green when right and red when wrong.

    Args:
        points: ``(M, N, 3)`` clouds as drawn; ``labels: (M,)``; ``probs: (M, num_classes)`` softmax outputs.
        wrong_only: only the mistakes, most confident first.
        seen_points: points per shape the model saw, when fewer than drawn (said in the title).
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
        title += f"; {plural(len(chosen), 'mistake')} shown" if wrong_only else f"; {len(chosen)} shown"
        if seen_points is not None and seen_points != points.shape[1]:
            title += f" ({points.shape[1]} points drawn, the model saw {seen_points})"
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
    seen: np.ndarray | None = None,
    title: str | None = None,
    cmap: str = C.DEFAULT_CMAP,
    log: bool = False,
    spread: bool = True,
    caption: str | None = None,
) -> Panels:
    """One cloud coloured by a per-point scalar, with a colour bar labelled ``label``.

    Args:
        points: ``(M, 3)`` the points drawn.
        values: ``(N,)`` one value per point the model saw, ``points[seen]`` (``seen`` ``None``: all of them).
        spread: carry each value to the drawn points nearest to its point (a smooth field: layer
            features); otherwise only the seen points are coloured and the rest are grey (counts such
            as max-pool wins, which belong to single points).
        log: logarithmic scale; points at zero are grey (most points win no max-pool dimension).
        caption: text under the cloud.
    """
    points = np.asarray(points)[:, :3]
    values = np.asarray(values, dtype=np.float64)
    seen = np.arange(len(points)) if seen is None else np.asarray(seen, dtype=np.int64)
    if len(seen) != len(values):
        raise PointNetKitError(f"{len(values)} values for {len(seen)} seen points")
    positive = values > 0 if log else np.ones(len(values), dtype=bool)
    if not positive.any():  # all zero: nothing stands out, use the plain scale
        positive[:], log = True, False
    lo, hi = float(values[positive].min()), float(values[positive].max())
    if spread:
        drawn_values = nearest_values(points, points[seen], values)
        shown = np.ones(len(points), dtype=bool)
    else:
        drawn_values = np.zeros(len(points))
        drawn_values[seen] = values
        shown = np.zeros(len(points), dtype=bool)
        shown[seen[positive]] = True
    clouds: list[Geometry] = []
    scale = 1.0
    if not shown.all():  # the rest small and light, so the few coloured points stand out
        clouds.append(Cloud(points[~shown], np.tile(C.NONE, (int((~shown).sum()), 1)), CONTEXT_SCALE, False))
        scale = HIGHLIGHT_SCALE
    order = np.flatnonzero(shown)[np.argsort(drawn_values[shown], kind="stable")]  # highest drawn last, on top
    # No depth cue on a colour scale: a darkened yellow would read as another value.
    clouds.append(Cloud(points[order], C.scalar_colors(drawn_values[order], cmap, lo, hi, log=log), scale, False))
    if not spread and caption is not None:
        caption += f"; grey: the other {int((~shown).sum())} drawn"
    elif caption is not None and len(seen) < len(points):
        caption += f", drawn on all {len(points)} (nearest seen point)"
    return Panels(
        scenes=[clouds],
        captions=None if caption is None else [caption],
        title=title,
        fit=points,
        colorbar={"vmin": lo, "vmax": hi, "cmap": cmap, "label": label, "log": log},
    )


@dataclass
class FeatureMap:
    """Per-point values for a heat map, and the words around them."""

    values: np.ndarray  # (N,) one per point the model saw
    label: str  # colour-bar label
    title: str
    caption: str | None
    layer: str | None


def _ranges(indices: Sequence[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2, 5, 7-8"``."""
    parts: list[str] = []
    indices = sorted(int(i) for i in indices)
    start = prev = None
    for i in indices + [None]:
        if start is not None and (i is None or i != prev + 1):
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if i is not None and start is None:
            start = i
        prev = i
    return ", ".join(parts)


def feature_map(
    model, points: np.ndarray, map: str = "wins", layer: str | None = None, channel: int | None = None
) -> FeatureMap:
    """Per-point values for a heat map of the cloud the model sees, ``points: (N, 3)``.

    ``map``: ``"wins"`` (max-pool dimensions each point wins), ``"norm"`` (norm of ``layer``'s
    features, default the last layer the model reports) or ``"channel"`` (``channel`` of ``layer``).
    A channel that is zero at every point (a ReLU that never fires here) is an error naming the active ones.
    """
    import torch

    from . import features as F

    points_t = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))
    n = len(points)
    if map == "wins":
        pooled = F.max_pool_inputs(model, points_t)
        last = pooled["global"] if "global" in pooled else list(pooled.values())[-1]  # the one into global_feature
        wins = F.max_pool_wins(last)[0].cpu().numpy()
        note = f"coloured: {int((wins > 0).sum())} of the {n} points seen win"
        return FeatureMap(wins, f"max-pool dimensions won (of {last.shape[1]})", "max-pool wins per point", note, None)
    if map not in ("norm", "channel"):
        raise PointNetKitError(f"unknown feature map {map!r}; use wins, norm or channel")
    layers = F.features_of(model, points_t).get("layers") or {}
    if not layers:
        raise PointNetKitError(f"{type(model).__name__} reports no per-point layers for --layer")
    layer = layer or list(layers)[-1]
    if layer not in layers:
        raise PointNetKitError(f"unknown layer {layer!r}; available: {', '.join(layers)}")
    feats = layers[layer][0].double().cpu()  # (C, N)
    note = f"computed on the {n} points the model sees"
    if map == "norm":
        norms = feats.norm(dim=0).numpy()
        return FeatureMap(norms, f"{layer} feature norm", f"feature norm of {layer} ({feats.shape[0]}-d)", note, layer)
    if channel is None or not 0 <= channel < feats.shape[0]:
        raise PointNetKitError(f"channel must be in 0..{feats.shape[0] - 1} for layer {layer}, got {channel}")
    active = np.flatnonzero((feats != 0).any(dim=1).numpy())
    if not (feats[channel] != 0).any():
        listed = _ranges(active) if len(active) else "none"
        raise PointNetKitError(
            f"channel {channel} of {layer} is inactive on this cloud (0 at every point: its ReLU never fires); "
            f"active channels ({len(active)} of {feats.shape[0]}): {listed}"
        )
    values = feats[channel].numpy()
    return FeatureMap(values, f"{layer} channel {channel}", f"channel {channel} of {layer}", note, layer)


def critical_panels(
    points: np.ndarray,
    seen: np.ndarray,
    critical: np.ndarray,
    upper_bound: np.ndarray,
    global_winners: np.ndarray | None = None,
    title: str | None = None,
    grid_points: int | None = None,
) -> Panels:
    """Input | critical points | upper-bound shape, side by side with one shared camera, and a legend.

    Args:
        points: ``(M, 3)`` the points drawn; the model saw ``points[seen]``.
        critical: ``(K,)`` indices into the seen points.
        upper_bound: ``(U, 3)`` upper-bound points.
        global_winners: optional indices into the seen points (a subset of ``critical``) that win
            the global max pool; the other critical points (needed by the T-Nets' pools) get their own colour.
        grid_points: how many grid points the upper-bound shape was chosen from (said in its caption).
    """
    points = np.asarray(points)[:, :3]
    seen_points = points[np.asarray(seen, dtype=np.int64)]
    upper_bound = np.asarray(upper_bound).reshape(-1, 3)
    critical = np.asarray(critical, dtype=np.int64)
    colors = np.tile(C.CRITICAL, (len(critical), 1))
    legend: list[tuple[Color, str]] = [(C.SEEN, f"the {len(seen_points)} points the model sees")]
    if global_winners is not None:
        main = np.isin(critical, global_winners)
        colors[~main] = C.CRITICAL_TNET
        caption = f"critical points ({int(main.sum())} + {int((~main).sum())})"
        legend += [
            (C.CRITICAL, f"critical: wins a dimension of the global max pool ({int(main.sum())})"),
            (C.CRITICAL_TNET, f"critical only for a T-Net's max pool ({int((~main).sum())})"),
        ]
    else:
        caption = f"critical points ({len(critical)})"
        legend.append((C.CRITICAL, f"critical: wins a max-pool dimension ({len(critical)})"))
    legend.append((C.UPPER_BOUND, "upper bound: grid points that leave the global feature unchanged"))
    seen = np.asarray(seen, dtype=np.int64)

    def context(drop: np.ndarray) -> Cloud:  # the drawn points except ``drop``, small and light
        rest = np.setdiff1d(np.arange(len(points)), drop)
        return Cloud(points[rest], np.tile(C.CONTEXT, (len(rest), 1)), CONTEXT_SCALE, False)

    input_caption = f"input ({len(seen_points)} points seen)"
    if len(points) != len(seen_points):
        legend.insert(0, (C.CONTEXT, f"the file's other points, drawn for context ({len(points)} in all)"))
        input_caption = f"input ({len(seen_points)} of {len(points)} points seen)"
    upper_caption = f"upper-bound shape ({len(upper_bound)}" + (f" of {grid_points})" if grid_points else ")")
    return Panels(
        scenes=[
            [context(seen), Cloud(seen_points, np.tile(C.SEEN, (len(seen_points), 1)), HIGHLIGHT_SCALE)],
            [context(seen[critical]), Cloud(seen_points[critical], colors, point_scale=HIGHLIGHT_SCALE)],
            [Cloud(upper_bound, np.tile(C.UPPER_BOUND, (len(upper_bound), 1)))],
        ],
        captions=[input_caption, caption, upper_caption],
        title=title,
        columns=3,
        # One camera, fitted to everything drawn, so the panels line up and nothing is clipped.
        fit=np.concatenate([points, upper_bound]),
        legend=legend,
    )


def describe_transform(matrix: np.ndarray) -> str:
    """A 3x3 transform (applied as ``points @ matrix``) in words: how much it stretches along which
    directions, what it does to volume, and how far it turns (or mirrors)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    # points @ matrix = points @ u @ diag(s) @ vt: the input direction u[:, i] is scaled by s[i]
    u, s, vt = np.linalg.svd(matrix)
    parts = []
    for i in range(3):
        axis = np.abs(u[:, i])
        name = "xyz"[int(axis.argmax())] if axis.max() > 0.9 else "a tilted axis"
        parts.append(f"{name} by {s[i]:.2f}")
    rotation = u @ vt  # polar decomposition: matrix = rotation-ish part times a stretch
    det = float(np.linalg.det(matrix))
    if np.linalg.det(rotation) < 0:
        turn = "mirrors"
    else:
        angle = np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1.0, 1.0)))
        turn = f"turns {angle:.0f}°"
    return f"input transform: stretches {', '.join(parts)} (volume ×{abs(det):.2f}) and {turn}"


def transform_panels(
    points: np.ndarray,
    transformed: np.ndarray,
    matrix: np.ndarray,
    up: str = "z",
    title: str | None = None,
    shared_camera: bool = True,
) -> Panels:
    """The input cloud beside the cloud after the learned input transform.

    Points keep one colour each (by height in the input), so the panels show where every point went.
    With ``shared_camera`` both panels use one camera, so the transform's scaling is visible; otherwise
    each panel is fitted to its cloud (shapes compare better, sizes do not). The title says the scaling
    in words either way.
    """
    points = np.asarray(points)[:, :3]
    transformed = np.asarray(transformed)[:, :3]
    colors = C.scalar_colors(points[:, UP_AXES[up]], "viridis")
    if title is None:
        title = describe_transform(matrix)
    camera = "same camera" if shared_camera else "own camera: size not to scale"
    return Panels(
        scenes=[[Cloud(points, colors)], [Cloud(transformed, colors)]],
        captions=["input", f"after the input transform ({camera})"],
        title=title,
        columns=2,
        fit=np.concatenate([points, transformed]) if shared_camera else None,
    )
