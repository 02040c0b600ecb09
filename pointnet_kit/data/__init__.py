"""Data: readers, surface sampling, ModelNet datasets, the embedded default dataset, augmentation."""

from .base import PointCloudDataset, stratified_split
from .datasets import detect_format, open_dataset, train_val_split
from .io import load_points, read_mesh, read_off, read_point_cloud
from .sampling import farthest_point_sample, normalize_unit_sphere, sample_surface
from .synthetic import make_default_dataset
from .transforms import BatchCompose, build_batch_transforms

__all__ = [
    "PointCloudDataset",
    "stratified_split",
    "open_dataset",
    "detect_format",
    "train_val_split",
    "make_default_dataset",
    "load_points",
    "read_mesh",
    "read_off",
    "read_point_cloud",
    "sample_surface",
    "farthest_point_sample",
    "normalize_unit_sphere",
    "BatchCompose",
    "build_batch_transforms",
]
