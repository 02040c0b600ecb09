"""pointnet-kit: PointNet-style point cloud toolkit."""

from .models import create_model, list_models
from .utils import seed_everything

__version__ = "0.1.0"
__all__ = ["__version__", "create_model", "list_models", "seed_everything"]
