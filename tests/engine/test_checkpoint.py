import pytest
import torch

from pointnet_kit import create_model
from pointnet_kit.engine.checkpoint import load_checkpoint, load_model, save_checkpoint
from pointnet_kit.errors import CheckpointError


def test_save_load_round_trip(tmp_path):
    model = create_model("pointnet", num_classes=5, seed=1).eval()
    path = save_checkpoint(tmp_path / "ckpt.pt", model, class_names=list("abcde"), epoch=3)
    loaded, ckpt = load_model(path)
    assert ckpt["class_names"] == list("abcde") and ckpt["epoch"] == 3
    x = torch.randn(2, 50, 3)
    with torch.no_grad():
        assert torch.equal(model(x)["logits"], loaded(x)["logits"])
    assert not loaded.training


def test_no_temp_files_are_left_behind(tmp_path):
    save_checkpoint(tmp_path / "c.pt", create_model("pointnet_vanilla", num_classes=2))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = create_model("pointnet_vanilla", num_classes=2, seed=0)
    path = save_checkpoint(tmp_path / "c.pt", model, epoch=1)

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", explode)
    with pytest.raises(OSError):
        save_checkpoint(path, model, epoch=2)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_wrong_model_or_class_count_is_rejected(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", create_model("pointnet", num_classes=4))
    with pytest.raises(CheckpointError, match="expected 'pointnet_vanilla'"):
        load_model(path, expected_model="pointnet_vanilla")
    with pytest.raises(CheckpointError, match="4 classes"):
        load_model(path, expected_num_classes=40)


def test_foreign_and_corrupt_files_are_clear_errors(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a pointnet-kit checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "corrupt.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_state_of_another_architecture_is_rejected(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", create_model("pointnet", num_classes=4))
    ckpt = load_checkpoint(path)
    ckpt["model_name"] = "pointnet_vanilla"
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(ckpt)


def test_load_run_gives_model_task_and_spec(tmp_path):
    from pointnet_kit.data.record import DataSpec
    from pointnet_kit.engine.checkpoint import load_run

    spec = DataSpec(num_points=256, up_axis="y", class_names=list("abcd"))
    model = create_model("pointnet", num_classes=4, seed=1)
    path = save_checkpoint(tmp_path / "c.pt", model, task="classification", data_spec=spec.to_dict(), class_names=list("abcd"))
    loaded, task, loaded_spec, ckpt = load_run(path)
    assert loaded_spec == spec and task.name == "classification" and task.num_outputs == 4
    assert not loaded.training and ckpt["class_names"] == list("abcd")


def test_load_run_reads_checkpoints_from_before_tasks_and_specs(tmp_path):
    """Older checkpoints: no task or data_spec, and the regularizer weight under train."""
    from pointnet_kit.engine.checkpoint import checkpoint_config, load_run

    old_config = {"data": {"root": "somewhere", "num_points": 512, "up_axis": "y"}, "train": {"feature_transform_weight": 0.002}}
    path = save_checkpoint(tmp_path / "old.pt", create_model("pointnet", num_classes=3), class_names=["x", "y", "z"], config=old_config)
    model, task, spec, ckpt = load_run(path)
    assert task.name == "classification" and spec.class_names == ["x", "y", "z"]
    assert (spec.num_points, spec.up_axis, spec.channels, spec.source) == (512, "y", ["x", "y", "z"], "somewhere")
    assert checkpoint_config(ckpt).model.kwargs == {"feature_transform_weight": 0.002}


def test_load_run_rejects_a_spec_that_does_not_fit_the_model(tmp_path):
    from pointnet_kit.data.record import DataSpec
    from pointnet_kit.engine.checkpoint import load_run

    path = save_checkpoint(tmp_path / "c.pt", create_model("pointnet", num_classes=4), data_spec=DataSpec(class_names=["a"]).to_dict())
    with pytest.raises(CheckpointError, match="4 outputs but its data spec describes 1"):
        load_run(path)
