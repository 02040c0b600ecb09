"""Building blocks: the shared MLP, the T-Net, the orthogonality regularizer, Linear <-> conv converters."""

from .convert import conv2d_to_linear, linear_to_conv2d
from .shared_mlp import SharedMLP, conv1d_to_linear, linear_to_conv1d
from .tnet import TNet, orthogonality_loss

__all__ = [
    "SharedMLP",
    "TNet",
    "conv1d_to_linear",
    "conv2d_to_linear",
    "linear_to_conv1d",
    "linear_to_conv2d",
    "orthogonality_loss",
]
