"""Visualization: Open3D rendering (headless PNG or a window), labelled grids, PointNet's critical points.

Open3D is imported only when something is rendered, so everything else works without it.
"""

from .features import (
    critical_points,
    features_of,
    input_transform,
    layer_features,
    layer_names,
    max_pool_inputs,
    max_pool_wins,
    upper_bound_shape,
)
from .render import (
    Cloud,
    Mesh,
    Renderer,
    RenderError,
    View,
    render_image,
    save_png,
    show,
)

__all__ = [
    "Cloud",
    "Mesh",
    "RenderError",
    "Renderer",
    "View",
    "critical_points",
    "features_of",
    "input_transform",
    "layer_features",
    "layer_names",
    "max_pool_inputs",
    "max_pool_wins",
    "render_image",
    "save_png",
    "show",
    "upper_bound_shape",
]
