"""The embedded datasets, selected by name: ``default`` (classification, 12 classes) and
``default_parts`` (part segmentation, 6 categories, 17 parts). Generated offline on first use."""

from __future__ import annotations

from ..record import stored_points
from ..registry import DatasetFormat, register_format
from .hdf5 import describe_hdf5


@register_format
class EmbeddedFormat(DatasetFormat):
    name = "embedded"
    names = ("default", "embedded")
    task = "classification"
    up_axis = "z"
    layout = "the embedded classification dataset"

    def detect(self, root) -> bool:
        return str(root) in self.names

    def read(self, root, split, num_points, use_normals, cache_dir=None):
        from ..synthetic import make_default_dataset

        stored = stored_points(num_points)
        data = make_default_dataset(split, num_points=stored, cache_dir=cache_dir, use_normals=use_normals)
        data.num_points = min(num_points or stored, stored)
        return data

    def describe(self, root):
        from ..synthetic import default_dataset_dir

        return describe_hdf5(default_dataset_dir(), duplicates=False)


@register_format
class EmbeddedPartsFormat(DatasetFormat):
    name = "embedded_parts"
    names = ("default_parts",)
    task = "part_segmentation"
    up_axis = "z"
    layout = "the embedded part-segmentation dataset"

    def detect(self, root) -> bool:
        return str(root) in self.names

    def read(self, root, split, num_points, use_normals, cache_dir=None):
        from ..synthetic_parts import make_default_parts_dataset

        stored = stored_points(num_points)
        data = make_default_parts_dataset(split, num_points=stored, cache_dir=cache_dir, use_normals=use_normals)
        data.num_points = min(num_points or stored, stored)
        return data

    def describe(self, root):
        from ..synthetic_parts import CATEGORY_PARTS, PART_NAMES, default_parts_dir

        info = describe_hdf5(default_parts_dir(), duplicates=False)
        return {**info, "num_parts": len(PART_NAMES), "part_names": list(PART_NAMES), "category_parts": CATEGORY_PARTS}
