"""DGCNN (Wang et al., TOG 2019): four EdgeConv layers on a dynamic k-NN graph, a 1024-d embedding, FC head.

Widths follow the paper's released PyTorch code (EdgeConv 64-64-128-256, k = 20, embedding 1024,
max and mean pooled, FC 512-256 with dropout 0.5, no convolution biases before BatchNorm), so the
parameter count is the reference's.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import PointNetKitError
from ..layers.conv_mlp import ConvMLP, leaky_relu
from ..layers.edge_conv import EdgeConv
from .contract import PointModel
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
        if in_channels < 3:
            raise ValueError(f"in_channels must be at least 3 (xyz), got {in_channels}")
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
