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


def _block_outputs(mlp: torch.nn.Sequential) -> list[torch.nn.Module]:
    """The module whose output is each layer's output in a SharedMLP (its ReLU, BN or conv)."""
    lasts: list[torch.nn.Module] = []
    for module in mlp:
        if isinstance(module, (torch.nn.Conv1d, torch.nn.Linear)):
            lasts.append(module)
        elif lasts:
            lasts[-1] = module
    return lasts


def contract_forward_features(self, points: torch.Tensor, category: torch.Tensor | None = None) -> dict:
    """``forward_features`` of the model contract for today's PointNet classes, read through hooks.

    Stands in until branch ``core`` gives PointNet its own ``forward_features`` (same keys and names).
    """
    encoder = self.encoder
    watched = {}
    for name in ("mlp1", "mlp2"):
        for i, module in enumerate(_block_outputs(getattr(encoder, name))):
            watched[f"layers/{name}.{i}"] = module
    for name in ("input_tnet", "feature_tnet"):
        if getattr(encoder, name, None) is not None:
            watched[f"pooled/{name}"] = getattr(encoder, name).mlp
    captured = {}

    def hook(key):
        def fn(_module, _inputs, output):
            captured[key] = output.detach().clone()  # clone: the next in-place ReLU would overwrite it

        return fn

    handles = [module.register_forward_hook(hook(key)) for key, module in watched.items()]
    try:
        out = encoder(points, return_features=True)
    finally:
        for handle in handles:
            handle.remove()
    pooled = {key.split("/")[1]: v for key, v in captured.items() if key.startswith("pooled/")}
    pooled["global"] = out["point_features"]
    transforms = {k: out[f"{k}_transform"] for k in ("input", "feature") if f"{k}_transform" in out}
    return {
        "global_feature": out["global_feature"],
        "point_features": out["point_features"],
        "pooled": pooled,
        "layers": {key.split("/")[1]: v for key, v in captured.items() if key.startswith("layers/")},
        "transforms": transforms,
    }


def install_contract_shim(monkeypatch=None) -> None:
    """Give today's PointNet classes the contract's ``forward_features`` unless they have their own."""
    from pointnet_kit.models import pointnet as P

    for cls in (P.PointNetClassifier, P.PointNetSegmentation):
        if "forward_features" not in cls.__dict__ and not hasattr(cls, "forward_features"):
            if monkeypatch is None:
                cls.forward_features = contract_forward_features
            else:
                monkeypatch.setattr(cls, "forward_features", contract_forward_features, raising=False)


# ShapeNetPart's 16 categories and their global part ids (0-49), in the official order.
SHAPENET_PARTS = {
    "Airplane": 4, "Bag": 2, "Cap": 2, "Car": 4, "Chair": 4, "Earphone": 3, "Guitar": 3, "Knife": 2,
    "Lamp": 4, "Laptop": 2, "Motorbike": 6, "Mug": 2, "Pistol": 3, "Rocket": 3, "Skateboard": 3, "Table": 3,
}  # fmt: skip


def shapenet_spec(num_points: int = 64):
    """The DataSpec of a ShapeNetPart segmentation run (y up, 16 categories, 50 parts)."""
    from pointnet_kit.data.record import DataSpec

    category_parts, part_names, start = {}, [], 0
    for name, count in SHAPENET_PARTS.items():
        category_parts[name] = list(range(start, start + count))
        part_names += [f"{name}/part{i + 1}" for i in range(count)]
        start += count
    return DataSpec(
        task="part_segmentation",
        num_points=num_points,
        up_axis="y",
        class_names=list(SHAPENET_PARTS),
        part_names=part_names,
        category_parts=category_parts,
    )


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
