"""The hand-differentiated Linear -> BatchNorm blocks equal the modules they replace (float64)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from pointnet_kit.layers import fused_linear
from pointnet_kit.layers.fused_linear import linear_batch_norm_max, narrow_linear_batch_norm_relu


def _modules(
    c_in: int, c_out: int, momentum: float | None, zero_gamma: bool = False
) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    """A 1x1 conv with bias and a BatchNorm whose gamma has negative and positive (and a zero) entries."""
    torch.manual_seed(0)
    conv = nn.Conv2d(c_in, c_out, 1).double()
    norm = nn.BatchNorm2d(c_out, momentum=momentum).double()
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(-1.5, 1.5, c_out, dtype=torch.float64) + 0.1)  # no zero
        if zero_gamma:  # not before a max: there every row ties and the argmax (so d gamma) is a free choice
            norm.weight[c_out // 3] = 0.0
        norm.bias.uniform_(-0.5, 0.5)
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
    return conv, norm


def _reference(x: torch.Tensor, conv: nn.Conv2d, norm: nn.BatchNorm2d) -> torch.Tensor:
    """The modules as autograd runs them, on rows ``(M, C_in)`` laid out as ``(M, C_in, 1, 1)``.

    (Not as ``(1, C_in, M, 1)`` through transposes: torch 2.13's CPU BatchNorm2d backward returns wrong
    gradients for a ``(1, C, M, 1)`` input whose incoming gradient has strides ``(C, 1, C, 1)``.)"""
    return norm(conv(x.view(*x.shape, 1, 1))).view(x.shape[0], -1)  # (M, C)


def _check_same(fused, reference, inputs, fused_mods, ref_mods) -> None:
    out_f, out_r = fused(inputs[0]), reference(inputs[1])
    torch.testing.assert_close(out_f, out_r, rtol=0, atol=1e-10)
    grad = torch.randn(out_r.shape, generator=torch.Generator().manual_seed(3), dtype=out_r.dtype)
    out_f.backward(grad)
    out_r.backward(grad)
    torch.testing.assert_close(inputs[0].grad, inputs[1].grad, rtol=0, atol=1e-10)
    for (name, p), q in zip(fused_mods.named_parameters(), ref_mods.parameters()):
        assert p.grad is not None, name
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-9)
    for p, q in zip(fused_mods.buffers(), ref_mods.buffers()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-12)


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("rows, group", [(6 * 8, 8), (3 * 50, 50)])
def test_linear_batch_norm_max_is_linear_norm_then_max(momentum, rows, group):
    conv, norm = _modules(5, 9, momentum)
    fused_mods, ref_mods = nn.Sequential(conv, norm), copy.deepcopy(nn.Sequential(conv, norm))
    x = torch.randn(rows, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x[group : 2 * group] = x[group]  # a group of identical rows (ball padding): ties in the max
    inputs = (x.clone().requires_grad_(), x.clone().requires_grad_())
    for _ in range(2):  # the running statistics follow over steps too
        _check_same(
            lambda t: linear_batch_norm_max(t, fused_mods[0], fused_mods[1], group),
            lambda t: _reference(t, *ref_mods).view(-1, group, 9).max(dim=1).values,
            inputs, fused_mods, ref_mods,
        )
        for t in (*inputs, *fused_mods.parameters(), *ref_mods.parameters()):
            t.grad = None
    assert fused_mods[1].num_batches_tracked.item() == 2


@pytest.mark.parametrize("momentum", [0.1, None])
def test_narrow_linear_batch_norm_relu_is_linear_norm_relu(momentum):
    conv, norm = _modules(3, 16, momentum, zero_gamma=True)
    fused_mods, ref_mods = nn.Sequential(conv, norm), copy.deepcopy(nn.Sequential(conv, norm))
    x = torch.randn(200, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 0.3 + 2.0
    inputs = (x.clone().requires_grad_(), x.clone().requires_grad_())
    _check_same(
        lambda t: narrow_linear_batch_norm_relu(t, fused_mods[0], fused_mods[1]),
        lambda t: torch.relu(_reference(t, *ref_mods)),
        inputs, fused_mods, ref_mods,
    )
    assert fused_mods[0].bias.grad.abs().max() == 0  # cancelled by the batch mean: its true gradient


def test_input_without_gradient_and_float32():
    conv, norm = _modules(3, 16, 0.1)
    conv, norm = conv.float(), norm.float()
    x = torch.randn(4 * 32, 3, generator=torch.Generator().manual_seed(4))
    out = linear_batch_norm_max(narrow_linear_batch_norm_relu(x, conv, norm), nn.Linear(16, 8), nn.BatchNorm1d(8), 32)
    out.sum().backward()
    assert out.shape == (4, 8) and out.dtype == torch.float32
    assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()


def test_second_backward_through_the_max_raises():
    conv, norm = _modules(4, 6, 0.1)
    x = torch.randn(20, 4, dtype=torch.float64, requires_grad=True)
    out = linear_batch_norm_max(x, conv, norm, 5)
    out.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="second backward"):
        out.sum().backward()


@pytest.mark.parametrize("rows", [1, 7, 2048, 5000])
def test_column_mean_var_matches_var_mean(rows, monkeypatch):
    monkeypatch.setattr(fused_linear, "_STATS_ROWS", 64)
    u = torch.randn(rows, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(rows)) * 3 + 10
    mean, var = fused_linear._column_mean_var(u)
    want_var, want_mean = torch.var_mean(u, dim=0, correction=0)
    torch.testing.assert_close(mean, want_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(var, want_var, rtol=1e-10, atol=1e-12)
