"""SharedMLP and the exact Linear <-> Conv1d / Conv2d conversions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pointnet_kit.layers import (
    SharedMLP,
    conv1d_to_linear,
    conv2d_to_linear,
    linear_to_conv1d,
    linear_to_conv2d,
)


def _seeded_randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_linear_conv1d_round_trip_is_exact():
    linear = nn.Linear(5, 7).double()
    conv = linear_to_conv1d(linear)
    assert conv.weight.shape == (7, 5, 1) and conv.weight.dtype == torch.float64
    back = conv1d_to_linear(conv)
    assert torch.equal(back.weight, linear.weight) and torch.equal(back.bias, linear.bias)
    x = _seeded_randn(2, 5, 9)  # (B, C, N)
    expected = linear(x.transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(conv(x), expected, rtol=0, atol=1e-12)


def test_conversions_keep_missing_bias():
    conv = linear_to_conv1d(nn.Linear(4, 3, bias=False))
    assert conv.bias is None and conv1d_to_linear(conv).bias is None
    conv2 = linear_to_conv2d(nn.Linear(4, 3, bias=False))
    assert conv2.bias is None and conv2d_to_linear(conv2).bias is None


def test_conv1d_to_linear_rejects_wider_kernels():
    with pytest.raises(ValueError, match="kernel_size=1"):
        conv1d_to_linear(nn.Conv1d(4, 3, kernel_size=3))


def test_linear_conv2d_1x1_round_trip_is_exact():
    linear = nn.Linear(6, 4).double()
    conv = linear_to_conv2d(linear)
    assert conv.weight.shape == (4, 6, 1, 1)
    back = conv2d_to_linear(conv)
    assert torch.equal(back.weight, linear.weight) and torch.equal(back.bias, linear.bias)
    image = _seeded_randn(2, 6, 5, 3)  # (B, C, H, W)
    expected = linear(image.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(conv(image), expected, rtol=0, atol=1e-12)


def test_full_size_kernel_is_the_fc_on_the_flattened_image():
    linear = nn.Linear(2 * 4 * 3, 5).double()
    conv = linear_to_conv2d(linear, in_channels=2, kernel_size=(4, 3))
    assert conv.weight.shape == (5, 2, 4, 3)
    image = _seeded_randn(3, 2, 4, 3)
    torch.testing.assert_close(conv(image).flatten(1), linear(image.flatten(1)), rtol=0, atol=1e-12)
    back = conv2d_to_linear(conv)
    assert torch.equal(back.weight, linear.weight)


def test_linear_to_conv2d_rejects_sizes_that_do_not_multiply_out():
    with pytest.raises(ValueError, match="cannot be a Conv2d"):
        linear_to_conv2d(nn.Linear(10, 2), in_channels=3, kernel_size=2)


def test_conv2d_to_linear_rejects_padding_and_groups():
    with pytest.raises(ValueError):
        conv2d_to_linear(nn.Conv2d(4, 4, 3, padding=1))
    with pytest.raises(ValueError):
        conv2d_to_linear(nn.Conv2d(4, 4, 1, groups=2))


@pytest.mark.parametrize(
    "backend, shape_in, shape_out", [("conv", (2, 3, 10), (2, 32, 10)), ("linear", (2, 10, 3), (2, 10, 32))]
)
def test_shared_mlp_shapes(backend, shape_in, shape_out):
    mlp = SharedMLP([3, 16, 32], backend=backend)
    assert mlp(torch.randn(*shape_in)).shape == shape_out


def test_shared_mlp_without_last_activation_ends_in_a_biased_layer():
    mlp = SharedMLP([3, 16, 8], last_activation=False)
    assert isinstance(mlp[-1], nn.Conv1d) and mlp[-1].bias is not None
    out = mlp(_seeded_randn(2, 3, 20, dtype=torch.float32))
    assert (out < 0).any()  # no trailing ReLU


def test_shared_mlp_bad_channels():
    with pytest.raises(ValueError, match="at least two widths"):
        SharedMLP([3])
    with pytest.raises(ValueError, match="backend"):
        SharedMLP([3, 8], backend="dense")
    with pytest.raises(RuntimeError):
        SharedMLP([3, 8])(torch.randn(2, 4, 10))  # 4 channels into a 3-channel MLP


def _state_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].flatten(), sb[k].flatten()) for k in sa)


def test_shared_mlp_converted_both_ways_is_exact():
    conv_mlp = SharedMLP([3, 16, 32])
    linear_mlp = conv_mlp.converted("linear")
    assert linear_mlp.backend == "linear" and _state_equal(conv_mlp, linear_mlp)
    assert _state_equal(linear_mlp.converted("conv"), conv_mlp)
    assert linear_mlp.converted("conv").state_dict()["0.weight"].shape == (16, 3, 1)


@pytest.mark.parametrize("train", [True, False])
def test_shared_mlp_backends_agree_forward_and_backward(train):
    torch.manual_seed(0)
    conv_mlp = SharedMLP([3, 16, 32]).double()
    with torch.no_grad():  # non-trivial running statistics for eval mode
        conv_mlp(_seeded_randn(4, 3, 50, seed=3) * 2 + 1)
    conv_mlp.train(train)
    linear_mlp = conv_mlp.converted("linear")
    x = _seeded_randn(4, 3, 50, seed=1)
    grad_out = _seeded_randn(4, 32, 50, seed=2)

    x_conv = x.clone().requires_grad_(True)
    out_conv = conv_mlp(x_conv)
    out_conv.backward(grad_out)
    x_lin = x.transpose(1, 2).clone().requires_grad_(True)
    out_lin = linear_mlp(x_lin)
    out_lin.backward(grad_out.transpose(1, 2))

    torch.testing.assert_close(out_lin.transpose(1, 2), out_conv, rtol=0, atol=1e-12)
    torch.testing.assert_close(x_lin.grad.transpose(1, 2), x_conv.grad, rtol=0, atol=1e-12)
    for (name, p_conv), p_lin in zip(conv_mlp.named_parameters(), linear_mlp.parameters(), strict=True):
        torch.testing.assert_close(
            p_lin.grad.flatten(), p_conv.grad.flatten(), rtol=1e-12, atol=1e-12, msg=name
        )
    for b_conv, b_lin in zip(
        conv_mlp.buffers(), linear_mlp.buffers(), strict=True
    ):  # running stats moved alike
        torch.testing.assert_close(b_lin, b_conv, rtol=0, atol=1e-12)
