"""DGCNN's EdgeConv: a shared MLP on every edge ``[x_i, x_j - x_i]`` of a k-NN graph, max over the edges.

The weights are one ``Conv2d(2C -> C', 1x1)`` over edge features ``(B, 2C, N, k)``, laid out as in the
reference code. Because the first layer is linear, ``W [x_i, x_j - x_i] = (W_c - W_d) x_i + W_d x_j``
(``W = [W_c | W_d]``): the forward computes two per-point products on ``(B, C, N)`` and gathers the
``W_d x_j`` term over the edges, instead of building ``(B, 2C, N, k)`` and multiplying it ``k`` times.
Same numbers up to rounding (checked by ``pointnet-kit equivalence``), ``k`` times fewer multiply-adds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import grouping
from .conv_mlp import ConvMLP, leaky_relu

__all__ = ["EdgeConv", "edge_features"]


def edge_features(x: Tensor, index: Tensor) -> Tensor:
    """Edge features ``[x_i, x_j - x_i]``: ``x (B, C, N)``, neighbours ``index (B, N, k)`` -> ``(B, 2C, N, k)``."""
    neighbours = grouping.group(x, index)  # (B, C, N, k)
    centre = x.unsqueeze(-1)  # (B, C, N, 1)
    return torch.cat([centre.expand_as(neighbours), neighbours - centre], dim=1)


class EdgeConv(nn.Module):
    """One EdgeConv layer: ``x (B, C, N)`` -> ``(B, C', N)``, ``max_j h([x_i, x_j - x_i])`` over ``k`` neighbours.

    Args:
        in_channels, out_channels: ``C`` and ``C'``.
        k: neighbours per point, found in the input's own feature space (the dynamic graph); all
            points when a cloud has fewer than ``k``.
        norm: ``"batch"`` or ``None``.
        activation: factory for the activation (DGCNN: LeakyReLU 0.2).
        bias: convolution bias (the reference has none; BatchNorm follows).
        more_widths: further per-edge layers ``Conv2d(1x1) -> norm -> activation`` after the first,
            before the max (DGCNN's segmentation network: ``EdgeConv(3, 64, more_widths=[64])``);
            ``out_channels`` is then the first layer's width and the output has ``more_widths[-1]``.

    ``forward(x, index=None)`` takes precomputed neighbours ``index (B, N, k)`` or finds them.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        k: int = 20,
        norm: str | None = "batch",
        activation: Callable[[], nn.Module] | None = leaky_relu,
        bias: bool = False,
        more_widths: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.in_channels, self.k = in_channels, k
        self.out_channels = more_widths[-1] if more_widths else out_channels
        self.conv = nn.Conv2d(2 * in_channels, out_channels, kernel_size=1, bias=bias)
        self.norm = nn.BatchNorm2d(out_channels) if norm == "batch" else nn.Identity()
        self.act = activation() if activation is not None else nn.Identity()
        # (B, C', N, k) -> (B, more_widths[-1], N, k); an empty Sequential when there are none
        self.more = (
            ConvMLP([out_channels, *more_widths], dim=2, norm=norm, activation=activation, bias=bias)
            if more_widths else nn.Sequential()
        )

    def neighbours(self, x: Tensor) -> Tensor:
        """The ``k`` nearest points of each point in feature space, itself included: ``(B, N, k)``."""
        points = x.detach().transpose(1, 2)  # (B, N, C)
        return grouping.knn(points, points, torch.sym_min(self.k, points.shape[1]))  # symbolic when exporting

    def edge_response(self, x: Tensor, index: Tensor) -> Tensor:
        """The convolution on every edge, before norm: ``(B, C', N, k)``, in the factored form."""
        weight = self.conv.weight[:, :, 0, 0]  # (C', 2C)
        w_centre, w_diff = weight[:, : self.in_channels], weight[:, self.in_channels :]
        centre = F.conv1d(x, (w_centre - w_diff).unsqueeze(-1), self.conv.bias)  # (B, C', N)
        neighbour = F.conv1d(x, w_diff.unsqueeze(-1))  # (B, C', N)
        return grouping.group(neighbour, index) + centre.unsqueeze(-1)

    def forward(self, x: Tensor, index: Tensor | None = None) -> Tensor:
        if index is None:
            index = self.neighbours(x)
        # max(dim), not amax: its backward scatters through the argmax instead of a full tie-count pass.
        return self.more(self.act(self.norm(self.edge_response(x, index)))).max(dim=3).values
