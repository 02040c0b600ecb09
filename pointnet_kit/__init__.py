"""pointnet-kit: PointNet-style point cloud toolkit.

Importing the package is cheap (no torch): the public names below are loaded on first use
(PEP 562), so ``pointnet-kit --help`` and ``--version`` answer at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "create_model": "pointnet_kit.models",
    "list_models": "pointnet_kit.models",
    "seed_everything": "pointnet_kit.utils",
}
__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # for type checkers and IDEs; never executed
    from .models import create_model, list_models
    from .utils import seed_everything


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this hook
        return value
    raise AttributeError(f"module 'pointnet_kit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
