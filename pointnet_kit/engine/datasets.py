"""From a data config to the exact train / validation / test sets a run uses, each with its DataSpec."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from ..data import PointCloudDataset, open_dataset, stratified_split
from ..errors import DataError
from .config import DataConfig

SPLITS = ("train", "val", "test")


def select_classes(dataset: PointCloudDataset, classes: list[str] | None) -> PointCloudDataset:
    """Keep only ``classes`` (in that order) and relabel them ``0..len(classes)-1``.

    For segmentation data the classes are categories; part ids stay global (the model keeps one
    output per part), and ``spec.category_parts`` keeps the chosen categories only.
    """
    if classes is None:
        return dataset
    missing = [c for c in classes if c not in dataset.class_names]
    if missing:
        raise DataError(f"data.classes names classes the data does not have: {', '.join(missing)}")
    old_to_new = np.full(dataset.num_classes, -1, dtype=np.int64)
    for new, name in enumerate(classes):
        old_to_new[dataset.class_names.index(name)] = new
    keep = np.flatnonzero(old_to_new[dataset.labels] >= 0)
    subset = dataset.subset(keep)
    subset.labels = old_to_new[subset.labels]
    subset.class_names = list(classes)
    if subset.spec is not None:
        parts = subset.spec.category_parts
        subset.spec = dataclasses.replace(
            subset.spec,
            class_names=list(classes),
            category_parts=None if parts is None else {c: list(parts[c]) for c in classes},
        )
    return subset


def load_split(data: DataConfig, split: str, root: str | None = None) -> PointCloudDataset:
    """The dataset for ``split``: ``train``/``val`` are the stratified, seeded split of the train files.

    ``root`` overrides ``data.root`` (evaluate a checkpoint on another copy of the data). The result's
    ``.spec`` is the run's :class:`~pointnet_kit.data.record.DataSpec`: the task from the format,
    ``data.num_points``, the channels, ``data.up_axis`` (or the format's when unset), class names
    and, for segmentation, part names and each category's parts.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    source = root or data.root
    file_split = "test" if split == "test" else "train"
    dataset = open_dataset(source, split=file_split, num_points=data.num_points, use_normals=data.use_normals)
    if data.up_axis is not None:
        dataset.spec = dataclasses.replace(dataset.spec, up_axis=data.up_axis)
    dataset = select_classes(dataset, data.classes)
    if len(dataset) == 0:
        raise DataError(f"no shapes in the {file_split} split of {source}")
    if split == "test":
        return dataset
    train_idx, val_idx = stratified_split(dataset.labels, data.val_fraction, data.split_seed)
    return dataset.subset(train_idx if split == "train" else val_idx)


def data_config_from_checkpoint(ckpt: Mapping[str, Any]) -> DataConfig:
    """The data section a checkpoint was trained with."""
    from .config import config_from_dict

    return config_from_dict(ckpt.get("config") or {}).data
