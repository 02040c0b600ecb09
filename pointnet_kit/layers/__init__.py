"""Building blocks: the shared MLP, the T-Net and the orthogonality regularizer."""

from .shared_mlp import SharedMLP, conv1d_to_linear, linear_to_conv1d
from .tnet import TNet, orthogonality_loss

__all__ = ["SharedMLP", "TNet", "conv1d_to_linear", "linear_to_conv1d", "orthogonality_loss"]
