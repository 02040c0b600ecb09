"""Evaluation of a checkpoint (with test-time voting) and prediction on files."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..data import PointCloudDataset, load_points
from ..errors import CheckpointError
from ..utils import resolve_device
from .checkpoint import load_checkpoint, load_model
from .config import Config, augmentation_specs, config_from_dict
from .datasets import load_split
from ..tasks.classification import confusion_matrix, summarize
from .trainer import predict_logits

SPLIT_NOTES = {
    "val": "validation split carved from train (stratified, seeded): the split the run selected its checkpoint on",
    "train": "training split (what the model was fitted on)",
    "test": "held-out test split",
}


def checkpoint_config(ckpt: dict[str, Any]) -> Config:
    """The resolved config stored in a checkpoint."""
    return config_from_dict(ckpt.get("config") or {})


def dataset_for_checkpoint(ckpt: dict[str, Any], data: str | None = None, split: str = "val") -> PointCloudDataset:
    """The ``split`` a checkpoint's run used (same classes, points, validation split), from ``data`` or its root."""
    dataset = load_split(checkpoint_config(ckpt).data, split, root=data)
    expected = list(ckpt.get("class_names") or [])
    if expected and dataset.class_names != expected:
        raise CheckpointError(
            f"checkpoint was trained on {len(expected)} classes ({', '.join(expected[:3])}, ...), "
            f"the data has {dataset.num_classes} ({', '.join(dataset.class_names[:3])}, ...)"
        )
    return dataset


def vote_transforms(config: Config, votes: int, seed: int = 0) -> list[Callable[[torch.Tensor], torch.Tensor]]:
    """``votes`` deterministic test-time augmentations; the first is the identity.

    Rotations about the run's up axis at ``2*pi*k/votes`` when the model was trained with
    ``rotate_z``; otherwise seeded anisotropic scalings in the training's range (default 0.8-1.25).
    """
    specs = augmentation_specs(config)
    rotation = next((s for s in specs if s.get("name") == "rotate_z"), None)
    scale_spec = next((s for s in specs if s.get("name") == "scale"), {})
    low, high = float(scale_spec.get("low", 0.8)), float(scale_spec.get("high", 1.25))
    generator = torch.Generator().manual_seed(seed)
    transforms: list[Callable[[torch.Tensor], torch.Tensor]] = [lambda x: x]
    for k in range(1, votes):
        if rotation is not None:
            matrix = _axis_rotation(rotation["axis"], 2 * math.pi * k / votes)
        else:
            matrix = torch.diag(torch.empty(3).uniform_(low, high, generator=generator))
        transforms.append(_linear_map(matrix))
    return transforms


def _axis_rotation(axis: str, angle: float) -> torch.Tensor:
    """``(3, 3)`` rotation by ``angle`` about ``axis`` (``x``, ``y`` or ``z``)."""
    c, s = math.cos(angle), math.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)]["xyz".index(axis)]  # the plane the rotation turns
    matrix = torch.eye(3)
    matrix[i, i], matrix[i, j], matrix[j, i], matrix[j, j] = c, -s, s, c
    return matrix


def _linear_map(matrix: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    def apply(points: torch.Tensor) -> torch.Tensor:  # points: (B, N, C); xyz (and normals) mapped
        m = matrix.to(points.device, points.dtype)
        xyz = points[..., :3] @ m.T
        if points.shape[-1] == 3:
            return xyz
        normals = torch.nn.functional.normalize(points[..., 3:6] @ torch.linalg.inv(m), dim=-1)
        return torch.cat([xyz, normals, points[..., 6:]], dim=-1)

    return apply


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | None = None,
    split: str = "val",
    votes: int = 1,
    batch_size: int = 256,
    device: str = "auto",
    seed: int = 0,
) -> dict[str, Any]:
    """OA, mean class accuracy, per-class accuracy and the confusion matrix of a checkpoint on ``split``.

    With ``votes > 1`` the logits are averaged over that many augmented copies of each shape.
    """
    if votes < 1:
        raise CheckpointError(f"--votes must be >= 1, got {votes}")
    dev = resolve_device(device)
    ckpt = load_checkpoint(checkpoint, map_location="cpu")
    model, ckpt = load_model(ckpt, map_location=dev)
    config = checkpoint_config(ckpt)
    dataset = dataset_for_checkpoint(ckpt, data, split)
    batch = dataset.as_tensors(dev)
    points, labels = batch["points"], batch["labels"]
    logits = sum(
        predict_logits(model, points, batch_size, config.runtime.amp, transform=t)
        for t in vote_transforms(config, votes, seed)
    ) / votes
    stats = summarize(confusion_matrix(logits.argmax(1), labels, dataset.num_classes), dataset.class_names)
    return {
        "checkpoint": str(checkpoint),
        "model": ckpt["model_name"],
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
) -> list[dict[str, Any]]:
    """Classify mesh / point cloud files; each is sampled and normalized as in training."""
    dev = resolve_device(device)
    model, ckpt = load_model(checkpoint, map_location=dev)
    config = checkpoint_config(ckpt)
    class_names = list(ckpt.get("class_names") or [str(i) for i in range(model.num_classes)])
    if config.data.use_normals:
        raise CheckpointError("this checkpoint expects normals; predict reads xyz only")
    clouds = torch.stack([torch.from_numpy(load_points(f, config.data.num_points, seed=seed)) for f in files]).to(dev)
    probs = predict_logits(model, clouds, amp=config.runtime.amp).softmax(dim=1)
    top = probs.topk(min(topk, probs.shape[1]), dim=1)
    return [
        {
            "file": str(f),
            "predictions": [
                {"class": class_names[i], "prob": round(float(p), 4)} for p, i in zip(top.values[row], top.indices[row])
            ],
        }
        for row, f in enumerate(files)
    ]
