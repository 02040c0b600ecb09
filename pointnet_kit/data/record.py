"""One record of what a run's data is (:class:`DataSpec`), saved in every checkpoint.

Eval, predict, viz and export read the spec from the checkpoint; nothing re-derives the number of
points, the channels, the up axis or the class and part names with a default of its own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

XYZ = ["x", "y", "z"]
NORMALS = ["nx", "ny", "nz"]
UP_AXES = ("x", "y", "z")
TASKS = ("classification", "part_segmentation")

DEFAULT_NUM_POINTS = 128
"""Points per shape the model sees unless a config says otherwise: the one default (``data.num_points``)."""
STORED_POINTS = 1024
"""Points per shape that generated and prepared caches hold (a run serves a prefix of them), and
that surface sampling draws when nothing else says how many."""
RELEASE_POINTS = 2048
"""Points per shape of the public HDF5 releases (``modelnet40_ply_hdf5_2048``, ShapeNetPart's): what
``data prepare`` writes, what ShapeNetPart's text layouts are sampled to, and the most ``viz`` draws
from a file unless ``--num-points`` says otherwise."""


def stored_points(num_points: int | None, at_least: int = STORED_POINTS) -> int:
    """Points per shape a dataset cache holds: ``at_least``, or more when a run asks for more (a run
    serves a prefix of the cached points, so one cache serves every smaller ``num_points``)."""
    return max(num_points or at_least, at_least)


def part_numbering(category_part_names: Mapping[str, Sequence[str]]) -> tuple[list[str], dict[str, list[int]]]:
    """``(part_names, category_parts)`` of ``{category: [part, ...]}``: parts numbered globally,
    category after category (ShapeNetPart's convention: Airplane 0-3, Bag 4-5, ...), named
    ``"Category/part"``."""
    names, ids = [], {}
    for category, parts in category_part_names.items():
        ids[category] = list(range(len(names), len(names) + len(parts)))
        names += [f"{category}/{part}" for part in parts]
    return names, ids


@dataclass
class DataSpec:
    """What the model sees and what its outputs mean.

    Attributes:
        task: ``"classification"`` or ``"part_segmentation"``.
        num_points: points per shape the model sees.
        channels: per-point channel names, ``x y z`` and optionally ``nx ny nz``.
        up_axis: ``"x"``, ``"y"`` or ``"z"``: rotation augmentation, votes and viz turn about it.
        class_names: shape classes (for segmentation data: the shape categories).
        part_names: global part names (segmentation), e.g. ``"Airplane/body"``.
        category_parts: category name -> its global part ids (segmentation).
        normalization: how a cloud is normalised before the model sees it (``"unit_sphere"``:
            centroid to the origin in float64, then scaled to a maximum radius of 1).
        source: where the data came from (root and format), for humans.
    """

    task: str = "classification"
    num_points: int = DEFAULT_NUM_POINTS
    channels: list[str] = field(default_factory=lambda: list(XYZ))
    up_axis: str = "z"
    class_names: list[str] = field(default_factory=list)
    part_names: list[str] | None = None
    category_parts: dict[str, list[int]] | None = None
    normalization: str = "unit_sphere"
    source: str = ""

    @property
    def in_channels(self) -> int:
        return len(self.channels)

    @property
    def num_classes(self) -> int:
        """Outputs of a model for this data: classes, or parts for segmentation."""
        if self.task == "part_segmentation":
            return len(self.part_names or [])
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (strings, numbers, lists, dicts) that checkpoints can hold under ``weights_only``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DataSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def segmentation_spec(category_part_names: Mapping[str, Sequence[str]]) -> DataSpec:
    """The segmentation fields of a part dataset's spec (categories, part names and ids, numbered by
    :func:`part_numbering`); the registry fills the rest."""
    part_names, category_parts = part_numbering(category_part_names)
    return DataSpec(
        task="part_segmentation", class_names=list(category_part_names), part_names=part_names, category_parts=category_parts
    )
