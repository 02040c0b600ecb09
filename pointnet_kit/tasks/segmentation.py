"""Part segmentation: per-point cross entropy; point accuracy and mIoU the way ShapeNetPart results are reported.

For each shape, the IoU of every part of *its own category* is computed (a part absent from both the
prediction and the ground truth counts as IoU 1) and averaged: the shape's IoU. Instance mIoU is the
mean over shapes, category mIoU the mean over categories of their shapes' mean. Predictions are
restricted to the parts of the shape's category when the category (``batch["labels"]``) is known,
as in the PointNet evaluation code.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.record import DataSpec
from .base import Batch, Meter, Task, register_task, zeros


def category_part_mask(spec: DataSpec) -> Tensor:
    """``(num_categories, num_parts)`` bool: which global part ids belong to each category.

    Without ``spec.category_parts`` every part belongs to every category.
    """
    num_parts, names = len(spec.part_names or []), list(spec.class_names)
    if not spec.category_parts:
        return torch.ones(max(len(names), 1), num_parts, dtype=torch.bool)
    mask = torch.zeros(len(names), num_parts, dtype=torch.bool)
    for row, name in enumerate(names):
        mask[row, list(spec.category_parts.get(name, []))] = True
    return mask


def shape_part_ious(predictions: Tensor, targets: Tensor, num_parts: int) -> Tensor:
    """IoU of every part in every shape, ``(B, num_parts)`` float64; a part in neither gets 1.

    Args:
        predictions, targets: ``(B, N)`` int64 global part ids.
    """
    b = predictions.shape[0]
    offset = torch.arange(b, device=predictions.device).unsqueeze(1) * num_parts  # (B, 1)
    size = b * num_parts
    hit = predictions == targets
    inter = torch.bincount((targets + offset)[hit], minlength=size).view(b, num_parts)
    pred = torch.bincount((predictions + offset).flatten(), minlength=size).view(b, num_parts)
    true = torch.bincount((targets + offset).flatten(), minlength=size).view(b, num_parts)
    union = (pred + true - inter).double()
    return torch.where(union > 0, inter.double() / union.clamp(min=1), torch.ones_like(union))


class SegmentationMeter(Meter):
    """Sums, per category and per part, of shape IoUs; point hits; cross entropy."""

    def __init__(self, spec: DataSpec, mask: Tensor, device: torch.device | str = "cpu") -> None:
        c, k = mask.shape
        super().__init__(
            {
                "shape_iou_sum": zeros(c, device=device),  # per category
                "shapes": zeros(c, device=device),
                "part_iou_sum": zeros(k, device=device),  # per part, over shapes of its category
                "point_hits": zeros(2, device=device),  # correct, total
                "loss_sum": zeros(1, device=device),
            }
        )
        self.spec, self.mask = spec, mask.to(device)

    def update(self, logits: Tensor, batch: Batch) -> None:
        targets, category = batch["part_labels"], batch["labels"]
        if targets.numel() == 0:
            return
        # Data without category names is one category holding every part.
        rows = category if len(self.spec.class_names) else torch.zeros_like(category)
        mask = self.mask.to(rows.device)[rows]  # (B, K) the parts of each shape's category
        predictions = restricted_argmax(logits, mask)
        ious = shape_part_ious(predictions, targets, mask.shape[1]) * mask  # (B, K), 0 outside the category
        shape_iou = ious.sum(1) / mask.sum(1).clamp(min=1)  # (B,)
        self._add("shape_iou_sum", torch.bincount(rows, shape_iou, minlength=len(self.mask)))
        self._add("shapes", torch.bincount(rows, minlength=len(self.mask)))
        self._add("part_iou_sum", ious.sum(0))
        self._add("point_hits", torch.stack([(predictions == targets).sum(), torch.tensor(targets.numel(), device=targets.device)]))
        ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum")
        self._add("loss_sum", ce.reshape(1))

    def compute(self) -> dict[str, Any]:
        """``instance_miou``, ``category_miou``, ``point_acc``, ``loss`` (per point), ``num_shapes``,
        ``num_points``, ``per_category`` {name: {miou, shapes}}, ``per_part`` {name: {iou, shapes}}
        (a part's IoU averaged over the shapes of its category; ``None`` where no shape was seen)."""
        state = {key: value.detach().to("cpu", torch.float64) for key, value in self.state.items()}
        shapes, iou_sum = state["shapes"], state["shape_iou_sum"]
        seen = shapes > 0
        per_category_iou = iou_sum / shapes.clamp(min=1)
        part_shapes = (self.mask.cpu().double() * shapes.unsqueeze(1)).sum(0)  # shapes whose category has the part
        part_iou = state["part_iou_sum"] / part_shapes.clamp(min=1)
        correct, total = state["point_hits"].tolist()
        names = list(self.spec.class_names) or ["all"]
        parts = list(self.spec.part_names or [])
        nan = float("nan")
        return {
            "instance_miou": float(iou_sum.sum() / shapes.sum()) if seen.any() else nan,
            "category_miou": float(per_category_iou[seen].mean()) if seen.any() else nan,
            "point_acc": correct / total if total else nan,
            "loss": float(state["loss_sum"]) / max(total, 1),
            "num_shapes": int(shapes.sum()),
            "num_points": int(total),
            "per_category": {
                name: {"miou": float(per_category_iou[i]) if seen[i] else None, "shapes": int(shapes[i])}
                for i, name in enumerate(names)
            },
            "per_part": {
                name: {"iou": float(part_iou[i]) if part_shapes[i] > 0 else None, "shapes": int(part_shapes[i])}
                for i, name in enumerate(parts)
            },
        }


def restricted_argmax(logits: Tensor, allowed: Tensor | None) -> Tensor:
    """``(B, N, K) -> (B, N)`` argmax over the ``allowed (B, K)`` parts only (all parts when ``None``)."""
    if allowed is None:
        return logits.argmax(dim=-1)
    return logits.masked_fill(~allowed.unsqueeze(1), float("-inf")).argmax(dim=-1)


@register_task
class SegmentationTask(Task):
    """One part per point: ``logits (B, N, K)`` against ``batch["part_labels"] (B, N)`` (global part ids);
    ``batch["labels"]`` is the shape category."""

    name = "part_segmentation"
    metric_names = ("instance_miou", "category_miou", "point_acc")
    default_select_metric = "instance_miou"

    def __init__(self, spec: DataSpec, label_smoothing: float = 0.0) -> None:
        super().__init__(spec, label_smoothing)
        self.mask = category_part_mask(spec)  # (categories, parts)

    def loss(self, out: dict[str, Any], batch: Batch) -> Tensor:
        logits = out["logits"].float()
        ce = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), batch["part_labels"].reshape(-1), label_smoothing=self.label_smoothing
        )
        return ce + sum(out["losses"].values())

    def allowed_parts(self, category: Tensor) -> Tensor:
        """``(B,)`` category ids -> ``(B, K)`` bool mask of their parts (all parts for data without categories)."""
        rows = category if len(self.spec.class_names) else torch.zeros_like(category)
        return self.mask.to(category.device)[rows]

    def predict(self, logits: Tensor, batch: Batch | None = None) -> Tensor:
        """``(B, N)`` part ids; within the category's parts when ``batch["labels"]`` is given."""
        category = None if batch is None else batch.get("labels")
        return restricted_argmax(logits, None if category is None else self.allowed_parts(category))

    def accuracy_counts(self, logits: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        targets = batch["part_labels"]
        return (logits.argmax(-1) == targets).sum(), torch.tensor(targets.numel(), device=targets.device)

    def new_meter(self, device: torch.device | str = "cpu") -> SegmentationMeter:
        return SegmentationMeter(self.spec, self.mask, device)
