"""Part segmentation end to end: train, eval (reproduces the summary), predict, on a tiny box dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pointnet_kit.cli.main import main
from pointnet_kit.engine import evaluate as evaluate_module
from pointnet_kit.engine import trainer as trainer_module
from pointnet_kit.engine.checkpoint import load_run
from pointnet_kit.engine.config import config_from_dict
from pointnet_kit.engine.evaluate import evaluate_checkpoint, predict_files
from pointnet_kit.engine.trainer import Trainer, train
from pointnet_kit.errors import ConfigError

from .conftest import fast_overrides
from .seg_data import box_cloud, fake_load_split

REPO = Path(__file__).resolve().parents[2]
SEG = ["model.name=pointnet_seg", "train.augmentations=[{name: rotate_z}]", "optim.lr=0.003", "train.batch_size=8"]


@pytest.fixture(scope="module")
def boxes(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setattr(trainer_module, "load_split", fake_load_split)
    patch.setattr(evaluate_module, "load_split", fake_load_split)
    yield tmp_path_factory.mktemp("boxes")
    patch.undo()


@pytest.fixture(scope="module")
def seg_run(boxes):
    out = boxes / "run"
    overrides = fast_overrides("boxes", epochs=4) + SEG + ["model.kwargs.num_categories=2"]
    summary = train(config_from_dict({}, overrides), out, log=lambda _m: None)
    return out, summary


def test_summary_reports_validation_miou(seg_run):
    out, summary = seg_run
    assert summary["task"] == "part_segmentation" and summary["selected_by"].startswith("val_instance_miou")
    for key in ("instance_miou", "category_miou"):
        assert 0.0 <= summary[key] <= 1.0 and summary[key] == summary["best"][f"val_{key}"]
    assert summary["instance_miou"] > 0.7  # two halves per box: one part everywhere gives 0.25, coin flips 1/3
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"val_instance_miou", "val_category_miou", "val_point_acc", "val_loss", "train_acc"} <= set(lines[0])


def test_checkpoint_holds_task_and_spec(seg_run):
    model, task, spec, ckpt = load_run(seg_run[0])
    assert task.name == ckpt["task"] == "part_segmentation" and model.num_categories == 2
    assert spec.part_names == ["tall/bottom", "tall/top", "flat/bottom", "flat/top"] and spec.num_points == 64


def test_eval_reproduces_the_summary(seg_run, capsys):
    out, summary = seg_run
    result = evaluate_checkpoint(out, device="cpu")
    assert result["instance_miou"] == pytest.approx(summary["instance_miou"], abs=1e-9)
    assert result["category_miou"] == pytest.approx(summary["category_miou"], abs=1e-9)
    assert set(result["per_category"]) == {"tall", "flat"} and len(result["per_part"]) == 4
    assert main(["eval", str(out), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert f"instance mIoU        {summary['instance_miou']:.4f}" in text and "per part" in text


def test_predict_labels_points_with_the_categorys_parts(seg_run, tmp_path, capsys):
    points, parts = box_cloud("tall", 400, np.random.default_rng(5))
    np.save(tmp_path / "tall.npy", points)
    [result] = predict_files(seg_run[0], [tmp_path / "tall.npy"], device="cpu", category="tall")
    assert result["parts"].shape == (64,) and set(result["parts"].tolist()) <= {0, 1}
    assert sum(result["counts"].values()) == 64
    up = result["points"][:, 2] > 0.1
    assert (result["parts"][up] == 1).mean() > 0.8  # the top half is the top
    out = tmp_path / "parts.txt"
    assert main(["predict", str(seg_run[0]), str(tmp_path / "tall.npy"), "--category", "tall", "--out", str(out), "--device", "cpu"]) == 0
    assert "tall/" in capsys.readouterr().out
    table = np.loadtxt(out)
    assert table.shape == (64, 4) and set(table[:, 3].astype(int)) <= {0, 1}
    assert main(["predict", str(seg_run[0]), str(tmp_path / "tall.npy"), "--device", "cpu"]) == 2
    assert "--category" in capsys.readouterr().err


def test_point_moving_augmentation_keeps_part_labels_with_their_points(boxes, tmp_path):
    overrides = fast_overrides("boxes") + [
        "model.name=pointnet_seg",
        "train.augmentations=[{name: shuffle}, {name: dropout, max_ratio: 0.5}]",
    ]
    trainer = Trainer(config_from_dict({}, overrides), tmp_path / "aligned", log=lambda _m: None)
    batch = {key: value[:4] for key, value in trainer.train_data.items()}
    out = trainer.augment(dict(batch), generator=torch.Generator().manual_seed(0))
    assert not torch.equal(out["points"], batch["points"])  # the points did move
    for b in range(4):
        before = {(tuple(p.tolist()), int(l)) for p, l in zip(batch["points"][b], batch["part_labels"][b])}
        after = {(tuple(p.tolist()), int(l)) for p, l in zip(out["points"][b], out["part_labels"][b])}
        assert after <= before  # every point kept the label it had


def test_classifier_on_part_data_is_refused(boxes):
    with pytest.raises(ConfigError, match="'pointnet' is a classification model"):
        train(config_from_dict({}, fast_overrides("boxes")), boxes / "refused2", log=lambda _m: None)


@pytest.mark.slow
def test_parts_default_job_trains_and_eval_reproduces_it(tmp_path, capsys):
    """configs/parts_default.yaml on the embedded parts dataset, one epoch (about a minute on 2 cores)."""
    from pointnet_kit.data import open_dataset
    from pointnet_kit.errors import DataError

    try:
        open_dataset("default_parts", split="test", num_points=16)
    except DataError as exc:
        pytest.skip(f"embedded parts dataset not available: {exc}")
    config = REPO / "configs" / "parts_default.yaml"
    out = tmp_path / "R"
    assert main(["train", "--config", str(config), "--out", str(out), "train.epochs=1", "runtime.progress=false", "runtime.tensorboard=false"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert 0.0 <= summary["instance_miou"] <= 1.0 and 0.0 <= summary["category_miou"] <= 1.0
    result = evaluate_checkpoint(out, device="cpu")
    assert result["instance_miou"] == pytest.approx(summary["instance_miou"], abs=1e-9)
    assert result["category_miou"] == pytest.approx(summary["category_miou"], abs=1e-9)
