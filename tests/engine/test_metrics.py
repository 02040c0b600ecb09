import math

import torch

from pointnet_kit.engine.metrics import confusion_matrix, summarize


def test_confusion_matrix_counts_rows_true_columns_predicted():
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    preds = torch.tensor([0, 1, 1, 1, 0, 2])
    cm = confusion_matrix(preds, labels, 3)
    assert cm.tolist() == [[1, 1, 0], [1, 2, 0], [0, 0, 1]]


def test_summary_oa_macc_and_per_class():
    cm = torch.tensor([[1, 1, 0], [1, 2, 0], [0, 0, 1]])
    stats = summarize(cm, ["a", "b", "c"])
    assert math.isclose(stats["oa"], 4 / 6)
    assert math.isclose(stats["macc"], (0.5 + 2 / 3 + 1.0) / 3)
    assert stats["per_class"]["b"] == {"acc": 2 / 3, "support": 3}
    assert stats["num_shapes"] == 6


def test_absent_class_is_excluded_from_mean_class_accuracy():
    cm = torch.tensor([[2, 0], [0, 0]])
    stats = summarize(cm, ["a", "b"])
    assert stats["macc"] == 1.0
    assert stats["per_class"]["b"]["acc"] is None
