"""``pointnet-kit report``: curves, confusion matrix, predictions grid and a report.html whose links all resolve."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from .viz_helpers import toy_dataset

from pointnet_kit.errors import DataError
from pointnet_kit.viz import report, sources


def _write_run(run: Path, epochs: int = 4) -> None:
    run.mkdir(parents=True, exist_ok=True)
    with open(run / "metrics.jsonl", "w") as f:
        for e in range(1, epochs + 1):
            record = {
                "epoch": e, "train_loss": 2.0 / e, "train_acc": 0.5 + 0.1 * e, "val_loss": 2.2 / e,
                "val_oa": 0.45 + 0.1 * e, "val_macc": 0.4 + 0.1 * e, "lr": 1e-3 * 0.5**e, "seconds": 1.0,
                "shapes_per_s": 100.0,
            }  # fmt: skip
            f.write(json.dumps(record) + "\n")
    (run / "config.yaml").write_text("model: pointnet\ndata:\n  root: toy\n")
    summary = {
        "model": "pointnet", "data": "toy", "epochs": epochs, "selected_by": "val_oa on the validation split",
        "best": {"epoch": epochs, "val_oa": 0.8512345678901234, "val_loss": 0.123456789},
        "wall_time_s": 428.31, "device": "cpu", "device_name": "x86_64",
    }  # fmt: skip
    (run / "summary.json").write_text(json.dumps(summary))


def _references(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


def test_report_writes_pngs_and_html_with_working_links(tmp_path, checkpoint, monkeypatch):
    dataset = toy_dataset()
    monkeypatch.setattr(sources, "dataset_for_checkpoint", lambda ckpt, data=None, split="val": dataset)
    run = checkpoint[0].parent
    _write_run(run)
    path = report.write_report(run, n=4, device="cpu", size=64)
    assert path == run / "report" / "report.html"
    for name in ("curves.png", "confusion.png", "mistakes.png"):
        image = np.asarray(Image.open(path.parent / name).convert("RGB"))
        assert image.shape[0] > 100 and (image < 250).any(axis=2).mean() > 0.02
    html = path.read_text()
    refs = _references(html)
    assert sum(r.startswith("data:image/png;base64,") for r in refs) == 3  # self-contained: images embedded
    files = [r for r in refs if not r.startswith("data:")]
    assert {"curves.png", "confusion.png", "mistakes.png", "../config.yaml", "../metrics.jsonl"} <= set(files)
    for ref in files:
        assert (path.parent / ref).is_file(), f"report.html links to missing {ref}"
    assert "http" not in html.replace("http-equiv", "")  # nothing fetched
    # A title from the run and a summary in words: percentages, epochs, wall time, device; no raw floats.
    assert "<h1>pointnet on toy</h1>" in html
    for text in ("85.1%", "epoch 4 of 4", "7 min 8 s", "cpu (x86_64)", "Per-class accuracy", "Config"):
        assert text in html
    assert "0.8512345" not in html and "0.123456789" not in html
    rows = re.findall(r"<tr><td>(cone|cube|sphere)</td>", html)
    assert sorted(rows) == ["cone", "cube", "sphere"]  # one row per class


def test_report_command_without_checkpoint_still_has_curves(tmp_path, cli, capsys):
    run = tmp_path / "run"
    _write_run(run, epochs=1)
    (run / "summary.json").unlink()
    assert cli("report", run, "--out", tmp_path / "out") == 0
    assert "report.html" in capsys.readouterr().out
    html = (tmp_path / "out" / "report.html").read_text()
    assert "No checkpoint" in html and "Last epoch" in html and "<h1>Run run</h1>" in html
    for ref in _references(html):
        assert ref.startswith("data:") or (tmp_path / "out" / ref).is_file()


def test_report_notes_missing_data(tmp_path, checkpoint, monkeypatch):
    def no_data(ckpt, data=None, split="val"):
        raise DataError("dataset folder not found: /nowhere")

    monkeypatch.setattr(sources, "dataset_for_checkpoint", no_data)
    run = checkpoint[0].parent
    _write_run(run)
    html = report.write_report(run, device="cpu").read_text()
    assert "dataset folder not found: /nowhere" in html and "curves.png" in html
    assert not (run / "report" / "confusion.png").exists()


def test_report_of_a_missing_run_is_an_error(tmp_path, cli, capsys):
    assert cli("report", tmp_path / "nope") == 2
    assert "run folder not found" in capsys.readouterr().err


def test_read_metrics_errors_name_file_and_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1}\n\nnot json\n')
    with pytest.raises(DataError, match=r"metrics.jsonl:3: not valid JSON"):
        report.read_metrics(path)
    with pytest.raises(DataError, match="no metrics file"):
        report.read_metrics(tmp_path / "missing.jsonl")
    path.write_text("\n")
    with pytest.raises(DataError, match="no epochs"):
        report.read_metrics(path)


def test_confusion_matrix_counts():
    matrix = report.confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]), 3)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    image = report.confusion_image(matrix, ["a", "b", "c"], title="t")
    assert image.ndim == 3 and image.shape[0] > 200


def test_summary_formatting():
    assert report.format_value("val_oa", 0.96666) == "96.7%"
    assert report.format_value("val_instance_miou", 0.8) == "80.0%"
    assert report.format_value("val_loss", 0.124607) == "0.1246"
    assert report.format_value("wall_time_s", 428.31) == "7 min 8 s"
    assert report.format_duration(3725) == "1 h 2 min" and report.format_duration(9.04) == "9.0 s"
    rows = report.per_class_rows(np.array([[3, 1], [0, 0]]), ["a", "b"])
    assert rows[0] == {"class": "a", "shapes": 4, "correct": 3, "accuracy": 0.75, "confused_with": "b (1)"}
    assert rows[1]["accuracy"] is None  # no shapes: listed last, not 0%


def test_curves_keep_equal_lines_apart_and_the_best_label_inside():
    records = [{"epoch": e, "val_oa": 0.5 + 0.05 * e, "val_macc": 0.5 + 0.05 * e, "lr": 1e-3 * 0.5 ** (e // 3)}
               for e in range(1, 9)]  # fmt: skip
    captured = {}
    real = report.figure_image
    report.figure_image = lambda fig: captured.setdefault("fig", fig) and real(fig)
    try:
        report.curves_image(records, "val_oa")
    finally:
        report.figure_image = real
    loss_ax, metric_ax, lr_ax = captured["fig"].axes[:3]
    oa, macc = [line for line in metric_ax.get_lines() if line.get_label().startswith("validation")]
    assert (oa.get_linestyle(), oa.get_marker()) != (macc.get_linestyle(), macc.get_marker())
    assert macc.get_zorder() > oa.get_zorder()  # drawn over, dashed: both visible when equal
    label = next(t for t in metric_ax.texts if t.get_text().startswith("best validation OA"))
    assert label.get_transform() == metric_ax.transAxes and 0 <= label.get_position()[0] <= 1
    assert lr_ax.get_yscale() == "log"  # the rate decays: a log scale shows each step


def test_curves_cope_with_missing_keys():
    image = report.curves_image([{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.5}])
    assert image.shape[1] > image.shape[0] > 100


def test_report_of_a_segmentation_run(tmp_path, monkeypatch):
    from pointnet_kit.data import PointCloudDataset

    from .viz_helpers import seg_checkpoint, shapenet_spec

    spec = shapenet_spec(64)
    rng = np.random.default_rng(0)
    categories = np.array([15, 15, 9, 9])
    parts = np.stack([np.array(spec.category_parts[spec.class_names[c]])[rng.integers(0, 2, 96)] for c in categories])
    dataset = PointCloudDataset(rng.normal(size=(4, 96, 3)), categories, spec.class_names, num_points=64,
                                part_labels=parts, spec=spec)  # fmt: skip
    monkeypatch.setattr(sources, "dataset_for_checkpoint", lambda ckpt, data=None, split="val": dataset)
    run = seg_checkpoint(tmp_path / "run" / "checkpoint_best.pt").parent
    _write_run(run)
    html = report.write_report(run, n=2, device="cpu", size=64).read_text()
    assert "Per-category and per-part IoU" in html and "Worst shapes" in html
    assert re.search(r"<td>Table</td><td class=num>2</td><td class=num>\d+\.\d%</td><td>top <span class=num>\d+\.\d%</span> · leg", html)
    assert "Confusion matrix" not in html and (run / "report" / "mistakes.png").is_file()
