"""A run's report: training curves, confusion matrix and a predictions grid, as PNGs and one report.html.

report.html is self-contained (images embedded, inline CSS, nothing fetched); it also links to the
PNGs beside it and to the run's own files by relative paths.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import DataError, PointNetKitError
from .grid import figure_image, new_figure

CURVES = {  # panel title -> metrics.jsonl keys drawn in it
    "loss": ("train_loss", "val_loss"),
    "accuracy": ("train_acc", "val_oa", "val_macc"),
    "learning rate": ("lr",),
}
LEGEND = {
    "train_loss": "train",
    "val_loss": "validation",
    "train_acc": "train",
    "val_oa": "validation (overall)",
    "val_macc": "validation (mean class)",
    "lr": "lr",
}


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The per-epoch records of a ``metrics.jsonl`` (one JSON object per line; blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no metrics file: {path}")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: expected a JSON object per line")
        records.append(record)
    if not records:
        raise DataError(f"{path} holds no epochs yet")
    return records


def curves_image(records: Sequence[dict[str, Any]]) -> np.ndarray:
    """Loss, accuracy and learning rate per epoch, three panels side by side; ``(H, W, 3)`` uint8."""
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(13, 3.8)
    axes = fig.subplots(1, len(CURVES))
    epochs = np.array([r.get("epoch", i + 1) for i, r in enumerate(records)], dtype=float)
    for ax, (title, keys) in zip(axes, CURVES.items()):
        drawn = False
        for key in keys:
            values = np.array([r.get(key, np.nan) for r in records], dtype=float)
            if np.all(np.isnan(values)):
                continue
            ax.plot(epochs, values, marker="o" if len(epochs) <= 30 else None, ms=3, lw=1.6, label=LEGEND.get(key, key))
            drawn = True
            if key == "val_oa":
                best = int(np.nanargmax(values))
                ax.annotate(
                    f"best {values[best]:.3g} (epoch {epochs[best]:g})",
                    (epochs[best], values[best]),
                    xytext=(0, -16),
                    textcoords="offset points",
                    ha="center",
                    fontsize=8,
                )
        if title == "learning rate" and drawn:
            lr = np.array([r.get("lr", np.nan) for r in records], dtype=float)
            if np.nanmin(lr) > 0 and np.nanmax(lr) / np.nanmin(lr) > 20:
                ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if drawn and len(keys) > 1:
            ax.legend(fontsize=8)
        if not drawn:
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes, color="gray")
    return figure_image(fig)


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """``(K, K)`` int64 counts: row = true class, column = predicted class."""
    return np.bincount(
        np.asarray(labels) * num_classes + np.asarray(predicted), minlength=num_classes * num_classes
    ).reshape(num_classes, num_classes)


def confusion_image(matrix: np.ndarray, class_names: Sequence[str], title: str = "") -> np.ndarray:
    """The confusion matrix, each row normalised (recall), counts written in when the classes are few."""
    k = len(class_names)
    side = float(np.clip(2.5 + 0.22 * k, 5, 12))
    fig = new_figure(side + 1.2, side)
    ax = fig.subplots()
    totals = matrix.sum(1, keepdims=True)
    rates = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of the true class")
    fontsize = float(np.clip(14 - 0.2 * k, 6, 10))
    ax.set_xticks(range(k), class_names, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(k), class_names, fontsize=fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 15:
        for i in range(k):
            for j in range(k):
                if matrix[i, j]:
                    ax.text(
                        j,
                        i,
                        str(matrix[i, j]),
                        ha="center",
                        va="center",
                        fontsize=fontsize,
                        color="white" if rates[i, j] > 0.5 else "black",
                    )
    if title:
        ax.set_title(title)
    return figure_image(fig)


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _rel(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def write_report(
    run_dir: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    data: str | None = None,
    n: int = 16,
    device: str = "auto",
    size: int = 200,
) -> Path:
    """Write ``curves.png``, ``confusion.png``, ``predictions.png`` and ``report.html`` for a run.

    The confusion matrix and predictions need the checkpoint, the data and a renderer; when one is
    missing the report still gets written, saying what was left out and why. Returns the HTML's path.
    """
    from .figures import predictions_panels, render_panels
    from .render import RenderError, save_png

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PointNetKitError(f"run folder not found: {run_dir}")
    out = Path(out_dir) if out_dir is not None else run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    sections: list[str] = []
    notes: list[str] = []

    records = read_metrics(run_dir / "metrics.jsonl")
    save_png(curves_image(records), out / "curves.png")
    sections.append(_image_section("Training curves", out / "curves.png", out))

    checkpoint = next(
        (run_dir / f for f in ("checkpoint_best.pt", "checkpoint_last.pt") if (run_dir / f).is_file()), None
    )
    if checkpoint is None:
        notes.append("No checkpoint in the run folder: no confusion matrix or predictions.")
    else:
        try:
            from . import sources

            result = sources.predict_split(checkpoint, data=data, split="val", device=device)
            dataset, probs = result.dataset, result.probs
        except PointNetKitError as exc:
            notes.append(f"Confusion matrix and predictions left out: {exc}")
        else:
            predicted = probs.argmax(1)
            matrix = confusion_matrix(dataset.labels, predicted, dataset.num_classes)
            accuracy = float(np.trace(matrix) / max(matrix.sum(), 1))
            title = f"{checkpoint.name} on the validation split: {accuracy:.1%} of {len(dataset)} shapes"
            save_png(confusion_image(matrix, dataset.class_names, title), out / "confusion.png")
            sections.append(_image_section("Confusion matrix", out / "confusion.png", out))
            panels = predictions_panels(
                dataset.points[:, : dataset.num_points], dataset.labels, probs, dataset.class_names, n=n
            )
            try:
                image = render_panels(panels, size=size)
            except RenderError as exc:
                notes.append(f"Predictions grid left out: {exc}")
            else:
                save_png(image, out / "predictions.png")
                sections.append(_image_section("Predictions (validation)", out / "predictions.png", out))

    html_path = out / "report.html"
    html_path.write_text(_html(run_dir, out, records, sections, notes))
    return html_path


def _image_section(title: str, path: Path, out: Path) -> str:
    return (
        f'<h2>{html.escape(title)}</h2>\n<a href="{html.escape(_rel(path, out))}">'
        f'<img src="{_data_uri(path)}" alt="{html.escape(title)}"></a>'
    )


def _html(run_dir: Path, out: Path, records: list[dict[str, Any]], sections: list[str], notes: list[str]) -> str:
    summary_path = run_dir / "summary.json"
    summary: dict[str, Any] = {}
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text())
        except json.JSONDecodeError:
            notes.append(f"{summary_path.name} is not valid JSON.")
    if not isinstance(summary, dict):
        summary = {"summary": summary}
    last = records[-1]
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_format(v))}</td></tr>"
        for k, v in (summary or last).items()
    )
    files = [
        p
        for p in ("config.yaml", "metrics.jsonl", "summary.json", "checkpoint_best.pt", "checkpoint_last.pt")
        if (run_dir / p).is_file()
    ]
    links = " · ".join(f'<a href="{html.escape(_rel(run_dir / f, out))}">{html.escape(f)}</a>' for f in files)
    config = (run_dir / "config.yaml").read_text() if (run_dir / "config.yaml").is_file() else ""
    note_html = "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    epochs = len(records)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>pointnet-kit report: {html.escape(run_dir.resolve().name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1400px; margin: 2em auto; padding: 0 1em; color: #222; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
table {{ border-collapse: collapse; }} th, td {{ text-align: left; padding: 2px 12px 2px 0; }}
th {{ font-weight: 600; }} pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; }}
.note {{ color: #a15c00; }}
</style></head><body>
<h1>Run {html.escape(run_dir.resolve().name)}</h1>
<p>{epochs} epoch{"s" if epochs != 1 else ""} recorded. Files: {links}</p>
{note_html}
<h2>{"Summary" if summary else "Last epoch"}</h2>
<table>{rows}</table>
{chr(10).join(sections)}
{"<h2>Config</h2><pre>" + html.escape(config) + "</pre>" if config else ""}
</body></html>
"""
