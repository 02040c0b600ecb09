"""Linear -> BatchNorm blocks of a grouped shared MLP in training, differentiated by hand.

A set-abstraction MLP runs ``Conv(1x1) -> BatchNorm -> ReLU`` on ``M = B * S * K`` rows and ends in a
max over each group's ``K`` rows. Two of its layers need much less than autograd stores and computes
for them, because BatchNorm with batch statistics is a per-channel affine map ``y = a u + c``
(``a = gamma / std``) whose backward is ``a`` times the gradient minus two per-channel mean terms:

* :func:`linear_batch_norm_max`, the last layer and the max. Flipping the sign of the weight rows
  whose ``gamma < 0`` (exact in floating point) makes every ``a`` non-negative, so
  ``max_k y = |a| max_k u + c``: the max runs on the product and only the ``(G, C)`` maxima are
  normalised. In backward the gradient is zero except at each group's argmax, so the gradient of
  ``u`` is a per-channel affine function of ``u`` (computed in place over it) plus the incoming
  gradient at the argmax rows: no zero-filled ``(M, C)`` block, no scatter into it, no BatchNorm
  backward passes.
* :func:`narrow_linear_batch_norm_relu`, a first layer with few inputs (a set abstraction's 3
  coordinates). The statistics of ``u = x W^T`` follow from the mean and ``C_in x C_in`` covariance
  of ``x``, so the normalisation folds into the product's weights and bias (one ``addmm`` writes
  ``relu(y)``), and every gradient follows from ``dy^T x``, one product over the ``(M, C)`` gradient.

Same functions and gradients as ``Linear`` + ``BatchNorm`` (+ ReLU / max) up to rounding, tested in
float64; running statistics are updated as the BatchNorm module would update them. The convolution's
bias, cancelled by the batch mean, gets its true gradient, zero. Not for autocast, SyncBatchNorm or
running-statistics (eval) mode: callers keep the modules there.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from .grouping import group_max

__all__ = ["linear_batch_norm_max", "narrow_linear_batch_norm_relu", "update_running_stats"]

# Rows per block in _column_mean_var: the centred block (a few MiB at most) stays in cache.
_STATS_ROWS = 2048


def linear_batch_norm_max(x: Tensor, linear: nn.Module, norm: nn.modules.batchnorm._BatchNorm, group_size: int) -> Tensor:
    """``max`` over groups of ``group_size`` rows of ``norm(linear(x))``, with batch statistics.

    Args:
        x: ``(M, C_in)`` rows, ``M = G * group_size``, each group's rows consecutive.
        linear: a ``Linear`` or 1x1 convolution ``C_in -> C``.
        norm: a BatchNorm over ``C`` channels using batch statistics.
        group_size: ``K`` rows per group.

    Returns ``(G, C)``: per group and channel, the largest normalised value. Backward through it once
    (the saved ``(M, C)`` product becomes the gradient's buffer); a second backward raises.
    """
    weight, bias, gamma, beta = _parameters(linear, norm, x)
    out, mean, var = _LinearBatchNormMax.apply(x, weight, bias, gamma, beta, group_size, norm.eps)
    update_running_stats(norm, mean + bias.detach(), var, x.shape[0])
    return out


def narrow_linear_batch_norm_relu(x: Tensor, linear: nn.Module, norm: nn.modules.batchnorm._BatchNorm) -> Tensor:
    """``relu(norm(linear(x)))`` on rows ``x (M, C_in)`` -> ``(M, C)``, statistics from ``x``'s moments.

    Pays off when ``C_in`` is small against ``C`` (the ``C_in x C_in`` covariance and ``C x C_in``
    products are then free next to a pass over ``(M, C)``).
    """
    weight, bias, gamma, beta = _parameters(linear, norm, x)
    out, mean, var = _NarrowLinearBatchNormReLU.apply(x, weight, bias, gamma, beta, norm.eps)
    update_running_stats(norm, mean + bias.detach(), var, x.shape[0])
    return out


def _parameters(linear: nn.Module, norm: nn.Module, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``weight (C, C_in)``, ``bias``, ``gamma``, ``beta`` ``(C,)``, absent ones as constants."""
    weight = linear.weight.flatten(1)
    c = weight.shape[0]

    def const(value: float) -> Tensor:
        return torch.full((c,), value, dtype=x.dtype, device=x.device)

    bias = linear.bias if linear.bias is not None else const(0.0)
    gamma = norm.weight if norm.weight is not None else const(1.0)
    beta = norm.bias if norm.bias is not None else const(0.0)
    return weight, bias, gamma, beta


def update_running_stats(norm: nn.modules.batchnorm._BatchNorm, mean: Tensor, var: Tensor, m: int) -> None:
    """What ``norm`` does to its buffers in a training step on ``m`` values per channel whose batch
    ``mean`` and biased ``var`` are given (it keeps the unbiased variance); nothing in eval mode."""
    if not (norm.training and norm.track_running_stats):
        return
    with torch.no_grad():
        norm.num_batches_tracked.add_(1)
        momentum = norm.momentum if norm.momentum is not None else 1.0 / float(norm.num_batches_tracked)
        dtype = norm.running_mean.dtype  # the statistics may come in the autocast dtype
        norm.running_mean.lerp_(mean.to(dtype), momentum)
        norm.running_var.lerp_(var.to(dtype) * (m / max(m - 1, 1)), momentum)


def _column_mean_var(u: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and biased variance of each column of ``u (M, C)``: two passes, the second over centred blocks.

    ``torch.var_mean(u, dim=0)`` is the one-call way, but on CPU it runs a Welford update per element
    (measured 530 ms on 262144 x 128 floats, against ~25 ms here). Column sums are matrix products
    over blocks of rows, partial sums per block then added; the same for the centred squares.
    """
    m, c = u.shape
    rows = min(_STATS_ROWS, m)
    whole = m // rows * rows
    ones = u.new_ones(1, rows)
    blocks = u[:whole].view(-1, rows, c)  # (n, rows, C)
    total = torch.bmm(ones.expand(blocks.shape[0], 1, rows), blocks).sum((0, 1)) + u[whole:].sum(0)
    mean = total / m
    squares = u.new_empty(blocks.shape[0] + 1, c)
    buffer = u.new_empty(rows, c)
    for i, block in enumerate(u.split(rows)):
        centred = torch.sub(block, mean, out=buffer[: block.shape[0]])
        centred.mul_(centred)
        torch.mm(ones[:, : block.shape[0]], centred, out=squares[i : i + 1])
    if m == whole:
        squares = squares[:-1]
    return mean, squares.sum(0) / m


class _LinearBatchNormMax(torch.autograd.Function):
    """``x (M, C_in) -> (G, C)``; also returns the batch mean and biased variance of ``x W^T``."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, gamma: Tensor, beta: Tensor, k: int, eps: float):
        sign = torch.where(gamma < 0, -1.0, 1.0).to(weight.dtype)  # (C,)
        signed_weight = weight * sign.unsqueeze(1)  # (C, C_in): rows with gamma < 0 negated
        u = x @ signed_weight.t()  # (M, C) = sign * (x W^T); the bias is cancelled by the batch mean
        mean, var = _column_mean_var(u)  # (C,), of the signed product
        rstd = torch.rsqrt(var + eps)
        top, arg = group_max(u, k)  # (G, C): |a| u + c is largest where u is
        scale = gamma.abs() * rstd  # |a|
        out = (top - mean) * scale + beta
        ctx.save_for_backward(x, signed_weight, u, top, arg, mean, rstd, gamma, sign)
        ctx.k = k
        ctx.used = False
        ctx.mark_non_differentiable(mean, var)
        return out, mean * sign, var

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor, _mean_grad: Tensor, _var_grad: Tensor):
        if ctx.used:
            raise RuntimeError("linear_batch_norm_max: a second backward through the same step (its buffer is reused)")
        ctx.used = True
        x, signed_weight, u, top, arg, mean, rstd, gamma, sign = ctx.saved_tensors
        m, c = u.shape
        scale = gamma.abs() * rstd  # (C,)
        # BatchNorm's backward of g, non-zero only at the argmax rows, xhat = (u - mean) * rstd:
        # du = scale * (g - sum(g) / M - xhat * sum(g * xhat) / M).
        grad_sum = grad.sum(0)  # (C,) = d beta
        grad_xhat_sum = (grad * (top - mean)).sum(0) * rstd  # (C,) = d |gamma|
        slope = -scale * rstd * grad_xhat_sum / m
        offset = -scale * grad_sum / m - slope * mean
        grad_u = u.mul_(slope).add_(offset)  # (M, C), in place: u is not needed any more
        grad_u.view(-1, ctx.k, c).scatter_add_(1, arg.unsqueeze(1), (grad * scale).unsqueeze(1))
        grad_x = grad_u @ signed_weight if ctx.needs_input_grad[0] else None  # (M, C_in)
        grad_weight = (grad_u.t() @ x) * sign.unsqueeze(1) if ctx.needs_input_grad[1] else None
        grad_bias = torch.zeros_like(grad_sum) if ctx.needs_input_grad[2] else None
        grad_gamma = grad_xhat_sum * sign if ctx.needs_input_grad[3] else None
        return grad_x, grad_weight, grad_bias, grad_gamma, grad_sum, None, None


class _NarrowLinearBatchNormReLU(torch.autograd.Function):
    """``x (M, C_in) -> relu(BN(x W^T)) (M, C)``; also returns the batch mean and biased variance of ``x W^T``."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, gamma: Tensor, beta: Tensor, eps: float):
        m = x.shape[0]
        x_mean = x.mean(0)  # (C_in,)
        centred = x - x_mean  # (M, C_in), narrow
        cov = centred.t() @ centred / m  # (C_in, C_in)
        mean = weight @ x_mean  # (C,) mean of x W^T
        var = ((weight @ cov) * weight).sum(1).clamp_min(0)  # (C,) w_c^T cov w_c
        rstd = torch.rsqrt(var + eps)
        a = gamma * rstd
        out = torch.addmm(beta - mean * a, x, (weight * a.unsqueeze(1)).t()).relu_()  # (M, C)
        ctx.save_for_backward(centred, weight, cov, out, rstd, gamma)
        ctx.mark_non_differentiable(mean, var)
        return out, mean, var

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor, _mean_grad: Tensor, _var_grad: Tensor):
        centred, weight, cov, out, rstd, gamma = ctx.saved_tensors
        m = centred.shape[0]
        a = gamma * rstd  # (C,)
        dy = torch.ops.aten.threshold_backward(grad, out, 0)  # (M, C): through the ReLU
        # One product over dy gives every sum BatchNorm's backward needs: dy^T [x - mean(x), 1].
        moments = dy.t() @ torch.cat([centred, centred.new_ones(m, 1)], dim=1)  # (C, C_in + 1)
        dy_x, grad_sum = moments[:, :-1], moments[:, -1]  # sum_m dy x_c^T, sum_m dy (= d beta)
        grad_xhat_sum = (dy_x * weight).sum(1) * rstd  # (C,) sum(dy * xhat) (= d gamma)
        # du = a (dy - sum(dy) / M - xhat sum(dy xhat) / M), xhat = x_c W^T rstd; du never exists whole.
        shrink = a * rstd * grad_xhat_sum / m  # (C,) the xhat term's per-channel factor
        grad_x = None
        if ctx.needs_input_grad[0]:  # du W = dy diag(a) W - 1 (a sum(dy) / M)^T W - x_c W^T diag(shrink) W
            grad_x = dy @ (weight * a.unsqueeze(1)) - centred @ (weight.t() @ (weight * shrink.unsqueeze(1)))
            grad_x -= (a * grad_sum / m) @ weight
        grad_weight = None
        if ctx.needs_input_grad[1]:  # du^T x = diag(a) dy^T x_c - diag(shrink) W (x_c^T x_c)
            grad_weight = a.unsqueeze(1) * dy_x - shrink.unsqueeze(1) * (weight @ cov) * m
        grad_bias = torch.zeros_like(grad_sum) if ctx.needs_input_grad[2] else None
        grad_gamma = grad_xhat_sum if ctx.needs_input_grad[3] else None
        return grad_x, grad_weight, grad_bias, grad_gamma, grad_sum, None
