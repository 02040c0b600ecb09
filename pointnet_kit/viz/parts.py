"""Part segmentation for the figures and the report: predictions restricted to a shape's category,
per-shape part IoU (the ShapeNetPart convention) and the parts figure.

Works from the model contract (``logits (B, N, K)`` over global part ids) and the run's
:class:`~pointnet_kit.data.record.DataSpec` (``class_names`` = categories, ``part_names``,
``category_parts``); nothing here knows a model or a file format.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..data.record import DataSpec
from ..errors import PointNetKitError
from . import colors as C
from .figures import CONTEXT_SCALE, Color, Panels, plural
from .render import Cloud

# Colours of a shape's parts, by the part's place in its category (at most 6 in ShapeNetPart);
# no red: red marks wrong points (colors.WRONG) beside them.
PART_COLORS: tuple[Color, ...] = (
    (0.12, 0.47, 0.71),
    (1.00, 0.50, 0.05),
    (0.17, 0.63, 0.17),
    (0.74, 0.74, 0.13),
    (0.58, 0.40, 0.74),
    (0.55, 0.34, 0.29),
    (0.89, 0.47, 0.76),
    (0.09, 0.75, 0.81),
)


def category_parts(spec: DataSpec, category: str) -> list[int]:
    """Global part ids of ``category`` (from the spec; an unknown category is an error naming the known ones)."""
    parts = (spec.category_parts or {}).get(category)
    if parts is None:
        known = ", ".join(sorted(spec.category_parts or {})) or "none"
        raise PointNetKitError(f"category {category!r} is not one of this run's: {known}")
    return list(parts)


def part_colors(labels: np.ndarray, parts: Sequence[int]) -> np.ndarray:
    """``(N, 3)`` colours of global part ids ``labels (N,)``: the i-th part of the category gets
    :data:`PART_COLORS` ``[i]``; ids outside ``parts`` are grey."""
    lookup = {int(p): PART_COLORS[i % len(PART_COLORS)] for i, p in enumerate(parts)}
    return np.array([lookup.get(int(label), C.NONE) for label in np.asarray(labels)], dtype=np.float64).reshape(-1, 3)


def predict_parts(logits: np.ndarray, parts: Sequence[int] | None = None) -> np.ndarray:
    """Global part ids ``(..., N)`` from ``logits (..., N, K)``, restricted to ``parts`` (the shape's
    category) when given, by the task's :func:`~pointnet_kit.tasks.segmentation.restricted_argmax`."""
    import torch

    from ..tasks.segmentation import restricted_argmax

    logits = torch.as_tensor(np.asarray(logits))
    flat = logits.reshape(-1, *logits.shape[-2:])  # (B, N, K)
    allowed = None
    if parts is not None:
        allowed = torch.zeros(len(flat), logits.shape[-1], dtype=torch.bool)
        allowed[:, list(parts)] = True
    return restricted_argmax(flat, allowed).reshape(logits.shape[:-1]).numpy()


def part_ious(predicted: np.ndarray, truth: np.ndarray, parts: Sequence[int]) -> np.ndarray:
    """IoU of each of the category's ``parts`` on one shape, ``(len(parts),)``, by the task's
    :func:`~pointnet_kit.tasks.segmentation.shape_part_ious` (a part absent from both prediction and
    truth counts as IoU 1, the ShapeNetPart convention); the shape's instance IoU is the mean.

    ``truth`` may hold -1 for points of a part the run does not know (never right).
    """
    import torch

    from ..tasks.segmentation import shape_part_ious

    # shifted by one so the -1 of unknown parts is a part id like the others
    predicted = np.asarray(predicted, dtype=np.int64).reshape(1, -1) + 1
    truth = np.asarray(truth, dtype=np.int64).reshape(1, -1) + 1
    num_parts = int(max(predicted.max(initial=0), truth.max(initial=0), max(parts, default=-1) + 1)) + 1
    ious = shape_part_ious(torch.from_numpy(predicted), torch.from_numpy(truth), num_parts)[0]
    return ious[torch.as_tensor(list(parts), dtype=torch.long) + 1].numpy()


def part_legend(parts: Sequence[int], part_names: Sequence[str] | None) -> list[tuple[Color, str]]:
    """Legend entries ``(colour, name)`` of a category's parts (``"Airplane/wing"`` shows as ``wing``)."""
    legend = []
    for i, part in enumerate(parts):
        name = part_names[part] if part_names and part < len(part_names) else f"part {part}"
        legend.append((PART_COLORS[i % len(PART_COLORS)], f"{name.split('/')[-1]} (part {part})"))
    return legend


def parts_panels(
    points: np.ndarray,
    predicted: np.ndarray,
    parts: Sequence[int],
    part_names: Sequence[str] | None = None,
    truth: np.ndarray | None = None,
    title: str | None = None,
    seen: int | None = None,
) -> Panels:
    """Predicted parts (beside the ground truth and the mistakes, when ``truth`` is known), with a
    legend of part names.

    Args:
        points: ``(N, 3)`` the points drawn; ``predicted``, ``truth``: ``(N,)`` global part ids.
        parts: the category's global part ids (fixes each part's colour).
        seen: points per forward pass the model saw (said in the caption when given).
    """
    points = np.asarray(points)[:, :3]
    predicted = np.asarray(predicted)
    caption = "predicted" + (f" (seeing {seen} points at a time)" if seen and seen < len(points) else "")
    scenes = [[Cloud(points, part_colors(predicted, parts))]]
    captions = [caption]
    legend = part_legend(parts, part_names)
    if truth is not None:
        truth = np.asarray(truth)
        wrong = predicted != truth
        iou = float(part_ious(predicted, truth, parts).mean())
        scenes.append([Cloud(points, part_colors(truth, parts))])
        captions.append("ground truth")
        errors: list = []
        if (~wrong).any():
            errors.append(Cloud(points[~wrong], np.tile(C.CONTEXT, (int((~wrong).sum()), 1)), CONTEXT_SCALE, False))
        if wrong.any():
            errors.append(Cloud(points[wrong], np.tile(C.WRONG, (int(wrong.sum()), 1))))
        scenes.append(errors)
        captions.append(f"{plural(int(wrong.sum()), 'wrong point')}; IoU {iou:.1%}")
        legend.append((C.WRONG, "a point whose predicted part is wrong"))
    return Panels(scenes=scenes, captions=captions, title=title, columns=len(scenes), fit=points, legend=legend)


def shape_scores(
    predicted: np.ndarray, truth: np.ndarray, categories: np.ndarray, spec: DataSpec
) -> np.ndarray:
    """Instance IoU of every shape, ``(M,)``: ``predicted``, ``truth`` ``(M, N)`` global part ids,
    ``categories (M,)`` indices into ``spec.class_names``."""
    return np.array(
        [
            part_ious(p, t, category_parts(spec, spec.class_names[int(c)])).mean()
            for p, t, c in zip(predicted, truth, categories)
        ]
    )


def part_table(
    predicted: np.ndarray, truth: np.ndarray, categories: np.ndarray, spec: DataSpec
) -> list[dict[str, object]]:
    """One row per part of every category present: ``category``, ``part``, ``shapes`` and ``iou``
    (the part's IoU averaged over the shapes of its category)."""
    rows = []
    for c in np.unique(categories):
        name = spec.class_names[int(c)]
        parts = category_parts(spec, name)
        members = np.flatnonzero(categories == c)
        ious = np.stack([part_ious(predicted[i], truth[i], parts) for i in members])  # (shapes, parts)
        for j, part in enumerate(parts):
            part_name = spec.part_names[part] if spec.part_names else f"part {part}"
            rows.append(
                {"category": name, "part": part_name.split("/")[-1], "id": part, "shapes": len(members),
                 "iou": float(ious[:, j].mean())}
            )  # fmt: skip
    return rows


def seg_grid_panels(
    points: Sequence[np.ndarray],
    predicted: Sequence[np.ndarray],
    truth: Sequence[np.ndarray],
    categories: Sequence[int],
    spec: DataSpec,
    title: str | None = None,
    ious: Sequence[float] | None = None,
) -> Panels:
    """Shapes coloured by predicted part, captioned ``category: IoU ..`` (each shape's own palette:
    the i-th part of its category in :data:`PART_COLORS` ``[i]``).

    ``ious``: the shapes' instance IoU as evaluated (default: computed from the drawn points).
    """
    scenes, captions = [], []
    for k, (p, pred, true, c) in enumerate(zip(points, predicted, truth, categories)):
        name = spec.class_names[int(c)]
        parts = category_parts(spec, name)
        iou = float(part_ious(pred, true, parts).mean()) if ious is None else float(ious[k])
        scenes.append([Cloud(np.asarray(p)[:, :3], part_colors(pred, parts))])
        captions.append(f"{name}: IoU {iou:.0%}")
    most = max(len(category_parts(spec, spec.class_names[int(c)])) for c in categories)
    legend = [(PART_COLORS[i], f"predicted part {i + 1} of the shape's category") for i in range(most)]
    return Panels(scenes=scenes, captions=captions, title=title, legend=legend)


def split_predicted_parts(result) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(predicted (M, N), truth (M, N), instance IoU (M,))`` of a segmentation
    :class:`~pointnet_kit.viz.sources.SplitPredictions`, over the points the model saw."""
    dataset, spec = result.dataset, result.spec
    if dataset.part_labels is None:
        raise PointNetKitError("this split has no per-point part labels; is it a part segmentation dataset?")
    truth = dataset.part_labels[:, : dataset.num_points]
    predicted = np.stack(
        [
            predict_parts(result.probs[i], category_parts(spec, spec.class_names[int(c)]))
            for i, c in enumerate(dataset.labels)
        ]
    )
    return predicted, truth, shape_scores(predicted, truth, dataset.labels, spec)


def seg_predictions_panels(
    result, n: int = 16, worst: bool = False, seed: int = 0, num_points: int | None = None
) -> Panels:
    """A grid of a segmentation split's shapes, predicted parts drawn at display density.

    ``worst``: the shapes with the lowest instance IoU first; otherwise shapes spread over categories.
    Every drawn point gets the model's own prediction, the model seeing as many points per pass as
    it was trained on (:func:`~pointnet_kit.viz.sources.predict_dense`).
    """
    from . import sources
    from .figures import choose_samples

    dataset, spec = result.dataset, result.spec
    _, _, scores = split_predicted_parts(result)
    chosen = np.argsort(scores, kind="stable")[:n] if worst else choose_samples(dataset.labels, n, seed)
    drawn, predicted, truth = [], [], []
    display = result.drawn(num_points)
    for i in chosen:
        points = display[i]
        category = int(dataset.labels[i])
        parts = category_parts(spec, spec.class_names[category])
        logits = sources.predict_dense(result.model, points, dataset.num_points, category, seed)
        drawn.append(points)
        predicted.append(predict_parts(logits, parts))
        truth.append(dataset.part_labels[i, : len(points)])
    title = (
        f"instance mIoU {scores.mean():.1%} over {plural(len(scores), 'shape')}; "
        f"{'the ' + str(len(chosen)) + ' worst' if worst else str(len(chosen))} shown "
        f"({len(drawn[0])} points drawn, the model sees {dataset.num_points} at a time)"
    )
    # Captions give the IoU as evaluated (on the points the model saw), the number the metrics report.
    return seg_grid_panels(drawn, predicted, truth, dataset.labels[chosen], spec, title=title, ious=scores[chosen])
