"""Batched inference: the one path eval, predict, viz and export parity use to get logits.

The fast path, on every device: BatchNorm folded into the layer before it (on a copy of the model,
:func:`~pointnet_kit.layers.fuse.fold_batchnorm`), each batch run in micro-batches of a few
clouds so activations stay small and in cache, and the last shared-MLP layer + max pool computed
without its ``(B, C, N)`` output (:meth:`~pointnet_kit.layers.SharedMLP.max_pool`). Same logits as
``model.eval()(points)`` up to float rounding; optional bf16/fp16 autocast.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Callable

import torch
from torch import nn

from ..layers.fuse import fold_batchnorm

# Points per micro-batch (16 clouds of 1024 points): the widest per-point activation that is built,
# (points, 128) float32, stays 8 MiB; 64 clouds measured 1.1-1.2x slower on CPU (the bigger
# activations cost page faults), 8 clouds no faster.
MICRO_BATCH_POINTS = 1 << 14


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (``avx512_bf16`` or ``amx_bf16`` in
    /proc/cpuinfo): bf16 matmul is then about 4x float32's. False where the flags are unreadable."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return bool(set(line.split(":", 1)[1].split()) & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_amp(device: torch.device, amp: str) -> str:
    """``auto`` -> ``bf16`` on CUDA, ``off`` (float32) elsewhere; other values pass through.

    On CPU ``auto`` stays float32 even where :func:`cpu_has_native_bf16`: bf16 there is 1.7-2x
    faster to train and 3-4x faster to infer, and the default classification job reached the same
    validation accuracy, but a small part-segmentation run lost accuracy (instance mIoU 0.61 vs
    > 0.7) and no ModelNet40 run has confirmed it; ``runtime.amp=bf16`` opts in."""
    if amp == "auto":
        return "bf16" if device.type == "cuda" else "off"
    return amp


def autocast_context(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """bf16/fp16 autocast as configured (see :func:`resolve_amp`), or nothing for ``off``."""
    amp = resolve_amp(device, amp)
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def category_input(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """The ``category`` argument a model's forward takes: the batch's labels when the model uses the
    shape category (``num_categories > 0``), else ``None`` (a classifier never sees its labels)."""
    return batch.get("labels") if getattr(model, "num_categories", 0) > 0 else None


def inference_model(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with BatchNorm folded in; ``model`` is untouched."""
    return fold_batchnorm(model)


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
        model: a model returning ``{"logits": ...}``; not modified (a folded copy runs).
        points: ``(M, N, C)`` on the model's device.
        batch_size: clouds per ``transform`` call (and the most processed at once).
        amp: ``auto`` (bf16 on CUDA, float32 on CPU) | ``bf16`` | ``fp16`` | ``off`` (:func:`resolve_amp`).
        transform: applied to each ``(b, N, C)`` batch first (e.g. a test-time rotation).
        category: ``(M,)`` long shape categories, passed to models that take them.
    Returns:
        ``(M, num_classes)`` or ``(M, N, num_classes)`` float32 on ``points.device``.
    """
    device = points.device
    fast = inference_model(model)
    micro = max(1, MICRO_BATCH_POINTS // max(1, points.shape[1]))
    out = []
    for start in range(0, len(points), batch_size):
        batch = points[start : start + batch_size]
        if transform is not None:
            batch = transform(batch)
        for sub in range(0, len(batch), micro):
            cat = None if category is None else category[start + sub : start + min(sub + micro, len(batch))]
            with autocast_context(device, amp):
                out.append(fast(batch[sub : sub + micro], cat)["logits"].float())
    if not out:
        per_point = getattr(model, "task", "classification") != "classification"
        shape = (0, points.shape[1]) if per_point else (0,)
        return torch.zeros(*shape, getattr(model, "num_classes", 0), device=device)
    return torch.cat(out)
