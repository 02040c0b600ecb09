"""DGCNN (Wang et al., TOG 2019): EdgeConv layers on a dynamic k-NN graph, a 1024-d embedding, a head.

Classifier: EdgeConv 64-64-128-256, k = 20, embedding 1024, max and mean pooled, FC 512-256 with
dropout 0.5. Part segmentation: a 3x3 spatial transform predicted from the xyz graph, EdgeConv
(64, 64)-(64, 64)-64, embedding 1024 max-pooled, category one-hot through a 64-d layer, per-point
256-256-128 head. Widths and biases follow the paper's released PyTorch code (no convolution biases
before BatchNorm), so the parameter counts are the reference's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import PointNetKitError
from ..layers.conv_mlp import ConvMLP, leaky_relu
from ..layers.edge_conv import EdgeConv
from .contract import PointModel, check_io
from .registry import register_model


class DGCNNClassifier(PointModel):
    """DGCNN classifier.

    The first graph is built on xyz; each later layer rebuilds it in its input's feature space.
    ``forward(points (B, N, in_channels))`` -> ``logits (B, num_classes)``, ``losses {}``.
    """

    task = "classification"

    def __init__(
        self,
        num_classes: int = 40,
        in_channels: int = 3,
        k: int = 20,
        emb_dims: int = 1024,
        dropout: float = 0.5,
        widths: tuple[int, ...] = (64, 64, 128, 256),
    ) -> None:
        super().__init__()
        check_io(in_channels)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.k = k
        channels = [in_channels, *widths]
        self.edges = nn.ModuleList(EdgeConv(c_in, c_out, k) for c_in, c_out in zip(channels[:-1], channels[1:]))
        self.embed = ConvMLP([sum(widths), emb_dims], dim=1, bias=False, activation=leaky_relu)
        self.head = nn.Sequential(
            nn.Linear(2 * emb_dims, 512, bias=False),
            nn.BatchNorm1d(512),
            leaky_relu(),
            nn.Dropout(dropout),
            nn.Linear(512, 256),
            nn.BatchNorm1d(256),
            leaky_relu(),
            nn.Dropout(dropout),
            nn.Linear(256, num_classes),
        )

    def _encode(self, points: Tensor) -> dict[str, Tensor]:
        if points.dim() != 3 or points.shape[2] != self.in_channels:
            raise PointNetKitError(
                f"expected points of shape (B, N, {self.in_channels}), got {tuple(points.shape)}"
            )
        x = points.transpose(1, 2)  # (B, C, N)
        layers: dict[str, Tensor] = {}
        for i, edge in enumerate(self.edges):
            index = edge.neighbours(x[:, :3] if i == 0 else x)  # (B, N, k)
            x = edge(x, index)  # (B, C_i, N)
            layers[f"edge{i + 1}"] = x
        emb = self.embed(torch.cat(list(layers.values()), dim=1))  # (B, emb_dims, N)
        layers["embedding"] = emb
        glob = torch.cat([emb.max(dim=2).values, emb.mean(dim=2)], dim=1)  # (B, 2 * emb_dims)
        return {"global_feature": glob, "point_features": emb, "layers": layers}

    def forward(self, points: Tensor, category: Tensor | None = None) -> dict[str, Tensor]:
        glob = self._encode(points)["global_feature"]
        return {"logits": self.head(glob), "losses": {}, "global_feature": glob}

    def forward_features(self, points: Tensor, category: Tensor | None = None) -> dict[str, Tensor]:
        """``global_feature (B, 2048)`` = [max | mean] of ``point_features (B, 1024, N)``; ``pooled``
        holds the embedding (its max-pool winners are the critical set); ``layers`` edge1..edge4, embedding."""
        out = self._encode(points)
        out["pooled"] = {"embedding": out["point_features"]}
        return out


@register_model("dgcnn")
def dgcnn(num_classes: int = 40, in_channels: int = 3, **kwargs) -> DGCNNClassifier:
    """DGCNN classifier: k = 20, EdgeConv 64-64-128-256, 1024-d embedding."""
    return DGCNNClassifier(num_classes, in_channels, **kwargs)


class DGCNNTransform(nn.Module):
    """DGCNN's spatial transform: EdgeConv 6 -> 64 -> 128 on the xyz graph, Conv1d 128 -> 1024, max over
    points, FC 512 -> 256 -> 9, initialised to output the identity (as the reference's ``Transform_Net``).

    ``forward(xyz (B, 3, N), index (B, N, k)) -> (B, 3, 3)``, applied as ``xyz^T A``.
    """

    def __init__(self, k: int = 20) -> None:
        super().__init__()
        self.edge = EdgeConv(3, 64, k, more_widths=[128])
        self.embed = ConvMLP([128, 1024], dim=1, bias=False, activation=leaky_relu)
        self.head = nn.Sequential(
            nn.Linear(1024, 512, bias=False), nn.BatchNorm1d(512), leaky_relu(),
            nn.Linear(512, 256, bias=False), nn.BatchNorm1d(256), leaky_relu(),
        )
        self.fc = nn.Linear(256, 9)
        nn.init.zeros_(self.fc.weight)
        with torch.no_grad():
            self.fc.bias.copy_(torch.eye(3).flatten())

    def forward(self, xyz: Tensor, index: Tensor) -> Tensor:
        pooled = self.embed(self.edge(xyz, index)).max(dim=2).values  # (B, 1024)
        return self.fc(self.head(pooled)).view(-1, 3, 3)


class DGCNNPartSegmentation(PointModel):
    """DGCNN part segmentation (the released code's ``DGCNN_partseg``).

    ``forward(points (B, N, in_channels), category (B,))`` -> ``logits (B, N, num_classes)``,
    ``losses {}``. The transform turns xyz (and normals, when ``in_channels`` is 6); the first graph
    is built on the turned xyz, later ones in feature space. ``num_categories > 0`` adds the
    category one-hot through ``Conv1d(num_categories -> 64)`` (the paper: 16 on ShapeNetPart).
    """

    task = "part_segmentation"

    def __init__(
        self,
        num_classes: int = 50,
        in_channels: int = 3,
        num_categories: int = 0,
        k: int = 20,
        emb_dims: int = 1024,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if in_channels not in (3, 6):
            raise ValueError(f"in_channels must be 3 (xyz) or 6 (xyz + normals), got {in_channels}")
        check_io(in_channels, num_categories)
        self.num_classes, self.in_channels, self.num_categories, self.k = num_classes, in_channels, num_categories, k
        self.transform = DGCNNTransform(k)
        self.edges = nn.ModuleList([
            EdgeConv(in_channels, 64, k, more_widths=[64]),
            EdgeConv(64, 64, k, more_widths=[64]),
            EdgeConv(64, 64, k),
        ])
        self.embed = ConvMLP([192, emb_dims], dim=1, bias=False, activation=leaky_relu)
        self.category = (
            ConvMLP([num_categories, 64], dim=1, bias=False, activation=leaky_relu) if num_categories else None
        )
        width = emb_dims + (64 if num_categories else 0) + 192
        self.head = nn.Sequential(
            *ConvMLP([width, 256], dim=1, bias=False, activation=leaky_relu),
            nn.Dropout(dropout),
            *ConvMLP([256, 256], dim=1, bias=False, activation=leaky_relu),
            nn.Dropout(dropout),
            *ConvMLP([256, 128], dim=1, bias=False, activation=leaky_relu),
            nn.Conv1d(128, num_classes, kernel_size=1, bias=False),
        )

    def _trunk(self, points: Tensor, category: Tensor | None) -> dict[str, Tensor]:
        if points.dim() != 3 or points.shape[2] != self.in_channels:
            raise PointNetKitError(
                f"expected points of shape (B, N, {self.in_channels}), got {tuple(points.shape)}"
            )
        x = points.transpose(1, 2)  # (B, C, N)
        xyz = x[:, :3]
        matrix = self.transform(xyz, self.edges[0].neighbours(xyz))  # (B, 3, 3)
        turned = [torch.bmm(matrix.transpose(1, 2), x[:, i : i + 3]) for i in range(0, self.in_channels, 3)]
        x = torch.cat(turned, dim=1)  # (B, C, N): xyz (and normals) times A, as x^T A
        layers: dict[str, Tensor] = {}
        for i, edge in enumerate(self.edges):
            x = edge(x, edge.neighbours(x[:, :3] if i == 0 else x))  # (B, 64, N)
            layers[f"edge{i + 1}"] = x
        local = torch.cat(list(layers.values()), dim=1)  # (B, 192, N)
        emb = self.embed(local)  # (B, emb_dims, N)
        layers["embedding"] = emb
        glob = emb.max(dim=2).values  # (B, emb_dims)
        shape = [glob]
        if self.category is not None:
            if category is None:
                raise PointNetKitError("dgcnn_seg with num_categories > 0 needs the shape category (B,) as input")
            one_hot = F.one_hot(category.long(), self.num_categories).to(points.dtype).unsqueeze(2)  # (B, K, 1)
            shape.append(self.category(one_hot).squeeze(2))  # (B, 64)
        n = points.shape[1]
        per_point = torch.cat([torch.cat(shape, dim=1).unsqueeze(2).expand(-1, -1, n), local], dim=1)
        return {"per_point": per_point, "global_feature": glob, "point_features": emb, "layers": layers,
                "transforms": {"input": matrix}}

    def forward(self, points: Tensor, category: Tensor | None = None) -> dict[str, Tensor]:
        trunk = self._trunk(points, category)
        logits = self.head(trunk["per_point"])  # (B, num_classes, N)
        return {"logits": logits.transpose(1, 2), "losses": {}, "global_feature": trunk["global_feature"]}

    def forward_features(self, points: Tensor, category: Tensor | None = None) -> dict[str, Tensor]:
        """``global_feature (B, 1024)``, the max of ``point_features (B, 1024, N)`` (also ``pooled``);
        ``layers`` edge1..edge3, embedding; ``transforms`` ``input (B, 3, 3)``."""
        out = self._trunk(points, category)
        del out["per_point"]
        out["pooled"] = {"embedding": out["point_features"]}
        return out


@register_model("dgcnn_seg")
def dgcnn_seg(num_classes: int = 50, in_channels: int = 3, num_categories: int = 0, **kwargs) -> DGCNNPartSegmentation:
    """DGCNN part segmentation: spatial transform, EdgeConv (64, 64)-(64, 64)-64, 1024-d embedding."""
    return DGCNNPartSegmentation(num_classes, in_channels, num_categories, **kwargs)
