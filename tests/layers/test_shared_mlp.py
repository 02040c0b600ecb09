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


# --- SharedMLP.max_pool: the fast "last layer + max over points" path -------------------------------


def _plain_pool(mlp: SharedMLP, x: torch.Tensor) -> torch.Tensor:
    return mlp(x).amax(dim=2)


def _twins(channels, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    mlp = SharedMLP(channels).to(dtype)
    with torch.no_grad():  # non-trivial BN affine parameters, some negative scales
        for module in mlp:
            if isinstance(module, nn.BatchNorm1d):
                module.weight.uniform_(-1.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    import copy

    return mlp, copy.deepcopy(mlp)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_max_pool_matches_plain_pool_in_training(momentum):
    plain, fused = _twins([16, 32, 48, 96])
    for mlp in (plain, fused):
        for module in mlp:
            if isinstance(module, nn.BatchNorm1d):
                module.momentum = momentum
    x = _seeded_randn(3, 16, 50, seed=1).requires_grad_(True)
    x2 = x.detach().clone().requires_grad_(True)
    grad = _seeded_randn(3, 96, seed=2)
    for _ in range(2):  # twice: running statistics accumulate the same way
        x.grad = x2.grad = None
        plain.zero_grad()
        fused.zero_grad()
        expected = _plain_pool(plain, x)
        got = fused.max_pool(x2)
        expected.backward(grad)
        got.backward(grad)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(x2.grad, x.grad, rtol=0, atol=1e-12)
    for (name, p), (_, q) in zip(plain.named_parameters(), fused.named_parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=1e-12, msg=name)
    for (name, p), (_, q) in zip(plain.named_buffers(), fused.named_buffers()):
        torch.testing.assert_close(q, p, rtol=0, atol=1e-12, msg=name)


def test_max_pool_matches_plain_pool_in_eval_and_chunks():
    plain, fused = _twins([8, 32, 64])
    with torch.no_grad():
        plain.train()(_seeded_randn(4, 8, 30, seed=3))  # give BN running statistics
    fused.load_state_dict(plain.state_dict())
    plain.eval()
    fused.eval()
    x = _seeded_randn(5, 8, 30, seed=4)
    with torch.no_grad():
        expected = _plain_pool(plain, x)
        for chunk in (1, 64 * 30, 10**9):  # one cloud per chunk, a few, all at once
            torch.testing.assert_close(fused.max_pool(x, chunk_elements=chunk), expected, rtol=0, atol=1e-12)


def test_max_pool_without_batch_norm_and_with_hooks_falls_back_correctly():
    torch.manual_seed(0)
    mlp = SharedMLP([4, 16, 32], batch_norm=False).double()
    x = _seeded_randn(2, 4, 20, seed=5)
    torch.testing.assert_close(mlp.max_pool(x), _plain_pool(mlp, x), rtol=0, atol=1e-12)
    seen = []
    handle = mlp[-1].register_forward_hook(lambda _m, _i, out: seen.append(out.shape))
    mlp.max_pool(x)
    handle.remove()
    assert seen == [(2, 32, 20)]  # a hook sees the full last-layer output, so max_pool took the plain path


def _pointnets(dtype: torch.dtype):
    """(plain-pooling PointNet, max_pool PointNet), identical weights, in ``dtype``."""
    from pointnet_kit import create_model

    models = []
    for plain in (True, False):
        model = create_model("pointnet", num_classes=5, seed=0).to(dtype).train()
        if plain:
            for module in model.modules():
                if isinstance(module, SharedMLP):
                    module.max_pool = lambda x, m=module: _plain_pool(m, x)
        models.append(model)
    return models


def _train(model: nn.Module, dtype: torch.dtype, steps: int) -> list[float]:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for step in range(steps):
        points = torch.randn(6, 128, 3, generator=generator).to(dtype)
        labels = torch.randint(0, 5, (6,), generator=generator)
        torch.manual_seed(step)  # the same dropout mask for both
        loss = nn.functional.cross_entropy(model(points)["logits"], labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_fused_training_steps_are_the_same_computation():
    """Adam steps of PointNet with max_pool vs the plain pooling: equal in float64 to rounding.

    (In float32 several steps are not a fair comparison: training amplifies rounding, and the plain
    path itself drifts ~1e-3 from float64 after four steps; the next test compares one step.)
    """
    plain, fused = _pointnets(torch.float64)
    assert _train(fused, torch.float64, 3) == pytest.approx(_train(plain, torch.float64, 3), rel=1e-10)
    # Parameters move ~1e-3 per step; gradients that are analytically ~0 (the T-Nets' heads while their
    # last FC is still near zero) carry float64 noise that Adam scales up to ~1e-9: far below a real bug.
    for (name, p), (_, q) in zip(plain.state_dict().items(), fused.state_dict().items()):
        torch.testing.assert_close(q, p, rtol=0, atol=1e-7, msg=name)


def test_fused_training_step_matches_the_plain_path_in_float32():
    plain, fused = _pointnets(torch.float32)
    assert _train(fused, torch.float32, 1) == pytest.approx(_train(plain, torch.float32, 1), rel=1e-5)
    # Relative to the largest gradient: some gradients are analytically zero and hold only rounding noise.
    scale = max(p.grad.abs().max().item() for p in plain.parameters())
    for (name, p), (_, q) in zip(plain.named_parameters(), fused.named_parameters()):
        assert (q.grad - p.grad).abs().max().item() <= 1e-5 * scale, name
