"""Batched inference: the one entry point eval, predict, viz and export parity call for logits."""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
from torch import nn


def autocast_context(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """bf16/fp16 autocast as configured; ``auto`` means bf16 on CUDA and nothing elsewhere."""
    if amp == "auto":
        amp = "bf16" if device.type == "cuda" else "off"
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def category_input(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """The ``category`` argument a model's forward takes: the batch's labels when the model uses the
    shape category (``num_categories > 0``), else ``None`` (a classifier never sees its labels)."""
    return batch.get("labels") if getattr(model, "num_categories", 0) > 0 else None


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    points: torch.Tensor,
    batch_size: int = 256,
    amp: str = "auto",
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    category: torch.Tensor | None = None,
) -> torch.Tensor:
    """Logits for every cloud, in eval mode, batched.

    Args:
        points: ``(M, N, C)`` on the model's device.
        transform: applied to each batch of points first (test-time augmentation).
        category: ``(M,)`` long shape categories, for models that take them (``num_categories > 0``).
    Returns:
        ``(M, num_classes)`` (classification) or ``(M, N, num_classes)`` (segmentation) float32.
    """
    device = points.device
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(points), batch_size):
        batch = points[start : start + batch_size]
        if transform is not None:
            batch = transform(batch)
        cat = None if category is None else category[start : start + batch_size]
        with autocast_context(device, amp):
            out.append(model(batch, cat)["logits"].float())
    model.train(was_training)
    if not out:
        per_point = getattr(model, "task", "classification") != "classification"
        shape = (0, points.shape[1]) if per_point else (0,)
        return torch.zeros(*shape, getattr(model, "num_classes", 0), device=device)
    return torch.cat(out)
