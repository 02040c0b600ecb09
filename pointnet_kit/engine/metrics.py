"""Classification metrics from a confusion matrix: overall accuracy, mean class accuracy, per class."""

from __future__ import annotations

from typing import Sequence

import torch


def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(num_classes, num_classes)`` int64 counts; rows are true classes, columns predictions."""
    index = labels.long() * num_classes + predictions.long()
    return torch.bincount(index, minlength=num_classes * num_classes).view(num_classes, num_classes)


def summarize(confusion: torch.Tensor, class_names: Sequence[str] | None = None) -> dict:
    """Overall accuracy, mean class accuracy (over classes present) and per-class accuracy.

    Returns plain Python numbers/lists so the result is JSON-ready.
    """
    confusion = confusion.detach().to("cpu", torch.float64)
    total = confusion.sum()
    support = confusion.sum(dim=1)
    correct = confusion.diagonal()
    present = support > 0
    per_class = torch.where(present, correct / support.clamp(min=1), torch.full_like(support, float("nan")))
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(support))]
    return {
        "oa": float(correct.sum() / total) if total > 0 else float("nan"),
        "macc": float(per_class[present].mean()) if present.any() else float("nan"),
        "num_shapes": int(total),
        "per_class": {
            name: {"acc": (float(acc) if ok else None), "support": int(n)}
            for name, acc, n, ok in zip(names, per_class, support, present)
        },
        "confusion": confusion.long().tolist(),
    }
