"""The one exception type the CLI turns into a one-line message and a non-zero exit."""

from __future__ import annotations


class PointNetKitError(Exception):
    """A user-facing error: bad input, a missing file, a wrong config key.

    The CLI prints ``error: <message>`` and exits with status 2; library callers can catch it.
    """


class ConfigError(PointNetKitError):
    """An unknown key, a wrong type or a bad value in a config or an override."""


class DataError(PointNetKitError):
    """A missing, empty or malformed dataset, mesh or point cloud file."""


class CheckpointError(PointNetKitError):
    """A missing or corrupt checkpoint, or one that does not fit what was asked of it."""


class NonFiniteError(PointNetKitError):
    """NaN or infinite values: a diverged training, a checkpoint with non-finite weights, or outputs
    that are not numbers. Never passed on as an answer."""
