"""Export to ``.pt2`` / ``.onnx`` with metadata, the parity check, and running exported files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from pointnet_kit.data.record import DataSpec
from pointnet_kit.engine import checkpoint as checkpoint_module
from pointnet_kit.engine.export import export_metadata, export_model, is_exported, load_exported, predict_exported
from pointnet_kit.errors import CheckpointError, PointNetKitError
from pointnet_kit.models.contract import PointModel

CLASSES = ["a", "b", "c", "d"]


class TinyNet(PointModel):
    """A minimal contract model: per-point MLP, max pool, linear head (fast to export)."""

    task = "classification"

    def __init__(self, num_classes: int = 4, in_channels: int = 3) -> None:
        super().__init__()
        self.num_classes, self.in_channels = num_classes, in_channels
        self.mlp = nn.Sequential(nn.Conv1d(in_channels, 16, 1), nn.BatchNorm1d(16), nn.ReLU())
        self.head = nn.Linear(16, num_classes)

    def forward(self, points, category=None):  # points (B, N, C) -> logits (B, K)
        feature = self.mlp(points.transpose(1, 2)).max(dim=2).values
        return {"logits": self.head(feature), "losses": {}}

    def forward_features(self, points, category=None):
        return {"global_feature": self.mlp(points.transpose(1, 2)).max(dim=2).values}


def tiny(seed: int = 0, in_channels: int = 3) -> TinyNet:
    torch.manual_seed(seed)
    model = TinyNet(len(CLASSES), in_channels).eval()
    with torch.no_grad():  # non-trivial BN statistics, so eval-mode BN is exercised
        model.mlp[1].running_mean.uniform_(-0.5, 0.5)
        model.mlp[1].running_var.uniform_(0.5, 2.0)
    return model


SPEC = {
    "task": "classification", "num_points": 32, "channels": ["x", "y", "z"], "up_axis": "y",
    "class_names": CLASSES, "part_names": None, "category_parts": None, "normalization": "unit_sphere", "source": "t",
}


def metadata(model: nn.Module) -> dict:
    return export_metadata(DataSpec.from_dict(SPEC), model, {"model_name": "tiny", "epoch": 3})


@pytest.fixture(scope="module", params=["pt2", "onnx"])
def exported(request, tmp_path_factory):
    """One export per format for the module (each takes a few seconds): (model, path, result, warnings)."""
    model = tiny()
    path = tmp_path_factory.mktemp("export") / f"m.{request.param}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = export_model(model, path, request.param, metadata(model), check_points=(7, 100))
    return model, path, result, caught


def test_export_embeds_metadata_is_dynamic_and_matches_pytorch(exported):
    model, path, result, caught = exported
    # no deprecated exporter (torch.jit, the legacy ONNX exporter) and nothing silenced
    own = [w for w in caught if issubclass(w.category, DeprecationWarning) or "jit" in str(w.message).lower()
           or "dynamo=False" in str(w.message) or "TorchScript" in str(w.message)]
    assert own == [], [str(w.message) for w in own]
    assert result["dynamic"] == ["batch", "num_points"]
    assert [1, 32] in result["checked"] and [3, 7] in result["checked"] and [3, 100] in result["checked"]
    assert result["max_rel_diff"] < 1e-4
    predict, meta = load_exported(path)
    assert meta["class_names"] == CLASSES and meta["num_points"] == 32 and meta["up_axis"] == "y"
    assert meta["channels"] == ["x", "y", "z"] and meta["normalization"] == "unit_sphere"
    assert meta["task"] == "classification" and meta["epoch"] == 3 and meta["inputs"] == ["points"]
    x = torch.randn(5, 250, 3)
    with torch.no_grad():
        expected = model(x)["logits"].numpy()
    np.testing.assert_allclose(predict(x.numpy()), expected, rtol=1e-4, atol=1e-5)


def test_non_finite_weights_are_refused(tmp_path):
    model = tiny()
    with torch.no_grad():
        model.head.weight[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="head.weight"):
        export_model(model, tmp_path / "m.pt2", "pt2", metadata(model))
    assert not (tmp_path / "m.pt2").exists()


def test_metadata_from_old_checkpoints_without_data_spec(tmp_path):
    from pointnet_kit import create_model

    model = create_model("pointnet_vanilla", num_classes=len(CLASSES), in_channels=6)
    config = {"data": {"num_points": 64, "use_normals": True, "up_axis": "z"}}
    path = checkpoint_module.save_checkpoint(tmp_path / "old.pt", model, class_names=CLASSES, config=config)
    model, _, spec, ckpt = checkpoint_module.load_run(path)  # the one reader rebuilds the spec
    assert "data_spec" not in ckpt
    meta = export_metadata(spec, model, ckpt)
    assert meta["channels"] == ["x", "y", "z", "nx", "ny", "nz"] and meta["num_points"] == 64
    assert meta["up_axis"] == "z" and meta["class_names"] == CLASSES and meta["model_name"] == "pointnet_vanilla"
    with pytest.raises(CheckpointError, match="channels"):
        export_metadata(spec, tiny(in_channels=3))


def test_predict_with_an_exported_file_and_votes(exported, tmp_path):
    model, path, _, _ = exported
    rng = np.random.default_rng(0)
    cloud = rng.normal(size=(500, 3)).astype(np.float32) * [1.0, 0.2, 0.2]
    np.save(tmp_path / "shape.npy", cloud.astype(np.float32))
    assert is_exported(path) and not is_exported(tmp_path / "checkpoint_best.pt")
    (one,) = predict_exported(path, [tmp_path / "shape.npy"], topk=4)
    assert [p["class"] for p in one["predictions"]] != [] and len(one["predictions"]) == 4
    assert abs(sum(p["prob"] for p in one["predictions"]) - 1) < 1e-3
    # the same top class as the PyTorch model on the same sampled, normalised points
    from pointnet_kit.data import load_points

    points = torch.from_numpy(load_points(tmp_path / "shape.npy", 32, seed=0))[None]
    with torch.no_grad():
        top = CLASSES[int(model(points)["logits"].argmax())]
    assert one["predictions"][0]["class"] == top
    (voted,) = predict_exported(path, [tmp_path / "shape.npy"], topk=1, votes=4)
    assert voted["predictions"][0]["class"] in CLASSES


def test_loading_something_else_is_a_clear_error(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(PointNetKitError, match="cannot load"):
        load_exported(tmp_path / "junk.onnx")
    with pytest.raises(PointNetKitError, match="not found"):
        load_exported(tmp_path / "missing.pt2")


def test_export_checkpoint_end_to_end(tiny_data, tmp_path):
    from pointnet_kit.engine.config import load_config
    from pointnet_kit.engine.export import export_checkpoint
    from pointnet_kit.engine.trainer import train
    from tests.engine.conftest import fast_overrides

    train(load_config(None, fast_overrides(tiny_data, epochs=1) + ["model.name=pointnet_vanilla"]), tmp_path / "run")
    result = export_checkpoint(tmp_path / "run", tmp_path / "model.pt2")
    assert result["format"] == "pt2" and result["max_rel_diff"] < 1e-4
    _, meta = load_exported(tmp_path / "model.pt2")
    assert meta["num_points"] == 64 and meta["class_names"] == ["stick_x", "stick_z", "blob"]
