"""Fold eval-mode BatchNorm into the linear layer before it, for inference.

In eval mode ``BN(W x + b) = s * (W x + b - mean) + beta`` with ``s = gamma / sqrt(var + eps)``
per output channel, which is the layer ``W' = s W``, ``b' = s (b - mean) + beta``: one pass over
the activations fewer per layer and the same output up to float rounding.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

FOLDABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@torch.no_grad()
def fold_into(layer: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> None:
    """Fold ``bn`` (its running statistics) into ``layer`` in place; ``layer`` gains a bias if it had none.

    Raises:
        ValueError: ``layer`` is not a Linear/Conv{1,2,3}d, or ``bn`` has no running statistics or
            does not match the layer's output channels.
    """
    if not isinstance(layer, FOLDABLE):
        raise ValueError(f"cannot fold BatchNorm into {type(layer).__name__}; foldable: Linear, Conv1d/2d/3d")
    out_channels = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm without running statistics (track_running_stats=False)")
    if bn.num_features != out_channels:
        raise ValueError(f"BatchNorm has {bn.num_features} channels, the layer before it {out_channels}")
    weight = layer.weight
    scale = torch.rsqrt(bn.running_var.double() + bn.eps)
    if bn.affine:
        scale = scale * bn.weight.double()
    bias = layer.bias.double() if layer.bias is not None else torch.zeros(out_channels, dtype=torch.float64, device=weight.device)
    new_bias = (bias - bn.running_mean.double()) * scale
    if bn.affine:
        new_bias = new_bias + bn.bias.double()
    # Output channels are dim 0 of the weight for Linear and Conv (groups included).
    weight.copy_((weight.double() * scale.view(-1, *([1] * (weight.dim() - 1)))).to(weight.dtype))
    if layer.bias is None:
        layer.bias = nn.Parameter(new_bias.to(weight.dtype), requires_grad=weight.requires_grad)
    else:
        layer.bias.copy_(new_bias.to(layer.bias.dtype))


@torch.no_grad()
def fold_batchnorm(model: nn.Module, inplace: bool = False) -> nn.Module:
    """A copy of ``model`` (eval mode) with every BatchNorm that directly follows a foldable layer in
    an ``nn.Sequential`` folded into that layer and replaced by ``nn.Identity``.

    Works on any model whose ``layer -> BatchNorm`` pairs sit next to each other in an
    ``nn.Sequential`` (the layers of pointnet-kit); pairs wired in ``forward`` code are left alone.
    The copy computes the same function as ``model.eval()`` up to float rounding and is meant for
    inference only (its BatchNorms are gone). ``model`` itself is untouched unless ``inplace``.
    Sets ``folded_batchnorms`` on the result: how many were folded.
    """
    folded = model if inplace else copy.deepcopy(model)
    folded.eval()
    count = 0
    for module in folded.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for prev, name in zip(names, names[1:]):
            layer, bn = module._modules[prev], module._modules[name]
            if isinstance(bn, _BATCHNORMS) and isinstance(layer, FOLDABLE) and bn.track_running_stats:
                fold_into(layer, bn)
                module._modules[name] = nn.Identity()
                count += 1
    folded.folded_batchnorms = count
    return folded
