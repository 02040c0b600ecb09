"""Compose rendered tiles into labelled figures with Pillow: captions under tiles, titles, side by side."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import numpy as np

from .colors import TEXT

Color = tuple[float, float, float]


@lru_cache(maxsize=16)
def get_font(size: int, bold: bool = False):
    """DejaVu Sans (shipped with matplotlib) at ``size`` pixels; Pillow's built-in font otherwise."""
    from PIL import ImageFont

    try:
        from matplotlib import font_manager

        path = font_manager.findfont(
            font_manager.FontProperties(family="DejaVu Sans", weight="bold" if bold else "normal"),
            fallback_to_default=True,
        )
        return ImageFont.truetype(path, size)
    except Exception:  # noqa: BLE001 - any font trouble: fall back, text must still appear
        return ImageFont.load_default(size)


def _rgb255(color: Color) -> tuple[int, int, int]:
    return tuple(int(round(255 * float(c))) for c in color)


def _text_width(text: str, font) -> float:
    return font.getlength(text)


def fit_text(
    text: str, width: int, size: int, min_size: int | None = None, max_lines: int = 2, bold: bool = False
) -> tuple[list[str], int]:
    """Lines and font size that fit ``text`` into ``width`` pixels.

    Shrinks the font down to ``min_size`` (default 75% of ``size``), then wraps at spaces onto up
    to ``max_lines`` lines, and as a last resort cuts the last line with an ellipsis.
    """
    min_size = min_size or max(8, int(size * 0.75))
    for s in range(size, min_size - 1, -1):
        if _text_width(text, get_font(s, bold)) <= width:
            return [text], s
    font = get_font(min_size, bold)
    lines: list[str] = []
    words = text.split(" ")
    current = ""
    for word in words:
        candidate = f"{current} {word}".strip()
        if current and _text_width(candidate, font) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    lines.append(current)
    if len(lines) > max_lines:
        lines = lines[: max_lines - 1] + [" ".join(lines[max_lines - 1 :])]
    last = lines[-1]
    while last and _text_width(last, font) > width:
        last = last[:-2] + "…" if len(last) > 2 else ""
    lines[-1] = last
    return lines, min_size


def label_below(
    tile: np.ndarray,
    text: str,
    color: Color = TEXT,
    font_size: int | None = None,
    lines: int = 1,
) -> np.ndarray:
    """``tile (H, W, 3)`` uint8 with ``text`` centred in a white strip under it (room for ``lines`` lines)."""
    from PIL import Image, ImageDraw

    h, w = tile.shape[:2]
    size = font_size or max(10, w // 16)
    line_h = int(size * 1.25)
    strip = line_h * lines + size // 2
    canvas = Image.new("RGB", (w, h + strip), "white")
    canvas.paste(Image.fromarray(np.ascontiguousarray(tile)), (0, 0))
    draw = ImageDraw.Draw(canvas)
    text_lines, fitted = fit_text(text, w - 6, size, max_lines=lines)
    font = get_font(fitted)
    y = h + size // 6
    for line in text_lines:
        draw.text((w / 2, y), line, fill=_rgb255(color), font=font, anchor="ma")
        y += line_h
    return np.asarray(canvas)


def add_title(image: np.ndarray, title: str, font_size: int | None = None, color: Color = TEXT) -> np.ndarray:
    """``image`` with a bold ``title`` centred in a white band above it."""
    from PIL import Image, ImageDraw

    h, w = image.shape[:2]
    size = font_size or int(np.clip(w // 34, 14, 22))
    lines, fitted = fit_text(title, w - 12, size, max_lines=2, bold=True)
    font = get_font(fitted, bold=True)
    band = int(fitted * 1.3) * len(lines) + fitted // 2
    canvas = Image.new("RGB", (w, h + band), "white")
    canvas.paste(Image.fromarray(np.ascontiguousarray(image)), (0, band))
    draw = ImageDraw.Draw(canvas)
    y = fitted // 3
    for line in lines:
        draw.text((w / 2, y), line, fill=_rgb255(color), font=font, anchor="ma")
        y += int(fitted * 1.3)
    return np.asarray(canvas)


def pad(image: np.ndarray, top: int = 0, right: int = 0, bottom: int = 0, left: int = 0) -> np.ndarray:
    """White margins around ``image``."""
    return np.pad(image, ((top, bottom), (left, right), (0, 0)), constant_values=255)


def hstack(images: Sequence[np.ndarray], gap: int = 8, align: str = "center") -> np.ndarray:
    """Images side by side on white, vertically centred (or ``align="top"``), ``gap`` pixels apart."""
    height = max(im.shape[0] for im in images)
    parts = []
    for i, im in enumerate(images):
        extra = height - im.shape[0]
        top = extra // 2 if align == "center" else 0
        parts.append(pad(im, top=top, bottom=extra - top, right=gap if i < len(images) - 1 else 0))
    return np.concatenate(parts, axis=1)


def vstack(images: Sequence[np.ndarray], gap: int = 8) -> np.ndarray:
    """Images one above the other on white, horizontally centred, ``gap`` pixels apart."""
    width = max(im.shape[1] for im in images)
    parts = []
    for i, im in enumerate(images):
        extra = width - im.shape[1]
        parts.append(pad(im, left=extra // 2, right=extra - extra // 2, bottom=gap if i < len(images) - 1 else 0))
    return np.concatenate(parts, axis=0)


def grid(
    tiles: Sequence[np.ndarray],
    captions: Sequence[str] | None = None,
    colors: Sequence[Color] | None = None,
    columns: int | None = None,
    title: str | None = None,
    gap: int = 6,
    caption_lines: int = 1,
) -> np.ndarray:
    """Equal-size ``tiles`` ``(H, W, 3)`` uint8 in rows, each with its caption (and caption colour) below.

    ``columns`` defaults to a near-square layout (16 tiles -> 4 x 4). Returns one uint8 image.
    """
    if not len(tiles):
        raise ValueError("grid needs at least one tile")
    n = len(tiles)
    columns = columns or math.ceil(math.sqrt(n))
    cells = []
    width = tiles[0].shape[1]
    # One font size for all captions: the largest at which every caption fits on one line (within limits).
    size = int(np.clip(width // 14, 11, 20))
    if captions is not None:
        size = min(fit_text(c, width - 6, size, max_lines=caption_lines)[1] for c in captions)
    for i, tile in enumerate(tiles):
        if captions is not None:
            color = colors[i] if colors is not None else TEXT
            tile = label_below(tile, captions[i], color, font_size=size, lines=caption_lines)
        cells.append(tile)
    blank = np.full_like(cells[0], 255)
    rows = []
    for start in range(0, n, columns):
        row = list(cells[start : start + columns])
        row += [blank] * (columns - len(row))
        rows.append(hstack(row, gap=gap))
    image = pad(vstack(rows, gap=gap), top=gap, right=gap, bottom=gap, left=gap)
    return add_title(image, title) if title else image


def legend_strip(items: Sequence[tuple[Color, str]], width: int, font_size: int | None = None) -> np.ndarray:
    """A white strip ``(H, width, 3)`` listing ``(colour, meaning)`` pairs: a filled swatch, then the text,
    one item per line (long meanings shrink to fit)."""
    from PIL import Image, ImageDraw

    size = font_size or int(np.clip(width // 50, 11, 15))
    line_h = int(size * 1.6)
    swatch = int(size * 0.9)
    canvas = Image.new("RGB", (width, line_h * len(items) + size // 2), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (color, text) in enumerate(items):
        y = size // 4 + i * line_h
        top = y + (line_h - swatch) // 2
        draw.ellipse((12, top, 12 + swatch, top + swatch), fill=_rgb255(color))
        lines, fitted = fit_text(text, width - 24 - swatch - 8, size, max_lines=1)
        draw.text((12 + swatch + 8, y + line_h // 2), lines[0], fill=_rgb255(TEXT), font=get_font(fitted), anchor="lm")
    return np.asarray(canvas)


def new_figure(width: float, height: float, dpi: int = 100, layout: str | None = "constrained"):
    """A matplotlib ``Figure`` (inches) on the Agg canvas: no pyplot, no global state, no display."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi, facecolor="white", layout=layout)
    FigureCanvasAgg(fig)
    return fig


def figure_image(fig) -> np.ndarray:
    """Draw a :func:`new_figure` and return it as ``(H, W, 3)`` uint8."""
    fig.canvas.draw()
    return np.ascontiguousarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])
