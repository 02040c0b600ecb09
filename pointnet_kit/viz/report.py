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

METRIC_NAMES = {  # metrics.jsonl key -> words
    "train_loss": "train loss",
    "val_loss": "validation loss",
    "train_acc": "train accuracy",
    "val_oa": "validation OA",
    "val_macc": "validation mAcc",
    "val_instance_miou": "validation instance mIoU",
    "val_category_miou": "validation category mIoU",
    "val_point_acc": "validation point accuracy",
    "lr": "learning rate",
}
# One look per line, so equal curves stay visible: the later one dashed, with other markers, on top.
STYLES = (
    {"ls": "-", "marker": "o"},
    {"ls": "--", "marker": "s"},
    {"ls": ":", "marker": "^"},
    {"ls": "-.", "marker": "D"},
)
SPLIT_NAMES = {"val": "validation"}
FRACTION_HINTS = ("acc", "oa", "iou")  # metric keys holding fractions, shown as percentages


def metric_name(key: str) -> str:
    """Words for a metrics key (``val_oa`` -> ``validation OA``)."""
    return METRIC_NAMES.get(key, key.replace("_", " "))


def is_fraction(key: str) -> bool:
    return any(hint in key for hint in FRACTION_HINTS) and "loss" not in key


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


def curve_panels(records: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """Panel title -> metrics keys drawn in it: losses, the fractions (accuracies, IoUs), the learning rate."""
    keys = list(dict.fromkeys(k for r in records for k in r))
    return {
        "loss": [k for k in keys if k.endswith("loss")],
        "accuracy / IoU": [k for k in keys if is_fraction(k)],
        "learning rate": [k for k in keys if k == "lr"],
    }


def curves_image(records: Sequence[dict[str, Any]], select: str | None = None) -> np.ndarray:
    """Loss, accuracy/IoU and learning rate per epoch, three panels side by side; ``(H, W, 3)`` uint8.

    Every line has its own style and markers, so equal curves (OA and mAcc on balanced data) both
    show; ``select`` (default: the first validation metric) gets its best epoch marked, with the
    label inside the axes. The learning rate is on a log scale when it decays.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, PercentFormatter

    fig = new_figure(13, 3.8)
    panels = curve_panels(records)
    axes = fig.subplots(1, len(panels))
    epochs = np.array([r.get("epoch", i + 1) for i, r in enumerate(records)], dtype=float)
    fractions = panels["accuracy / IoU"]
    select = select if select in fractions else next((k for k in fractions if k.startswith("val_")), None)
    for ax, (title, keys) in zip(axes, panels.items()):
        drawn = 0
        for key in keys:
            values = np.array([r.get(key, np.nan) for r in records], dtype=float)
            if np.all(np.isnan(values)):
                continue
            style = STYLES[drawn % len(STYLES)]
            ax.plot(
                epochs,
                values,
                ls=style["ls"],
                marker=style["marker"] if len(epochs) <= 40 else None,
                ms=5 - drawn,  # later markers smaller: both visible where lines coincide
                lw=1.8,
                label=metric_name(key),
                zorder=2 + drawn,
            )
            drawn += 1
            if key == select and np.any(~np.isnan(values)):
                best = int(np.nanargmax(values))
                ax.plot(epochs[best], values[best], marker="*", ms=14, color="gold", mec="black", zorder=10)
                ax.text(
                    0.98,
                    0.04,
                    f"best {metric_name(key)} {values[best]:.1%} (epoch {epochs[best]:g}) ★",
                    transform=ax.transAxes,
                    ha="right",
                    va="bottom",
                    fontsize=8,
                    bbox={"boxstyle": "round", "fc": "white", "ec": "0.8"},
                )
        if title == "learning rate" and drawn:
            lr = np.array([r.get("lr", np.nan) for r in records], dtype=float)
            if np.nanmin(lr) > 0 and np.nanmax(lr) / np.nanmin(lr) >= 2:
                ax.set_yscale("log")
                ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0e}".replace("e-0", "e-")))
                ax.yaxis.set_minor_formatter(NullFormatter())
        if title == "accuracy / IoU" and drawn:
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if drawn > 1:
            ax.legend(fontsize=8, loc="best")
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


def format_value(key: str, value: Any) -> str:
    """A summary value for people: fractions as percentages, seconds as minutes, floats to 4 digits."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        if is_fraction(key) and 0 <= value <= 1:
            return f"{value:.1%}"
        if key.endswith(("seconds", "_s", "time")) and "per" not in key:
            return format_duration(float(value))
        if isinstance(value, float):
            return f"{value:,.4g}" if abs(value) >= 1e-3 else f"{value:.3g}"
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {format_value(k, v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def format_duration(seconds: float) -> str:
    """``428.3`` -> ``"7 min 8 s"``; ``3725`` -> ``"1 h 2 min"``."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def per_class_rows(matrix: np.ndarray, class_names: Sequence[str]) -> list[dict[str, Any]]:
    """One row per class: ``class``, ``shapes``, ``correct``, ``accuracy`` (``None`` without shapes) and
    ``confused_with`` (the most frequent wrong prediction and its count, or ``""``), worst first."""
    rows = []
    for i, name in enumerate(class_names):
        total, correct = int(matrix[i].sum()), int(matrix[i, i])
        wrong = matrix[i].copy()
        wrong[i] = 0
        confused = f"{class_names[int(wrong.argmax())]} ({int(wrong.max())})" if wrong.max() > 0 else ""
        rows.append(
            {"class": name, "shapes": total, "correct": correct, "accuracy": correct / total if total else None,
             "confused_with": confused}
        )  # fmt: skip
    return sorted(rows, key=lambda r: (r["accuracy"] is None, r["accuracy"] if r["accuracy"] is not None else 0))


def write_report(
    run_dir: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    data: str | None = None,
    n: int = 16,
    device: str = "auto",
    size: int = 200,
) -> Path:
    """Write the run's report: ``curves.png``, ``confusion.png`` (classification), ``mistakes.png``
    (the worst mistakes / shapes of lowest IoU) and one self-contained ``report.html``.

    The tables and pictures of predictions need the checkpoint, the data and a renderer; when one is
    missing the report still gets written, saying what was left out and why. Returns the HTML's path.
    """
    from .render import RenderError, save_png

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PointNetKitError(f"run folder not found: {run_dir}")
    out = Path(out_dir) if out_dir is not None else run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    sections: list[str] = []
    notes: list[str] = []
    summary = _read_summary(run_dir, notes)

    records = read_metrics(run_dir / "metrics.jsonl")
    select = str(summary.get("selected_by", "")).split(" ")[0] or None
    save_png(curves_image(records, select), out / "curves.png")
    curves = _image_section("Training curves", out / "curves.png", out)

    checkpoint = next(
        (run_dir / f for f in ("checkpoint_best.pt", "checkpoint_last.pt") if (run_dir / f).is_file()), None
    )
    if checkpoint is None:
        notes.append("No checkpoint in the run folder: no per-class table, mistakes or confusion matrix.")
    else:
        try:
            from . import sources

            result = sources.predict_split(checkpoint, data=data, split="val", device=device)
        except PointNetKitError as exc:
            notes.append(f"Per-class results, mistakes and confusion matrix left out: {exc}")
        else:
            try:
                if result.spec.task == "part_segmentation":
                    sections += _segmentation_sections(result, checkpoint, out, n, size)
                else:
                    sections += _classification_sections(result, checkpoint, out, n, size)
            except RenderError as exc:
                notes.append(f"Pictures of predictions left out: {exc}")
    sections.insert(0, curves)

    html_path = out / "report.html"
    html_path.write_text(_html(run_dir, out, records, summary, sections, notes))
    return html_path


def _classification_sections(result, checkpoint: Path, out: Path, n: int, size: int) -> list[str]:
    from .figures import predictions_panels, render_panels
    from .render import save_png

    dataset, probs = result.dataset, result.probs
    predicted = probs.argmax(1)
    matrix = confusion_matrix(dataset.labels, predicted, dataset.num_classes)
    accuracy = float(np.trace(matrix) / max(matrix.sum(), 1))
    sections = []
    rows = per_class_rows(matrix, dataset.class_names)
    table = "".join(
        f"<tr><td>{html.escape(r['class'])}</td><td class=num>{r['shapes']}</td><td class=num>{r['correct']}</td>"
        f"<td class=num>{'-' if r['accuracy'] is None else format(r['accuracy'], '.1%')}</td>"
        f"<td>{html.escape(r['confused_with'])}</td></tr>"
        for r in rows
    )
    sections.append(
        f"<h2>Per-class accuracy (validation, {checkpoint.name})</h2>\n<p>{accuracy:.1%} of {len(dataset)} shapes "
        "correct; worst classes first.</p>\n<table class=grid><tr><th>class</th><th>shapes</th><th>correct</th>"
        f"<th>accuracy</th><th>most often taken for</th></tr>{table}</table>"
    )
    if (predicted != dataset.labels).any():
        panels = predictions_panels(
            result.drawn(), dataset.labels, probs, dataset.class_names, n=n, wrong_only=True,
            seen_points=dataset.num_points,
        )  # fmt: skip
        save_png(render_panels(panels, size=size, view=_view(result.spec)), out / "mistakes.png")
        sections.append(_image_section("Worst mistakes (most confident first)", out / "mistakes.png", out))
    else:
        sections.append("<h2>Worst mistakes</h2><p>None: every validation shape is classified correctly.</p>")
    title = f"{checkpoint.name} on the validation split: {accuracy:.1%} of {len(dataset)} shapes"
    save_png(confusion_image(matrix, dataset.class_names, title), out / "confusion.png")
    sections.append(_image_section("Confusion matrix", out / "confusion.png", out))
    return sections


def _segmentation_sections(result, checkpoint: Path, out: Path, n: int, size: int) -> list[str]:
    from . import parts as P
    from .figures import render_panels
    from .render import save_png

    dataset, spec = result.dataset, result.spec
    predicted, truth, scores = P.split_predicted_parts(result)
    rows = P.part_table(predicted, truth, dataset.labels, spec)
    by_category = []
    for c in np.unique(dataset.labels):
        name = spec.class_names[int(c)]
        parts = " · ".join(
            f"{html.escape(str(r['part']))} <span class=num>{r['iou']:.1%}</span>"
            for r in rows
            if r["category"] == name
        )
        by_category.append((name, int((dataset.labels == c).sum()), float(scores[dataset.labels == c].mean()), parts))
    table = "".join(
        f"<tr><td>{html.escape(name)}</td><td class=num>{count}</td><td class=num>{miou:.1%}</td><td>{parts}</td></tr>"
        for name, count, miou, parts in sorted(by_category, key=lambda r: r[2])
    )
    category_miou = float(np.mean([m for _, _, m, _ in by_category]))
    sections = [
        f"<h2>Per-category and per-part IoU (validation, {checkpoint.name})</h2>\n<p>Instance mIoU "
        f"{scores.mean():.1%} over {len(scores)} shapes, category mIoU {category_miou:.1%}; IoU over the parts of "
        "each shape's own category, a part absent from both prediction and truth counting as 1. Worst categories "
        "first.</p>\n<table class=grid><tr><th>category</th><th>shapes</th><th>mIoU</th><th>IoU per part</th></tr>"
        f"{table}</table>"
    ]
    panels = P.seg_predictions_panels(result, n=n, worst=True)
    save_png(render_panels(panels, size=size, view=_view(spec)), out / "mistakes.png")
    sections.append(_image_section("Worst shapes (lowest instance IoU first)", out / "mistakes.png", out))
    return sections


def _view(spec):
    from .render import View

    return View(up=spec.up_axis)


def _image_section(title: str, path: Path, out: Path) -> str:
    return (
        f'<h2>{html.escape(title)}</h2>\n<a href="{html.escape(_rel(path, out))}">'
        f'<img src="{_data_uri(path)}" alt="{html.escape(title)}"></a>'
    )


def _read_summary(run_dir: Path, notes: list[str]) -> dict[str, Any]:
    path = run_dir / "summary.json"
    if not path.is_file():
        return {}
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError:
        notes.append(f"{path.name} is not valid JSON.")
        return {}
    return summary if isinstance(summary, dict) else {}


def _summary_rows(summary: dict[str, Any], records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """``(label, text)`` rows of the summary table, in words."""
    rows: list[tuple[str, str]] = []
    last = records[-1]
    if not summary:  # a run still training (or an old one): its last epoch
        rows.append(("last epoch", str(last.get("epoch", len(records)))))
        rows += [(metric_name(k), format_value(k, v)) for k, v in last.items() if k != "epoch"]
        return rows
    best = summary.get("best") or {}
    epochs = summary.get("epochs", len(records))
    if best:
        how = summary.get("selected_by", "validation")
        rows.append(("selected checkpoint", f"epoch {best.get('epoch', '?')} of {epochs}, by {how}"))
        rows += [(metric_name(k), format_value(k, v)) for k, v in best.items() if k != "epoch"]
    final = summary.get("final") or {}
    if final and final.get("epoch") != best.get("epoch"):
        words = [f"{metric_name(k)} {format_value(k, v)}" for k, v in final.items() if k != "epoch"]
        rows.append((f"final epoch ({final.get('epoch')})", ", ".join(words)))
    for key, label in (("classes", "classes"), ("wall_time_s", "wall time"), ("train_shapes_per_s", "training speed")):
        if key in summary:
            value = summary[key]
            rows.append((label, f"{value:,.0f} shapes/s" if key == "train_shapes_per_s" else format_value(key, value)))
    if "device" in summary:
        name = summary.get("device_name")
        rows.append(("device", f"{summary['device']}" + (f" ({name})" if name else "")))
    splits = summary.get("splits") or {}
    for split, info in splits.items():
        if isinstance(info, dict):
            text = f"{info.get('shapes', '?')} shapes: {info.get('source', '')}"
            rows.append((f"{SPLIT_NAMES.get(split, split)} split", text))
        else:
            rows.append((f"{SPLIT_NAMES.get(split, split)} split", str(info)))
    if summary.get("versions"):
        rows.append(("versions", format_value("versions", summary["versions"])))
    known = {"best", "final", "epochs", "selected_by", "classes", "wall_time_s", "train_shapes_per_s", "device",
             "device_name", "splits", "versions", "model", "data"}  # fmt: skip
    rows += [(metric_name(k), format_value(k, v)) for k, v in summary.items() if k not in known]
    return rows


def _html(
    run_dir: Path,
    out: Path,
    records: list[dict[str, Any]],
    summary: dict[str, Any],
    sections: list[str],
    notes: list[str],
) -> str:
    name = run_dir.resolve().name
    what = " on ".join(str(summary[k]) for k in ("model", "data") if summary.get(k))
    title = what or f"Run {name}"
    rows = "".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(text)}</td></tr>"
        for label, text in _summary_rows(summary, records)
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
<title>pointnet-kit report: {html.escape(title)}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1400px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.4; }}
h1 {{ margin-bottom: 0.2em; }} h2 {{ margin-top: 1.6em; border-bottom: 1px solid #e4e4e4; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
table {{ border-collapse: collapse; margin: 0.5em 0; }}
th, td {{ text-align: left; padding: 3px 14px 3px 0; vertical-align: top; }}
th {{ font-weight: 600; }} td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
table.grid th, table.grid td {{ border-bottom: 1px solid #eee; padding: 3px 12px; }}
table.grid tr:nth-child(even) td {{ background: #fafafa; }}
.cols {{ display: flex; gap: 3em; flex-wrap: wrap; align-items: flex-start; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; }}
.note {{ color: #a15c00; }} .muted {{ color: #666; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="muted">pointnet-kit report of run folder <code>{html.escape(name)}</code> ·
{epochs} epoch{"s" if epochs != 1 else ""} recorded · {links}</p>
{note_html}
<h2>{"Summary" if summary else "Last epoch"}</h2>
<table>{rows}</table>
{chr(10).join(sections)}
{"<h2>Config</h2><pre>" + html.escape(config) + "</pre>" if config else ""}
</body></html>
"""
