"""Critical sets and upper-bound shapes keep the global feature; per-point wins and layer features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from .viz_helpers import perturbed_pointnet

from pointnet_kit.errors import PointNetKitError
from pointnet_kit.viz import features as F

ATOL = 1e-12  # float64: only summation-order rounding may differ between clouds of different sizes


def _cloud(n: int = 256, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1


def _global(model, points: torch.Tensor) -> torch.Tensor:
    return F.features_of(model, points)["global_feature"][0]


@pytest.fixture(scope="module")
def pointnet():
    return perturbed_pointnet("pointnet")


def test_critical_points_alone_give_the_same_global_feature(pointnet):
    points = _cloud()
    sets = F.critical_points(pointnet, points)
    assert set(sets) == {"input_tnet", "feature_tnet", "global", "critical"}
    critical = sets["critical"]
    assert 0 < len(critical) < len(points)
    for name in ("input_tnet", "feature_tnet", "global"):
        assert set(sets[name].tolist()) <= set(critical.tolist())
    torch.testing.assert_close(_global(pointnet, points[critical]), _global(pointnet, points), rtol=0, atol=ATOL)
    # The T-Nets' pools matter: the last pool's winners alone change the transforms, hence the feature.
    assert not torch.allclose(_global(pointnet, points[sets["global"]]), _global(pointnet, points), atol=1e-6)


def test_vanilla_critical_set_is_the_global_pool_winners():
    model = perturbed_pointnet("pointnet_vanilla")
    points = _cloud(seed=1)
    sets = F.critical_points(model, points)
    assert set(sets) == {"global", "critical"} and torch.equal(sets["global"], sets["critical"])
    torch.testing.assert_close(_global(model, points[sets["critical"]]), _global(model, points), rtol=0, atol=ATOL)


def test_adding_upper_bound_points_keeps_the_global_feature(pointnet):
    points = _cloud(seed=2)
    upper = F.upper_bound_shape(pointnet, points, resolution=8, batch_size=100)
    assert upper.shape[1] == 3 and 0 < len(upper) < 8**3
    grid = F.bounding_grid(points, 8)
    assert (upper[:, None] == grid[None]).all(-1).any(1).all()  # a subset of the grid
    reference = _global(pointnet, points)
    torch.testing.assert_close(_global(pointnet, torch.cat([points, upper])), reference, rtol=0, atol=ATOL)
    for i in torch.linspace(0, len(upper) - 1, 5).long():
        torch.testing.assert_close(
            _global(pointnet, torch.cat([points, upper[i : i + 1]])), reference, rtol=0, atol=ATOL
        )
    # ...while a grid point that is not in the upper-bound shape changes it.
    outside = grid[~(grid[:, None] == upper[None]).all(-1).any(1)]
    changed = [
        not torch.allclose(_global(pointnet, torch.cat([points, p[None]])), reference, atol=1e-9) for p in outside[:5]
    ]
    assert all(changed)


def test_upper_bound_does_not_depend_on_the_batch_size(pointnet):
    points = _cloud(seed=3)
    a = F.upper_bound_shape(pointnet, points, resolution=6, batch_size=7)
    b = F.upper_bound_shape(pointnet, points, resolution=6, batch_size=1000)
    assert torch.equal(a, b)


def test_max_pool_wins_counts_each_dimension_once(pointnet):
    points = _cloud(seed=4)
    pooled = F.max_pool_inputs(pointnet, points)
    assert pooled["global"].shape == (1, 1024, 256) and pooled["input_tnet"].shape == (1, 1024, 256)
    wins = F.max_pool_wins(pooled["global"])
    assert wins.shape == (1, 256) and wins.sum() == 1024
    winners = torch.unique(pooled["global"][0].argmax(dim=1))
    assert torch.equal(torch.nonzero(wins[0]).flatten(), winners)
    assert torch.equal(F.max_pool_wins(pooled["global"][0]), wins[0])  # unbatched


def test_layer_features_match_the_model(pointnet):
    points = _cloud(seed=5)
    names = F.layer_names(pointnet, points)
    assert names == ["mlp1.0", "mlp1.1", "mlp2.0", "mlp2.1", "mlp2.2"]
    widths = {"mlp1.0": 64, "mlp1.1": 64, "mlp2.0": 64, "mlp2.1": 128, "mlp2.2": 1024}
    feats = F.layer_features(pointnet, points, names)
    for name in names:
        assert feats[name].shape == (1, widths[name], 256)
        assert (feats[name] >= 0).all()  # after ReLU
    out = F.features_of(pointnet, points)
    torch.testing.assert_close(feats["mlp2.2"], out["point_features"], rtol=0, atol=0)
    torch.testing.assert_close(out["point_features"].amax(dim=2), out["global_feature"], rtol=0, atol=0)


def test_input_transform_is_the_models(pointnet):
    points = _cloud(seed=6)
    matrix, moved = F.input_transform(pointnet, points)
    with torch.no_grad():
        expected = pointnet(points.unsqueeze(0))["input_transform"][0]
    # The forward pools without building the T-Net's (B, 1024, N) features: same value up to rounding.
    torch.testing.assert_close(matrix, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(moved, points @ expected)
    assert not torch.allclose(matrix, torch.eye(3, dtype=matrix.dtype), atol=1e-3)


def test_bad_requests_are_clear_errors(pointnet):
    points = _cloud(32)
    with pytest.raises(PointNetKitError, match="unknown layer 'mlp9'; available: mlp1.0"):
        F.layer_features(pointnet, points, ["mlp9"])
    with pytest.raises(PointNetKitError, match="no input transform"):
        F.input_transform(perturbed_pointnet("pointnet_vanilla"), points)
    with pytest.raises(PointNetKitError, match="eval"):
        F.critical_points(perturbed_pointnet("pointnet").train(), points)
    with pytest.raises(PointNetKitError, match=r"\(N, 3\) xyz"):
        F.upper_bound_shape(pointnet, torch.zeros(10, 6, dtype=torch.float64))
    with pytest.raises(PointNetKitError, match="resolution"):
        F.bounding_grid(points, 1)
    with pytest.raises(PointNetKitError, match="does not implement forward_features"):
        F.features_of(torch.nn.Linear(3, 3).eval(), points)


def test_an_inactive_channel_is_named_with_the_active_ones():
    from pointnet_kit.viz.figures import feature_map

    model = perturbed_pointnet("pointnet")
    bns = [m for m in model.encoder.mlp2.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    with torch.no_grad():  # channel 7 of mlp2.1 never fires: BN maps it to -1 before the ReLU
        bns[1].weight[7], bns[1].bias[7] = 0.0, -1.0
    points = _cloud(64, seed=7).numpy()
    feats = F.layer_features(model, torch.from_numpy(points), ["mlp2.1"])["mlp2.1"][0]
    active = torch.nonzero((feats != 0).any(dim=1)).flatten().tolist()
    assert 7 not in active and 0 < len(active) < 128
    with pytest.raises(PointNetKitError) as info:
        feature_map(model, points, "channel", "mlp2.1", 7)
    message = str(info.value)
    assert message.startswith("channel 7 of mlp2.1 is inactive on this cloud")
    listed = message.split(f"active channels ({len(active)} of 128): ")[1].split(", ")
    expanded = [i for part in listed for i in (range(int(part.split("-")[0]), int(part.split("-")[-1]) + 1))]
    assert expanded == active
    shown = feature_map(model, points, "channel", "mlp2.1", active[0])
    assert shown.values.shape == (64,) and np.any(shown.values != 0) and shown.layer == "mlp2.1"
    assert feature_map(model, points, "norm").layer == "mlp2.2"  # the model's last layer by default
