"""A small model registry: ``create_model(name, **kwargs)`` in the style of timm."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ..errors import PointNetKitError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a factory ``fn(**kwargs) -> nn.Module`` under ``name``."""

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = fn
        return fn

    return decorator


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_MODELS)


def create_model(name: str, seed: int | None = None, **kwargs: Any) -> nn.Module:
    """Build a registered model.

    Args:
        name: a name from :func:`list_models`, e.g. ``"pointnet"``.
        seed: if given, parameters are initialised from this seed without touching the global RNG,
            so the same seed always gives the same weights.
        **kwargs: passed to the factory (``num_classes``, ``in_channels``, ...).

    The returned module carries ``model_name`` and ``model_kwargs`` so checkpoints can rebuild it.
    """
    if name not in _MODELS:
        raise PointNetKitError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    if seed is None:
        model = _MODELS[name](**kwargs)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _MODELS[name](**kwargs)
    model.model_name = name
    model.model_kwargs = dict(kwargs)
    return model
