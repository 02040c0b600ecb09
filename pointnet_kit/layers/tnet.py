"""The PointNet T-Net: predicts a ``k x k`` alignment matrix, initialised to the identity."""

from __future__ import annotations

import torch
from torch import nn

from .shared_mlp import SharedMLP


class TNet(nn.Module):
    """Spatial/feature transformer network; one class for the 3x3 input and 64x64 feature transforms.

    ``SharedMLP(k, 64, 128, 1024) -> max over points -> FC 512 -> FC 256 -> FC k*k``, plus the
    identity. The last FC starts at zero, so a fresh T-Net outputs exactly the identity.

    Args:
        k: size of the transform (3 for xyz, 64 for features).
        in_channels: channels of the input it looks at (defaults to ``k``).
    Shapes: ``x: (B, in_channels, N) -> (B, k, k)``.
    """

    def __init__(self, k: int, in_channels: int | None = None) -> None:
        super().__init__()
        self.k = k
        self.mlp = SharedMLP([in_channels or k, 64, 128, 1024])
        self.head = nn.Sequential(
            nn.Linear(1024, 512, bias=False),
            nn.BatchNorm1d(512),
            nn.ReLU(inplace=True),
            nn.Linear(512, 256, bias=False),
            nn.BatchNorm1d(256),
            nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(256, k * k)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)
        self.register_buffer("identity", torch.eye(k).flatten(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.mlp.max_pool(x)  # (B, 1024): the (B, 1024, N) features are never built
        matrix = self.fc(self.head(pooled)) + self.identity  # (B, k*k)
        return matrix.view(-1, self.k, self.k)


def orthogonality_loss(matrix: torch.Tensor) -> torch.Tensor:
    """PointNet's regularizer ``||I - A A^T||_F^2``, averaged over the batch.

    Args:
        matrix: ``(B, k, k)`` transforms (or one ``(k, k)``).
    Returns:
        A scalar: zero exactly when every ``A`` is orthogonal.
    """
    if matrix.dim() == 2:
        matrix = matrix.unsqueeze(0)
    k = matrix.shape[-1]
    eye = torch.eye(k, device=matrix.device, dtype=matrix.dtype)
    residual = eye - matrix @ matrix.transpose(1, 2)  # (B, k, k)
    return residual.square().sum(dim=(1, 2)).mean()
