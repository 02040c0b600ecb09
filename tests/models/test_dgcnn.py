"""DGCNN and dgcnn_seg: the reference parameter counts, the contract, the factored EdgeConv, training steps."""

from __future__ import annotations

import pytest
import torch

from pointnet_kit.errors import PointNetKitError
from pointnet_kit.layers import grouping
from pointnet_kit.layers.edge_conv import EdgeConv, edge_features
from pointnet_kit.models import create_model, list_models
from pointnet_kit.models.contract import PointModel


def _cloud(b: int, n: int, c: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, n, c, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_parameter_count_is_the_reference():
    # EdgeConv: Conv2d(2C -> C', no bias) + BatchNorm; embedding Conv1d(512 -> 1024, no bias) + BN;
    # head Linear(2048 -> 512, no bias) + BN, Linear(512 -> 256) + BN, Linear(256 -> 40).
    edges = sum(2 * a * b + 2 * b for a, b in [(3, 64), (64, 64), (64, 128), (128, 256)])
    embed = 512 * 1024 + 2 * 1024
    head = (2048 * 512 + 2 * 512) + (512 * 256 + 256 + 2 * 256) + (256 * 40 + 40)
    model = create_model("dgcnn", num_classes=40)
    assert sum(p.numel() for p in model.parameters()) == edges + embed + head == 1_809_576
    assert "dgcnn" in list_models()


def test_contract_and_features():
    model = create_model("dgcnn", seed=0, num_classes=6, in_channels=6).eval()
    assert isinstance(model, PointModel)
    assert (model.task, model.num_classes, model.in_channels, model.num_categories) == (
        "classification", 6, 6, 0,
    )
    points = _cloud(2, 64, 6)
    with torch.no_grad():
        out = model(points)
        feats = model.forward_features(points)
    assert out["logits"].shape == (2, 6) and out["losses"] == {}
    emb = feats["point_features"]
    assert emb.shape == (2, 1024, 64) and feats["pooled"]["embedding"] is emb
    torch.testing.assert_close(feats["global_feature"], torch.cat([emb.amax(2), emb.mean(2)], 1))
    assert [tuple(v.shape) for v in feats["layers"].values()] == [
        (2, 64, 64), (2, 64, 64), (2, 128, 64), (2, 256, 64), (2, 1024, 64),
    ]
    # Max and mean pooling, kNN graphs: the logits ignore the order of the points.
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(points[:, perm])["logits"], out["logits"], rtol=1e-4, atol=1e-5)


def test_small_clouds_take_every_point_as_neighbour():
    model = create_model("dgcnn", seed=0, num_classes=3).eval()
    with torch.no_grad():
        assert model(_cloud(2, 12))["logits"].shape == (2, 3)


@pytest.mark.parametrize("bias", [False, True])
def test_factored_edge_conv_equals_the_conv_on_edge_features(bias):
    layer = EdgeConv(5, 7, k=4, bias=bias).double()
    x = torch.randn(2, 5, 30, dtype=torch.float64, requires_grad=True)
    index = layer.neighbours(x)
    assert torch.equal(index, grouping.knn(x.detach().transpose(1, 2), x.detach().transpose(1, 2), 4))
    direct = layer.conv(edge_features(x, index))  # (B, 7, N, k)
    factored = layer.edge_response(x, index)
    torch.testing.assert_close(factored, direct)
    grad = torch.randn_like(direct)
    (g_direct,) = torch.autograd.grad(direct, layer.conv.weight, grad)
    (g_factored,) = torch.autograd.grad(factored, layer.conv.weight, grad)
    torch.testing.assert_close(g_factored, g_direct)


def test_edge_features_layout():
    x = torch.arange(12.0).view(1, 2, 6)  # (B, C, N)
    index = torch.tensor([[[1, 2]] * 6])  # every point's neighbours are points 1 and 2
    e = edge_features(x, index)
    assert e.shape == (1, 4, 6, 2)
    torch.testing.assert_close(e[0, :2, 4, 1], x[0, :, 4])  # x_i
    torch.testing.assert_close(e[0, 2:, 4, 1], x[0, :, 2] - x[0, :, 4])  # x_j - x_i


def test_training_step_reaches_every_parameter():
    model = create_model("dgcnn", seed=0, num_classes=3)
    loss = torch.nn.functional.cross_entropy(model(_cloud(4, 48))["logits"], torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())



def test_same_seed_same_weights_different_seed_different():
    a, b, c = (create_model("dgcnn", seed=s).state_dict() for s in (7, 7, 8))
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_edge_conv_with_more_layers_runs_them_on_every_edge_before_the_max():
    layer = EdgeConv(3, 8, k=5, more_widths=[6, 4]).double().eval()
    x = torch.randn(2, 3, 20, dtype=torch.float64)
    index = layer.neighbours(x)
    edges = layer.act(layer.norm(layer.conv(edge_features(x, index))))  # (B, 8, N, k)
    torch.testing.assert_close(layer(x, index), layer.more(edges).amax(dim=3))
    assert layer.out_channels == 4 and layer(x).shape == (2, 4, 20)


def test_seg_parameter_count_is_the_reference():
    # DGCNN_partseg of the released code, all convolutions without bias, each followed by BatchNorm
    # (2 parameters per channel) except the last. Transform_Net: Conv2d 6->64, 64->128, Conv1d 128->1024,
    # Linear 1024->512, 512->256 (no bias) + BN, Linear 256->9.
    conv_bn = lambda a, b: a * b + 2 * b  # noqa: E731
    transform = conv_bn(6, 64) + conv_bn(64, 128) + conv_bn(128, 1024) + conv_bn(1024, 512) + conv_bn(512, 256) + 256 * 9 + 9
    edges = conv_bn(6, 64) + conv_bn(64, 64) + conv_bn(128, 64) + conv_bn(64, 64) + conv_bn(128, 64)
    rest = conv_bn(192, 1024) + conv_bn(16, 64) + conv_bn(1280, 256) + conv_bn(256, 256) + conv_bn(256, 128) + 128 * 50
    model = create_model("dgcnn_seg", num_classes=50, num_categories=16)
    assert sum(p.numel() for p in model.parameters()) == transform + edges + rest == 1_460_361
    assert "dgcnn_seg" in list_models()


def test_seg_contract_features_and_point_order():
    model = create_model("dgcnn_seg", seed=0, num_classes=7, num_categories=3).eval()
    assert (model.task, model.num_classes, model.in_channels, model.num_categories) == ("part_segmentation", 7, 3, 3)
    points, category = _cloud(2, 40), torch.tensor([0, 2])
    with torch.no_grad():
        out = model(points, category)
        feats = model.forward_features(points, category)
        other = model(points, torch.tensor([1, 2]))["logits"]
    assert out["logits"].shape == (2, 40, 7) and out["losses"] == {}
    assert not torch.allclose(other[0], out["logits"][0]) and torch.allclose(other[1], out["logits"][1])
    emb = feats["point_features"]
    assert emb.shape == (2, 1024, 40) and feats["pooled"]["embedding"] is emb
    torch.testing.assert_close(feats["global_feature"], emb.amax(2))
    torch.testing.assert_close(feats["transforms"]["input"], torch.eye(3).expand(2, 3, 3))  # identity at init
    assert [tuple(v.shape) for v in feats["layers"].values()] == [(2, 64, 40)] * 3 + [(2, 1024, 40)]
    perm = torch.randperm(40, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # per-point logits follow their points
        torch.testing.assert_close(model(points[:, perm], category)["logits"], out["logits"][:, perm], rtol=1e-4, atol=1e-5)
    with pytest.raises(PointNetKitError, match="category"):
        model(points)


def test_seg_training_step_reaches_every_parameter():
    model = create_model("dgcnn_seg", seed=0, num_classes=5, in_channels=6, num_categories=2)
    with torch.no_grad():
        model.transform.fc.weight.normal_(0, 0.01)  # zero at init: nothing upstream would get a gradient yet
    logits = model(_cloud(3, 32, 6), torch.tensor([0, 1, 1]))["logits"]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 5), torch.randint(5, (96,), generator=torch.Generator().manual_seed(0)))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
