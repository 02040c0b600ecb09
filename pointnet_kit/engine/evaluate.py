"""Evaluation of a checkpoint (with test-time voting) and prediction on files, through the run's task."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..data import PointCloudDataset, load_points
from ..data.transforms import axis_rotation
from ..errors import CheckpointError, PointNetKitError
from ..tasks import Meter, Task
from ..utils import resolve_device
from .checkpoint import assert_finite, checkpoint_config, load_run
from .config import Config, augmentation_specs
from .datasets import load_split
from .inference import category_input, predict_logits

SPLIT_NOTES = {
    "val": "validation split carved from train (stratified, seeded): the split the run selected its checkpoint on",
    "train": "training split (what the model was fitted on)",
    "test": "held-out test split",
}

# Logits held at once while evaluating (elements): bounds memory for per-point logits of big splits.
LOGITS_BUDGET = 1 << 26

__all__ = ["checkpoint_config", "dataset_for_checkpoint", "evaluate_batch", "evaluate_checkpoint", "predict_files", "vote_transforms"]


def dataset_for_checkpoint(ckpt: dict[str, Any], data: str | None = None, split: str = "val") -> PointCloudDataset:
    """The ``split`` a checkpoint's run used (same classes, points, validation split), from ``data`` or its root."""
    dataset = load_split(checkpoint_config(ckpt).data, split, root=data)
    expected = list((ckpt.get("data_spec") or {}).get("class_names") or ckpt.get("class_names") or [])
    if expected and dataset.class_names != expected:
        raise CheckpointError(
            f"checkpoint was trained on {len(expected)} classes ({', '.join(expected[:3])}, ...), "
            f"the data has {dataset.num_classes} ({', '.join(dataset.class_names[:3])}, ...)"
        )
    return dataset


def vote_transforms(
    config: Config, votes: int, seed: int = 0, up_axis: str | None = None
) -> list[Callable[[torch.Tensor], torch.Tensor]]:
    """``votes`` deterministic test-time augmentations; the first is the identity.

    Rotations about the run's up axis (``up_axis``: the run's ``spec.up_axis``) at ``2*pi*k/votes``
    when the model was trained with ``rotate_up`` (alias ``rotate_z``); otherwise seeded anisotropic scalings in the training's range (default 0.8-1.25).
    Neither moves points, so per-point logits stay aligned with their points.
    """
    specs = augmentation_specs(config, up_axis)
    rotation = next((s for s in specs if s.get("name") in ("rotate_up", "rotate_z")), None)
    scale_spec = next((s for s in specs if s.get("name") == "scale"), {})
    low, high = float(scale_spec.get("low", 0.8)), float(scale_spec.get("high", 1.25))
    generator = torch.Generator().manual_seed(seed)
    transforms: list[Callable[[torch.Tensor], torch.Tensor]] = [lambda x: x]
    for k in range(1, votes):
        if rotation is not None:
            matrix = axis_rotation(rotation.get("up_axis") or rotation["axis"], 2 * math.pi * k / votes)
        else:
            matrix = torch.diag(torch.empty(3).uniform_(low, high, generator=generator))
        transforms.append(_linear_map(matrix))
    return transforms


def _linear_map(matrix: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    def apply(points: torch.Tensor) -> torch.Tensor:  # points: (B, N, C); xyz (and normals) mapped
        m = matrix.to(points.device, points.dtype)
        xyz = points[..., :3] @ m.T
        if points.shape[-1] == 3:
            return xyz
        normals = torch.nn.functional.normalize(points[..., 3:6] @ torch.linalg.inv(m), dim=-1)
        return torch.cat([xyz, normals, points[..., 6:]], dim=-1)

    return apply


@torch.no_grad()
def evaluate_batch(
    model: nn.Module,
    task: Task,
    batch: dict[str, torch.Tensor],
    batch_size: int = 256,
    amp: str = "auto",
    transforms: Sequence[Callable[[torch.Tensor], torch.Tensor]] | None = None,
) -> Meter:
    """A meter fed with ``model``'s logits on every shape of ``batch`` (a split's batch dict).

    With several ``transforms`` the logits are averaged over them (test-time voting). Shapes go
    through in chunks so per-point logits of a large split never sit in memory at once.
    """
    points = batch["points"]
    meter = task.new_meter(points.device)
    transforms = list(transforms) if transforms else [None]
    per_row = max(1, task.num_outputs * (points.shape[1] if points.dim() == 3 else 1))
    rows = max(batch_size, LOGITS_BUDGET // per_row)
    for start in range(0, len(points), rows):
        chunk = {key: value[start : start + rows] for key, value in batch.items()}
        category = category_input(model, chunk)
        logits = sum(
            predict_logits(model, chunk["points"], batch_size, amp, transform=t, category=category) for t in transforms
        )
        assert_finite(logits, f"the model's outputs on shapes {start}-{start + len(chunk['points']) - 1}")
        meter.update(logits / len(transforms) if len(transforms) > 1 else logits, chunk)
    return meter


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | None = None,
    split: str = "val",
    votes: int = 1,
    batch_size: int = 256,
    device: str = "auto",
    seed: int = 0,
    amp: str | None = None,
) -> dict[str, Any]:
    """The task's metrics of a checkpoint on ``split`` (classification: OA, mean class accuracy, per
    class, confusion; part segmentation: instance/category mIoU, point accuracy, per category and part).

    With ``votes > 1`` the logits are averaged over that many augmented copies of each shape.
    ``amp``: inference precision, ``None`` for the run's ``runtime.amp`` (what its validation used).
    """
    if votes < 1:
        raise CheckpointError(f"--votes must be >= 1, got {votes}")
    dev = resolve_device(device)
    model, task, spec, ckpt = load_run(checkpoint, map_location=dev)
    config = checkpoint_config(ckpt)
    dataset = dataset_for_checkpoint(ckpt, data, split)
    if dataset.spec is not None and spec.part_names and dataset.spec.part_names not in (None, spec.part_names):
        raise CheckpointError(f"checkpoint was trained on parts {spec.part_names[:3]}..., the data has others")
    meter = evaluate_batch(
        model, task, dataset.as_tensors(dev), batch_size, amp or config.runtime.amp,
        vote_transforms(config, votes, seed, spec.up_axis),
    )
    stats = meter.compute()
    return {
        "checkpoint": str(checkpoint),
        "model": ckpt["model_name"],
        "task": task.name,
        "metric_names": list(task.metric_names),
        "epoch": ckpt.get("epoch"),
        "data": data or config.data.root,
        "split": split,
        "split_note": SPLIT_NOTES[split],
        "votes": votes,
        **stats,
    }


def predict_files(
    checkpoint: str | Path,
    files: Sequence[str | Path],
    topk: int = 5,
    device: str = "auto",
    seed: int = 0,
    category: str | None = None,
    votes: int = 1,
    amp: str | None = None,
) -> list[dict[str, Any]]:
    """Predict on mesh / point cloud files; each is sampled and normalized as in training.

    With ``votes > 1`` the logits are averaged over that many test-time augmentations (as ``eval --votes``).
    ``amp``: inference precision, ``None`` for the run's ``runtime.amp``.

    Classification: ``{"file", "predictions": [{"class", "prob"}, ...]}`` (top ``topk``).
    Part segmentation: ``{"file", "category", "points" (N, 3) array, "parts" (N,) array,
    "counts": {part name: points}}``; ``category`` (a class name of the run) restricts the parts to
    that category's and is required by models that take the category as input.
    """
    dev = resolve_device(device)
    model, task, spec, ckpt = load_run(checkpoint, map_location=dev)
    if spec.in_channels != 3:
        raise CheckpointError(f"this checkpoint expects {spec.in_channels} channels ({' '.join(spec.channels)}); predict reads xyz only")
    clouds = torch.stack([torch.from_numpy(load_points(f, spec.num_points, seed=seed)) for f in files]).to(dev)
    batch: dict[str, torch.Tensor] = {"points": clouds}
    if category is not None:
        if category not in spec.class_names:
            raise PointNetKitError(f"unknown category {category!r}; this run's: {', '.join(spec.class_names)}")
        batch["labels"] = torch.full((len(files),), spec.class_names.index(category), dtype=torch.long, device=dev)
    elif model.num_categories > 0:
        raise PointNetKitError(f"this model takes the shape category: pass --category (one of {', '.join(spec.class_names)})")
    if votes < 1:
        raise PointNetKitError(f"--votes must be >= 1, got {votes}")
    config = checkpoint_config(ckpt)
    logits = sum(
        predict_logits(model, clouds, amp=amp or config.runtime.amp, transform=t, category=category_input(model, batch))
        for t in vote_transforms(config, votes, seed, spec.up_axis)
    ) / votes
    for row, f in enumerate(files):
        assert_finite(logits[row], f"{checkpoint}: the model's output for {f}")
    if logits.dim() == 2:  # one label per shape
        probs = logits.softmax(dim=1)
        top = probs.topk(min(topk, probs.shape[1]), dim=1)
        return [
            {
                "file": str(f),
                "predictions": [
                    {"class": spec.class_names[i], "prob": round(float(p), 4)} for p, i in zip(top.values[row], top.indices[row])
                ],
            }
            for row, f in enumerate(files)
        ]
    parts = task.predict(logits, batch).cpu().numpy()  # (M, N)
    names = list(spec.part_names or [str(i) for i in range(task.num_outputs)])
    results = []
    for row, f in enumerate(files):
        ids, counts = np.unique(parts[row], return_counts=True)
        results.append(
            {
                "file": str(f),
                "category": category,
                "points": clouds[row, :, :3].cpu().numpy(),
                "parts": parts[row],
                "counts": {names[i]: int(n) for i, n in zip(ids, counts)},
            }
        )
    return results
