"""A model defined here, not in the package, trains, evaluates, exports and predicts through the public API.

Registering it is the only step: the engine, eval, predict and export use the PointModel contract alone.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from torch import nn

from pointnet_kit import list_models
from pointnet_kit.cli.main import main
from pointnet_kit.engine.config import config_from_dict
from pointnet_kit.engine.evaluate import evaluate_checkpoint
from pointnet_kit.engine.export import export_checkpoint
from pointnet_kit.engine.trainer import train
from pointnet_kit.models import register_model
from pointnet_kit.models.contract import PointModel

from .conftest import fast_overrides


class TinyNet(PointModel):
    """Per-point linear layer, max pool, linear classifier: ``(B, N, C) -> (B, num_classes)``."""

    task = "classification"

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 32) -> None:
        super().__init__()
        self.num_classes, self.in_channels = num_classes, in_channels
        self.point_mlp = nn.Sequential(nn.Linear(in_channels, width), nn.ReLU())
        self.head = nn.Linear(width, num_classes)

    def forward_features(self, points, category=None):
        per_point = self.point_mlp(points).transpose(1, 2)  # (B, width, N)
        return {"global_feature": per_point.amax(dim=2), "point_features": per_point,
                "pooled": {"global": per_point}, "layers": {"point_mlp": per_point}}

    def forward(self, points, category=None):
        feats = self.forward_features(points)
        return {"logits": self.head(feats["global_feature"]), "losses": {}}


if "tiny_test_net" not in list_models():
    register_model("tiny_test_net")(lambda num_classes, in_channels=3, **kw: TinyNet(num_classes, in_channels, **kw))


@pytest.fixture(scope="module")
def tiny_run(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("tinynet")
    overrides = fast_overrides(tiny_data, epochs=3) + ["model.name=tiny_test_net", "model.kwargs.width=48", "optim.lr=0.01"]
    summary = train(config_from_dict({}, overrides), out, log=lambda _m: None)
    return out, summary


def test_trains_and_evaluates(tiny_run):
    out, summary = tiny_run
    assert summary["model"] == "tiny_test_net" and summary["best"]["val_oa"] > 0.5  # chance: 1/3
    result = evaluate_checkpoint(out, device="cpu")
    assert result["oa"] == pytest.approx(summary["oa"])


def test_exports_to_onnx(tiny_run, tmp_path):
    pytest.importorskip("onnxruntime")
    result = export_checkpoint(tiny_run[0] / "checkpoint_best.pt", tmp_path / "tiny.onnx", "onnx")
    assert result["max_rel_diff"] < 1e-5 and (tmp_path / "tiny.onnx").is_file()


def test_predicts_from_the_cli(tiny_run, tmp_path, capsys):
    cloud = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32) * np.array([0.1, 0.1, 1.0], np.float32)
    np.save(tmp_path / "stick.npy", cloud)
    assert main(["predict", str(tiny_run[0]), str(tmp_path / "stick.npy"), "--json", "--device", "cpu"]) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert result["predictions"][0]["class"] in {"stick_x", "stick_z", "blob"}
    probs = [p["prob"] for p in result["predictions"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-3
