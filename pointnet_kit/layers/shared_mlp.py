"""The PointNet shared MLP: one fully connected layer applied to every point, written as ``Conv1d(k=1)``."""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import nn

Backend = Literal["conv", "linear"]


def linear_to_conv1d(linear: nn.Linear) -> nn.Conv1d:
    """Exact copy of ``linear`` as a ``Conv1d(kernel_size=1)``: weight ``(out, in)`` -> ``(out, in, 1)``."""
    conv = nn.Conv1d(linear.in_features, linear.out_features, kernel_size=1, bias=linear.bias is not None)
    conv = conv.to(device=linear.weight.device, dtype=linear.weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(linear.weight.unsqueeze(-1))
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


def conv1d_to_linear(conv: nn.Conv1d) -> nn.Linear:
    """Exact copy of a ``Conv1d(kernel_size=1)`` as an ``nn.Linear``."""
    if conv.kernel_size != (1,) or conv.groups != 1 or conv.stride != (1,) or conv.padding != (0,):
        raise ValueError("only a plain Conv1d with kernel_size=1, stride 1, no padding, groups 1 is a Linear")
    linear = nn.Linear(conv.in_channels, conv.out_channels, bias=conv.bias is not None)
    linear = linear.to(device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        linear.weight.copy_(conv.weight.squeeze(-1))
        if conv.bias is not None:
            linear.bias.copy_(conv.bias)
    return linear


class PointLinear(nn.Linear):
    """``nn.Linear`` over the channels of ``(B, N, C)`` points: the per-point formulation."""


class _PointBatchNorm(nn.BatchNorm1d):
    """BatchNorm over channels for ``(B, N, C)`` input; statistics over B and N, as for ``(B, C, N)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, N, C)
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class SharedMLP(nn.Sequential):
    """Per-point MLP: ``[Conv1d(k=1) -> BatchNorm1d -> ReLU] * (len(channels) - 1)``.

    Args:
        channels: widths, input first, e.g. ``[3, 64, 128]``.
        batch_norm: add BatchNorm after each layer (its bias makes the layer bias redundant).
        last_activation: apply BatchNorm + ReLU after the last layer too (PointNet does).
        backend: ``"conv"`` (default) takes ``(B, C, N)``; ``"linear"`` builds the identical layer
            from ``nn.Linear`` and takes ``(B, N, C)``: for comparison and teaching.

    Shapes: ``(B, channels[0], N) -> (B, channels[-1], N)`` for ``"conv"``,
    ``(B, N, channels[0]) -> (B, N, channels[-1])`` for ``"linear"``.
    """

    def __init__(
        self,
        channels: Sequence[int],
        batch_norm: bool = True,
        last_activation: bool = True,
        backend: Backend = "conv",
    ) -> None:
        if len(channels) < 2:
            raise ValueError(f"SharedMLP needs at least two widths, got {list(channels)}")
        if backend not in ("conv", "linear"):
            raise ValueError(f"backend must be 'conv' or 'linear', got {backend!r}")
        layers: list[nn.Module] = []
        num_layers = len(channels) - 1
        for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
            last = i == num_layers - 1
            activate = last_activation or not last
            use_bn = batch_norm and activate
            if backend == "conv":
                layers.append(nn.Conv1d(c_in, c_out, kernel_size=1, bias=not use_bn))
            else:
                layers.append(PointLinear(c_in, c_out, bias=not use_bn))
            if use_bn:
                layers.append(nn.BatchNorm1d(c_out) if backend == "conv" else _PointBatchNorm(c_out))
            if activate:
                layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)
        self.channels = list(channels)
        self.batch_norm = batch_norm
        self.last_activation = last_activation
        self.backend: Backend = backend

    def converted(self, backend: Backend) -> "SharedMLP":
        """A new SharedMLP with the other ``backend`` and exactly the same weights and BN state."""
        other = SharedMLP(self.channels, self.batch_norm, self.last_activation, backend=backend)
        other = other.to(device=next(self.parameters()).device, dtype=next(self.parameters()).dtype)
        state = {}
        for key, value in self.state_dict().items():
            # Only the matmul weights differ in shape: Linear (out, in) vs Conv1d (out, in, 1).
            if backend == "conv" and value.dim() == 2:
                value = value.unsqueeze(-1)
            elif backend == "linear" and value.dim() == 3:
                value = value.squeeze(-1)
            state[key] = value
        other.load_state_dict(state)
        other.train(self.training)
        return other
