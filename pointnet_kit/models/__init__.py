"""Models and the registry; importing this package registers every model."""

from . import pointnet  # noqa: F401  (registers the PointNet variants)
from . import pointnet2  # noqa: F401  (registers pointnet2_ssg, pointnet2_msg, pointnet2_ssg_seg)
from . import dgcnn  # noqa: F401  (registers dgcnn, dgcnn_seg)
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
