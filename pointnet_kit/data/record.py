"""One record of what a run's data is (:class:`DataSpec`), saved in every checkpoint.

Eval, predict, viz and export read the spec from the checkpoint; nothing re-derives the number of
points, the channels, the up axis or the class and part names with a default of its own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

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
