"""Pretrained models shipped inside the package, reachable by name.

``create_model("pointnet", pretrained="modelnet40")`` builds the model with the shipped weights, and
every command that takes a checkpoint (``predict``, ``eval``, ``viz ...``, ``export``) also takes the
name: ``pointnet-kit predict modelnet40 chair.off``.

A shipped file is a checkpoint dict like the trainer's (``model_name``, ``model_kwargs``,
``model_state`` in half precision, ``task``, ``data_spec``, ``config``, ``class_names``) plus
``validation`` (the numbers it was selected on) and ``provenance`` (data, recipe, seed, commit).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError

PRETRAINED: dict[str, str] = {
    "modelnet40": "pointnet_modelnet40.pt",
}
"""Pretrained name -> file in ``pointnet_kit/pretrained/``."""


def list_pretrained() -> list[str]:
    """Names of the shipped pretrained models."""
    return sorted(PRETRAINED)


def pretrained_path(name: str) -> Path:
    """The shipped file of pretrained model ``name``."""
    if name not in PRETRAINED:
        raise CheckpointError(f"no pretrained model {name!r}; shipped: {', '.join(list_pretrained())}")
    path = Path(str(resources.files("pointnet_kit") / "pretrained" / PRETRAINED[name]))
    if not path.is_file():
        raise CheckpointError(f"pretrained model {name!r} is missing from this installation ({path})")
    return path


def load_pretrained(name: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict of pretrained model ``name``, weights converted to float32."""
    ckpt = torch.load(pretrained_path(name), map_location=map_location, weights_only=True)
    ckpt["model_state"] = {
        k: v.float() if torch.is_floating_point(v) else v for k, v in ckpt["model_state"].items()
    }
    return ckpt
