"""PointNet models through the registry: shapes, invariances, gradients, seeding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pointnet_kit import create_model, list_models
from pointnet_kit.errors import PointNetKitError
from pointnet_kit.layers import orthogonality_loss
from pointnet_kit.models import PointNetClassifier, PointNetSegmentation

B, N, K = 2, 32, 5
POINTNETS = ["pointnet", "pointnet_vanilla", "pointnet_seg"]  # what every registered model does: test_contract.py
CLASSIFIERS = [name for name in POINTNETS if isinstance(create_model(name, num_classes=K), PointNetClassifier)]


def _points(seed: int = 0, batch: int = B) -> torch.Tensor:
    return torch.randn(batch, N, 3, generator=torch.Generator().manual_seed(seed))  # (B, N, 3)


def _permute(points: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    perm = torch.stack([torch.randperm(points.shape[1], generator=generator) for _ in range(points.shape[0])])
    return torch.gather(points, 1, perm.unsqueeze(-1).expand(-1, -1, points.shape[2])), perm


def test_registry_lists_the_pointnet_variants():
    assert set(POINTNETS) <= set(list_models())
    assert {"pointnet", "pointnet_vanilla"} <= set(CLASSIFIERS)


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(PointNetKitError, match="unknown model 'pointnet_xl'.*pointnet"):
        create_model("pointnet_xl")


@pytest.mark.parametrize("name", POINTNETS)
@pytest.mark.parametrize("return_features", [False, True])
def test_output_shapes(name, return_features):
    model = create_model(name, num_classes=K, seed=0).eval()
    with torch.no_grad():
        out = model(_points(), return_features=return_features)
    segmentation = isinstance(model, PointNetSegmentation)
    assert out["logits"].shape == ((B, N, K) if segmentation else (B, K))
    assert out["global_feature"].shape == (B, 1024)
    assert set(out["losses"]) == ({"feature_transform_reg"} if model.encoder.feature_tnet is not None else set())
    encoder = model.encoder
    assert ("input_transform" in out) == (encoder.input_tnet is not None)
    assert ("feature_transform" in out) == (encoder.feature_tnet is not None)
    if encoder.input_tnet is not None:
        assert out["input_transform"].shape == (B, 3, 3)
    if encoder.feature_tnet is not None:
        assert out["feature_transform"].shape == (B, 64, 64)
    feature_keys = {"point_features", "local_feature", "critical_indices"}
    if return_features:
        assert out["point_features"].shape == (B, 1024, N)
        assert out["local_feature"].shape == (B, 64, N)
        assert out["critical_indices"].shape == (B, 1024)
        assert out["critical_indices"].dtype == torch.int64
    else:
        assert not feature_keys & out.keys()


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_is_invariant_to_point_order_in_eval_mode(name):
    model = create_model(name, num_classes=K, seed=0).eval()
    points = _points()
    permuted, _ = _permute(points, seed=1)
    with torch.no_grad():
        out, out_perm = model(points), model(permuted)
    torch.testing.assert_close(out_perm["global_feature"], out["global_feature"], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out_perm["logits"], out["logits"], rtol=1e-6, atol=1e-6)


def test_segmentation_is_equivariant_to_point_order_in_eval_mode():
    model = create_model("pointnet_seg", num_classes=K, seed=0).eval()
    points = _points()
    permuted, perm = _permute(points, seed=1)
    with torch.no_grad():
        logits, logits_perm = model(points)["logits"], model(permuted)["logits"]
    expected = torch.gather(logits, 1, perm.unsqueeze(-1).expand(-1, -1, K))
    torch.testing.assert_close(logits_perm, expected, rtol=1e-5, atol=1e-5)


def _loss(model: torch.nn.Module, points: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    logits = model(points)["logits"]
    if logits.dim() == 3:  # (B, N, K) per-point
        return F.cross_entropy(logits.reshape(-1, K), labels.repeat_interleave(N))
    return F.cross_entropy(logits, labels)


@pytest.mark.parametrize("name", POINTNETS)
def test_every_parameter_receives_a_gradient(name):
    model = create_model(name, num_classes=K, seed=0).train()
    points, labels = _points(batch=4), torch.tensor([0, 1, 2, 3])
    _loss(model, points, labels).backward()
    assert all(p.grad is not None for p in model.parameters())
    # The T-Nets' last FC starts at zero (identity output), which blocks their inner gradients on
    # the first step only; after one SGD step every parameter has a non-zero gradient.
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
    model.zero_grad()
    _loss(model, points, labels).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []


@pytest.mark.parametrize("name", POINTNETS)
def test_same_seed_same_weights_different_seed_different(name):
    a = create_model(name, num_classes=K, seed=7).state_dict()
    b = create_model(name, num_classes=K, seed=7).state_dict()
    c = create_model(name, num_classes=K, seed=8).state_dict()
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("name", POINTNETS)
def test_critical_indices_index_the_max(name):
    model = create_model(name, num_classes=K, seed=0).eval()
    with torch.no_grad():
        out = model(_points(), return_features=True)
    gathered = out["point_features"].gather(2, out["critical_indices"].unsqueeze(2)).squeeze(2)  # (B, 1024)
    assert torch.equal(gathered, out["global_feature"])
    assert torch.equal(out["point_features"].amax(dim=2), out["global_feature"])


def test_feature_transform_regularizer_is_the_weighted_orthogonality_loss():
    model = create_model("pointnet", num_classes=K, seed=0, feature_transform_weight=0.5).train()
    with torch.no_grad():  # move the feature T-Net away from the identity it starts at
        model.encoder.feature_tnet.fc.bias.normal_(generator=torch.Generator().manual_seed(0))
    out = model(_points())
    reg = out["losses"]["feature_transform_reg"]
    assert reg.item() > 0
    torch.testing.assert_close(reg, 0.5 * orthogonality_loss(out["feature_transform"]))
    off = create_model("pointnet", num_classes=K, seed=0, feature_transform_weight=0.0)
    assert off(_points())["losses"] == {}


def test_old_state_dict_keys_are_kept():
    keys = set(create_model("pointnet", num_classes=K).state_dict())
    assert {"encoder.input_tnet.fc.weight", "encoder.mlp1.0.weight", "encoder.feature_tnet.mlp.0.weight",
            "encoder.mlp2.6.weight", "head.0.weight", "head.7.weight"} <= keys
    seg = set(create_model("pointnet_seg", num_classes=K).state_dict())
    assert {"head.0.0.weight", "head.2.weight", "encoder.mlp2.6.weight"} <= seg


@pytest.mark.parametrize("name", POINTNETS)
def test_forward_features_are_the_encoders(name):
    model = create_model(name, num_classes=K, seed=0).eval()
    points = _points()
    with torch.no_grad():
        feats, out = model.forward_features(points), model(points, return_features=True)
    assert list(feats["layers"]) == ["mlp1.0", "mlp1.1", "mlp2.0", "mlp2.1", "mlp2.2"]
    torch.testing.assert_close(feats["layers"]["mlp2.2"], out["point_features"], rtol=0, atol=0)
    torch.testing.assert_close(feats["pooled"]["global"], out["point_features"], rtol=0, atol=0)
    assert torch.equal(feats["global_feature"], out["global_feature"])
    tnets = {n for n in ("input_tnet", "feature_tnet") if getattr(model.encoder, n) is not None}
    assert set(feats["pooled"]) == tnets | {"global"}
    for tnet in tnets:  # what enters each T-Net's max pool
        assert feats["pooled"][tnet].shape == (B, 1024, N)
    if "input_tnet" in tnets:
        torch.testing.assert_close(feats["transforms"]["input"], out["input_transform"], rtol=0, atol=0)
        torch.testing.assert_close(
            feats["pooled"]["input_tnet"], model.encoder.input_tnet.mlp(points.transpose(1, 2)), rtol=0, atol=0
        )


def test_segmentation_with_category_one_hot():
    model = create_model("pointnet_seg", num_classes=K, num_categories=3, seed=0).eval()
    assert model.num_categories == 3 and model.task == "part_segmentation"
    points = _points()
    with torch.no_grad():
        a = model(points, torch.tensor([0, 0]))["logits"]
        b = model(points, torch.tensor([0, 2]))["logits"]
    assert a.shape == (B, N, K)
    torch.testing.assert_close(a[0], b[0])
    assert not torch.allclose(a[1], b[1])  # the category changes the prediction
    with pytest.raises(ValueError, match="category"):
        model(points)
