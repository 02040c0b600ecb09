"""ConvMLP / SharedMLP2d: layer structure, parameter counts, and the per-pair Linear it stands for."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pointnet_kit.layers.conv_mlp import ConvMLP, SharedMLP2d, leaky_relu


def test_structure_and_counts():
    mlp = SharedMLP2d([3, 64, 128])
    kinds = [type(m) for m in mlp]
    assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    assert sum(p.numel() for p in mlp.parameters()) == (3 * 64 + 64 + 128) + (64 * 128 + 128 + 256)
    no_bias = ConvMLP([6, 64], dim=2, bias=False, activation=leaky_relu)
    assert sum(p.numel() for p in no_bias.parameters()) == 6 * 64 + 128
    assert isinstance(no_bias[2], nn.LeakyReLU) and no_bias[2].negative_slope == 0.2
    plain = ConvMLP([8, 16, 4], dim=1, norm=None, last_activation=False)
    assert [type(m) for m in plain] == [nn.Conv1d, nn.ReLU, nn.Conv1d]
    assert plain[-1].bias is not None  # an unnormalised last layer always keeps its bias
    with pytest.raises(ValueError):
        ConvMLP([8], dim=2)
    with pytest.raises(ValueError):
        ConvMLP([8, 4], dim=3)


def test_shapes_and_per_pair_linear():
    torch.manual_seed(0)
    mlp = ConvMLP([5, 7, 9], norm=None, last_activation=False).double()
    x = torch.randn(2, 5, 4, 3, dtype=torch.float64)  # (B, C, S, K)
    out = mlp(x)
    assert out.shape == (2, 9, 4, 3)
    w1, b1 = mlp[0].weight[:, :, 0, 0], mlp[0].bias
    w2, b2 = mlp[2].weight[:, :, 0, 0], mlp[2].bias
    pair = x[1, :, 2, 1]  # one (group, neighbour) pair
    want = w2 @ torch.relu(w1 @ pair + b1) + b2
    torch.testing.assert_close(out[1, :, 2, 1], want)
    assert ConvMLP([5, 7], dim=1)(torch.randn(2, 5, 10)).shape == (2, 7, 10)
