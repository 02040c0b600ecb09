"""PointNet++ (Qi et al., NeurIPS 2017): set abstraction, feature propagation, SSG/MSG classifiers, part seg.

A set-abstraction level picks ``S`` centroids by farthest point sampling, gathers up to ``K`` neighbours
within a radius of each, and runs one shared MLP on every (centroid, neighbour) pair, ``Conv2d(1x1)``
over ``(B, 3 + D, S, K)`` (neighbour offset from its centroid, then its features), max-pooled over
the ``K`` neighbours. Settings and widths follow the paper's released code (and so its parameter
counts: convolutions keep their bias before BatchNorm, as there).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import PointNetKitError
from ..layers import grouping
from ..layers.conv_mlp import ConvMLP, SharedMLP2d
from ..layers.fused_linear import linear_batch_norm_max, narrow_linear_batch_norm_relu, update_running_stats
from .contract import PointModel, check_io
from .registry import register_model

# (centroids S or None for group-all, radii, neighbours K per radius, MLP widths per radius)
SSG_LEVELS = [
    (512, [0.2], [32], [[64, 64, 128]]),
    (128, [0.4], [64], [[128, 128, 256]]),
    (None, [], [], [[256, 512, 1024]]),
]
MSG_LEVELS = [
    (512, [0.1, 0.2, 0.4], [16, 32, 128], [[32, 32, 64], [64, 64, 128], [64, 96, 128]]),
    (128, [0.2, 0.4, 0.8], [32, 64, 128], [[64, 64, 128], [128, 128, 256], [128, 128, 256]]),
    (None, [], [], [[256, 512, 1024]]),
]
# Largest fraction of distinct (centroid, neighbour) pairs for which the packed MLP is used in training.
PACKED_MAX_FILL = 0.5


class SetAbstraction(nn.Module):
    """One set-abstraction level, single- or multi-scale (one ball query + MLP per radius, outputs concatenated).

    Args:
        num_centroids: ``S``; ``None`` groups all points around the origin into one set (the last level).
        radii, num_neighbors: one ball (radius, ``K``) per scale; empty for group-all.
        in_features: ``D``, feature channels per input point (0: coordinates only).
        mlps: widths per scale, without the input width (``3 + D`` is prepended).

    ``forward(xyz (B, N, 3), features (B, D, N) | None) -> (centroids (B, S, 3), features (B, C', S))``,
    ``C'`` the sum of the scales' last widths. Centroids start from point 0 (deterministic, as the
    original kernel does); a cloud of fewer than ``S`` points uses all of them.
    """

    def __init__(
        self,
        num_centroids: int | None,
        radii: Sequence[float],
        num_neighbors: Sequence[int],
        in_features: int,
        mlps: Sequence[Sequence[int]],
    ) -> None:
        super().__init__()
        if num_centroids is not None and not (len(radii) == len(num_neighbors) == len(mlps) > 0):
            raise ValueError("radii, num_neighbors and mlps need one entry per scale")
        if num_centroids is None and len(mlps) != 1:
            raise ValueError("a group-all level has exactly one MLP")
        self.num_centroids = num_centroids
        self.radii = list(radii)
        self.num_neighbors = list(num_neighbors)
        self.mlps = nn.ModuleList(SharedMLP2d([3 + in_features, *widths]) for widths in mlps)
        self.out_channels = sum(widths[-1] for widths in mlps)
        # Run the MLP on the distinct (centroid, neighbour) pairs only when balls are mostly padding
        # (see _unique_pairs_mlp); False always runs the dense padded (B, C, S, K) block like the
        # reference code. Same function either way.
        self.skip_padding = True

    def forward(self, xyz: Tensor, features: Tensor | None) -> tuple[Tensor, Tensor]:
        points = xyz.transpose(1, 2)  # (B, 3, N)
        if features is not None:
            points = torch.cat([points, features], dim=1)  # (B, 3 + D, N)
        if self.num_centroids is None:  # one group of all N points, offsets from the origin
            centroids = xyz.new_zeros(xyz.shape[0], 1, 3)
            if self.skip_padding and not torch.compiler.is_exporting() and not torch.onnx.is_in_onnx_export():
                b, n, _ = xyz.shape
                everything = torch.arange(n, device=xyz.device).expand(b, 1, n)  # (B, 1, N): one ball
                return centroids, _unique_pairs_mlp(self.mlps[0], points, centroids, everything, None)  # (B, C', 1)
            return centroids, self.mlps[0](points.unsqueeze(2)).max(dim=3).values  # (B, C', 1)
        # Small clouds (the embedded datasets' 128 points) keep every point as a centroid. sym_min keeps
        # S symbolic under torch.export (min() would pin the point count to one side of S).
        index = grouping.farthest_point_sample(xyz, torch.sym_min(self.num_centroids, xyz.shape[1]))  # (B, S)
        centroids = xyz.gather(1, index.unsqueeze(-1).expand(-1, -1, 3))  # (B, S, 3)
        offset = centroids.transpose(1, 2).unsqueeze(-1)  # (B, 3, S, 1)
        outs = []
        for radius, k, mlp in zip(self.radii, self.num_neighbors, self.mlps):
            neighbours = grouping.ball_query(radius, k, xyz, centroids)  # (B, S, K)
            # Not while exporting: the choice reads data (.item()) and ONNX opset 17 has no scatter max.
            if self.skip_padding and not torch.compiler.is_exporting() and not torch.onnx.is_in_onnx_export():
                distinct = neighbours != neighbours[..., :1]  # padding repeats the first index
                distinct[..., 0] = True
                # In training, packed rows (with their hand-written BatchNorm statistics) pay for
                # themselves only when most of the block is padding; real ModelNet surfaces fill ~90%
                # of the balls. In eval BatchNorm is affine and packing always wins.
                limit = PACKED_MAX_FILL if self.training else 1.0
                if distinct.sum().item() <= limit * distinct.numel():
                    outs.append(_unique_pairs_mlp(mlp, points, centroids, neighbours, distinct))
                else:  # every pair, padding included, as rows: Linear and BatchNorm over (B*S*K, C)
                    outs.append(_unique_pairs_mlp(mlp, points, centroids, neighbours, None))
                continue
            first = mlp[0]
            if _factor_first_layer(first):
                # Wide input (later levels): the first layer is linear, so
                # W [x_j - c_i, f_j] + b = (W [x_j, f_j]) - (W_xyz c_i - b): multiply the N points
                # once, then gather, instead of multiplying all S*K pairs. Same numbers up to rounding.
                weight = first.weight.flatten(1)  # (C1, 3 + D)
                per_point = F.conv1d(points, weight.unsqueeze(-1))  # (B, C1, N)
                centre = torch.einsum("oc,bcs->bos", weight[:, :3], offset.squeeze(-1))  # (B, C1, S)
                if first.bias is not None:
                    centre = centre - first.bias.view(1, -1, 1)
                x = grouping.group(per_point, neighbours) - centre.unsqueeze(-1)  # (B, C1, S, K)
            else:
                x = grouping.group(points, neighbours)  # (B, 3 + D, S, K)
                x[:, :3] -= offset  # neighbour coordinates relative to their centroid
                x = first(x)
            for layer in list(mlp)[1:]:
                x = layer(x)
            # max over the K neighbours: (B, C_r, S). max(dim) rather than amax: its backward scatters
            # through the argmax, where amax's compares, counts ties and divides over the whole (B, C, S, K).
            outs.append(x.max(dim=3).values)
        return centroids, torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]


def _factor_first_layer(conv: nn.Conv2d) -> bool:
    """Multiply points before gathering when the input is wide: ``W [x_j - c_i, f_j] + b =
    W [x_j, f_j] - (W_xyz c_i - b)`` costs one product per point instead of one per pair."""
    return 4 * conv.in_channels >= conv.out_channels


def _batch_norm_with_padding(x: Tensor, bn: nn.BatchNorm2d, first: Tensor, extra: Tensor, total: int) -> Tensor:
    """BatchNorm over packed distinct pairs ``x (M, C)`` with the statistics of the padded block.

    Each group's first row ``x[first]`` stands for itself and its ``extra`` padding copies, so the
    training statistics are those BatchNorm2d computes over all ``total = B*S*K`` padded positions.
    """
    if not bn.training and bn.track_running_stats:
        return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
    weight = extra.to(x.dtype).unsqueeze(1)  # (G, 1)
    x_first = x.index_select(0, first)  # (G, C)
    mean = (x.sum(0) + (weight * x_first).sum(0)) / total
    centred, centred_first = x - mean, x_first - mean
    var = ((centred * centred).sum(0) + (weight * centred_first * centred_first).sum(0)) / total
    update_running_stats(bn, mean, var, total)
    scale = torch.rsqrt(var + bn.eps)
    if bn.affine:
        scale = scale * bn.weight
        return torch.addcmul(bn.bias, centred, scale)
    return centred * scale


def _unique_pairs_mlp(
    mlp: SharedMLP2d, points: Tensor, centroids: Tensor, neighbours: Tensor, distinct: Tensor | None
) -> Tensor:
    """The set-abstraction MLP and max over neighbours, run on each ball's distinct points only.

    A ball query pads balls holding fewer than ``K`` points with copies of their first point (most
    balls, on 1024-point clouds: ~10 distinct of 32). Copies change neither the max nor, once
    counted in, the BatchNorm statistics, so this computes the same function (and gradients) as the
    dense ``(B, C, S, K)`` MLP while multiplying only the distinct pairs, packed as rows ``(M, C)``.

    ``points (B, 3 + D, N)``, ``centroids (B, S, 3)``, ``neighbours (B, S, K)``, ``distinct (B, S, K)``
    (False on padding copies) -> ``(B, C', S)``. ``distinct=None`` runs every pair, padding included,
    with the native BatchNorm: the dense block's numbers in the rows layout, where matmuls and
    BatchNorm run faster on CPU than ``Conv2d(1x1)`` and ``BatchNorm2d`` over ``(B, C, S, K)``.
    """
    b, c, n = points.shape
    _, s, k = neighbours.shape
    if distinct is None:
        group = torch.arange(b * s, device=points.device).repeat_interleave(k)  # (M = G * K,) which ball
        offsets = torch.arange(b, device=points.device).view(b, 1, 1) * n
        rows = (neighbours + offsets).view(-1)  # (M,) rows of (B * N)
    else:
        counts = distinct.sum(-1).view(-1)  # (G,) distinct points per ball, G = B * S
        packed = distinct.view(-1).nonzero().squeeze(1)  # (M,) positions in the (G, K) block, row-major
        group = packed // k  # (M,) which ball
        rows = neighbours.view(-1).index_select(0, packed) + (group // s) * n  # (M,) rows of (B * N)
        first = counts.cumsum(0) - counts  # (G,) packed row of each ball's first point
    table = points.transpose(1, 2).reshape(b * n, c)  # (B * N, 3 + D)
    centre = centroids.reshape(b * s, 3)
    conv = mlp[0]
    weight = conv.weight.flatten(1)  # (C1, 3 + D)
    layers = list(mlp)[1:]
    # A bias right before BatchNorm with batch statistics is cancelled by the batch mean: on the dense
    # rows it is left out of the (M, C) product (saving a pass to add it and one to sum its gradient)
    # and handed to _batch_norm, which keeps the running mean and the bias's (zero) gradient right.
    # In training on every pair, the first (narrow) and last layers run hand-differentiated
    # (layers/fused_linear.py): the same function with fewer passes over the (M, C) rows.
    fused = distinct is None and torch.is_grad_enabled() and not torch.is_autocast_enabled(points.device.type)
    start = 0  # first entry of `layers` still to run
    pending_bias = None
    if _factor_first_layer(conv):  # the bias rides on the (G, C1) centre term: no (M, C1) pass for it
        centre_term = centre @ weight[:, :3].t()  # (G, C1)
        if conv.bias is not None:
            centre_term = centre_term - conv.bias
        x = (table @ weight.t()).index_select(0, rows) - centre_term.index_select(0, group)
    else:
        x = table.index_select(0, rows)  # (M, 3 + D)
        x = torch.cat([x[:, :3] - centre.index_select(0, group), x[:, 3:]], dim=1)
        if fused and len(layers) >= 3 and _cancels_bias(layers[0]) and isinstance(layers[1], nn.ReLU):
            x, start = narrow_linear_batch_norm_relu(x, conv, layers[0]), 2
        else:
            pending_bias = conv.bias if distinct is None and _cancels_bias(layers[0] if layers else None) else None
            x = F.linear(x, weight, None if pending_bias is not None else conv.bias)
    # ReLU is monotone, so max_k relu(y_k) = relu(max_k y_k), with the same gradient (routed to the
    # argmax, or zero where the max is <= 0): the last ReLU runs on the pooled (G, C') only.
    relu_last = bool(layers) and isinstance(layers[-1], nn.ReLU)
    end = len(layers) - 1 if relu_last else len(layers)  # entries of `layers` run before the max
    fused_tail = (
        fused
        and relu_last
        and end - start >= 2
        and isinstance(layers[end - 2], nn.Conv2d)
        and _cancels_bias(layers[end - 1])
    )
    if fused_tail:
        end -= 2  # the last Conv -> BatchNorm runs with the max
    for i in range(start, end):
        layer = layers[i]
        if isinstance(layer, nn.Conv2d):
            following = layers[i + 1] if i + 1 < len(layers) else None
            pending_bias = layer.bias if distinct is None and _cancels_bias(following) else None
            x = F.linear(x, layer.weight.flatten(1), None if pending_bias is not None else layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            if distinct is None:
                x = _batch_norm(x, layer, cancelled_bias=pending_bias)
            else:
                x = _batch_norm_with_padding(x, layer, first, k - counts, b * s * k)
            pending_bias = None
        else:
            x = layer(x)
    if fused_tail:
        out = linear_batch_norm_max(x, layers[end], layers[end + 1], k)  # (G, C')
    elif distinct is None:
        out = grouping.group_max(x, k)[0]  # (G, C')
    else:
        out = x.new_zeros(b * s, x.shape[1]).scatter_reduce(
            0, group.unsqueeze(1).expand_as(x), x, reduce="amax", include_self=False
        )  # (G, C'): max over each ball's rows
    if relu_last:
        out = torch.relu(out)
    return out.view(b, s, -1).transpose(1, 2)


def _cancels_bias(layer: nn.Module | None) -> bool:
    """Whether ``layer`` is a BatchNorm normalising with batch statistics, which cancel a bias before it."""
    return isinstance(layer, nn.BatchNorm2d) and (layer.training or not layer.track_running_stats)


def _batch_norm(x: Tensor, bn: nn.BatchNorm2d, cancelled_bias: Tensor | None = None) -> Tensor:
    """``bn`` on rows ``x (M, C)``: what ``nn.BatchNorm2d`` does on the same values laid out ``(B, C, S, K)``.

    ``cancelled_bias``: a bias ``(C,)`` the layer before left out of ``x`` (only with batch
    statistics, see :func:`_cancels_bias`). The output is the same without it; the running mean
    still tracks it, and it gets its true gradient, zero (DDP and optimizers see every parameter).
    """
    momentum = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:
            momentum = 1.0 / float(bn.num_batches_tracked)
    use_batch = bn.training or not bn.track_running_stats
    if cancelled_bias is None:
        return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, use_batch, momentum, bn.eps)
    running_mean = None if bn.running_mean is None else bn.running_mean - cancelled_bias.detach()
    weight = bn.weight if bn.weight is not None else torch.ones_like(cancelled_bias)
    out = F.batch_norm(x, running_mean, bn.running_var, weight + 0.0 * cancelled_bias, bn.bias, use_batch, momentum, bn.eps)
    if running_mean is not None:
        with torch.no_grad():
            bn.running_mean.copy_(running_mean + cancelled_bias)
    return out


class FeaturePropagation(nn.Module):
    """Interpolate coarse features back onto finer points, concatenate the skip features, shared MLP.

    ``forward(xyz (B, N, 3), coarse_xyz (B, S, 3), skip (B, D1, N) | None, coarse (B, D2, S)) -> (B, C', N)``.
    """

    def __init__(self, in_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        self.mlp = ConvMLP([in_channels, *widths], dim=1)

    def forward(self, xyz: Tensor, coarse_xyz: Tensor, skip: Tensor | None, coarse: Tensor) -> Tensor:
        x = grouping.three_interpolate(xyz, coarse_xyz, coarse)  # (B, D2, N)
        if skip is not None:
            x = torch.cat([skip, x], dim=1)
        return self.mlp(x)


def _classifier_head(in_dim: int, num_classes: int, dropout: float) -> nn.Sequential:
    """FC 512 -> 256 -> classes, BatchNorm + ReLU + dropout between (as the reference, with biases)."""
    return nn.Sequential(
        nn.Linear(in_dim, 512),
        nn.BatchNorm1d(512),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(512, 256),
        nn.BatchNorm1d(256),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(256, num_classes),
    )


def _split(points: Tensor, in_channels: int) -> tuple[Tensor, Tensor | None]:
    """``points (B, N, C)`` -> ``xyz (B, N, 3)`` and the extra channels ``(B, C - 3, N)`` (None if C == 3)."""
    if points.dim() != 3 or points.shape[2] != in_channels:
        raise PointNetKitError(
            f"expected points of shape (B, N, {in_channels}), got {tuple(points.shape)}"
        )
    xyz = points[..., :3].contiguous()
    extra = points[..., 3:].transpose(1, 2).contiguous() if in_channels > 3 else None
    return xyz, extra


class PointNet2Classifier(PointModel):
    """PointNet++ classifier: set-abstraction levels -> 1024-d global feature -> FC head.

    ``forward(points (B, N, in_channels))`` -> ``logits (B, num_classes)``, ``losses {}``. Channels
    beyond xyz (normals) are the first level's point features.
    """

    task = "classification"

    def __init__(
        self,
        levels: Sequence[tuple],
        num_classes: int = 40,
        in_channels: int = 3,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        check_io(in_channels)
        self.num_classes = num_classes
        self.in_channels = in_channels
        features = in_channels - 3
        self.levels = nn.ModuleList()
        for num_centroids, radii, num_neighbors, mlps in levels:
            self.levels.append(SetAbstraction(num_centroids, radii, num_neighbors, features, mlps))
            features = self.levels[-1].out_channels
        self.head = _classifier_head(features, num_classes, dropout)

    def _encode(self, points: Tensor) -> Tensor:
        xyz, features = _split(points, self.in_channels)
        for level in self.levels:
            xyz, features = level(xyz, features)
        return features.squeeze(2)  # (B, 1024)

    def forward(self, points: Tensor, category: Tensor | None = None) -> dict[str, Tensor]:
        glob = self._encode(points)
        return {"logits": self.head(glob), "losses": {}, "global_feature": glob}

    def forward_features(self, points: Tensor, category: Tensor | None = None) -> dict[str, Tensor]:
        """``global_feature (B, 1024)``. No ``point_features``: the last pool runs over centroids."""
        return {"global_feature": self._encode(points)}


class PointNet2PartSegmentation(PointModel):
    """PointNet++ SSG part segmentation: three SA levels, three FP levels, per-point head.

    The input points (all channels) are the first level's features, and the last FP level also sees
    the category one-hot and the xyz, as in the reference PyTorch port.
    ``forward(points (B, N, C), category (B,))`` -> ``logits (B, N, num_classes)``, ``losses {}``.
    """

    task = "part_segmentation"

    def __init__(
        self,
        num_classes: int = 50,
        in_channels: int = 3,
        num_categories: int = 0,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        check_io(in_channels, num_categories)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.num_categories = num_categories
        self.sa1 = SetAbstraction(512, [0.2], [32], in_channels, [[64, 64, 128]])
        self.sa2 = SetAbstraction(128, [0.4], [64], 128, [[128, 128, 256]])
        self.sa3 = SetAbstraction(None, [], [], 256, [[256, 512, 1024]])
        self.fp3 = FeaturePropagation(1024 + 256, [256, 256])
        self.fp2 = FeaturePropagation(256 + 128, [256, 128])
        self.fp1 = FeaturePropagation(128 + num_categories + 3 + in_channels, [128, 128, 128])
        self.head = ConvMLP([128, 128], dim=1)
        self.dropout = nn.Dropout(dropout)
        self.classify = nn.Conv1d(128, num_classes, kernel_size=1)

    def _trunk(self, points: Tensor, category: Tensor | None) -> dict[str, Tensor]:
        xyz, _ = _split(points, self.in_channels)
        l0 = points.transpose(1, 2)  # (B, C, N)
        xyz1, f1 = self.sa1(xyz, l0)  # (B, 512, 3), (B, 128, 512)
        xyz2, f2 = self.sa2(xyz1, f1)  # (B, 128, 3), (B, 256, 128)
        xyz3, f3 = self.sa3(xyz2, f2)  # (B, 1, 3), (B, 1024, 1)
        f2 = self.fp3(xyz2, xyz3, f2, f3)  # (B, 256, 128)
        f1 = self.fp2(xyz1, xyz2, f1, f2)  # (B, 128, 512)
        skip = [xyz.transpose(1, 2), l0]
        if self.num_categories:
            if category is None:
                raise PointNetKitError("pointnet2_ssg_seg needs the shape category (B,) as input")
            one_hot = F.one_hot(category.long(), self.num_categories).to(points.dtype)  # (B, num_categories)
            skip.insert(0, one_hot.unsqueeze(2).expand(-1, -1, points.shape[1]))
        fp1 = self.fp1(xyz, xyz1, torch.cat(skip, dim=1), f1)  # (B, 128, N)
        head = self.head(fp1)  # (B, 128, N)
        return {"global_feature": f3.squeeze(2), "fp1": fp1, "head": head}

    def forward(self, points: Tensor, category: Tensor | None = None) -> dict[str, Tensor]:
        trunk = self._trunk(points, category)
        logits = self.classify(self.dropout(trunk["head"]))  # (B, num_classes, N)
        return {"logits": logits.transpose(1, 2), "losses": {}, "global_feature": trunk["global_feature"]}

    def forward_features(self, points: Tensor, category: Tensor | None = None) -> dict[str, Tensor]:
        """``global_feature (B, 1024)`` (the group-all level) and ``layers`` ``fp1``, ``head`` ``(B, 128, N)``."""
        trunk = self._trunk(points, category)
        return {"global_feature": trunk["global_feature"], "layers": {"fp1": trunk["fp1"], "head": trunk["head"]}}


@register_model("pointnet2_ssg")
def pointnet2_ssg(num_classes: int = 40, in_channels: int = 3, **kwargs) -> PointNet2Classifier:
    """PointNet++ single-scale grouping classifier (512/0.2/32, 128/0.4/64, group-all)."""
    return PointNet2Classifier(SSG_LEVELS, num_classes, in_channels, **kwargs)


@register_model("pointnet2_msg")
def pointnet2_msg(num_classes: int = 40, in_channels: int = 3, **kwargs) -> PointNet2Classifier:
    """PointNet++ multi-scale grouping classifier (radii 0.1/0.2/0.4 then 0.2/0.4/0.8, group-all)."""
    return PointNet2Classifier(MSG_LEVELS, num_classes, in_channels, **kwargs)


@register_model("pointnet2_ssg_seg")
def pointnet2_ssg_seg(
    num_classes: int = 50, in_channels: int = 3, num_categories: int = 0, **kwargs
) -> PointNet2PartSegmentation:
    """PointNet++ SSG part segmentation; ``num_categories > 0`` feeds the category one-hot (the paper:
    16 on ShapeNetPart). 0 by default, as ``pointnet_seg``, so it runs on any part dataset as is."""
    return PointNet2PartSegmentation(num_classes, in_channels, num_categories, **kwargs)
