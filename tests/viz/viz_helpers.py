"""Known clouds, a model with non-trivial transforms, and a toy dataset for the viz tests."""

from __future__ import annotations

import numpy as np
import torch

from pointnet_kit import create_model
from pointnet_kit.models.contract import PointModel


def sphere(n: int = 2000, seed: int = 0, radius: float = 1.0) -> np.ndarray:
    """``(n, 3)`` points on a sphere surface."""
    p = np.random.default_rng(seed).normal(size=(n, 3))
    return radius * p / np.linalg.norm(p, axis=1, keepdims=True)


def perturbed_pointnet(name: str = "pointnet", num_classes: int = 4, seed: int = 0) -> torch.nn.Module:
    """A float64 eval-mode model whose T-Nets output non-trivial transforms and whose BN is not identity.

    A fresh PointNet's T-Nets output exactly the identity, which would hide every T-Net effect.
    """
    model = create_model(name, num_classes=num_classes, seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.copy_(0.1 * torch.randn(module.running_mean.shape, generator=g))
                module.running_var.copy_(0.5 + torch.rand(module.running_var.shape, generator=g))
            fc = getattr(module, "fc", None)
            if isinstance(fc, torch.nn.Linear):  # the T-Nets' last layer, zero at init
                fc.weight.copy_(0.05 * torch.randn(fc.weight.shape, generator=g))
                fc.bias.copy_(0.1 * torch.randn(fc.bias.shape, generator=g))
    return model.double().eval()


def toy_dataset(num_points: int = 256, per_class: int = 4, seed: int = 0):
    """A tiny labelled PointCloudDataset: spheres, cubes and cones."""
    from pointnet_kit.data import PointCloudDataset

    rng = np.random.default_rng(seed)
    clouds, labels = [], []
    for i in range(per_class):
        s = sphere(num_points, seed + i)
        cube = rng.uniform(-1, 1, size=(num_points, 3))
        face = rng.integers(0, 3, num_points)
        cube[np.arange(num_points), face] = np.sign(cube[np.arange(num_points), face])
        t = rng.uniform(0, 1, num_points)
        angle = rng.uniform(0, 2 * np.pi, num_points)
        cone = np.stack([(1 - t) * np.cos(angle), (1 - t) * np.sin(angle), 2 * t - 1], axis=1)
        clouds += [cone, cube, s]
        labels += [0, 1, 2]
    return PointCloudDataset(np.stack(clouds).astype(np.float32), np.array(labels), ["cone", "cube", "sphere"])


def shapenet_spec(num_points: int = 64):
    """The DataSpec of a ShapeNetPart segmentation run (y up, 16 categories, 50 parts): the data layer's."""
    import dataclasses

    from pointnet_kit.data.shapenetpart import part_spec

    return dataclasses.replace(part_spec(), num_points=num_points, up_axis="y")


class TinySeg(PointModel):
    """A part segmentation model on the contract, small enough to define in a test: a per-point MLP,
    a max pool, and per-point logits from ``[point | global | category one-hot]``."""

    task = "part_segmentation"

    def __init__(self, num_classes: int = 50, in_channels: int = 3, num_categories: int = 16) -> None:
        super().__init__()
        self.num_classes, self.in_channels, self.num_categories = num_classes, in_channels, num_categories
        self.point = torch.nn.Sequential(torch.nn.Conv1d(in_channels, 32, 1), torch.nn.ReLU())
        self.head = torch.nn.Conv1d(64 + num_categories, num_classes, 1)

    def forward_features(self, points: torch.Tensor, category: torch.Tensor | None = None) -> dict:
        x = self.point(points.transpose(1, 2))  # (B, 32, N)
        return {"global_feature": x.amax(dim=2), "point_features": x, "pooled": {"global": x}, "layers": {"point": x}}

    def forward(self, points: torch.Tensor, category: torch.Tensor | None = None) -> dict:
        feats = self.forward_features(points, category)
        x, n = feats["point_features"], points.shape[1]
        parts = [x, feats["global_feature"][:, :, None].expand(-1, -1, n)]
        if self.num_categories:
            onehot = torch.zeros(len(points), self.num_categories, device=points.device)
            if category is not None:
                onehot[torch.arange(len(points)), category] = 1.0
            parts.append(onehot[:, :, None].expand(-1, -1, n))
        return {"logits": self.head(torch.cat(parts, dim=1)).transpose(1, 2), "losses": {}}


def register_tiny_seg() -> str:
    """Register :class:`TinySeg` as ``viz_tiny_seg`` (once per process); returns the name."""
    from pointnet_kit.models.registry import list_models, register_model

    if "viz_tiny_seg" not in list_models():
        register_model("viz_tiny_seg")(lambda **kwargs: TinySeg(**kwargs))
    return "viz_tiny_seg"


def seg_checkpoint(path, num_points: int = 64, seed: int = 0):
    """A TinySeg checkpoint with a ShapeNetPart data spec; returns its path."""
    from pointnet_kit import create_model
    from pointnet_kit.engine.checkpoint import save_checkpoint

    spec = shapenet_spec(num_points)
    model = create_model(register_tiny_seg(), seed=seed, num_classes=50, in_channels=3, num_categories=16)
    config = {"data": {"root": str(path.parent / "data"), "num_points": num_points, "up_axis": "y"}}
    return save_checkpoint(
        path, model, data_spec=spec.to_dict(), class_names=spec.class_names, task=spec.task, config=config
    )
