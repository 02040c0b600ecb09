"""PointNet (Qi et al., CVPR 2017): encoder, classifier and segmentation head, and their variants."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import SharedMLP, TNet, orthogonality_loss
from .contract import PointModel, check_io
from .registry import register_model


def _layer_outputs(mlp: SharedMLP, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """Run a SharedMLP one layer at a time: ``(B, C, N) -> (out, [each layer's output (after BN/ReLU)])``."""
    outputs: list[Tensor] = []
    modules = list(mlp)
    for i, module in enumerate(modules):
        x = module(x)
        last_of_layer = i + 1 == len(modules) or isinstance(modules[i + 1], (nn.Conv1d, nn.Linear))
        if last_of_layer:
            outputs.append(x)
    return x, outputs


@contextlib.contextmanager
def _capture_output(module: nn.Module | None, into: dict[str, Tensor], key: str) -> Iterator[None]:
    """Record ``module``'s output under ``into[key]`` while the block runs (no-op for ``None``)."""
    if module is None:
        yield
        return

    def hook(_module, _inputs, output):
        into[key] = output

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


class PointNetEncoder(nn.Module):
    """Input transform -> shared MLP 64-64 -> feature transform -> shared MLP 64-128-1024 -> max pool.

    Args:
        in_channels: channels per point; the input transform acts on the first three (xyz).
        input_transform: use the 3x3 T-Net.
        feature_transform: use the 64x64 T-Net.
        global_dim: width of the global feature (1024 in the paper).
    """

    def __init__(
        self,
        in_channels: int = 3,
        input_transform: bool = True,
        feature_transform: bool = True,
        global_dim: int = 1024,
    ) -> None:
        super().__init__()
        check_io(in_channels)
        self.in_channels = in_channels
        self.global_dim = global_dim
        self.input_tnet = TNet(3) if input_transform else None
        self.mlp1 = SharedMLP([in_channels, 64, 64])
        self.feature_tnet = TNet(64) if feature_transform else None
        self.mlp2 = SharedMLP([64, 64, 128, global_dim])

    def forward(self, points: Tensor, return_features: bool = False, collect: bool = False) -> dict[str, Tensor]:
        """Encode a batch of point clouds.

        Args:
            points: ``(B, N, in_channels)`` float.
            return_features: also return per-point features and the max-pool argmax indices.
            collect: also return what :meth:`PointNetClassifier.forward_features` reports: ``pooled``
                (every per-point tensor entering a max pool) and ``layers`` (each shared-MLP layer's output).
        Returns:
            ``global_feature (B, D)``, ``local_feature (B, 64, N)``, and when present
            ``input_transform (B, 3, 3)``, ``feature_transform (B, 64, 64)``; with
            ``return_features`` (or ``collect``): ``point_features (B, D, N)`` (before pooling) and
            ``critical_indices (B, D)`` (the point that wins each global dimension).
        """
        out: dict = {}
        pooled: dict[str, Tensor] = {}
        layers: dict[str, Tensor] = {}
        x = points.transpose(1, 2)  # (B, C, N)
        if self.input_tnet is not None:
            with _capture_output(self.input_tnet.mlp if collect else None, pooled, "input_tnet"):
                transform = self.input_tnet(x[:, :3])  # (B, 3, 3)
            xyz = torch.bmm(transform.transpose(1, 2), x[:, :3])  # (B, 3, N): points @ A
            x = torch.cat([xyz, x[:, 3:]], dim=1) if self.in_channels > 3 else xyz
            out["input_transform"] = transform
        if collect:
            x, outs = _layer_outputs(self.mlp1, x)
            layers.update({f"mlp1.{i}": t for i, t in enumerate(outs)})
        else:
            x = self.mlp1(x)  # (B, 64, N)
        if self.feature_tnet is not None:
            with _capture_output(self.feature_tnet.mlp if collect else None, pooled, "feature_tnet"):
                transform = self.feature_tnet(x)  # (B, 64, 64)
            x = torch.bmm(transform.transpose(1, 2), x)  # (B, 64, N)
            out["feature_transform"] = transform
        out["local_feature"] = x
        if collect:
            features, outs = _layer_outputs(self.mlp2, x)
            layers.update({f"mlp2.{i}": t for i, t in enumerate(outs)})
            pooled["global"] = features
            out["pooled"], out["layers"] = pooled, layers
        elif return_features:
            features = self.mlp2(x)  # (B, D, N)
        if return_features or collect:
            pool, indices = features.max(dim=2)  # (B, D), (B, D)
            out["point_features"] = features
            out["critical_indices"] = indices
        else:
            pool = self.mlp2.max_pool(x)  # (B, D), without building the (B, D, N) features
        out["global_feature"] = pool
        return out


class _PointNetBase(PointModel):
    """What the PointNet classifier and segmentation network share: the encoder and the regularizer.

    ``feature_transform_weight`` weights the paper's orthogonality regularizer ``||I - A A^T||^2``
    on the 64x64 feature transform; it is reported in ``out["losses"]["feature_transform_reg"]``
    (already weighted) so the task adds it to the loss without knowing PointNet.
    """

    def _init_encoder(
        self,
        num_classes: int,
        in_channels: int,
        input_transform: bool,
        feature_transform: bool,
        global_dim: int,
        feature_transform_weight: float,
    ) -> None:
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.feature_transform_weight = float(feature_transform_weight)
        self.encoder = PointNetEncoder(in_channels, input_transform, feature_transform, global_dim)

    def _losses(self, out: dict) -> dict[str, Tensor]:
        if "feature_transform" not in out or self.feature_transform_weight <= 0:
            return {}
        return {"feature_transform_reg": self.feature_transform_weight * orthogonality_loss(out["feature_transform"].float())}

    def forward_features(self, points: Tensor, category: Tensor | None = None) -> dict:
        """``global_feature (B, D)``, ``point_features (B, D, N)``, ``pooled`` {input_tnet, feature_tnet,
        global}: (B, C, N), ``layers`` {mlp1.0, mlp1.1, mlp2.0, mlp2.1, mlp2.2}: (B, C, N) and
        ``transforms`` {input (B, 3, 3), feature (B, 64, 64)} (the T-Nets the model has)."""
        enc = self.encoder(points, collect=True)
        transforms = {
            name: enc[key] for name, key in (("input", "input_transform"), ("feature", "feature_transform")) if key in enc
        }
        return {
            "global_feature": enc["global_feature"],
            "point_features": enc["point_features"],
            "pooled": enc["pooled"],
            "layers": enc["layers"],
            "transforms": transforms,
        }


class PointNetClassifier(_PointNetBase):
    """PointNet classifier: encoder, then FC 512 -> 256 (dropout) -> ``num_classes``.

    ``forward(points)`` with ``points: (B, N, in_channels)`` returns a dict with ``logits
    (B, num_classes)``, ``losses`` (``feature_transform_reg`` when the feature T-Net is on and its
    weight > 0), the transform matrices that are enabled and ``global_feature (B, 1024)``; with
    ``return_features=True`` also ``point_features (B, 1024, N)``, ``local_feature (B, 64, N)`` and
    ``critical_indices (B, 1024)`` (kept for viz; :meth:`forward_features` is the contract's way).
    """

    task = "classification"

    def __init__(
        self,
        num_classes: int = 40,
        in_channels: int = 3,
        input_transform: bool = True,
        feature_transform: bool = True,
        dropout: float = 0.3,
        global_dim: int = 1024,
        feature_transform_weight: float = 0.001,
    ) -> None:
        super().__init__()
        self._init_encoder(num_classes, in_channels, input_transform, feature_transform, global_dim, feature_transform_weight)
        self.head = nn.Sequential(
            nn.Linear(global_dim, 512, bias=False),
            nn.BatchNorm1d(512),
            nn.ReLU(inplace=True),
            nn.Linear(512, 256, bias=False),
            nn.BatchNorm1d(256),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(256, num_classes),
        )

    def forward(self, points: Tensor, category: Tensor | None = None, *, return_features: bool = False) -> dict:
        out = self.encoder(points, return_features=return_features)
        if not return_features:
            out.pop("local_feature")
        out["logits"] = self.head(out["global_feature"])  # (B, num_classes)
        out["losses"] = self._losses(out)
        return out


class PointNetSegmentation(_PointNetBase):
    """PointNet per-point segmentation: ``[local 64 | global 1024 (| one-hot category)]`` -> shared MLP -> logits.

    With ``num_categories > 0`` the shape's category, one-hot, is concatenated to the global feature
    as in the paper's part segmentation network; ``forward`` then needs ``category (B,)``.
    ``forward(points, category)`` with ``points: (B, N, in_channels)`` returns ``logits (B, N,
    num_classes)``, ``losses``, the transforms and ``global_feature``.
    """

    task = "part_segmentation"

    def __init__(
        self,
        num_classes: int = 50,
        in_channels: int = 3,
        input_transform: bool = True,
        feature_transform: bool = True,
        dropout: float = 0.0,
        global_dim: int = 1024,
        feature_transform_weight: float = 0.001,
        num_categories: int = 0,
    ) -> None:
        super().__init__()
        check_io(in_channels, num_categories)
        self._init_encoder(num_classes, in_channels, input_transform, feature_transform, global_dim, feature_transform_weight)
        self.num_categories = num_categories
        self.head = nn.Sequential(
            SharedMLP([64 + global_dim + num_categories, 512, 256, 128]),
            nn.Dropout(dropout),
            nn.Conv1d(128, num_classes, kernel_size=1),
        )

    def _global_with_category(self, glob: Tensor, category: Tensor | None) -> Tensor:
        """``(B, D)`` -> ``(B, D + num_categories)``."""
        if self.num_categories == 0:
            return glob
        if category is None:
            raise ValueError(f"this model takes the shape category (num_categories={self.num_categories}); pass category (B,)")
        one_hot = F.one_hot(category.long(), self.num_categories).to(glob.dtype)  # (B, num_categories)
        return torch.cat([glob, one_hot], dim=1)

    def forward(self, points: Tensor, category: Tensor | None = None, *, return_features: bool = False) -> dict:
        out = self.encoder(points, return_features=return_features)
        local = out["local_feature"]  # (B, 64, N)
        glob = self._global_with_category(out["global_feature"], category)
        glob = glob.unsqueeze(2).expand(-1, -1, local.shape[2])  # (B, D (+ categories), N)
        logits = self.head(torch.cat([local, glob], dim=1))  # (B, num_classes, N)
        out["logits"] = logits.transpose(1, 2)  # (B, N, num_classes)
        out["losses"] = self._losses(out)
        if not return_features:
            out.pop("local_feature")
        return out


@register_model("pointnet")
def pointnet(num_classes: int = 40, in_channels: int = 3, **kwargs) -> PointNetClassifier:
    """PointNet classifier as in the paper: input and feature transforms."""
    return PointNetClassifier(num_classes, in_channels, **kwargs)


@register_model("pointnet_vanilla")
def pointnet_vanilla(num_classes: int = 40, in_channels: int = 3, **kwargs) -> PointNetClassifier:
    """PointNet without T-Nets (the paper's "vanilla" baseline)."""
    return PointNetClassifier(num_classes, in_channels, input_transform=False, feature_transform=False, **kwargs)


@register_model("pointnet_seg")
def pointnet_seg(num_classes: int = 50, in_channels: int = 3, num_categories: int = 0, **kwargs) -> PointNetSegmentation:
    """PointNet per-point segmentation network (``num_categories``: one-hot category input, 0 = none)."""
    return PointNetSegmentation(num_classes, in_channels, num_categories=num_categories, **kwargs)
