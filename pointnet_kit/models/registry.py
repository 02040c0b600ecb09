"""A small model registry: ``create_model(name, **kwargs)`` in the style of timm."""

from __future__ import annotations

from typing import Any, Callable

import torch

from ..errors import PointNetKitError
from .contract import PointModel

_MODELS: dict[str, Callable[..., PointModel]] = {}


def register_model(name: str) -> Callable[[Callable[..., PointModel]], Callable[..., PointModel]]:
    """Decorator: register a factory ``fn(num_classes=, in_channels=, **kwargs) -> PointModel`` under ``name``.

    Segmentation factories also take ``num_categories``. Registering is all a new model needs: the
    engine, export and viz use only the :class:`~pointnet_kit.models.contract.PointModel` contract.
    """

    def decorator(fn: Callable[..., PointModel]) -> Callable[..., PointModel]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = fn
        return fn

    return decorator


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_MODELS)


def create_model(name: str, seed: int | None = None, pretrained: str | None = None, **kwargs: Any) -> PointModel:
    """Build a registered model.

    Args:
        name: a name from :func:`list_models`, e.g. ``"pointnet"``.
        seed: if given, parameters are initialised from this seed without touching the global RNG,
            so the same seed always gives the same weights.
        pretrained: a shipped pretrained model of this architecture (``"modelnet40"``, see
            :func:`~pointnet_kit.models.pretrained.list_pretrained`): its weights, in eval mode, with
            its ``data_spec`` (class names, points, up axis) as ``model.data_spec``.
        **kwargs: passed to the factory (``num_classes``, ``in_channels``, ...).

    The returned module carries ``model_name`` and ``model_kwargs`` so checkpoints can rebuild it.
    """
    if pretrained is not None:
        return _create_pretrained(name, pretrained, kwargs)
    if name not in _MODELS:
        raise PointNetKitError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    if seed is None:
        model = _MODELS[name](**kwargs)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _MODELS[name](**kwargs)
    if not isinstance(model, PointModel):
        raise TypeError(f"model {name!r} is a {type(model).__name__}, not a PointModel (see models/contract.py)")
    model.model_name = name
    model.model_kwargs = dict(kwargs)
    return model


def _create_pretrained(name: str, pretrained: str, kwargs: dict[str, Any]) -> PointModel:
    from .pretrained import load_pretrained

    ckpt = load_pretrained(pretrained)
    if ckpt["model_name"] != name:
        raise PointNetKitError(f"pretrained {pretrained!r} is a {ckpt['model_name']!r} model, not {name!r}")
    stored = dict(ckpt["model_kwargs"])
    clash = {k: v for k, v in kwargs.items() if stored.get(k, v) != v}
    if clash:
        raise PointNetKitError(f"pretrained {pretrained!r} was trained with {stored}; cannot change {sorted(clash)}")
    model = create_model(name, **{**stored, **kwargs})
    model.load_state_dict(ckpt["model_state"])
    model.data_spec = dict(ckpt.get("data_spec") or {})
    return model.eval()
