"""Known clouds, a model with non-trivial transforms, and a toy dataset for the viz tests."""

from __future__ import annotations

import numpy as np
import torch

from pointnet_kit import create_model


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
