import json

import numpy as np
import pytest

from pointnet_kit.cli.main import main
from pointnet_kit.engine.config import config_from_dict
from pointnet_kit.engine.evaluate import evaluate_checkpoint, predict_files, vote_transforms
from pointnet_kit.engine.trainer import train
from pointnet_kit.errors import CheckpointError

from .conftest import fast_overrides, write_tiny_hdf5


@pytest.fixture(scope="module")
def checkpoint(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("evalrun")
    train(config_from_dict({}, fast_overrides(tiny_data, epochs=3)), out, log=lambda _m: None)
    return out / "checkpoint_best.pt"


def test_eval_on_validation_reproduces_the_training_metric(checkpoint):
    from pointnet_kit.engine.checkpoint import load_checkpoint

    result = evaluate_checkpoint(checkpoint, device="cpu")
    assert result["split"] == "val" and result["num_shapes"] == 24
    assert result["oa"] == pytest.approx(load_checkpoint(checkpoint)["metrics"]["val_oa"])
    assert np.array(result["confusion"]).sum() == 24
    assert set(result["per_class"]) == {"stick_x", "stick_z", "blob"}


def test_eval_with_votes_and_test_split(checkpoint):
    result = evaluate_checkpoint(checkpoint, split="test", votes=4, device="cpu")
    assert result["votes"] == 4 and result["num_shapes"] == 30
    assert 0.0 <= result["oa"] <= 1.0


def test_votes_are_rotations_about_the_up_axis_that_keep_z():
    config = config_from_dict({})
    import torch

    points = torch.randn(2, 10, 3)
    transforms = vote_transforms(config, 4)
    assert torch.equal(transforms[0](points), points)
    rotated = transforms[1](points)
    assert torch.allclose(rotated[..., 2], points[..., 2])
    assert torch.allclose(rotated.norm(dim=-1), points.norm(dim=-1), atol=1e-6)
    assert not torch.allclose(rotated, points)
    y_up = vote_transforms(config_from_dict({}, ["data.up_axis=y"]), 4)[1](points)
    assert torch.allclose(y_up[..., 1], points[..., 1])
    assert torch.allclose(y_up.norm(dim=-1), points.norm(dim=-1), atol=1e-6)


def test_eval_on_data_with_other_classes_is_refused(checkpoint, tmp_path):
    other = write_tiny_hdf5(tmp_path / "other")
    (other / "shape_names.txt").write_text("a\nb\nc\n")
    with pytest.raises(CheckpointError, match="classes"):
        evaluate_checkpoint(checkpoint, data=str(other), device="cpu")


def test_predict_on_a_point_cloud_file(checkpoint, tmp_path):
    cloud = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32) * np.array([0.1, 0.1, 1.0], np.float32)
    np.save(tmp_path / "stick.npy", cloud)
    [result] = predict_files(checkpoint, [tmp_path / "stick.npy"], topk=2, device="cpu")
    assert len(result["predictions"]) == 2
    assert result["predictions"][0]["prob"] >= result["predictions"][1]["prob"]
    assert result["predictions"][0]["class"] == "stick_z"


def test_cli_eval_json_and_errors(checkpoint, tmp_path, capsys):
    assert main(["eval", str(checkpoint), "--device", "cpu", "--json-out", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["split"] == "val"
    assert main(["eval", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: checkpoint not found: {tmp_path / 'missing.pt'}"]
    assert main(["predict", str(checkpoint), str(tmp_path / "nope.off")]) == 2


def _damaged(checkpoint, tmp_path, key: str, scale: float):
    """A copy of ``checkpoint`` with the weight ``key`` multiplied by ``scale``."""
    import torch

    from pointnet_kit.engine.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    ckpt["model_state"][key] = ckpt["model_state"][key] * scale
    path = tmp_path / f"damaged-{scale}.pt"
    torch.save(ckpt, path)
    return path


def test_eval_and_predict_refuse_nan_weights(checkpoint, tmp_path):
    from pointnet_kit.errors import NonFiniteError

    path = _damaged(checkpoint, tmp_path, "head.0.weight", float("nan"))
    np.save(tmp_path / "cloud.npy", np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32))
    with pytest.raises(NonFiniteError, match=f"checkpoint {path} has non-finite weights .*head.0.weight"):
        evaluate_checkpoint(path, device="cpu")
    with pytest.raises(NonFiniteError, match="non-finite weights"):
        predict_files(path, [tmp_path / "cloud.npy"], device="cpu")


def test_non_finite_outputs_of_finite_weights_are_refused(checkpoint, tmp_path):
    from pointnet_kit.errors import NonFiniteError

    from pointnet_kit.engine.checkpoint import load_checkpoint

    last = [k for k in load_checkpoint(checkpoint)["model_state"] if k.startswith("head.") and k.endswith(".weight")][-1]
    path = _damaged(checkpoint, tmp_path, last, 1e38)  # finite weights whose logits overflow float32
    np.save(tmp_path / "cloud.npy", np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32))
    with pytest.raises(NonFiniteError, match="model's output for .*cloud.npy"):
        predict_files(path, [tmp_path / "cloud.npy"], device="cpu")
    with pytest.raises(NonFiniteError, match="outputs on shapes 0-"):
        evaluate_checkpoint(path, device="cpu")


def test_eval_json_to_an_unwritable_path_names_it(checkpoint, tmp_path, capsys):
    from .test_trainer import cli_failure

    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "r.json"
    assert str(target) in cli_failure(["eval", str(checkpoint), "--device", "cpu", "--json-out", str(target)], capsys)
