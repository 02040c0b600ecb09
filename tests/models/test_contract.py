"""Every registered model keeps the PointModel contract (models/contract.py): what the engine, export and viz rely on."""

from __future__ import annotations

import pytest
import torch

from pointnet_kit import create_model, list_models
from pointnet_kit.models import registry
from pointnet_kit.models.contract import TASKS, PointModel

B, N, K, CATEGORIES = 2, 48, 4, 3


def _build(name: str, in_channels: int = 3) -> PointModel:
    model = create_model(name, num_classes=K, in_channels=in_channels, seed=0)
    if model.task == "part_segmentation":  # also the category input, where the model offers it
        try:
            model = create_model(name, num_classes=K, in_channels=in_channels, num_categories=CATEGORIES, seed=0)
        except TypeError:
            pass
    return model


def _inputs(model: PointModel, in_channels: int = 3) -> tuple[torch.Tensor, torch.Tensor | None]:
    generator = torch.Generator().manual_seed(0)
    points = torch.randn(B, N, in_channels, generator=generator)
    category = torch.tensor([0, CATEGORIES - 1]) if model.num_categories else None
    return points, category


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("in_channels", [3, 6])
def test_attributes_and_forward(name, in_channels):
    model = _build(name, in_channels)
    assert isinstance(model, PointModel) and model.task in TASKS
    assert (model.num_classes, model.in_channels) == (K, in_channels)
    assert model.model_name == name and model.model_kwargs["num_classes"] == K
    points, category = _inputs(model, in_channels)
    for mode in (model.train(), model.eval()):
        out = mode(points, category)
        expected = (B, K) if model.task == "classification" else (B, N, K)
        assert out["logits"].shape == expected and out["logits"].dtype == torch.float32
        assert isinstance(out["losses"], dict)
        for key, term in out["losses"].items():
            assert term.dim() == 0 and torch.isfinite(term), key


@pytest.mark.parametrize("name", list_models())
def test_forward_features(name):
    model = _build(name).eval()
    points, category = _inputs(model)
    with torch.no_grad():
        feats = model.forward_features(points, category)
    if model.task == "classification":
        assert "global_feature" in feats
    if "global_feature" in feats:
        assert feats["global_feature"].dim() == 2 and feats["global_feature"].shape[0] == B
    if "point_features" in feats:
        # Max-pooled into the global feature (its first channels: DGCNN appends an average pool).
        d = feats["point_features"].shape[1]
        assert feats["point_features"].shape == (B, d, N) and d <= feats["global_feature"].shape[1]
        torch.testing.assert_close(feats["point_features"].amax(dim=2), feats["global_feature"][:, :d])
    for group in ("pooled", "layers"):
        for key, value in feats.get(group, {}).items():
            assert value.dim() == 3 and value.shape[0] == B and value.shape[2] == N, (group, key)
    for key, value in feats.get("transforms", {}).items():
        assert value.dim() == 3 and value.shape[0] == B and value.shape[1] == value.shape[2], key


@pytest.mark.parametrize("name", list_models())
def test_gradients_reach_every_parameter(name):
    model = _build(name).train()
    points, category = _inputs(model)
    out = model(points, category)
    loss = out["logits"].square().mean() + sum(out["losses"].values())
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert sum(float(p.grad.abs().sum()) for p in model.parameters()) > 0


@pytest.mark.parametrize("name", [n for n in list_models() if registry._MODELS[n].__module__.startswith("pointnet_kit.")])
def test_every_model_refuses_clouds_without_xyz(name):  # the package's models (tests register their own too)
    with pytest.raises(ValueError, match="in_channels must be"):
        create_model(name, num_classes=4, in_channels=2)
