"""Part segmentation viz: category-restricted predictions, ShapeNetPart IoU, the parts figure and command."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pointnet_kit.data import PointCloudDataset
from pointnet_kit.data.shapenetpart import PART_NAMES
from pointnet_kit.errors import PointNetKitError
from pointnet_kit.viz import parts as P
from pointnet_kit.viz import sources

from .viz_helpers import seg_checkpoint, shapenet_spec


def test_predictions_stay_in_the_shapes_category():
    logits = np.zeros((5, 50))
    logits[:, 0] = 10.0  # an Airplane part wins overall...
    logits[:, 48] = np.arange(5)  # ...but for a Table only parts 47-49 may be predicted
    assert P.predict_parts(logits).tolist() == [0] * 5
    assert P.predict_parts(logits, [47, 48, 49]).tolist() == [47, 48, 48, 48, 48]


def test_part_iou_counts_parts_absent_from_both_as_one():
    truth = np.array([47, 47, 48, 48])
    ious = P.part_ious(np.array([47, 48, 48, 48]), truth, [47, 48, 49])
    np.testing.assert_allclose(ious, [1 / 2, 2 / 3, 1.0])
    spec = shapenet_spec()
    scores = P.shape_scores(np.array([[47, 48, 48, 48]]), truth[None], np.array([15]), spec)
    np.testing.assert_allclose(scores, [(1 / 2 + 2 / 3 + 1) / 3])
    rows = P.part_table(np.array([[47, 48, 48, 48]]), truth[None], np.array([15]), spec)
    assert [(r["category"], r["id"], round(r["iou"], 3)) for r in rows] == [
        ("Table", 47, 0.5), ("Table", 48, 0.667), ("Table", 49, 1.0)
    ]  # fmt: skip
    with pytest.raises(PointNetKitError, match="not one of this run's"):
        P.category_parts(spec, "Sofa")


def test_parts_figure_has_truth_mistakes_and_a_legend_per_part():
    points = np.random.default_rng(0).normal(size=(200, 3))
    truth = np.where(points[:, 1] > 0, 47, 48)
    predicted = truth.copy()
    predicted[:20] = 49
    panels = P.parts_panels(points, predicted, [47, 48, 49], shapenet_spec().part_names, truth, seen=64)
    assert len(panels.scenes) == 3 and panels.captions[1] == "ground truth"
    assert panels.captions[2].startswith(f"{int((predicted != truth).sum())} wrong points; IoU")
    assert [text.split(" ")[0] for _, text in panels.legend[:3]] == ["top", "leg", "support"]
    colours = panels.scenes[0][0].colors
    assert len({tuple(c) for c in colours}) == 3  # one colour per part
    wrong = next(colour for colour, text in panels.legend if text.startswith("a point whose"))
    assert all(np.linalg.norm(np.subtract(colour, wrong)) > 0.3 for colour in P.PART_COLORS)  # no part looks wrong
    alone = P.parts_panels(points, predicted, [47, 48, 49])
    assert len(alone.scenes) == 1 and len(alone.legend) == 3  # no labels: the prediction alone


def test_dense_prediction_covers_every_point_at_the_training_density(tmp_path):
    model, spec, _ = sources.load_run(seg_checkpoint(tmp_path / "seg.pt", num_points=64))
    points = np.random.default_rng(1).normal(size=(150, 3)).astype(np.float32)
    seen_sizes = []
    real_forward = type(model).forward

    def spy(self, batch, category=None):
        seen_sizes.append(batch.shape[1])
        return real_forward(self, batch, category)

    type(model).forward = spy
    try:
        logits = sources.predict_dense(model, points, spec.num_points, category=15)
    finally:
        type(model).forward = real_forward
    assert logits.shape == (150, 50) and set(seen_sizes) == {64}
    # The same point gets the same logits whichever batch item it sat in with the same neighbours.
    again = sources.predict_dense(model, points, spec.num_points, category=15)
    np.testing.assert_array_equal(logits, again)


@pytest.fixture
def sample_root(shared_data) -> Path:
    root = shared_data / "shapenetpart_sample"
    if not root.is_dir():
        pytest.skip(f"no ShapeNetPart sample under {shared_data}")
    return root


def test_read_real_shapenetpart_files(sample_root):
    spec = shapenet_spec()
    pts = next((sample_root / "v0" / "03642806" / "points").glob("*.pts"))
    sample = sources.read_part_file(pts, spec)
    assert sample.category == "Laptop" and len(sample.points) == len(sample.part_labels) > 1000
    assert set(np.unique(sample.part_labels)) <= set(spec.category_parts["Laptop"])  # local 1..2 -> global 28, 29
    assert np.linalg.norm(sample.points, axis=1).max() == pytest.approx(1.0, abs=1e-5)
    txt = next((sample_root / "v0_normal" / "04379243").glob("*.txt"))
    table = sources.read_part_file(txt, spec)
    assert table.category == "Table" and set(np.unique(table.part_labels)) <= {47, 48, 49}



def test_real_files_against_a_run_with_other_parts_are_renumbered_by_name(sample_root):
    from pointnet_kit.data.shapenetpart import read_part_file
    from pointnet_kit.data.synthetic_parts import parts_spec

    spec = parts_spec()  # the embedded parts: Chair is seat, back, leg, arm (ShapeNetPart: back, seat, leg, arm)
    pts = next((sample_root / "v0" / "03001627" / "points").glob("*.pts"))
    raw, sample = read_part_file(pts), sources.read_part_file(pts, spec)
    assert sample.category == "Chair"
    for name in ("back", "seat", "leg"):
        here = raw.part_labels == PART_NAMES.index(f"Chair/{name}")
        assert here.any() and (sample.part_labels[here] == spec.part_names.index(f"Chair/{name}")).all()
    lamp = next((sample_root / "v0" / "03636649" / "points").glob("*.pts"))
    raw, sample = read_part_file(lamp), sources.read_part_file(lamp, spec)
    unknown = np.isin(raw.part_labels, [PART_NAMES.index("Lamp/canopy"), PART_NAMES.index("Lamp/tube")])
    assert (sample.part_labels[unknown] == -1).all() and (sample.part_labels[~unknown] >= 0).all()
    # the y-up file is turned to the run's z-up: its up coordinate becomes z
    assert sample.turned_from == "y" and spec.up_axis == "z"
    from pointnet_kit.data import normalize_unit_sphere

    np.testing.assert_allclose(sample.points[:, 2], normalize_unit_sphere(raw.points)[:, 1], atol=1e-6)
    assert sources.read_part_file(lamp, shapenet_spec()).turned_from is None  # a y-up run sees it as stored

def test_viz_parts_command_on_real_samples(cli, tmp_path, sample_root, capsys):
    ckpt = seg_checkpoint(tmp_path / "run" / "checkpoint_best.pt")
    pts = next((sample_root / "v0" / "04379243" / "points").glob("*.pts"))
    txt = next((sample_root / "v0_normal" / "04379243").glob("*.txt"))
    assert cli("viz", "parts", ckpt, pts, txt, "--size", 64, "--num-points", 400, "--out", tmp_path / "p.png") == 0
    image = np.asarray(Image.open(tmp_path / "p.png").convert("RGB"))
    assert image.shape[1] >= 3 * 64 and image.shape[0] > 2 * 64  # two figures of three tiles, stacked
    loose = tmp_path / "loose.txt"
    loose.write_text("".join(f"{i} {i % 3} 0 0 1 0 47\n" for i in range(30)))
    assert cli("viz", "parts", ckpt, loose, "--size", 64, "--out", tmp_path) == 2
    assert "pass --category" in capsys.readouterr().err
    assert cli("viz", "parts", ckpt, loose, "--category", "Table", "--size", 64, "--out", tmp_path) == 0


def test_seg_predictions_grid_shows_the_worst_shapes(cli, tmp_path, monkeypatch):
    spec = shapenet_spec(64)
    rng = np.random.default_rng(0)
    points = rng.normal(size=(6, 128, 3)).astype(np.float32)
    categories = np.array([15, 15, 9, 9, 15, 9])
    parts = np.stack([np.array(spec.category_parts[spec.class_names[c]])[rng.integers(0, 2, 128)] for c in categories])
    dataset = PointCloudDataset(points, categories, spec.class_names, num_points=64, part_labels=parts, spec=spec)
    monkeypatch.setattr(sources, "dataset_for_checkpoint", lambda ckpt, data=None, split="val": dataset)
    ckpt = seg_checkpoint(tmp_path / "run" / "checkpoint_best.pt")
    result = sources.predict_split(ckpt, device="cpu")
    assert result.probs.shape == (6, 64, 50)
    predicted, truth, scores = P.split_predicted_parts(result)
    panels = P.seg_predictions_panels(result, n=3, worst=True)
    worst = np.sort(scores)[:3]
    assert [c.split("IoU ")[1] for c in panels.captions] == [f"{s:.0%}" for s in worst]
    assert panels.title.startswith(f"instance mIoU {scores.mean():.1%} over 6 shapes")
    assert all(len(scene[0].points) == 128 for scene in panels.scenes)  # drawn at the data's density
    assert cli("viz", "predictions", ckpt, "--wrong-only", "--n", 3, "--size", 64, "--out", tmp_path) == 0
    assert (tmp_path / "predictions_val_worst.png").is_file()
