"""Shape classification: cross entropy, argmax, OA / mean class accuracy / per-class accuracy / confusion."""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Batch, Meter, Task, register_task, zeros


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


class ClassificationMeter(Meter):
    """Confusion matrix and summed cross entropy over the shapes seen."""

    def __init__(self, class_names: list[str], device: torch.device | str = "cpu") -> None:
        k = len(class_names)
        super().__init__({"confusion": zeros(k, k, device=device, dtype=torch.long), "loss_sum": zeros(1, device=device)})
        self.class_names = class_names

    def update(self, logits: Tensor, batch: Batch) -> None:
        labels = batch["labels"]
        if len(labels) == 0:
            return
        self._add("confusion", confusion_matrix(logits.argmax(1), labels, len(self.class_names)))
        self._add("loss_sum", F.cross_entropy(logits.float(), labels, reduction="sum").reshape(1))

    def compute(self) -> dict[str, Any]:
        """``oa``, ``macc``, ``loss`` (mean cross entropy), ``num_shapes``, ``per_class`` {name: {acc, support}}, ``confusion``."""
        stats = summarize(self.state["confusion"], self.class_names)
        return {"loss": float(self.state["loss_sum"]) / max(stats["num_shapes"], 1), **stats}


@register_task
class ClassificationTask(Task):
    """One label per shape: ``logits (B, K)`` against ``batch["labels"] (B,)``."""

    name = "classification"
    metric_names = ("oa", "macc")
    default_select_metric = "oa"

    def loss(self, out: dict[str, Any], batch: Batch) -> Tensor:
        ce = F.cross_entropy(out["logits"].float(), batch["labels"], label_smoothing=self.label_smoothing)
        return ce + sum(out["losses"].values())

    def predict(self, logits: Tensor, batch: Batch | None = None) -> Tensor:
        return logits.argmax(dim=1)

    def accuracy_counts(self, logits: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        labels = batch["labels"]
        return (logits.argmax(1) == labels).sum(), torch.tensor(labels.numel(), device=labels.device)

    def new_meter(self, device: torch.device | str = "cpu") -> ClassificationMeter:
        return ClassificationMeter(list(self.spec.class_names), device)
