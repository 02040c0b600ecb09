"""What a model looks at, through the model contract only: layer features, max-pool wins, critical
sets, upper-bound shapes and learned transforms.

Everything here calls :func:`features_of`, i.e. ``model.forward_features`` (see
``pointnet_kit/models/contract.py``), and never looks inside a model. Following Qi et al. (2017),
section 4.3: the global feature is a max over per-point features, so it is decided by the *critical*
points that win at least one dimension, and it stays the same when points are added whose features
are all below it (the *upper-bound shape*).

A model may max-pool more than once over its input points (PointNet's two T-Nets pool too, and the
transforms they predict change every point's features). The contract lists every such pool under
``"pooled"``, input side first; the critical set is the union of the winners of all of them, and an
upper-bound point stays below all of them. That makes both statements exact for the real model:
``global_feature(points[critical]) == global_feature(points)``, and adding upper-bound points leaves
it unchanged.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import PointNetKitError


def _as_batch(points: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """``(B, N, C)`` on the model's device and in its dtype (``(N, C)`` gets a batch axis)."""
    if model.training:
        raise PointNetKitError("call model.eval() first: in training mode BatchNorm mixes points together")
    param = next(model.parameters())
    points = torch.as_tensor(points).to(device=param.device, dtype=param.dtype)
    if points.dim() == 2:
        points = points.unsqueeze(0)
    if points.dim() != 3:
        raise PointNetKitError(f"points must be (N, C) or (B, N, C), got {tuple(points.shape)}")
    return points


@torch.no_grad()
def features_of(
    model: nn.Module, points: torch.Tensor, category: torch.Tensor | None = None
) -> dict[str, torch.Tensor | dict[str, torch.Tensor]]:
    """``model.forward_features`` of ``points`` ((N, C) or (B, N, C)), in eval mode, without gradients.

    Returns the contract's dict: ``global_feature (B, D)`` and, when the model has them,
    ``point_features (B, D, N)``, ``pooled {name: (B, C, N)}``, ``layers {name: (B, C, N)}``,
    ``transforms {name: (B, k, k)}``.
    """
    forward_features = getattr(model, "forward_features", None)
    if forward_features is None:
        raise PointNetKitError(
            f"{type(model).__name__} does not implement forward_features (the model contract); viz needs it"
        )
    batch = _as_batch(points, model)
    if category is not None:
        category = torch.as_tensor(category, device=batch.device).reshape(-1).expand(batch.shape[0])
    return forward_features(batch, category)


def _named(feats: dict, key: str, what: str, model: nn.Module) -> dict[str, torch.Tensor]:
    named = feats.get(key) or {}
    if not named:
        raise PointNetKitError(f"{type(model).__name__} reports no {what} (forward_features()[{key!r}] is empty)")
    return dict(named)


def layer_names(model: nn.Module, points: torch.Tensor) -> list[str]:
    """Names of the per-point layers the model reports for ``points``, input side first
    (PointNet: ``mlp1.0``, ``mlp1.1``, ``mlp2.0``, ``mlp2.1``, ``mlp2.2``)."""
    return list(_named(features_of(model, points), "layers", "per-point layers", model))


def layer_features(model: nn.Module, points: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Per-point features of the chosen layers: ``{name: (B, channels, N)}``.

    Args:
        points: ``(B, N, C)`` or ``(N, C)`` float.
        layers: names from :func:`layer_names`.
    """
    available = _named(features_of(model, points), "layers", "per-point layers", model)
    unknown = [name for name in layers if name not in available]
    if unknown:
        raise PointNetKitError(f"unknown layer {unknown[0]!r}; available: {', '.join(available)}")
    return {name: available[name] for name in layers}


def max_pool_inputs(model: nn.Module, points: torch.Tensor) -> dict[str, torch.Tensor]:
    """The per-point features entering each max pool over the input points, input side first.

    Returns:
        ``{name: (B, C, N)}``; PointNet: ``input_tnet``, ``feature_tnet`` (when it has those T-Nets)
        and ``global``. A model that reports only ``point_features`` gets ``{"global": point_features}``.
    """
    feats = features_of(model, points)
    pooled = dict(feats.get("pooled") or {})
    if not pooled and feats.get("point_features") is not None:
        pooled = {"global": feats["point_features"]}
    if not pooled:
        raise PointNetKitError(
            f"{type(model).__name__} has no max pool over its input points (no 'pooled' or 'point_features'), "
            "so it has no critical points"
        )
    return pooled


def max_pool_wins(features: torch.Tensor) -> torch.Tensor:
    """How many feature dimensions each point wins in a max pool.

    Args:
        features: ``(B, D, N)`` per-point features (or ``(D, N)``).
    Returns:
        ``(B, N)`` (or ``(N,)``) int64 counts summing to ``D``; ties go to the lowest index, as in ``max``.
    """
    squeeze = features.dim() == 2
    if squeeze:
        features = features.unsqueeze(0)
    b, d, n = features.shape
    winners = features.argmax(dim=2)  # (B, D)
    wins = torch.zeros(b, n, dtype=torch.int64, device=features.device)
    wins.scatter_add_(1, winners, torch.ones_like(winners))
    return wins[0] if squeeze else wins


def critical_points(model: nn.Module, points: torch.Tensor) -> dict[str, torch.Tensor]:
    """Indices of the critical points of one cloud.

    Args:
        points: ``(N, C)`` one cloud.
    Returns:
        ``{"critical": (K,)}`` sorted indices of the points that win at least one dimension of any
        max pool (this subset alone gives exactly the same global feature), plus for each pool name
        of :func:`max_pool_inputs` the indices of its own winners.
    """
    pools = max_pool_inputs(model, points)
    out = {name: torch.unique(feats[0].argmax(dim=1)) for name, feats in pools.items()}
    out["critical"] = torch.unique(torch.cat(list(out.values())))
    return out


def bounding_grid(points: torch.Tensor, resolution: int = 32) -> torch.Tensor:
    """A regular ``resolution^3`` grid over the axis-aligned bounding box of ``points: (N, 3+)``; ``(R^3, 3)``."""
    if resolution < 2:
        raise PointNetKitError(f"grid resolution must be at least 2, got {resolution}")
    xyz = torch.as_tensor(points)[:, :3]
    lo, hi = xyz.min(0).values, xyz.max(0).values
    axes = [
        torch.linspace(float(lo[i]), float(hi[i]), resolution, dtype=xyz.dtype, device=xyz.device) for i in range(3)
    ]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)


@torch.no_grad()
def upper_bound_shape(
    model: nn.Module, points: torch.Tensor, resolution: int = 32, batch_size: int = 4096
) -> torch.Tensor:
    """The upper-bound shape of one xyz cloud: grid points that leave every max pool unchanged.

    The candidates are a ``resolution^3`` grid over the cloud's bounding box. Each round runs
    ``forward_features`` on the cloud plus each chunk of candidates in turn and drops
    the candidates that exceed the cloud's own maximum in the first pool (input side first) where any
    does. Pools listed before it kept their maxima, so the transforms they feed are the cloud's own,
    and the features judged are exactly those each candidate has when added to the cloud. A round
    that drops nothing proves the rest can be added together with every pool unchanged; at most one
    round per pool plus one.

    Args:
        points: ``(N, 3)`` one cloud (xyz only: grid points have no normals).
        resolution: grid points per axis.
        batch_size: candidates per batch item.
    Returns:
        ``(M, 3)`` upper-bound points, on the model's device.
    """
    points = _as_batch(points, model)[0]
    if points.shape[1] != 3:
        raise PointNetKitError(f"upper-bound shapes need one (N, 3) xyz cloud, got {tuple(points.shape)}")
    n = len(points)
    reference = {name: feats[0].amax(dim=1) for name, feats in max_pool_inputs(model, points).items()}  # (C,)
    candidates = bounding_grid(points, resolution)
    for _ in range(len(reference) + 1):
        if not len(candidates):
            return candidates
        above = {pool: [] for pool in reference}  # pool -> (len(candidates),) bool: exceeds the cloud's max
        for chunk in candidates.split(batch_size):
            pooled = max_pool_inputs(model, torch.cat([points, chunk]).unsqueeze(0))
            for pool, ref in reference.items():
                above[pool].append((pooled[pool][0, :, n:] > ref[:, None]).any(dim=0))
        first = next((torch.cat(flags) for flags in above.values() if torch.cat(flags).any()), None)
        if first is None:
            return candidates
        candidates = candidates[~first]
    raise PointNetKitError(
        f"{type(model).__name__}'s forward_features lists its pools out of order (input side first is the contract)"
    )


def input_transform(model: nn.Module, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The learned 3x3 input transform of one cloud and the cloud after it.

    Args:
        points: ``(N, C)``.
    Returns:
        ``matrix (3, 3)`` and ``transformed (N, 3)`` = ``points[:, :3] @ matrix`` (row vectors, the
        contract's convention for ``transforms["input"]``).
    """
    feats = features_of(model, points)
    matrix = (feats.get("transforms") or {}).get("input")
    if matrix is None:
        raise PointNetKitError(f"{type(model).__name__} has no input transform (T-Net); try a 'pointnet' checkpoint")
    batch = _as_batch(points, model)
    return matrix[0], batch[0, :, :3] @ matrix[0]
