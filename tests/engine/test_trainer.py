import json

import pytest
import torch

from pointnet_kit.engine.checkpoint import load_checkpoint
from pointnet_kit.engine.config import config_from_dict
from pointnet_kit.engine.trainer import bn_momentum_at, lr_factor, train
from pointnet_kit.errors import ConfigError, DataError

from .conftest import fast_overrides


def quiet(_msg: str) -> None:
    pass


@pytest.fixture(scope="module")
def run(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    summary = train(config_from_dict({}, fast_overrides(tiny_data, epochs=4)), out, log=quiet)
    return out, summary


def test_run_directory_holds_everything(run):
    out, summary = run
    for name in ("config.yaml", "metrics.jsonl", "checkpoint_last.pt", "checkpoint_best.pt", "summary.json"):
        assert (out / name).is_file(), name
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2, 3, 4]
    for key in ("train_loss", "train_acc", "val_oa", "val_macc", "lr", "train_seconds", "shapes_per_s"):
        assert all(key in m for m in lines), key
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))


def test_it_learns_the_tiny_problem(run):
    out, summary = run
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]
    assert summary["best"]["val_oa"] >= 0.9


def test_best_checkpoint_is_chosen_on_validation_and_summary_says_so(run):
    out, summary = run
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    best_epoch = max(lines, key=lambda m: (m["val_oa"], -m["epoch"]))["epoch"]
    assert load_checkpoint(out / "checkpoint_best.pt")["epoch"] == best_epoch == summary["best"]["epoch"]
    assert summary["selected_by"].startswith("val_oa") and "validation" in summary["selected_by"]
    assert summary["oa"] == summary["best"]["val_oa"] and summary["task"] == "classification"
    assert "not used" in summary["splits"]["test"]
    assert summary["splits"]["val"]["shapes"] + summary["splits"]["train"]["shapes"] == 96


def test_checkpoint_is_self_describing(run):
    out, _ = run
    ckpt = load_checkpoint(out / "checkpoint_last.pt")
    assert ckpt["model_name"] == "pointnet"
    assert ckpt["model_kwargs"]["num_classes"] == 3
    assert ckpt["class_names"] == ["stick_x", "stick_z", "blob"]
    assert ckpt["config"]["train"]["epochs"] == 4
    assert ckpt["task"] == "classification"
    assert ckpt["data_spec"]["class_names"] == ckpt["class_names"] and ckpt["data_spec"]["num_points"] == 64
    assert {"optimizer", "scheduler", "rng", "epoch"} <= set(ckpt)


def test_resume_matches_an_uninterrupted_run_bit_for_bit(tiny_data, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    train(config_from_dict({}, fast_overrides(tiny_data, epochs=3)), full, log=quiet)
    train(config_from_dict({}, fast_overrides(tiny_data, epochs=2)), part, log=quiet)
    train(config_from_dict({}, fast_overrides(tiny_data, epochs=3)), part, resume=part, log=quiet)
    a, b = load_checkpoint(full / "checkpoint_last.pt"), load_checkpoint(part / "checkpoint_last.pt")
    assert a["epoch"] == b["epoch"] == 3
    for key, value in a["model_state"].items():
        assert torch.equal(value, b["model_state"][key]), key
    la = [json.loads(x) for x in (full / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (part / "metrics.jsonl").read_text().splitlines()]
    assert [m["train_loss"] for m in la] == [m["train_loss"] for m in lb]


def test_final_batch_of_one_is_a_clear_error(tiny_data, tmp_path):
    # 72 training shapes (96 minus a quarter for validation) in batches of 71 leave one shape over.
    overrides = fast_overrides(tiny_data) + ["train.batch_size=71", "train.drop_last=false"]
    with pytest.raises(ConfigError, match="BatchNorm"):
        train(config_from_dict({}, overrides), tmp_path, log=quiet)


def test_missing_data_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError):
        train(config_from_dict({}, fast_overrides(tmp_path / "nowhere")), tmp_path / "out", log=quiet)


def test_a_model_of_another_task_is_refused(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match="'pointnet_seg' is a part_segmentation model but the data .* is for classification"):
        train(config_from_dict({}, fast_overrides(tiny_data) + ["model.name=pointnet_seg"]), tmp_path, log=quiet)


def test_select_metric_must_be_the_tasks(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match="val_instance_miou.*use one of val_oa, val_macc"):
        train(config_from_dict({}, fast_overrides(tiny_data) + ["train.select_metric=val_instance_miou"]), tmp_path, log=quiet)


def test_paper_schedules():
    config = config_from_dict({}, ["optim.lr=0.001", "schedule.name=step", "schedule.step_size=20", "schedule.gamma=0.7"])
    assert lr_factor(config, 0) == 1.0 and lr_factor(config, 19) == 1.0
    assert lr_factor(config, 20) == pytest.approx(0.7) and lr_factor(config, 45) == pytest.approx(0.49)
    assert lr_factor(config, 10_000) == pytest.approx(1e-5 / 1e-3)  # floored at min_lr
    config = config_from_dict({}, ["train.bn_momentum=0.5", "train.bn_momentum_step=20"])
    assert [bn_momentum_at(config, e) for e in (0, 20, 40)] == [0.5, 0.25, 0.125]
    assert bn_momentum_at(config, 1000) == 0.01
    cosine = config_from_dict({}, ["schedule.name=cosine", "train.epochs=10", "schedule.min_lr=0.0"])
    assert lr_factor(cosine, 0) == 1.0 and lr_factor(cosine, 5) == pytest.approx(0.5)


@pytest.mark.gpu
def test_cuda_run_with_bf16_autocast(tiny_data, tmp_path):
    summary = train(config_from_dict({}, fast_overrides(tiny_data) + ["runtime.device=cuda", "runtime.amp=bf16"]), tmp_path, log=quiet)
    assert summary["device"].startswith("cuda")
    assert load_checkpoint(tmp_path / "checkpoint_last.pt")["model_state"]["head.7.weight"].dtype == torch.float32


@pytest.mark.slow
def test_a_short_run_on_real_modelnet40_learns(shared_data, tmp_path):
    """Two epochs at 128 points on the real ModelNet40 training split (minutes on 2 cores)."""
    overrides = [
        f"data.root={shared_data / 'modelnet40_ply_hdf5_1024'}",
        "data.num_points=128",
        "train.epochs=2",
        "runtime.device=cpu",
        "runtime.progress=false",
        "runtime.tensorboard=false",
    ]
    summary = train(config_from_dict({}, overrides), tmp_path, log=quiet)
    assert summary["classes"] == 40 and summary["splits"]["val"]["shapes"] == 985
    assert summary["best"]["val_oa"] > 0.3  # chance is 0.025; the paper's model gets ~0.5 after one epoch
