"""PointNet models through the registry: shapes, invariances, gradients, seeding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pointnet_kit import create_model, list_models
from pointnet_kit.errors import PointNetKitError
from pointnet_kit.models import PointNetClassifier, PointNetSegmentation

B, N, K = 2, 32, 5
CLASSIFIERS = [
    name for name in list_models() if isinstance(create_model(name, num_classes=K), PointNetClassifier)
]
# The PointNet family only: the registry also holds PointNet++ and DGCNN (tested in their own files).
POINTNETS = [
    name
    for name in list_models()
    if isinstance(create_model(name, num_classes=K), (PointNetClassifier, PointNetSegmentation))
]


def _points(seed: int = 0, batch: int = B) -> torch.Tensor:
    return torch.randn(batch, N, 3, generator=torch.Generator().manual_seed(seed))  # (B, N, 3)


def _permute(points: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    perm = torch.stack([torch.randperm(points.shape[1], generator=generator) for _ in range(points.shape[0])])
    return torch.gather(points, 1, perm.unsqueeze(-1).expand(-1, -1, points.shape[2])), perm


def test_registry_lists_the_pointnet_variants():
    assert {"pointnet", "pointnet_vanilla", "pointnet_seg"} <= set(list_models())
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
