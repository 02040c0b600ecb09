"""What PointNet looks at: per-point layer features, max-pool wins, critical sets and upper-bound shapes.

Pure torch, no rendering. Following Qi et al. (2017), section 4.3: the global feature is a max over
per-point features, so it is decided by the *critical* points that win at least one dimension, and
it stays the same when points are added whose features are all below it (the *upper-bound shape*).

The full PointNet also max-pools inside its two T-Nets, and the transforms they predict change
every point's features. So here "a max pool" means every one of them, as :func:`max_pool_inputs`
lists: the critical set is the union of the winners of all of them, and an upper-bound point stays
below all of them. That makes both statements exact for the real model, not just for its last
pool: ``model(points[critical])["global_feature"] == model(points)["global_feature"]``, and adding
upper-bound points leaves it unchanged.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
from torch import nn

from ..errors import PointNetKitError


def encoder_of(model: nn.Module) -> nn.Module:
    """The PointNet encoder of a classifier/segmentation model (or the encoder itself)."""
    encoder = getattr(model, "encoder", model)
    if not hasattr(encoder, "mlp1") or not hasattr(encoder, "mlp2"):
        raise PointNetKitError(f"{type(model).__name__} has no PointNet encoder (mlp1/mlp2) to inspect")
    return encoder


def _block_outputs(mlp: nn.Sequential) -> list[nn.Module]:
    """The module whose output is each layer's output in a SharedMLP (its ReLU, BN or conv)."""
    lasts: list[nn.Module] = []
    for module in mlp:
        if isinstance(module, (nn.Conv1d, nn.Linear)):
            lasts.append(module)
        elif lasts:
            lasts[-1] = module
    return lasts


def _layers(model: nn.Module) -> dict[str, nn.Module]:
    encoder = encoder_of(model)
    layers = {}
    for name in ("mlp1", "mlp2"):
        for i, module in enumerate(_block_outputs(getattr(encoder, name))):
            layers[f"{name}.{i}"] = module
    return layers


def layer_names(model: nn.Module) -> list[str]:
    """Names of the per-point layers :func:`layer_features` can return, input side first.

    ``mlp1.i`` / ``mlp2.i`` is the output (after BatchNorm and ReLU) of the ``i``-th layer of the
    encoder's first / second shared MLP; for PointNet ``mlp2.2`` is the 1024-d feature that is max-pooled.
    """
    return list(_layers(model))


def layer_widths(model: nn.Module) -> dict[str, int]:
    """Channels of each layer in :func:`layer_names`."""
    encoder = encoder_of(model)
    widths = {}
    for name in ("mlp1", "mlp2"):
        channels = getattr(encoder, name).channels
        for i in range(len(channels) - 1):
            widths[f"{name}.{i}"] = channels[i + 1]
    return widths


@contextlib.contextmanager
def _capture(modules: dict[str, nn.Module]) -> Iterator[dict[str, torch.Tensor]]:
    captured: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in modules.items():

        def hook(_module, _inputs, output, name=name):
            captured[name] = output.detach().clone()  # clone: the next in-place ReLU would overwrite it

        handles.append(module.register_forward_hook(hook))
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


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
def layer_features(model: nn.Module, points: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Per-point features of the chosen layers.

    Args:
        model: a PointNet model in eval mode.
        points: ``(B, N, C)`` or ``(N, C)`` float.
        layers: names from :func:`layer_names`.
    Returns:
        ``{name: (B, channels, N)}``.
    """
    available = _layers(model)
    unknown = [name for name in layers if name not in available]
    if unknown:
        raise PointNetKitError(f"unknown layer {unknown[0]!r}; available: {', '.join(available)}")
    with _capture({name: available[name] for name in layers}) as captured:
        model(_as_batch(points, model))
    return {name: captured[name] for name in layers}


def _pool_modules(model: nn.Module) -> dict[str, nn.Module]:
    encoder = encoder_of(model)
    pools = {}
    for name in ("input_tnet", "feature_tnet"):
        tnet = getattr(encoder, name, None)
        if tnet is not None:
            pools[name] = tnet.mlp
    pools["global"] = encoder.mlp2
    return pools


@torch.no_grad()
def max_pool_inputs(model: nn.Module, points: torch.Tensor) -> dict[str, torch.Tensor]:
    """The per-point features entering each max pool of the encoder.

    Returns:
        ``{"input_tnet": (B, 1024, N), "feature_tnet": (B, 1024, N), "global": (B, D, N)}``, the
        T-Net entries only when the model has those T-Nets.
    """
    with _capture(_pool_modules(model)) as captured:
        model(_as_batch(points, model))
    return dict(captured)


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


@torch.no_grad()
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

    A point of a ``resolution^3`` grid over the cloud's bounding box is kept when its features, computed
    with the transforms the T-Nets predict for the cloud, stay at or below the pooled feature in every
    max pool (the T-Nets' and the global one). Adding any of them, or all, leaves the global feature
    of ``points`` exactly as it was.

    Args:
        points: ``(N, 3)`` one cloud (xyz only: grid points have no normals).
        resolution: grid points per axis.
    Returns:
        ``(M, 3)`` upper-bound points, on the model's device.
    """
    points = _as_batch(points, model)[0]
    if points.shape[1] != 3:
        raise PointNetKitError(f"upper-bound shapes need one (N, 3) xyz cloud, got {tuple(points.shape)}")
    encoder = encoder_of(model)
    # The cloud's own pooled features and T-Net transforms.
    tnets = {name: getattr(encoder, name) for name in ("input_tnet", "feature_tnet") if getattr(encoder, name, None)}
    with _capture(tnets) as transforms:
        pooled = {name: feats.amax(dim=2) for name, feats in max_pool_inputs(model, points).items()}  # (1, D)
    pools = _pool_modules(model)
    grid = bounding_grid(points, resolution)
    keep = []

    def fixed(name):
        return lambda _module, _inputs, output: transforms[name].expand(output.shape[0], -1, -1)

    handles = [tnet.register_forward_hook(fixed(name)) for name, tnet in tnets.items()]
    try:
        for chunk in grid.split(batch_size):
            with _capture(pools) as feats:
                encoder(chunk.unsqueeze(0))
            below = torch.ones(len(chunk), dtype=torch.bool, device=points.device)
            for name, f in feats.items():
                below &= (f[0] <= pooled[name][0].unsqueeze(1)).all(dim=0)
            keep.append(below)
    finally:
        for handle in handles:
            handle.remove()
    return grid[torch.cat(keep).to(grid.device)]


@torch.no_grad()
def input_transform(model: nn.Module, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The learned 3x3 input transform of one cloud and the cloud after it.

    Args:
        points: ``(N, C)``.
    Returns:
        ``matrix (3, 3)`` and ``transformed (N, 3)`` = ``points[:, :3] @ matrix``, as the encoder applies it.
    """
    encoder = encoder_of(model)
    if getattr(encoder, "input_tnet", None) is None:
        raise PointNetKitError("this model has no input transform (T-Net); try a 'pointnet' checkpoint")
    batch = _as_batch(points, model)
    matrix = model(batch)["input_transform"][0]
    return matrix, batch[0, :, :3] @ matrix
