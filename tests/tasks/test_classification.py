import math

import pytest
import torch

from pointnet_kit.tasks.classification import confusion_matrix, summarize


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


def _spec():
    from pointnet_kit.data.record import DataSpec

    return DataSpec(class_names=["a", "b", "c"])


def test_classification_task_loss_predict_and_meter():
    from pointnet_kit.errors import PointNetKitError
    from pointnet_kit.tasks import get_task

    task = get_task("classification", _spec(), label_smoothing=0.2)
    assert task.metric_names == ("oa", "macc") and task.default_select_metric == "oa" and task.num_outputs == 3
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0]])
    batch = {"labels": torch.tensor([0, 1, 1, 2])}
    assert task.predict(logits, batch).tolist() == [0, 1, 2, 0]
    ce = torch.nn.functional.cross_entropy(logits, batch["labels"], label_smoothing=0.2)
    torch.testing.assert_close(task.loss({"logits": logits, "losses": {"reg": torch.tensor(0.5)}}, batch), ce + 0.5)
    meter = task.new_meter()
    meter.update(logits[:2], {"labels": batch["labels"][:2]})
    meter.update(logits[2:], {"labels": batch["labels"][2:]})
    r = meter.compute()
    assert r["oa"] == 0.5 and math.isclose(r["macc"], (1.0 + 0.5 + 0.0) / 3)
    assert r["confusion"] == [[1, 0, 0], [0, 1, 1], [1, 0, 0]]
    assert math.isclose(r["loss"], float(torch.nn.functional.cross_entropy(logits, batch["labels"])), rel_tol=1e-6)
    with pytest.raises(PointNetKitError, match="unknown task 'detection'"):
        get_task("detection", _spec())
