"""Data: readers, surface sampling, ModelNet datasets, the embedded default dataset, augmentation."""

from .base import PointCloudDataset, stratified_split

__all__ = ["PointCloudDataset", "stratified_split"]
