"""PointNet++ models: the reference parameter counts, the model contract, and that they learn."""

from __future__ import annotations

import pytest
import torch

from pointnet_kit.errors import PointNetKitError
from pointnet_kit.models import create_model, list_models
from pointnet_kit.models.contract import PointModel


def _conv_bn(c_in: int, c_out: int) -> int:
    """A 1x1 conv with bias, then BatchNorm (weight + bias), as in the reference code."""
    return c_in * c_out + c_out + 2 * c_out


def _mlp(widths: list[int]) -> int:
    return sum(_conv_bn(a, b) for a, b in zip(widths[:-1], widths[1:]))


def _head(num_classes: int) -> int:
    return (1024 * 512 + 512 + 2 * 512) + (512 * 256 + 256 + 2 * 256) + (256 * num_classes + num_classes)


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registered():
    assert {"pointnet2_ssg", "pointnet2_msg", "pointnet2_ssg_seg"} <= set(list_models())


@pytest.mark.parametrize("in_channels", [3, 6])
def test_ssg_parameter_count_is_the_reference(in_channels):
    expected = (
        _mlp([in_channels, 64, 64, 128]) + _mlp([3 + 128, 128, 128, 256]) + _mlp([3 + 256, 256, 512, 1024])
    ) + _head(40)
    assert _params(create_model("pointnet2_ssg", num_classes=40, in_channels=in_channels)) == expected
    if in_channels == 3:
        assert expected == 1_475_688  # ~1.48M, the paper's code with 40 classes


def test_msg_parameter_count_is_the_reference():
    expected = (
        _mlp([3, 32, 32, 64]) + _mlp([3, 64, 64, 128]) + _mlp([3, 64, 96, 128])
        + _mlp([323, 64, 64, 128]) + _mlp([323, 128, 128, 256]) + _mlp([323, 128, 128, 256])
        + _mlp([643, 256, 512, 1024])
        + _head(40)
    )
    assert _params(create_model("pointnet2_msg", num_classes=40)) == expected == 1_747_368


def test_ssg_seg_parameter_count_is_the_reference():
    expected = (
        _mlp([3 + 3, 64, 64, 128]) + _mlp([131, 128, 128, 256]) + _mlp([259, 256, 512, 1024])
        + _mlp([1280, 256, 256]) + _mlp([384, 256, 128]) + _mlp([128 + 16 + 3 + 3, 128, 128, 128])
        + _conv_bn(128, 128) + (128 * 50 + 50)
    )
    model = create_model("pointnet2_ssg_seg", num_classes=50, num_categories=16)
    assert _params(model) == expected == 1_411_250


def _cloud(b: int, n: int, c: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, n, c, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("name", ["pointnet2_ssg", "pointnet2_msg"])
def test_classifier_contract(name):
    model = create_model(name, seed=0, num_classes=5, in_channels=6)
    assert isinstance(model, PointModel)
    assert (model.task, model.num_classes, model.in_channels, model.num_categories) == (
        "classification", 5, 6, 0,
    )
    model.eval()
    points = _cloud(2, 600, 6)
    with torch.no_grad():
        out = model(points)
        feats = model.forward_features(points)
    assert out["logits"].shape == (2, 5) and out["losses"] == {}
    assert feats["global_feature"].shape == (2, 1024)
    torch.testing.assert_close(feats["global_feature"], out["global_feature"])
    with pytest.raises(PointNetKitError, match=r"\(B, N, 6\)"):
        model(points[..., :3])


def test_classifier_ignores_point_order_given_the_same_centroids():
    """Eval-mode logits are unchanged when the points after the first FPS seed are shuffled:
    FPS then picks the same centroids, and each set is max-pooled."""
    model = create_model("pointnet2_ssg", seed=0, num_classes=4).eval().double()
    points = _cloud(2, 256).double()
    perm = torch.cat([torch.zeros(1, dtype=torch.long), 1 + torch.randperm(255, generator=torch.Generator().manual_seed(1))])
    with torch.no_grad():
        a, b = model(points)["logits"], model(points[:, perm])["logits"]
    # Ball query takes the first K in index order, so a shuffle may swap which in-ball points are
    # kept when a ball holds more than K; with 256 points in [-1, 1]^3 and radius 0.2, none does.
    torch.testing.assert_close(a, b)


def test_small_clouds_use_every_point():
    model = create_model("pointnet2_ssg", seed=0, num_classes=3).eval()
    with torch.no_grad():
        assert model(_cloud(2, 128))["logits"].shape == (2, 3)


def test_seg_contract_and_category():
    model = create_model("pointnet2_ssg_seg", seed=0, num_classes=7, num_categories=3).eval()
    assert (model.task, model.num_classes, model.in_channels, model.num_categories) == (
        "part_segmentation", 7, 3, 3,
    )
    points, category = _cloud(2, 200), torch.tensor([0, 2])
    with torch.no_grad():
        out = model(points, category)
        feats = model.forward_features(points, category)
        other = model(points, torch.tensor([1, 2]))["logits"]
    assert out["logits"].shape == (2, 200, 7) and out["losses"] == {}
    assert feats["global_feature"].shape == (2, 1024)
    assert feats["layers"]["fp1"].shape == feats["layers"]["head"].shape == (2, 128, 200)
    assert not torch.allclose(other[0], out["logits"][0])  # the category one-hot matters
    torch.testing.assert_close(other[1], out["logits"][1])  # per shape
    with pytest.raises(PointNetKitError, match="category"):
        model(points)


def test_training_step_reaches_every_parameter():
    model = create_model("pointnet2_ssg", seed=0, num_classes=3)
    loss = torch.nn.functional.cross_entropy(model(_cloud(4, 64))["logits"], torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert torch.isfinite(loss)
    # A convolution's bias right before BatchNorm is cancelled by the batch mean (the reference keeps
    # it for its parameter count): its true gradient is 0, and only rounding can make it otherwise.
    redundant = {
        f"{name}.{i}.bias"
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Sequential)
        for i, (layer, after) in enumerate(zip(module, list(module)[1:]))
        if isinstance(layer, (torch.nn.Conv1d, torch.nn.Conv2d)) and isinstance(after, torch.nn.modules.batchnorm._BatchNorm)
    }
    assert redundant and redundant <= {name for name, _ in model.named_parameters()}
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        if name in redundant:
            assert p.grad.abs().max() < 1e-3, name
        else:
            assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("max_fill", [1.0, 0.0])  # packed pairs / every pair as rows
def test_training_step_under_bf16_autocast(max_fill, monkeypatch):
    """The rows paths under CPU autocast (the hand-written layers step aside): bf16 activations,
    float32 running statistics, a gradient for every parameter."""
    from pointnet_kit.models import pointnet2

    monkeypatch.setattr(pointnet2, "PACKED_MAX_FILL", max_fill)
    model = create_model("pointnet2_ssg", seed=0, num_classes=3)
    before = model.levels[0].mlps[0][1].running_mean.clone()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(_cloud(3, 64))["logits"]
    loss = torch.nn.functional.cross_entropy(logits.float(), torch.tensor([0, 1, 2]))
    loss.backward()
    assert logits.dtype == torch.bfloat16 and torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters())
    after = model.levels[0].mlps[0][1].running_mean
    assert after.dtype == torch.float32 and not torch.equal(after, before)


@pytest.mark.slow
def test_ssg_learns_two_synthetic_classes():
    """A few Adam steps separate spheres from flat discs (training mode, BatchNorm; ~30 s on one core)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    sphere = torch.nn.functional.normalize(torch.randn(8, 128, 3, generator=g), dim=-1)
    disc = torch.rand(8, 128, 3, generator=g) * 2 - 1
    disc[..., 2] = 0
    points, labels = torch.cat([sphere, disc]), torch.tensor([0] * 8 + [1] * 8)
    model = create_model("pointnet2_ssg", seed=0, num_classes=2, dropout=0.0)
    optim = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        loss = torch.nn.functional.cross_entropy(model(points)["logits"], labels)
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert all(p.grad is not None for p in model.parameters())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("name", ["pointnet2_ssg", "pointnet2_msg", "pointnet2_ssg_seg"])
def test_same_seed_same_weights_different_seed_different(name):
    a, b, c = (create_model(name, seed=s).state_dict() for s in (7, 7, 8))
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("max_fill", [1.0, 0.0])  # 1: packed distinct pairs; 0: every pair as rows (training)
@pytest.mark.parametrize("name", ["pointnet2_ssg", pytest.param("pointnet2_msg", marks=pytest.mark.slow)])
def test_skipping_ball_padding_computes_the_same_function(name, max_fill, monkeypatch):
    """The packed distinct-pair MLP and the all-pairs rows MLP == the dense padded (B, C, S, K) MLP:
    outputs, gradients and BatchNorm running statistics (train), outputs (eval). Pre-BN conv biases have a true gradient of
    zero, so gradients are compared relative to the largest one; BatchNorm's backward on small batches
    amplifies float64 rounding to ~1e-10 of that, a wrong count or pairing gives O(1)."""
    import copy

    from pointnet_kit.models import pointnet2

    monkeypatch.setattr(pointnet2, "PACKED_MAX_FILL", max_fill)
    packed = create_model(name, seed=0, num_classes=4, in_channels=6, dropout=0.0).double()
    dense = copy.deepcopy(packed)
    for level in dense.levels:
        level.skip_padding = False
    x = _cloud(2, 128, 6).double()
    for train in (True, False):
        packed.train(train), dense.train(train)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        a, b = packed(xa)["logits"], dense(xb)["logits"]
        grad = torch.randn(a.shape, generator=torch.Generator().manual_seed(2), dtype=a.dtype)
        a.backward(grad), b.backward(grad)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
        torch.testing.assert_close(xa.grad, xb.grad, rtol=0, atol=1e-8 * xb.grad.abs().max().item())
        scale = max(q.grad.abs().max().item() for q in dense.parameters())
        for p, q in zip(packed.parameters(), dense.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-8 * scale)
        for p, q in zip(packed.buffers(), dense.buffers()):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-10)
        packed.zero_grad(), dense.zero_grad()
