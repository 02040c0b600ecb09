"""The PointNet shared MLP: one fully connected layer applied to every point, written as ``Conv1d(k=1)``.

:meth:`SharedMLP.max_pool` is the fast path for "shared MLP, then max over the points": it never
builds the last layer's ``(B, C, N)`` output (see its docstring for how, and why it is exact).
"""

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


# Elements of the last layer's output computed at once by max_pool (4 MiB of float32, one
# 1024-point cloud at width 1024): large enough for an efficient GEMM, small enough to stay in cache
# for the max that follows.
POOL_CHUNK_ELEMENTS = 1 << 20


def _has_hooks(module: nn.Module) -> bool:
    return any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())


@torch.no_grad()
def _chunked_max(
    weight: torch.Tensor, x: torch.Tensor, chunk_elements: int, with_indices: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``max over n of (weight @ x[b])[:, n]``: values and (optionally) indices ``(B, C)``, a few clouds at a time.

    ``weight: (C, C_in)``, ``x: (B, C_in, N)``; the ``(B, C, N)`` product never exists whole. Every
    chunk's product is written into one reused buffer and its max into the preallocated result: a
    fresh multi-MiB tensor per chunk costs more in page faults on CPU than the GEMM that fills it
    (1.8x slower measured on 32 clouds, 1024 points, 128 -> 1024). The reduction runs over the
    contiguous last axis (several times faster than over a strided one), and ``amax`` (values only)
    is several times faster than ``max`` with indices. Under autocast the product is computed in the
    autocast dtype, as a plain ``bmm`` would be.
    """
    batch, _, num_points = x.shape
    dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
    weight = weight.to(dtype)
    step = max(1, chunk_elements // max(1, weight.shape[0] * num_points))
    values = torch.empty(batch, weight.shape[0], dtype=dtype, device=x.device)
    indices = torch.empty(batch, weight.shape[0], dtype=torch.long, device=x.device) if with_indices else None
    buffer = torch.empty(min(step, batch), weight.shape[0], num_points, dtype=dtype, device=x.device)
    with torch.autocast(x.device.type, enabled=False):
        for start in range(0, batch, step):
            chunk = x[start : start + step].to(dtype)
            end = start + chunk.shape[0]
            # bmm writes (b, C, N) directly; matmul would compute (b N, C) and then copy it transposed.
            y = torch.bmm(weight.expand(chunk.shape[0], -1, -1), chunk, out=buffer[: chunk.shape[0]])
            if indices is not None:
                torch.max(y, dim=2, out=(values[start:end], indices[start:end]))
            else:
                torch.amax(y, dim=2, out=values[start:end])
    return values, indices


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

    def _fusable_tail(self) -> tuple[int, nn.Conv1d, nn.BatchNorm1d | None] | None:
        """``(start, conv, bn)`` when the last layer is ``Conv1d(k=1) [-> BatchNorm1d] -> ReLU``, else None.

        ``start`` indexes the conv; ``nn.Identity`` (a BatchNorm removed by
        :func:`~pointnet_kit.layers.fuse.fold_batchnorm`) is skipped.
        """
        modules = list(self)
        if self.backend != "conv" or not modules or not isinstance(modules[-1], nn.ReLU):
            return None
        i = len(modules) - 2
        while i >= 0 and isinstance(modules[i], nn.Identity):
            i -= 1
        bn = modules[i] if i >= 0 and isinstance(modules[i], nn.BatchNorm1d) else None
        if bn is not None:
            i -= 1
        conv = modules[i] if i >= 0 else None
        if not isinstance(conv, nn.Conv1d) or conv.kernel_size != (1,) or conv.groups != 1 or conv.stride != (1,):
            return None
        if bn is not None and (conv.bias is not None or not bn.affine or not bn.track_running_stats):
            return None
        return i, conv, bn

    def max_pool(self, x: torch.Tensor, chunk_elements: int = POOL_CHUNK_ELEMENTS) -> torch.Tensor:
        """``self(x).max(dim=2).values`` without building the last layer's ``(B, C, N)`` output.

        The last layer is ``ReLU(BN(W h))`` with ``h`` the previous layer's output ``(B, C_in, N)``.
        BN's batch statistics of ``z = W h`` follow from ``h``'s mean and centered Gram matrix
        (``C_in x C_in``): ``mean(z) = W mean(h)``, ``var(z) = diag(W G W^T) / (B N)``. BN + ReLU is
        then a per-channel monotone map, so the max over points is reached at the argmax of the
        BN-folded product ``(gamma / sigma) W h``, found a few clouds at a time and never stored.
        The pooled value is recomputed from the winning points' ``h`` with differentiable ops, so
        autograd gives exactly the gradient of the plain computation (max routes the gradient to its
        argmax; BN's gradient through its statistics flows through the Gram matrix) while the
        backward pass never touches a ``(B, C, N)`` tensor. Same result up to float rounding; the
        running statistics are updated as ``nn.BatchNorm1d`` does.

        Falls back to the plain computation when the last layer is not ``Conv1d [-> BN] -> ReLU`` or
        when forward hooks are attached (they must see the full output).

        Shapes: ``x: (B, channels[0], N) -> (B, channels[-1])``.
        """
        tail = self._fusable_tail()
        # Under torch.export the plain graph is traced: the chunking below would specialise on the
        # batch and point counts, and an exported model must take any.
        if tail is None or _has_hooks(self) or torch.compiler.is_exporting():
            return self(x).max(dim=2).values
        start, conv, bn = tail
        h = x
        for module in list(self)[:start]:
            h = module(h)  # ends as the last layer's input (B, C_in, N)
        weight = conv.weight.squeeze(-1)  # (C, C_in)
        differentiable = torch.is_grad_enabled()
        if bn is None:
            bias = conv.bias if conv.bias is not None else 0.0
            values, indices = _chunked_max(weight, h, chunk_elements, with_indices=differentiable)
            return torch.relu((self._at(h, weight, indices) if differentiable else values) + bias)
        if bn.training:
            mean, var = self._batch_stats(h, weight, bn)
        else:
            mean, var = bn.running_mean, bn.running_var
        scale = bn.weight * torch.rsqrt(var + bn.eps)  # (C,)
        values, indices = _chunked_max(weight * scale.detach()[:, None], h, chunk_elements, with_indices=differentiable)
        if not differentiable:
            return torch.relu(values + (bn.bias - mean * scale))
        return torch.relu((self._at(h, weight, indices) - mean) * scale + bn.bias)

    @staticmethod
    def _at(h: torch.Tensor, weight: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """``(W h)[b, c, indices[b, c]]``: ``(B, C)``, differentiable in ``h`` and ``W``."""
        picked = torch.gather(h, 2, indices.unsqueeze(1).expand(-1, h.shape[1], -1))  # (B, C_in, C)
        return (picked * weight.t().unsqueeze(0)).sum(dim=1)

    @staticmethod
    def _batch_stats(h: torch.Tensor, weight: torch.Tensor, bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
        """BN's batch mean and biased variance of ``W h`` from ``h``'s statistics; updates running stats."""
        count = h.shape[0] * h.shape[2]
        if count < 2:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {tuple(h.shape)}")
        # In float32 even under autocast: the statistics are small and cancellation-prone.
        with torch.autocast(h.device.type, enabled=False):
            dtype = torch.promote_types(h.dtype, torch.float32)
            h, weight = h.to(dtype), weight.to(dtype)
            h_mean = h.mean(dim=(0, 2))  # (C_in,)
            centered = h - h_mean[:, None]
            gram = torch.bmm(centered, centered.transpose(1, 2)).sum(dim=0)  # (C_in, C_in)
            mean = weight @ h_mean  # (C,)
            var = ((weight @ gram) * weight).sum(dim=1) / count  # (C,) biased, as BN normalises with
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
            factor = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
            bn.running_mean.lerp_(mean.detach(), factor)
            bn.running_var.lerp_(var.detach() * (count / (count - 1)), factor)
        return mean, var

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
