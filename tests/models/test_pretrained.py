"""The shipped pretrained model: reachable by name, self-describing, small, and right on real shapes."""

from __future__ import annotations

import pytest
import torch

from pointnet_kit import create_model
from pointnet_kit.cli.main import main
from pointnet_kit.engine.checkpoint import load_run
from pointnet_kit.errors import CheckpointError, PointNetKitError
from pointnet_kit.models.pretrained import list_pretrained, load_pretrained, pretrained_path


def test_shipped_file_is_small_half_precision_and_says_where_it_came_from():
    assert list_pretrained() == ["modelnet40"]
    path = pretrained_path("modelnet40")
    assert path.stat().st_size <= 8 << 20
    raw = torch.load(path, weights_only=True)
    assert {v.dtype for v in raw["model_state"].values() if torch.is_floating_point(v)} == {torch.float16}
    assert set(raw["provenance"]) >= {"data", "recipe", "seed", "commit"}
    assert raw["provenance"]["recipe"] == "pointnet_modelnet40_fast"
    assert 0.0 < raw["validation"]["val_oa"] <= 1.0 and 0.0 < raw["validation"]["val_macc"] <= 1.0
    spec = raw["data_spec"]
    assert len(spec["class_names"]) == 40 and spec["class_names"][0] == "airplane" and spec["up_axis"] == "z"


def test_create_model_by_name_loads_the_weights_in_eval_mode():
    model = create_model("pointnet", pretrained="modelnet40")
    assert not model.training and model.num_classes == 40 and model.data_spec["num_points"] == 256
    ckpt = load_pretrained("modelnet40")
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, ckpt["model_state"][key].to(value.dtype), rtol=0, atol=0)


def test_wrong_architecture_or_name_is_a_clear_error():
    with pytest.raises(PointNetKitError, match="is a 'pointnet' model, not 'dgcnn'"):
        create_model("dgcnn", pretrained="modelnet40")
    with pytest.raises(PointNetKitError, match="cannot change"):
        create_model("pointnet", pretrained="modelnet40", num_classes=10)
    with pytest.raises(CheckpointError, match="no pretrained model 'shapenet'"):
        create_model("pointnet", pretrained="shapenet")


def test_commands_take_the_name_like_a_checkpoint():
    model, task, spec, _ = load_run("modelnet40")
    assert task.name == "classification" and spec.num_points == 256 and model.num_classes == 40


def test_predicts_airplane_for_every_shared_airplane_mesh(shared_data, capsys):
    # These meshes are ModelNet40 *training* shapes: a check that the shipped model works, not an accuracy.
    meshes = sorted((shared_data / "meshes" / "modelnet40_off").glob("airplane_*.off"))
    assert len(meshes) == 6
    assert main(["predict", "modelnet40", *map(str, meshes), "--topk", "1", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6 and all(": airplane " in line for line in lines), lines


@pytest.mark.slow
def test_exported_onnx_gives_the_checkpoints_answer(shared_data, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    meshes = [str(p) for p in sorted((shared_data / "meshes").glob("*/*.off"))]
    assert main(["export", "modelnet40", "--out", str(tmp_path / "m.onnx")]) == 0
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "m.onnx"), *meshes, "--topk", "1"]) == 0
    exported = capsys.readouterr().out.splitlines()
    assert main(["predict", "modelnet40", *meshes, "--topk", "1", "--amp", "off", "--device", "cpu"]) == 0
    checkpoint = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in exported] == [line.split()[1] for line in checkpoint]
