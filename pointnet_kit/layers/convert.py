"""Exact Linear <-> Conv2d weight conversions: a kernel that covers its whole input is an FC layer."""

from __future__ import annotations

import torch
from torch import nn


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def linear_to_conv2d(
    linear: nn.Linear,
    in_channels: int | None = None,
    kernel_size: int | tuple[int, int] = 1,
) -> nn.Conv2d:
    """Exact copy of ``linear`` as a ``Conv2d``: weight ``(out, in)`` -> ``(out, C, kh, kw)``.

    ``in_features`` must equal ``C * kh * kw``, in the order of ``image.flatten(1)`` for a
    ``(B, C, kh, kw)`` image. With ``kernel_size=1`` (the default) this is the 1x1 convolution
    that applies ``linear`` at every pixel; with the kernel as large as the image it is the FC
    layer over the flattened image, evaluated at the single valid position.
    """
    kh, kw = _pair(kernel_size)
    if in_channels is None:
        in_channels = linear.in_features // (kh * kw)
    if in_channels * kh * kw != linear.in_features:
        raise ValueError(
            f"Linear with {linear.in_features} inputs cannot be a Conv2d with {in_channels} channels "
            f"and a {kh}x{kw} kernel ({in_channels * kh * kw} inputs)"
        )
    conv = nn.Conv2d(in_channels, linear.out_features, (kh, kw), bias=linear.bias is not None)
    conv = conv.to(device=linear.weight.device, dtype=linear.weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(linear.weight.view(linear.out_features, in_channels, kh, kw))
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


def conv2d_to_linear(conv: nn.Conv2d) -> nn.Linear:
    """Exact copy of a ``Conv2d`` as an ``nn.Linear`` over ``C * kh * kw`` inputs.

    The Linear equals the convolution at one position: on a 1x1 kernel at every pixel (channels
    last), on a larger kernel for an input exactly the kernel's size, flattened.
    """
    if conv.groups != 1 or conv.dilation != (1, 1) or conv.padding not in ((0, 0), "valid"):
        raise ValueError("only a Conv2d with groups 1, dilation 1 and no padding is a Linear")
    out_channels = conv.out_channels
    linear = nn.Linear(conv.weight[0].numel(), out_channels, bias=conv.bias is not None)
    linear = linear.to(device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        linear.weight.copy_(conv.weight.reshape(out_channels, -1))
        if conv.bias is not None:
            linear.bias.copy_(conv.bias)
    return linear
