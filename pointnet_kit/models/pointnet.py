"""PointNet (Qi et al., CVPR 2017): encoder, classifier and segmentation head, and their variants."""

from __future__ import annotations

import torch
from torch import nn

from ..layers import SharedMLP, TNet
from .registry import register_model


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
        if in_channels < 3:
            raise ValueError(f"in_channels must be at least 3 (xyz), got {in_channels}")
        self.in_channels = in_channels
        self.global_dim = global_dim
        self.input_tnet = TNet(3) if input_transform else None
        self.mlp1 = SharedMLP([in_channels, 64, 64])
        self.feature_tnet = TNet(64) if feature_transform else None
        self.mlp2 = SharedMLP([64, 64, 128, global_dim])

    def forward(self, points: torch.Tensor, return_features: bool = False) -> dict[str, torch.Tensor]:
        """Encode a batch of point clouds.

        Args:
            points: ``(B, N, in_channels)`` float.
            return_features: also return per-point features and the max-pool argmax indices.
        Returns:
            ``global_feature (B, D)``, ``local_feature (B, 64, N)``, and when present
            ``input_transform (B, 3, 3)``, ``feature_transform (B, 64, 64)``; with
            ``return_features``: ``point_features (B, D, N)`` (before pooling) and
            ``critical_indices (B, D)`` (the point that wins each global dimension).
        """
        out: dict[str, torch.Tensor] = {}
        x = points.transpose(1, 2)  # (B, C, N)
        if self.input_tnet is not None:
            transform = self.input_tnet(x[:, :3])  # (B, 3, 3)
            xyz = torch.bmm(transform.transpose(1, 2), x[:, :3])  # (B, 3, N): points @ A
            x = torch.cat([xyz, x[:, 3:]], dim=1) if self.in_channels > 3 else xyz
            out["input_transform"] = transform
        x = self.mlp1(x)  # (B, 64, N)
        if self.feature_tnet is not None:
            transform = self.feature_tnet(x)  # (B, 64, 64)
            x = torch.bmm(transform.transpose(1, 2), x)  # (B, 64, N)
            out["feature_transform"] = transform
        out["local_feature"] = x
        if return_features:
            features = self.mlp2(x)  # (B, D, N)
            pooled, indices = features.max(dim=2)  # (B, D), (B, D)
            out["point_features"] = features
            out["critical_indices"] = indices
        else:
            pooled = self.mlp2.max_pool(x)  # (B, D), without building the (B, D, N) features
        out["global_feature"] = pooled
        return out


class PointNetClassifier(nn.Module):
    """PointNet classifier: encoder, then FC 512 -> 256 (dropout) -> ``num_classes``.

    ``forward(points)`` with ``points: (B, N, in_channels)`` returns a dict with ``logits
    (B, num_classes)``, the transform matrices that are enabled, ``global_feature (B, 1024)``, and
    with ``return_features=True`` also ``point_features (B, 1024, N)``, ``local_feature
    (B, 64, N)`` and ``critical_indices (B, 1024)``.
    """

    def __init__(
        self,
        num_classes: int = 40,
        in_channels: int = 3,
        input_transform: bool = True,
        feature_transform: bool = True,
        dropout: float = 0.3,
        global_dim: int = 1024,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.encoder = PointNetEncoder(in_channels, input_transform, feature_transform, global_dim)
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

    def forward(self, points: torch.Tensor, return_features: bool = False) -> dict[str, torch.Tensor]:
        out = self.encoder(points, return_features=return_features)
        if not return_features:
            out.pop("local_feature")
        out["logits"] = self.head(out["global_feature"])  # (B, num_classes)
        return out


class PointNetSegmentation(nn.Module):
    """PointNet per-point segmentation: ``[local 64-d | global 1024-d]`` -> shared MLP -> per-point logits.

    ``forward(points)`` with ``points: (B, N, in_channels)`` returns ``logits (B, N, num_classes)``
    plus the transforms (and the features, on request).
    """

    def __init__(
        self,
        num_classes: int = 50,
        in_channels: int = 3,
        input_transform: bool = True,
        feature_transform: bool = True,
        dropout: float = 0.0,
        global_dim: int = 1024,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.encoder = PointNetEncoder(in_channels, input_transform, feature_transform, global_dim)
        self.head = nn.Sequential(
            SharedMLP([64 + global_dim, 512, 256, 128]),
            nn.Dropout(dropout),
            nn.Conv1d(128, num_classes, kernel_size=1),
        )

    def forward(self, points: torch.Tensor, return_features: bool = False) -> dict[str, torch.Tensor]:
        out = self.encoder(points, return_features=return_features)
        local = out["local_feature"]  # (B, 64, N)
        glob = out["global_feature"].unsqueeze(2).expand(-1, -1, local.shape[2])  # (B, D, N)
        logits = self.head(torch.cat([local, glob], dim=1))  # (B, num_classes, N)
        out["logits"] = logits.transpose(1, 2)  # (B, N, num_classes)
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
def pointnet_seg(num_classes: int = 50, in_channels: int = 3, **kwargs) -> PointNetSegmentation:
    """PointNet per-point segmentation network."""
    return PointNetSegmentation(num_classes, in_channels, **kwargs)
