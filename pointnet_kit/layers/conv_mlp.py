"""The shared MLP over grouped points: ``Conv2d(1x1)`` on ``(B, C, S, K)``, norm and activation as arguments.

PointNet++ applies one MLP to every (centroid, neighbour) pair of ``S`` local groups of ``K`` points;
DGCNN applies one to every edge of a k-NN graph (``S = N`` points, ``K = k`` edges each). Either way
it is :class:`~pointnet_kit.layers.SharedMLP`'s idea with one more axis: a 1x1 convolution is the
same ``Linear`` at every ``(s, k)``. ``dim=1`` gives the ``(B, C, N)`` version for per-point layers
with the same arguments (feature propagation, DGCNN's embedding).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

__all__ = ["ConvMLP", "SharedMLP2d", "leaky_relu"]


def leaky_relu() -> nn.Module:
    """DGCNN's activation: LeakyReLU with slope 0.2."""
    return nn.LeakyReLU(0.2, inplace=True)


def _relu() -> nn.Module:
    return nn.ReLU(inplace=True)


class ConvMLP(nn.Sequential):
    """``[Conv(1x1) -> norm -> activation] * (len(channels) - 1)`` over ``(B, C, N)`` or ``(B, C, S, K)``.

    Args:
        channels: widths, input first, e.g. ``[131, 128, 128, 256]``.
        dim: 1 for ``(B, C, N)`` (``Conv1d``), 2 for ``(B, C, S, K)`` (``Conv2d``).
        norm: ``"batch"`` (BatchNorm of the matching dim) or ``None``.
        activation: a factory for the activation module (``None``: linear layers).
        bias: give the convolutions a bias. The PointNet++ reference keeps one even before BatchNorm
            (where it is redundant) and DGCNN's does not; keep it to match their parameter counts.
        last_activation: apply norm + activation after the last layer too.

    Shapes: ``(B, channels[0], *spatial) -> (B, channels[-1], *spatial)``.
    """

    def __init__(
        self,
        channels: Sequence[int],
        dim: int = 2,
        norm: str | None = "batch",
        activation: Callable[[], nn.Module] | None = _relu,
        bias: bool = True,
        last_activation: bool = True,
    ) -> None:
        if len(channels) < 2:
            raise ValueError(f"ConvMLP needs at least two widths, got {list(channels)}")
        if dim not in (1, 2):
            raise ValueError(f"dim must be 1 or 2, got {dim}")
        if norm not in ("batch", None):
            raise ValueError(f"norm must be 'batch' or None, got {norm!r}")
        conv = nn.Conv1d if dim == 1 else nn.Conv2d
        batch_norm = nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
            activate = last_activation or i < len(channels) - 2
            layers.append(conv(c_in, c_out, kernel_size=1, bias=bias or not (activate and norm)))
            if activate and norm == "batch":
                layers.append(batch_norm(c_out))
            if activate and activation is not None:
                layers.append(activation())
        super().__init__(*layers)
        self.channels = list(channels)


class SharedMLP2d(ConvMLP):
    """:class:`ConvMLP` over grouped points ``(B, C, S, K)`` (``dim=2``): one Linear per (group, neighbour)."""

    def __init__(self, channels: Sequence[int], **kwargs) -> None:
        super().__init__(channels, dim=2, **kwargs)
