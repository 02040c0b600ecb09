"""Where ``viz`` and ``report`` get clouds, datasets and predictions: thin calls into the data layer and
the engine, so the figures stay free of I/O and tests have one place to substitute.

TODO(lead): the ``_fallback_*`` helpers stand in for ``pointnet_kit.data.load_points`` /
``open_dataset`` and ``pointnet_kit.engine.evaluate.dataset_for_checkpoint`` / ``predict_logits``
until those are merged; delete them then.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import PointCloudDataset, stratified_split
from ..errors import CheckpointError, DataError, PointNetKitError

MESH_SUFFIXES = {".off", ".obj", ".stl", ".ply", ".glb", ".gltf"}


def load_points(path: str | os.PathLike, num_points: int = 1024, seed: int = 0) -> np.ndarray:
    """``(num_points, 3)`` float32 points of any mesh or cloud file the data layer reads, normalised."""
    try:
        from ..data import load_points as real
    except ImportError:
        real = _fallback_load_points
    return np.asarray(real(path, num_points=num_points, seed=seed, normalize=True), dtype=np.float32)


def load_mesh(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray] | None:
    """``(vertices (V, 3), faces (F, 3))`` when ``path`` is a mesh with faces, else ``None``."""
    path = Path(path)
    if path.suffix.lower() not in MESH_SUFFIXES:
        return None
    import trimesh

    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception:  # noqa: BLE001 - not readable as a mesh: let the point reader judge the file
        return None
    faces = getattr(mesh, "faces", None)
    if faces is None or len(faces) == 0:
        return None
    return np.asarray(mesh.vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64)


def open_dataset(root: str | os.PathLike, split: str = "train", num_points: int | None = None) -> PointCloudDataset:
    """A dataset by root folder (or ``"default"``), through the data layer."""
    try:
        from ..data import open_dataset as real
    except ImportError:
        raise PointNetKitError(
            "reading datasets needs pointnet_kit.data.open_dataset, which is not installed"
        ) from None
    return real(root, split=split, num_points=num_points)


def dataset_for_checkpoint(ckpt: dict[str, Any], data: str | None = None, split: str = "val") -> PointCloudDataset:
    """The data a checkpoint was trained on: its validation split (as in training), or ``train``/``test``."""
    try:
        from ..engine.evaluate import dataset_for_checkpoint as real
    except ImportError:
        real = _fallback_dataset_for_checkpoint
    return real(ckpt, data=data, split=split)


def predict_logits(
    model: nn.Module, points: torch.Tensor, batch_size: int = 64, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Logits ``(M, num_classes)`` (CPU) of ``points: (M, N, C)``, in batches, without gradients."""
    try:
        from ..engine.evaluate import predict_logits as real
    except ImportError:
        real = _fallback_predict_logits
    return real(model, points, batch_size=batch_size, device=device).cpu()


def predict_split(
    checkpoint: str | os.PathLike,
    data: str | None = None,
    split: str = "val",
    device: str = "auto",
    batch_size: int = 64,
) -> tuple[nn.Module, dict[str, Any], PointCloudDataset, np.ndarray]:
    """Load a checkpoint and one split of its data and classify it: ``(model, ckpt, dataset, probs (M, K))``."""
    from ..engine.checkpoint import load_model
    from ..utils import resolve_device

    model, ckpt = load_model(checkpoint)
    dataset = dataset_for_checkpoint(ckpt, data=data, split=split)
    if len(dataset) == 0:
        raise DataError(f"the {split} split of the data is empty")
    names = ckpt.get("class_names")
    if names is not None and list(names) != list(dataset.class_names):
        raise CheckpointError(
            f"the checkpoint was trained on {len(names)} classes ({', '.join(names[:3])}, ...) that differ from "
            f"the data's {dataset.num_classes} ({', '.join(dataset.class_names[:3])}, ...)"
        )
    points, _ = dataset.as_tensors()
    logits = predict_logits(model, points, batch_size=batch_size, device=resolve_device(device))
    return model, ckpt, dataset, torch.softmax(logits.float(), dim=1).numpy()


def _fallback_load_points(path, num_points=1024, seed=0, normalize=True) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    rng = np.random.default_rng(seed)
    if path.suffix.lower() in {".npy", ".txt", ".xyz", ".pts"}:
        try:
            points = np.load(path) if path.suffix.lower() == ".npy" else np.loadtxt(path, ndmin=2)
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"cannot read {path}: {exc}") from exc
        points = np.asarray(points, dtype=np.float64).reshape(-1, np.asarray(points).shape[-1])[:, :3]
        if len(points) >= num_points:
            points = points[rng.choice(len(points), num_points, replace=False)]
        else:
            points = points[rng.choice(len(points), num_points, replace=True)]
    else:
        mesh = load_mesh(path)
        if mesh is None:
            raise DataError(f"cannot read {path} as a mesh or point cloud")
        import trimesh

        points, _ = trimesh.sample.sample_surface(trimesh.Trimesh(*mesh, process=False), num_points, seed=seed)
    if not len(points):
        raise DataError(f"{path} holds no points")
    if normalize:
        points = points - (points.min(0) + points.max(0)) / 2
        points = points / max(float(np.linalg.norm(points, axis=1).max()), 1e-12)
    return points.astype(np.float32)


def _fallback_dataset_for_checkpoint(ckpt, data=None, split="val") -> PointCloudDataset:
    config = (ckpt.get("config") or {}).get("data") or {}
    root = data or config.get("root")
    if not root:
        raise CheckpointError("the checkpoint does not say which data it was trained on; pass --data")
    num_points = config.get("num_points")
    if split == "test":
        dataset = open_dataset(root, split="test", num_points=num_points)
    else:
        dataset = open_dataset(root, split="train", num_points=num_points)
        if split == "val":
            _, val = stratified_split(dataset.labels, config.get("val_fraction", 0.1), config.get("split_seed", 0))
            dataset = dataset.subset(val)
    dataset.use_normals = bool(config.get("use_normals", False)) and dataset.normals is not None
    return dataset


@torch.no_grad()
def _fallback_predict_logits(model, points, batch_size=64, device="cpu") -> torch.Tensor:
    model = model.to(device).eval()
    return torch.cat([model(chunk.to(device))["logits"].float().cpu() for chunk in points.split(batch_size)])
