"""Composition: one tile per sample, captions that fit, colour bars, sample choice, figures' caption colours."""

from __future__ import annotations

import numpy as np
import pytest
from .viz_helpers import sphere

from pointnet_kit.errors import PointNetKitError
from pointnet_kit.viz import colors as C
from pointnet_kit.viz import figures
from pointnet_kit.viz.grid import fit_text, get_font, grid, label_below


def _solid(color: tuple[int, int, int], h: int = 40, w: int = 50) -> np.ndarray:
    return np.tile(np.array(color, dtype=np.uint8), (h, w, 1))


def _count_color(image: np.ndarray, color) -> int:
    return int(np.all(image == np.array(color, dtype=np.uint8), axis=2).sum())


def test_grid_has_one_tile_per_sample():
    colors = [(200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0), (0, 200, 200)]
    image = grid([_solid(c) for c in colors], captions=[f"tile {i}" for i in range(5)], title="five")
    for c in colors:
        assert _count_color(image, c) == 40 * 50  # each tile exactly once, whole
    assert image.shape[1] > 3 * 50 and image.shape[1] < 4 * 50 + 40  # 3 columns for 5 tiles


def test_grid_columns_and_no_captions():
    image = grid([_solid((9, 9, 9))] * 4, columns=4, gap=0)
    assert image.shape == (40, 200, 3)
    with pytest.raises(ValueError):
        grid([])


def test_caption_is_drawn_in_its_colour_below_the_tile():
    tile = _solid((255, 255, 255), 60, 120)
    out = label_below(tile, "chair -> table (p=0.93)", C.WRONG)
    assert out.shape[0] > 60 and out.shape[1] == 120
    strip = out[60:].astype(int)
    wrong = np.array(C.WRONG) * 255
    assert (np.abs(strip - wrong).max(axis=2) < 40).sum() > 20  # text pixels in the caption colour
    assert np.all(out[:60] == 255)


@pytest.mark.parametrize("text", ["short", "a much longer caption that cannot fit at all in a tile this narrow"])
def test_fit_text_fits_the_width(text):
    lines, size = fit_text(text, 100, 16, max_lines=2)
    assert 1 <= len(lines) <= 2 and 8 <= size <= 16
    assert all(get_font(size).getlength(line) <= 100 for line in lines)
    if text == "short":
        assert lines == ["short"] and size == 16


def test_colorbar_shows_the_colormap_ends():
    bar = C.colorbar(200, 0.0, 5.0, "viridis", label="norm")
    assert bar.shape[0] == 200 and bar.shape[2] == 3
    for end in (0.0, 1.0):
        rgb = np.array(C.get_cmap("viridis")(end)[:3]) * 255
        assert (np.abs(bar.astype(int) - rgb).max(axis=2) <= 8).sum() > 10
    assert C.colorbar(100, 1, 300, "plasma", log=True).shape[0] == 100


def test_scalar_colors_and_normalize():
    values = np.array([0.0, 1.0, 10.0, 100.0])
    np.testing.assert_allclose(C.normalize(values), [0, 0.01, 0.1, 1])
    np.testing.assert_allclose(C.normalize(values, log=True), [0, 0, 0.5, 1])
    np.testing.assert_allclose(C.normalize(np.ones(3)), 0)
    colors = C.scalar_colors(values, "viridis")
    assert colors.shape == (4, 3) and colors.min() >= 0 and colors.max() <= 1
    with pytest.raises(ValueError, match="unknown colormap"):
        C.get_cmap("not-a-map")


def test_choose_samples_spreads_over_classes():
    labels = np.repeat(np.arange(5), [10, 1, 3, 7, 2])
    chosen = figures.choose_samples(labels, 5, seed=0)
    assert len(set(chosen.tolist())) == 5 and set(labels[chosen].tolist()) == set(range(5))
    assert len(figures.choose_samples(labels, 100, seed=0)) == len(labels)
    assert np.array_equal(figures.choose_samples(labels, 8, seed=3), figures.choose_samples(labels, 8, seed=3))


@pytest.mark.parametrize("n", [1, 4, 16, 17, 23])
def test_a_grid_never_repeats_a_sample(n):
    labels = np.repeat(np.arange(12), 20)[:: 3]  # 12 classes, a few shapes each, like a validation split
    chosen = figures.choose_samples(labels, n, seed=0)
    assert len(chosen) == min(n, len(labels)) and len(np.unique(chosen)) == len(chosen)
    # Shapes of one class sit together (one run per class), so no two rows show the same classes in order.
    classes = labels[chosen]
    runs = 1 + int((classes[1:] != classes[:-1]).sum())
    assert runs == len(set(classes.tolist()))


def test_plural():
    assert figures.plural(1, "class") == "1 class" and figures.plural(2, "class") == "2 classes"
    assert figures.plural(0, "shape") == "0 shapes" and figures.plural(1, "point") == "1 point"


def _has(image: np.ndarray, color, tolerance: int = 30, count: int = 20) -> bool:
    return (np.abs(image.astype(int) - np.array(color) * 255).max(axis=2) < tolerance).sum() > count


def test_predictions_figure_colours_right_and_wrong(renderer):
    points = np.stack([sphere(200, i) for i in range(4)])
    labels = np.array([0, 1, 0, 1])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])  # two right, two wrong
    names = ["cone", "cube"]
    both = figures.predictions_panels(points, labels, probs, names, n=4)
    wrong = figures.predictions_panels(points, labels, probs, names, n=4, wrong_only=True)
    assert len(both.scenes) == 4 and len(wrong.scenes) == 2
    assert wrong.captions == ["cube -> cone (p=0.60)", "cone -> cube (p=0.70)"][::-1]  # most confident first
    assert both.title.startswith("2/4 correct (50.0%)")
    both, wrong = figures.render_panels(both, renderer), figures.render_panels(wrong, renderer)
    assert _has(both, C.CORRECT) and _has(both, C.WRONG)
    assert _has(wrong, C.WRONG) and not _has(wrong, C.CORRECT)
    assert figures.prediction_caption("cone", "cube", 0.934) == "cone -> cube (p=0.93)"
    all_right = np.array([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.1, 0.9]])
    with pytest.raises(PointNetKitError, match="no mistakes"):
        figures.predictions_panels(points, labels, all_right, names, wrong_only=True)


def test_dataset_panels_caption_class_names():
    points = np.stack([sphere(50, i) for i in range(6)])
    panels = figures.dataset_panels(points, np.array([0, 1, 2, 0, 1, 2]), ["a", "b", "c"], n=3, seed=1)
    assert len(panels.scenes) == 3 and sorted(panels.captions) == ["a", "b", "c"]


def test_heatmap_figure_has_colour_bar_and_grey_zeros(renderer):
    points = sphere(300)
    heat = figures.render_panels(figures.heatmap_panels(points, points[:, 2], "height", title="z"), renderer)
    assert heat.shape[1] > renderer.width + 40  # tile plus colour bar
    assert _has(heat, C.get_cmap("viridis")(1.0)[:3], tolerance=16)  # the map's top colour (points, bar)
    wins = np.zeros(300)
    wins[:20] = np.arange(1, 21)
    panels = figures.heatmap_panels(points, wins, "wins", log=True, cmap="plasma", spread=False)
    assert panels.colorbar["vmin"] == 1 and panels.colorbar["log"]
    assert _has(figures.render_panels(panels, renderer), C.NONE, tolerance=40, count=50)  # zero-win points grey


def test_heatmap_draws_every_point_and_spreads_values_from_the_seen_ones():
    points = sphere(1000)
    seen = np.arange(0, 1000, 8)  # the model saw 125 of the 1000 drawn points
    values = points[seen, 2]
    panels = figures.heatmap_panels(points, values, "height", seen=seen)
    drawn = np.concatenate([c.points for c in panels.scenes[0]])
    assert len(drawn) == 1000
    spread = figures.nearest_values(points, points[seen], values)
    np.testing.assert_array_equal(spread[seen], values)  # exact at the seen points
    assert np.corrcoef(spread, points[:, 2])[0, 1] > 0.95  # and a faithful field elsewhere
    wins = np.zeros(125)
    wins[:5] = 3
    sparse = figures.heatmap_panels(points, wins, "wins", seen=seen, log=True, spread=False)
    grey, coloured = sparse.scenes[0]
    assert len(coloured.points) == 5 and len(grey.points) == 995  # only winners coloured; no value invented


def test_critical_figure_shares_one_camera_and_has_a_legend(renderer):
    points = sphere(300)
    seen = np.arange(0, 300, 2)  # 150 seen of 300 drawn
    upper = sphere(100, 1) * 0.5
    panels = figures.critical_panels(points, seen, np.arange(0, 150, 7), upper)
    assert panels.captions == ["input (150 of 300 points seen)", "critical points (22)", "upper-bound shape (100)"]
    assert len(panels.fit) == 400
    colours = [c for c, _ in panels.legend]
    assert colours == [C.CONTEXT, C.SEEN, C.CRITICAL, C.UPPER_BOUND]
    image = figures.render_panels(panels, renderer)
    assert image.shape[1] >= 3 * renderer.width
    assert _has(image, C.CRITICAL)
    for colour in colours:  # every legend swatch is drawn
        assert _has(image[-len(panels.legend) * 30 :], colour, tolerance=20, count=10)
    split = figures.critical_panels(points, seen, np.arange(0, 150, 7), upper, global_winners=np.arange(0, 150, 14))
    assert split.captions[1] == "critical points (11 + 11)"
    assert [c for c, _ in split.legend] == [C.CONTEXT, C.SEEN, C.CRITICAL, C.CRITICAL_TNET, C.UPPER_BOUND]
    colors = split.scenes[1][1].colors
    assert (colors == C.CRITICAL).all(1).sum() == 11 and (colors == C.CRITICAL_TNET).all(1).sum() == 11


def test_transform_title_in_words_and_shared_camera():
    points = sphere(100)
    matrix = np.diag([2.0, 1.0, 0.5])
    panels = figures.transform_panels(points, points @ matrix, matrix)
    assert panels.title == "input transform: stretches x by 2.00, y by 1.00, z by 0.50 (volume ×1.00) and turns 0°"
    np.testing.assert_array_equal(panels.scenes[0][0].colors, panels.scenes[1][0].colors)
    assert panels.fit is not None and len(panels.fit) == 200  # one camera: the scaling shows
    assert figures.transform_panels(points, points @ matrix, matrix, shared_camera=False).fit is None
    turn = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]) * 3
    assert figures.describe_transform(turn).endswith("(volume ×27.00) and turns 90°")
    assert figures.describe_transform(np.diag([1.0, 1.0, -1.0])).endswith("mirrors")
