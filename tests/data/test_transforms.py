"""Batched augmentation: invariants, seeding, normals, config building."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pointnet_kit.data.transforms import (
    BatchCompose,
    Dropout,
    Jitter,
    RotateSO3,
    RotateUp,
    RotateZ,
    Scale,
    Shift,
    Shuffle,
    axis_rotation,
    build_batch_transforms,
    random_rotation_matrices,
)
from pointnet_kit.errors import ConfigError

ALL = [RotateZ(), RotateSO3(), Scale(), Shift(), Jitter(), Dropout(), Shuffle()]


def cloud(b: int = 4, n: int = 128, normals: bool = False, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, 3, generator=g)
    if normals:
        nrm = torch.randn(b, n, 3, generator=g)
        x = torch.cat([x, nrm / nrm.norm(dim=-1, keepdim=True)], dim=-1)
    return x


@pytest.mark.parametrize("t", ALL, ids=lambda t: type(t).__name__)
@pytest.mark.parametrize("channels", [3, 6])
def test_shape_dtype_and_seed_reproducibility(t, channels):
    x = cloud(normals=channels == 6)
    a = t(x, generator=torch.Generator().manual_seed(7))
    b = t(x, generator=torch.Generator().manual_seed(7))
    c = t(x, generator=torch.Generator().manual_seed(8))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, x)


def test_own_seed_gives_same_sequence():
    x = cloud()
    first, second = RotateZ(seed=3), RotateZ(seed=3)
    assert torch.equal(first(x), second(x))
    assert torch.equal(first(x), second(x))  # the second draw matches too


@pytest.mark.parametrize("t", [RotateZ(), RotateSO3()], ids=["z", "so3"])
def test_rotation_keeps_norms_and_normal_geometry(t):
    x = cloud(normals=True)
    y = t(x, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(y[..., :3].norm(dim=-1), x[..., :3].norm(dim=-1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y[..., 3:].norm(dim=-1), torch.ones(4, 128), rtol=1e-5, atol=1e-5)
    # a rotation keeps the angle between each point and its normal
    torch.testing.assert_close((y[..., :3] * y[..., 3:]).sum(-1), (x[..., :3] * x[..., 3:]).sum(-1), rtol=1e-4, atol=1e-4)


def test_rotate_z_keeps_z_and_differs_per_sample():
    x = cloud(b=8)
    y = RotateZ()(x, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(y[..., 2], x[..., 2])
    # each cloud has its own angle: recover it from the first point
    angles = torch.atan2(y[:, 0, 1], y[:, 0, 0]) - torch.atan2(x[:, 0, 1], x[:, 0, 0])
    assert len(torch.unique(torch.round(torch.remainder(angles, 2 * torch.pi), decimals=4))) == 8
    y_axis = RotateZ(axis="y")(x, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(y_axis[..., 1], x[..., 1])


def test_random_rotation_matrices_are_rotations():
    r = random_rotation_matrices(64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(r @ r.transpose(1, 2), torch.eye(3).expand(64, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(64), atol=1e-5, rtol=0)


def test_jitter_stays_within_clip_and_leaves_normals():
    x = cloud(normals=True)
    y = Jitter(sigma=0.5, clip=0.05)(x, generator=torch.Generator().manual_seed(0))
    delta = y[..., :3] - x[..., :3]
    assert delta.abs().max() <= 0.05 + 1e-6
    assert delta.abs().max() > 0.04  # a large sigma reaches the clip
    assert torch.equal(y[..., 3:], x[..., 3:])


def test_scale_bounds_and_normals_stay_perpendicular_to_the_surface():
    # points on the plane x + y + z = 0, whose normal is (1, 1, 1)/sqrt(3)
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(4, 100, 1, generator=g), torch.randn(4, 100, 1, generator=g)
    pts = u * torch.tensor([1.0, -1.0, 0.0]) + v * torch.tensor([1.0, 0.0, -1.0])
    nrm = torch.full_like(pts, 3**-0.5)
    y = Scale(low=0.5, high=2.0)(torch.cat([pts, nrm], -1), generator=torch.Generator().manual_seed(1))
    ratio = y[..., :3] / pts
    assert ratio.min() >= 0.5 - 1e-5 and ratio.max() <= 2.0 + 1e-5
    torch.testing.assert_close(ratio.std(dim=1), torch.zeros(4, 3), atol=1e-4, rtol=0)  # one factor per axis per cloud
    tangent = y[:, 1:, :3] - y[:, :1, :3]
    torch.testing.assert_close((tangent * y[:, 1:, 3:]).sum(-1), torch.zeros(4, 99), atol=1e-4, rtol=0)
    torch.testing.assert_close(y[..., 3:].norm(dim=-1), torch.ones(4, 100))


def test_shift_moves_each_cloud_rigidly():
    x = cloud(normals=True)
    y = Shift(shift=0.1)(x, generator=torch.Generator().manual_seed(0))
    d = y[..., :3] - x[..., :3]
    torch.testing.assert_close(d, d[:, :1].expand_as(d))
    assert d.abs().max() <= 0.1
    assert torch.equal(y[..., 3:], x[..., 3:])


def test_dropout_replaces_points_by_the_first_one():
    x = cloud(b=16, n=256, normals=True)
    y = Dropout(max_ratio=0.875)(x, generator=torch.Generator().manual_seed(0))
    changed = (y != x).any(-1)
    assert changed.any()
    assert torch.equal(y[changed], x[:, :1].expand_as(x)[changed])
    assert changed.float().mean(1).max() <= 0.95
    assert torch.equal(Dropout(max_ratio=0.0)(x), x)


def test_shuffle_permutes_whole_rows():
    x = cloud(normals=True)
    y = Shuffle()(x, generator=torch.Generator().manual_seed(0))
    for a, b in zip(x, y):
        assert torch.equal(a[a[:, 0].argsort()], b[b[:, 0].argsort()])


def test_numpy_single_cloud_in_numpy_out():
    x = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    y = BatchCompose([RotateZ(), Jitter()], seed=0)(x)
    assert isinstance(y, np.ndarray) and y.shape == (100, 3)
    np.testing.assert_allclose(y, BatchCompose([RotateZ(), Jitter()], seed=0)(x))


def test_bad_input_shape():
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        Jitter()(torch.zeros(2, 10, 4))


def test_build_batch_transforms_and_repr():
    aug = build_batch_transforms(
        [{"name": "rotate_z"}, {"name": "scale", "low": 0.9}, {"name": "jitter", "sigma": 0.02}, {"name": "dropout"}], seed=0
    )
    assert [type(t) for t in aug.transforms] == [RotateZ, Scale, Jitter, Dropout]
    text = repr(aug)
    assert "RotateZ(angle=6.283" in text and "Scale(low=0.9, high=1.25, anisotropic=True" in text and "sigma=0.02" in text
    assert aug(cloud()).shape == (4, 128, 3)
    assert len(build_batch_transforms([])) == 0


@pytest.mark.parametrize(
    "specs, match",
    [
        ([{"name": "spin"}], "unknown name 'spin'"),
        ([{"name": "jitter", "sigmaa": 0.1}], "unknown option.*sigmaa"),
        ([{"sigma": 0.1}], "'name' key"),
        (["jitter"], "'name' key"),
        ([{"name": "scale", "low": 2.0, "high": 1.0}], "low <= high"),
        ([{"name": "dropout", "max_ratio": 1.5}], "max_ratio"),
    ],
)
def test_build_batch_transforms_rejects_bad_specs(specs, match):
    with pytest.raises(ConfigError, match=match):
        build_batch_transforms(specs)


@pytest.mark.gpu
def test_runs_on_the_gpu_with_a_device_generator():
    x = cloud(normals=True).cuda()
    aug = build_batch_transforms([{"name": n} for n in ("rotate_z", "rotate_so3", "scale", "shift", "jitter", "dropout", "shuffle")])
    g = torch.Generator(device="cuda").manual_seed(0)
    y = aug(x, generator=g)
    assert y.device == x.device and y.shape == x.shape
    assert torch.equal(y, aug(x, generator=torch.Generator(device="cuda").manual_seed(0)))


def labelled_batch(b: int = 4, n: int = 64, normals: bool = False) -> dict:
    """A batch whose part label of each point is recoverable from the point (its row index in x)."""
    x = cloud(b, n, normals)
    x[..., 0] = torch.arange(n, dtype=x.dtype)  # point i has x == i
    parts = torch.arange(n).expand(b, n) % 7
    return {"points": x, "labels": torch.arange(b), "part_labels": parts.clone()}


@pytest.mark.parametrize("t", [Shuffle(), Dropout(max_ratio=0.9), BatchCompose([Shuffle(), Dropout(), Jitter(sigma=0.0, clip=0.1)])],
                         ids=["shuffle", "dropout", "compose"])
def test_per_point_ops_keep_part_labels_aligned(t):
    batch = labelled_batch()
    out = t(batch, generator=torch.Generator().manual_seed(0))
    assert set(out) == set(batch) and torch.equal(out["labels"], batch["labels"])
    assert out["points"].shape == batch["points"].shape and out["part_labels"].shape == batch["part_labels"].shape
    assert not torch.equal(out["part_labels"], batch["part_labels"])  # something moved ...
    index = out["points"][..., 0].round().long()
    assert torch.equal(out["part_labels"], index % 7)  # ... and every label moved with its point


def test_batch_dict_gives_the_same_points_as_a_tensor():
    batch = labelled_batch(normals=True)
    aug = build_batch_transforms([{"name": n} for n in ("rotate_up", "scale", "shift", "jitter", "dropout", "shuffle")])
    as_dict = aug(batch, generator=torch.Generator().manual_seed(3))
    as_tensor = aug(batch["points"], generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(as_dict["points"], as_tensor)
    single = aug({k: v[0] for k, v in batch.items()}, generator=torch.Generator().manual_seed(3))
    assert single["points"].shape == (64, 6) and single["part_labels"].shape == (64,) and single["labels"].shape == ()
    with pytest.raises(ValueError, match="part_labels"):
        aug({**batch, "part_labels": batch["part_labels"][:, :10]})


@pytest.mark.parametrize("up_axis", ["x", "y", "z"])
def test_rotate_up_turns_about_the_spec_up_axis(up_axis):
    x = cloud(b=8)
    aug = build_batch_transforms([{"name": "rotate_up"}], up_axis=up_axis)
    y = aug(x, generator=torch.Generator().manual_seed(0))
    k = "xyz".index(up_axis)
    torch.testing.assert_close(y[..., k], x[..., k])
    assert not torch.allclose(y, x)
    assert isinstance(aug.transforms[0], RotateUp) and aug.transforms[0].up_axis == up_axis
    old = build_batch_transforms([{"name": "rotate_z"}], up_axis=up_axis)  # the old name is the same rotation
    torch.testing.assert_close(old(x, generator=torch.Generator().manual_seed(0)), y)
    explicit = build_batch_transforms([{"name": "rotate_up", "up_axis": "z"}], up_axis=up_axis).transforms[0]
    assert explicit.up_axis == "z"


def test_axis_rotation_is_the_one_rotation():
    angles = torch.tensor([0.3, -1.2])
    for axis in "xyz":
        r = axis_rotation(axis, angles)
        assert r.shape == (2, 3, 3)
        torch.testing.assert_close(r @ r.transpose(1, 2), torch.eye(3).expand(2, 3, 3), atol=1e-6, rtol=0)
        k = "xyz".index(axis)
        torch.testing.assert_close(r[:, :, k], torch.eye(3)[k].expand(2, 3))  # the axis is fixed
    # counter-clockwise seen from +z: x goes to y
    torch.testing.assert_close(axis_rotation("z", math.pi / 2) @ torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 0]), atol=1e-6, rtol=0)
    with pytest.raises(ConfigError, match="up_axis"):
        axis_rotation("w", 0.0)


def test_change_up_axis_is_a_quarter_turn_taking_up_to_up():
    from pointnet_kit.data.transforms import change_up_axis

    cloud = np.random.default_rng(0).normal(size=(20, 6)).astype(np.float32)
    for a, b in [("y", "z"), ("z", "y"), ("x", "z"), ("z", "x"), ("x", "y"), ("y", "x")]:
        turned = change_up_axis(cloud, a, b)
        assert turned.dtype == cloud.dtype and turned.shape == cloud.shape
        np.testing.assert_allclose(turned[:, "xyz".index(b)], cloud[:, "xyz".index(a)], atol=1e-6)  # up stays up
        np.testing.assert_allclose(np.linalg.norm(turned[:, :3], axis=1), np.linalg.norm(cloud[:, :3], axis=1), rtol=1e-5)
        np.testing.assert_allclose(change_up_axis(turned, b, a), cloud, atol=1e-6)  # and back
        # a rotation, not a mirror: the triple product of three points keeps its sign
        det = lambda p: np.linalg.det(p[:3, :3].astype(np.float64))
        assert np.sign(det(turned)) == np.sign(det(cloud))
        np.testing.assert_allclose(turned[:, 3:] @ np.eye(3), change_up_axis(cloud[:, 3:], a, b), atol=1e-6)  # normals too
    assert change_up_axis(cloud, "z", "z") is not None and np.array_equal(change_up_axis(cloud, "z", "z"), cloud)
    with pytest.raises(ConfigError):
        change_up_axis(cloud, "w", "z")
