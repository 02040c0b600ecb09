"""What every registered model exposes, so the engine, export and viz never look inside a model.

A model is an ``nn.Module`` deriving from :class:`PointModel`:

* ``task``: ``"classification"`` or ``"part_segmentation"``;
* ``num_classes``: shape classes, or parts for segmentation (50 for ShapeNetPart);
* ``in_channels``: channels per point (3 for xyz, 6 with normals);
* ``num_categories``: segmentation models that take the shape category as a one-hot input (0: unused);
* ``forward(points (B, N, C), category (B,) | None) -> dict`` with ``logits`` ((B, K) or (B, N, K)) and
  ``losses`` (the model's own extra loss terms, already weighted; may be empty);
* ``forward_features(points, category) -> dict`` for viz and embeddings: ``global_feature (B, D)``,
  and where the model has them ``point_features (B, D, N)`` (max-pooled into the first ``D`` channels
  of the global feature),
  ``pooled`` (every per-point tensor over the input points that enters a max pool), ``layers`` (named
  per-point intermediate features) and ``transforms`` (learned ``(B, k, k)`` matrices).
"""

from __future__ import annotations

from torch import Tensor, nn

TASKS = ("classification", "part_segmentation")


class PointModel(nn.Module):
    """Base class of every registered model; subclasses set the attributes and implement both forwards."""

    task: str = "classification"
    num_classes: int
    in_channels: int
    num_categories: int = 0

    def forward(self, points: Tensor, category: Tensor | None = None) -> dict[str, Tensor]:  # pragma: no cover
        raise NotImplementedError

    def forward_features(self, points: Tensor, category: Tensor | None = None) -> dict[str, Tensor]:  # pragma: no cover
        raise NotImplementedError


def check_io(in_channels: int, num_categories: int = 0) -> None:
    """The inputs every model needs: at least xyz per point, and a non-negative category count."""
    if in_channels < 3:
        raise ValueError(f"in_channels must be at least 3 (xyz), got {in_channels}")
    if num_categories < 0:
        raise ValueError(f"num_categories must be >= 0, got {num_categories}")
