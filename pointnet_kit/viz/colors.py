"""Per-point colours from scalars (matplotlib colormaps), and the colour bar drawn beside a heat map."""

from __future__ import annotations

import numpy as np

# Colours shared by every figure: float RGB in [0, 1].
CORRECT = (0.13, 0.55, 0.13)
WRONG = (0.80, 0.10, 0.10)
TEXT = (0.10, 0.10, 0.10)
CLOUD = (0.20, 0.45, 0.78)  # plain clouds; the renderer darkens far points for depth
MESH = (0.62, 0.68, 0.78)
NONE = (0.80, 0.80, 0.80)  # points with nothing to show (zero max-pool wins)
CONTEXT = (0.74, 0.76, 0.80)  # points drawn only so the shape reads (the model did not see them)
SEEN = (0.20, 0.20, 0.24)  # the points the model sees, over context
CRITICAL = (0.85, 0.20, 0.15)
CRITICAL_TNET = (0.95, 0.66, 0.15)  # critical only for a T-Net's max pool
UPPER_BOUND = (0.20, 0.45, 0.80)

DEFAULT_CMAP = "viridis"


def get_cmap(name: str):
    """A matplotlib colormap by name; raises ``ValueError`` listing a few valid names otherwise."""
    import matplotlib

    try:
        return matplotlib.colormaps[name]
    except KeyError:
        raise ValueError(f"unknown colormap {name!r}; try viridis, magma, inferno, plasma, turbo, cividis") from None


def normalize(
    values: np.ndarray, vmin: float | None = None, vmax: float | None = None, log: bool = False
) -> np.ndarray:
    """Scale ``values`` to ``[0, 1]`` between ``vmin`` and ``vmax`` (default: their min and max).

    With ``log``, on a log scale (``vmin`` defaults to the smallest positive value; values at or
    below zero map to 0). Constant values map to 0.
    """
    values = np.asarray(values, dtype=np.float64)
    if log:
        positive = values[values > 0]
        lo = float(positive.min()) if vmin is None and positive.size else float(vmin or 1.0)
        hi = float(values.max()) if vmax is None else float(vmax)
        lo, hi = np.log(max(lo, 1e-12)), np.log(max(hi, 1e-12))
        values = np.log(np.maximum(values, 1e-12))
    else:
        lo = float(np.min(values)) if vmin is None else float(vmin)
        hi = float(np.max(values)) if vmax is None else float(vmax)
    if hi <= lo:
        return np.zeros_like(values)
    return np.clip((values - lo) / (hi - lo), 0.0, 1.0)


def scalar_colors(
    values: np.ndarray,
    cmap: str = DEFAULT_CMAP,
    vmin: float | None = None,
    vmax: float | None = None,
    log: bool = False,
) -> np.ndarray:
    """Colour each value: ``values (N,)`` -> ``(N, 3)`` float RGB in ``[0, 1]``."""
    return np.asarray(get_cmap(cmap)(normalize(values, vmin, vmax, log))[:, :3], dtype=np.float64)


def colorbar(
    height: int,
    vmin: float,
    vmax: float,
    cmap: str = DEFAULT_CMAP,
    label: str = "",
    log: bool = False,
    font_size: int | None = None,
) -> np.ndarray:
    """A vertical colour bar with ticks and a label, ``(height, width, 3)`` uint8 on white.

    Drawn with matplotlib so ticks are chosen and formatted well (``0.5``, ``1e3``...).
    """
    import matplotlib

    from .grid import figure_image, new_figure

    font_size = font_size or int(np.clip(height // 30, 9, 14))
    width = int(font_size * 12)  # generous; the white margin on the right is trimmed below
    dpi = 100
    fig = new_figure(width / dpi, height / dpi, dpi=dpi, layout=None)
    # The bar takes a fixed strip on the left; ticks and the label go to its right.
    ax = fig.add_axes((0.06, 0.08, font_size * 1.2 / width, 0.84))
    if vmax <= vmin:
        vmax = vmin + 1.0
    if log:
        norm = matplotlib.colors.LogNorm(max(vmin, 1e-12), max(vmax, vmin * 10, 1e-11))
    else:
        norm = matplotlib.colors.Normalize(vmin, vmax)
    bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm, get_cmap(cmap)), cax=ax)
    bar.ax.tick_params(labelsize=font_size)
    if log:  # plain numbers (1, 10, 100), not 10^k
        bar.ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    bar.outline.set_linewidth(0.5)
    if label:  # shrink a long label to the bar's length
        bar.set_label(label, fontsize=min(font_size, 0.84 * height / (0.62 * len(label))))
    image = figure_image(fig)
    used = np.flatnonzero((image < 250).any(axis=(0, 2)))
    return image[:, : used.max() + 1 + font_size // 2] if len(used) else image
