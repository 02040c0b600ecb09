"""Part segmentation task: hand-computed ShapeNetPart-style IoUs, restriction to the category's parts."""

from __future__ import annotations

import math

import pytest
import torch

from pointnet_kit.data.record import DataSpec
from pointnet_kit.tasks import get_task
from pointnet_kit.tasks.segmentation import category_part_mask, shape_part_ious

SPEC = DataSpec(
    task="part_segmentation",
    num_points=4,
    class_names=["A", "B"],
    part_names=["A/p0", "A/p1", "B/p2", "B/p3", "B/p4"],
    category_parts={"A": [0, 1], "B": [2, 3, 4]},
)


def _batch() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Three shapes of 4 points with the predictions written out below (K = 5 parts)."""
    targets = torch.tensor([[0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 2, 2]])
    predicted = torch.tensor([[0, 1, 1, 1], [2, 2, 3, 3], [4, 4, 2, 2]])
    logits = 5.0 * torch.nn.functional.one_hot(predicted, 5).float()  # (3, 4, 5)
    logits[1, 0, 0] = 10.0  # shape 1 is a B: part 0 (an A part) must not win despite the larger logit
    return logits, {"points": torch.zeros(3, 4, 3), "labels": torch.tensor([0, 1, 1]), "part_labels": targets}


def test_category_part_mask():
    assert category_part_mask(SPEC).tolist() == [[True, True, False, False, False], [False, False, True, True, True]]
    no_categories = DataSpec(task="part_segmentation", part_names=["a", "b"])
    assert category_part_mask(no_categories).tolist() == [[True, True]]


def test_part_iou_counts_a_part_absent_in_both_as_one():
    ious = shape_part_ious(torch.tensor([[4, 4, 2, 2]]), torch.tensor([[2, 2, 2, 2]]), 5)
    assert ious.tolist() == [[1.0, 1.0, 0.5, 1.0, 0.0]]


def test_metrics_by_hand():
    task = get_task("part_segmentation", SPEC)
    assert task.metric_names == ("instance_miou", "category_miou", "point_acc")
    assert task.default_select_metric == "instance_miou" and task.num_outputs == 5
    logits, batch = _batch()
    meter = task.new_meter()
    meter.update(logits, batch)
    r = meter.compute()
    # Shape IoUs: A (0.5 + 2/3) / 2 = 7/12; B (1 + 1 + 1) / 3 = 1 (part 4 absent in both); B (0.5 + 1 + 0) / 3 = 0.5.
    assert r["instance_miou"] == pytest.approx((7 / 12 + 1 + 0.5) / 3)
    assert r["category_miou"] == pytest.approx((7 / 12 + 0.75) / 2)
    assert r["point_acc"] == pytest.approx(9 / 12)
    assert r["num_shapes"] == 3 and r["num_points"] == 12
    assert r["per_category"] == {"A": {"miou": pytest.approx(7 / 12), "shapes": 1}, "B": {"miou": pytest.approx(0.75), "shapes": 2}}
    per_part = {name: entry["iou"] for name, entry in r["per_part"].items()}
    assert per_part == pytest.approx({"A/p0": 0.5, "A/p1": 2 / 3, "B/p2": 0.75, "B/p3": 1.0, "B/p4": 0.5})
    expected_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 5), batch["part_labels"].reshape(-1))
    assert r["loss"] == pytest.approx(float(expected_loss))


def test_meter_adds_up_over_batches():
    task = get_task("part_segmentation", SPEC)
    logits, batch = _batch()
    whole, split = task.new_meter(), task.new_meter()
    whole.update(logits, batch)
    for rows in (slice(0, 1), slice(1, 3)):
        split.update(logits[rows], {k: v[rows] for k, v in batch.items()})
    a, b = whole.compute(), split.compute()
    for key in ("instance_miou", "category_miou", "point_acc", "loss"):
        assert a[key] == pytest.approx(b[key]), key
    assert a["per_part"] == b["per_part"]


def test_absent_category_is_left_out_of_category_miou():
    task = get_task("part_segmentation", SPEC)
    logits, batch = _batch()
    meter = task.new_meter()
    meter.update(logits[:1], {k: v[:1] for k, v in batch.items()})
    r = meter.compute()
    assert r["category_miou"] == pytest.approx(7 / 12) == r["instance_miou"]
    assert r["per_category"]["B"] == {"miou": None, "shapes": 0}
    assert r["per_part"]["B/p2"]["iou"] is None
    assert math.isnan(task.new_meter().compute()["instance_miou"])


def test_predict_restricts_to_the_category_when_known():
    task = get_task("part_segmentation", SPEC)
    logits, batch = _batch()
    assert task.predict(logits, batch)[1].tolist() == [2, 2, 3, 3]
    assert task.predict(logits)[1].tolist() == [0, 2, 3, 3]  # unknown category: every part competes


def test_loss_adds_the_models_terms():
    task = get_task("part_segmentation", SPEC, label_smoothing=0.1)
    logits, batch = _batch()
    extra = torch.tensor(0.25)
    plain = task.loss({"logits": logits, "losses": {}}, batch)
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, 5), batch["part_labels"].reshape(-1), label_smoothing=0.1)
    torch.testing.assert_close(plain, expected)
    torch.testing.assert_close(task.loss({"logits": logits, "losses": {"reg": extra}}, batch), expected + extra)
    correct, total = task.accuracy_counts(logits, batch)
    assert (int(correct), int(total)) == (8, 12)  # training accuracy is unrestricted: shape 1 point 0 misses
