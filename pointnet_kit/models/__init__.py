"""Models and the registry; importing this package registers every model."""

from . import pointnet  # noqa: F401  (registers the PointNet variants)
from .pointnet import PointNetClassifier, PointNetEncoder, PointNetSegmentation
from .registry import create_model, list_models, register_model

__all__ = [
    "PointNetClassifier",
    "PointNetEncoder",
    "PointNetSegmentation",
    "create_model",
    "list_models",
    "register_model",
]
